"""Signed tokens for links in emails (unsubscribe, confirmation).

Tokens carry opaque ids only. Several keys may be configured (newest first): the newest signs, all verify,
so keys can be rotated without breaking links already in people's inboxes.

Verifying is itsdangerous's ``URLSafeTimedSerializer``. Signing writes the same format itself: a mailout
signs a token per recipient, and itsdangerous derives the key again and tries to compress every payload
(three quarters of its time). Ours derives each key once and keeps a keyed HMAC to copy; the tokens are
byte for byte what itsdangerous would write for payloads too small to compress.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

Purpose = Literal["unsubscribe", "confirm", "reply", "follow_up"]
#: Payloads shorter than this never compress (zlib adds six bytes and saves none on a few ids).
_SMALL_PAYLOAD = 64


def _compact_json(payload: dict[str, Any]) -> bytes:
    """``json.dumps(payload, separators=(",", ":"))``: written directly for the usual ids (short plain keys,
    integer values), a few times faster."""
    if all(type(v) is int and k.isascii() and k.isalnum() for k, v in payload.items()):
        return ("{" + ",".join(f'"{k}":{v}' for k, v in payload.items()) + "}").encode()
    return json.dumps(payload, separators=(",", ":")).encode()


class InvalidToken(Exception):
    """The token is forged, tampered with, expired or for another purpose."""


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class TokenSigner:
    """Signs and verifies tokens with rotating keys; each purpose has its own salt."""

    def __init__(self, keys: tuple[str, ...], clock: Callable[[], float] | None = None) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        # itsdangerous signs with the last key of the list and accepts all of them.
        self._keys = list(reversed(keys))
        self._serializers: dict[str, URLSafeTimedSerializer] = {}
        self._macs: dict[str, Any] = {}
        self._clock = clock

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        serializer = self._serializers.get(purpose)
        if serializer is None:
            serializer = URLSafeTimedSerializer(self._keys, salt=f"solidarity-mailer.{purpose}")
            self._serializers[purpose] = serializer
        return serializer

    def _mac(self, purpose: Purpose) -> Any:
        """The HMAC keyed for a purpose, as itsdangerous derives it ("django-concat", SHA-1), made once."""
        mac = self._macs.get(purpose)
        if mac is None:
            salt = f"solidarity-mailer.{purpose}".encode()
            derived = hashlib.sha1(salt + b"signer" + self._keys[-1].encode()).digest()  # noqa: S324 - itsdangerous's format
            mac = self._macs[purpose] = hmac.new(derived, digestmod=hashlib.sha1)
        return mac

    def sign(self, purpose: Purpose, payload: dict[str, Any]) -> str:
        data = _compact_json(payload)
        if len(data) >= _SMALL_PAYLOAD:  # might compress: let itsdangerous decide
            return str(self._serializer(purpose).dumps(payload))
        now = self._clock() if self._clock is not None else time.time()  # looked up now, as itsdangerous does
        stamp = int(now).to_bytes(8, "big").lstrip(b"\0")
        value = _b64(data) + b"." + _b64(stamp)
        mac = self._mac(purpose).copy()
        mac.update(value)
        return (value + b"." + _b64(mac.digest())).decode("ascii")

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


#: What a tag in our inbound address stands for: the ledger row it was sent with names the person.
ADDRESS_TAGS = {"u": "unsubscribe", "r": "reply", "b": "bounce"}
_TAG_MAC_BYTES = 10  # 80 bits: a forger must guess; nobody can try more than the mail they can send


@dataclass(frozen=True)
class AddressTag:
    """A verified tag: what the mail to it does, and the ledger row it came with."""

    kind: str
    message_id: int


class AddressTags:
    """Signed tags in the local part of the inbound address (``reply+u3f-k7q...@in.example.org``).

    Tokens of :class:`TokenSigner` are too long for a local part (RFC 5321 allows 64 octets) and case
    sensitive, which mail servers need not respect; these are lower case, short, and never expire: a reply
    may come months after the letter. Every configured key verifies, the newest signs.
    """

    def __init__(self, keys: tuple[str, ...], inbound_address: str) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self.local, _, self.domain = inbound_address.lower().rpartition("@")
        self._macs = [
            hmac.new(hashlib.sha256(b"solidarity-mailer.address-tag" + k.encode()).digest(), b"", "sha256")
            for k in keys
        ]

    def _mac(self, which: Any, body: str) -> str:
        mac = which.copy()
        mac.update(body.encode("ascii"))
        return base64.b32encode(mac.digest()[:_TAG_MAC_BYTES]).decode("ascii").lower()

    def address(self, kind: str, message_id: int) -> str:
        """The address mail about ledger row ``message_id`` comes back to, for ``kind``."""
        if kind not in ADDRESS_TAGS:
            raise ValueError(f"unknown tag kind {kind!r}")
        body = kind + _base36(message_id)
        return f"{self.local}+{body}-{self._mac(self._macs[0], body)}@{self.domain}"

    def read(self, address: str) -> AddressTag | None:
        """The tag of one of our tagged addresses; None for any other address; :class:`InvalidToken` for
        ours with a tag we did not sign (forged, or mangled on the way)."""
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        base, plus, tag = local.partition("+")
        if domain != self.domain or base != self.local or not plus:
            return None
        body, _, mac = tag.partition("-")
        if len(body) < 2 or body[0] not in ADDRESS_TAGS or len(body) > 14:
            raise InvalidToken("not a tag of ours")
        if not any(hmac.compare_digest(self._mac(m, body), mac) for m in self._macs):
            raise InvalidToken("bad signature")
        try:
            return AddressTag(ADDRESS_TAGS[body[0]], int(body[1:], 36))
        except ValueError as err:
            raise InvalidToken("not a tag of ours") from err


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number <= 0:
        raise ValueError("ledger ids are positive")
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out
