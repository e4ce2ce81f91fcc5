"""Signed link tokens: what the fast signer writes, itsdangerous reads, and nothing forged passes."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer

from mailer.tokens import InvalidToken, TokenSigner

KEYS = ("new-key-" + "n" * 24, "old-key-" + "o" * 24)
MOMENT = 1_800_000_000.0


def reference(purpose: str, keys: tuple[str, ...] = KEYS) -> URLSafeTimedSerializer:
    """itsdangerous as the signer used it before it wrote tokens itself (newest key last)."""
    return URLSafeTimedSerializer(list(reversed(keys)), salt=f"solidarity-mailer.{purpose}")


@pytest.mark.parametrize(
    "payload", [{"s": 1, "m": 2}, {"s": 123456789, "m": 987654321}, {"l": 7}, {"c": "x" * 200}]
)
def test_tokens_are_byte_for_byte_those_of_itsdangerous(
    payload: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: MOMENT)
    signer = TokenSigner(KEYS, clock=lambda: MOMENT)
    for purpose in ("unsubscribe", "confirm"):
        token = signer.sign(purpose, payload)  # type: ignore[arg-type]
        assert token == reference(purpose).dumps(payload)
        assert signer.verify(purpose, token) == payload  # type: ignore[arg-type]


def test_a_token_signed_with_a_retired_key_still_verifies_and_a_forged_one_does_not() -> None:
    old = TokenSigner(KEYS[1:]).sign("unsubscribe", {"s": 5, "m": 6})
    assert TokenSigner(KEYS).verify("unsubscribe", old) == {"s": 5, "m": 6}
    forged = TokenSigner(("someone-else-" + "x" * 20,)).sign("unsubscribe", {"s": 5, "m": 6})
    with pytest.raises(InvalidToken):
        TokenSigner(KEYS).verify("unsubscribe", forged)
    _body, stamp, signature = old.split(".")
    tampered = ".".join([reference("unsubscribe").dump_payload({"s": 6, "m": 6}).decode(), stamp, signature])
    with pytest.raises(InvalidToken):
        TokenSigner(KEYS).verify("unsubscribe", tampered)


def test_a_token_for_one_purpose_is_refused_for_another_and_expires() -> None:
    signer = TokenSigner(KEYS, clock=lambda: MOMENT)
    token = signer.sign("unsubscribe", {"s": 1})
    with pytest.raises(InvalidToken):
        signer.verify("confirm", token)
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify("unsubscribe", token, max_age=60)  # signed at MOMENT, checked now: long expired
