"""Signed tokens for links in emails (unsubscribe, confirmation).

Tokens carry opaque ids only. Several keys may be configured (newest first): the newest signs, all verify,
so keys can be rotated without breaking links already in people's inboxes.
"""

from __future__ import annotations

from typing import Any, Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

Purpose = Literal["unsubscribe", "confirm"]


class InvalidToken(Exception):
    """The token is forged, tampered with, expired or for another purpose."""


class TokenSigner:
    """Signs and verifies tokens with rotating keys; each purpose has its own salt."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        # itsdangerous signs with the last key of the list and accepts all of them.
        self._keys = list(reversed(keys))
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        serializer = self._serializers.get(purpose)
        if serializer is None:
            serializer = URLSafeTimedSerializer(self._keys, salt=f"solidarity-mailer.{purpose}")
            self._serializers[purpose] = serializer
        return serializer

    def sign(self, purpose: Purpose, payload: dict[str, Any]) -> str:
        return str(self._serializer(purpose).dumps(payload))

    def verify(self, purpose: Purpose, token: str, max_age: int | None = None) -> dict[str, Any]:
        """The payload of a valid token, or :class:`InvalidToken`."""
        try:
            payload = self._serializer(purpose).loads(token, max_age=max_age)
        except SignatureExpired as err:
            raise InvalidToken("expired") from err
        except BadSignature as err:
            raise InvalidToken("bad signature") from err
        if not isinstance(payload, dict):
            raise InvalidToken("unexpected payload")
        return payload
