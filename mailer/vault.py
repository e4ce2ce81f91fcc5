"""Personal data at rest: the one module that holds keys.

Every column that names or describes a person is stored as a token of this module, never in clear, and
looked up through a keyed blind index. Keys come from the settings, never from the database.

One installation key (``mailer keys generate``) holds two 32-byte secrets:

- the *index* secret, for blind indexes (HMAC-SHA256 of a canonical value): stable for the life of the
  installation, so that "the same address again" is found without ever storing the address;
- the *data* secret, from which the symmetric key (AES-256-GCM-SIV, from ``cryptography``) and a
  Curve25519 key pair (PyNaCl) are derived. Rotation adds a new data secret in front (``MAILER_DATA_KEY=new,old``): the new one encrypts,
  every one listed still decrypts, and ``mailer privacy rekey`` moves old tokens to the new key.

Its *public* form (``mailer keys public``) holds the index secret and the public key only. A process given
it (the action pages, the most exposed) can write a submission, sealed to the public key, and can find
people by index, but cannot read anything stored, not even what it wrote.

Tokens: ``v1.<kid>.<nonce+ciphertext>`` under the symmetric key, ``s1.<kid>.<sealed box>`` written with the
public key. Each is bound to its column (a label as associated data), so a value moved to another column
does not decrypt. Records such as a letter carry a key of their own (:func:`new_record_key`): whoever holds
that key (the confirmation link does) reads that record and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from mailer.errors import N_, ConfigError, MailerError

KEY_PREFIX = "mailer-key-v1"
PUBLIC_PREFIX = "mailer-pub-v1"
SECRET_BYTES = 32
NONCE_BYTES = 12  # random; AES-GCM-SIV stays safe even if two ever collided (it would only show equality)
#: Fewer distinct byte values than this in 32 bytes is not a random key (about 1 in 10^20 for a real one).
MIN_DISTINCT_BYTES = 16


class LockedError(MailerError):
    """This process holds only the public key: it may write personal data but never read it."""


class UnreadableError(MailerError):
    """A stored value that no key of ours opens: a wrong key, a key missing from the list, or tampering."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: bytes, purpose: bytes) -> bytes:
    """A sub-key for one purpose (BLAKE2b keyed with the secret, personalised by purpose)."""
    return hashlib.blake2b(b"", key=secret, person=purpose, digest_size=32).digest()


def _kid(public: PublicKey) -> str:
    return hashlib.blake2b(bytes(public), digest_size=4).hexdigest()


@dataclass(frozen=True)
class DataKey:
    """One generation of the data secret: the public half always, the private halves when we have them."""

    kid: str
    public: PublicKey
    aead: AESGCMSIV | None = None
    private: PrivateKey | None = None

    @classmethod
    def from_secret(cls, secret: bytes) -> DataKey:
        private = PrivateKey(_derive(secret, b"mailer-box"))
        return cls(
            _kid(private.public_key), private.public_key, AESGCMSIV(_derive(secret, b"mailer-aead")), private
        )


def _secret(text: str, what: str, variable: str) -> bytes:
    try:
        raw = _unb64(text)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != SECRET_BYTES:
        raise ConfigError(
            N_(
                "%(variable)s: the %(what)s part is not 32 bytes in base64; make a key with `mailer keys generate`"
            ),
            variable=variable,
            what=what,
        )
    if len(set(raw)) < MIN_DISTINCT_BYTES:
        raise ConfigError(
            N_(
                "%(variable)s: the %(what)s part is too weak to be random; make a key with `mailer keys generate`"
            ),
            variable=variable,
            what=what,
        )
    return raw


def generate_key() -> str:
    """A new installation key (index secret and data secret), as ``MAILER_DATA_KEY`` takes it."""
    return f"{KEY_PREFIX}.{_b64(secrets.token_bytes(32))}.{_b64(secrets.token_bytes(32))}"


def new_record_key() -> str:
    """A key for one record, as text (it travels in a link and is stored encrypted with the vault)."""
    return _b64(secrets.token_bytes(SECRET_BYTES))


def _seal(cipher: AESGCMSIV, data: bytes, label: str) -> bytes:
    """AES-256-GCM-SIV with a random nonce, the label as associated data: nonce + ciphertext."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + cipher.encrypt(nonce, data, label.encode())


def _open(cipher: AESGCMSIV, sealed: bytes, label: str) -> bytes:
    return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], label.encode())


def _record_key(key: str) -> AESGCMSIV:
    raw = _unb64(key)
    if len(raw) != SECRET_BYTES:
        raise ValueError("not a record key")
    return AESGCMSIV(raw)


def seal_record(key: str, record: dict[str, Any], label: str) -> str:
    """A record (a letter's private part) under its own key."""
    data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    return "k1." + _b64(_seal(_record_key(key), data, label))


def open_record(key: str, token: str, label: str) -> dict[str, Any]:
    try:
        prefix, body = token.split(".", 1)
        if prefix != "k1":
            raise ValueError(prefix)
        value = json.loads(_open(_record_key(key), _unb64(body), label))
    except (InvalidTag, ValueError, TypeError, binascii.Error) as err:
        raise UnreadableError(N_("a stored record does not open with its key")) from err
    if not isinstance(value, dict):
        raise UnreadableError(N_("a stored record does not open with its key"))
    return value


class Vault:
    """Encrypts, decrypts and indexes personal values with this installation's keys."""

    def __init__(self, index_key: bytes, keys: list[DataKey]) -> None:
        if not keys:
            raise ValueError("a vault needs at least one data key")
        self.index_key = index_key
        self.keys = keys
        self._by_kid = {k.kid: k for k in keys}

    @classmethod
    def parse(cls, text: str, variable: str = "MAILER_DATA_KEY") -> Vault:
        """Keys separated by commas or new lines, the current one first; full keys or public ones."""
        entries = [
            e.strip() for e in text.replace("\n", ",").split(",") if e.strip() and not e.startswith("#")
        ]
        if not entries:
            raise ConfigError(N_("%(variable)s holds no key"), variable=variable)
        index_keys: set[bytes] = set()
        keys: list[DataKey] = []
        for entry in entries:
            parts = entry.split(".")
            if len(parts) != 3 or parts[0] not in (KEY_PREFIX, PUBLIC_PREFIX):
                raise ConfigError(
                    N_(
                        "%(variable)s: each key starts with %(prefix)s (make one with `mailer keys generate`)"
                    ),
                    variable=variable,
                    prefix=KEY_PREFIX,
                )
            index_keys.add(_secret(parts[1], "index", variable))
            if parts[0] == KEY_PREFIX:
                keys.append(DataKey.from_secret(_secret(parts[2], "data", variable)))
            else:
                public = PublicKey(_secret(parts[2], "public", variable))
                keys.append(DataKey(_kid(public), public))
        if len(index_keys) > 1:
            raise ConfigError(
                N_(
                    "%(variable)s: the keys listed belong to different installations (their index parts differ)"
                ),
                variable=variable,
            )
        if len({k.kid for k in keys}) != len(keys):
            raise ConfigError(N_("%(variable)s lists the same key twice"), variable=variable)
        return cls(index_keys.pop(), keys)

    @property
    def current(self) -> DataKey:
        return self.keys[0]

    @property
    def can_read(self) -> bool:
        return self.current.aead is not None

    def public_form(self) -> str:
        """The current key as a process that must only write is given it."""
        return f"{PUBLIC_PREFIX}.{_b64(self.index_key)}.{_b64(bytes(self.current.public))}"

    def rotated_key(self) -> str:
        """A new data secret for this installation: the index secret is kept, so lookups go on working."""
        return f"{KEY_PREFIX}.{_b64(self.index_key)}.{_b64(secrets.token_bytes(SECRET_BYTES))}"

    def index(self, value: str, kind: str = "email") -> str:
        """The blind index of a value: equal values match, and nobody without the key can test a guess."""
        message = kind.encode() + b"\0" + value.encode()
        return _b64(hmac.new(self.index_key, message, hashlib.sha256).digest())

    def address_index(self, address: str) -> str:
        """Addresses differing only in case are the same person."""
        return self.index(address.strip().lower(), "email")

    def index_check(self) -> str:
        """What the database keeps to recognise this installation's index key (it reveals nothing else)."""
        return self.index("solidarity-mailer", "check")

    def encrypt(self, plaintext: str, label: str) -> str:
        key = self.current
        data = plaintext.encode()
        if key.aead is not None:
            return f"v1.{key.kid}.{_b64(_seal(key.aead, data, label))}"
        # Only the public key here: a sealed box, with the label inside since a box has no associated data.
        sealed = SealedBox(key.public).encrypt(label.encode() + b"\0" + data)
        return f"s1.{key.kid}.{_b64(sealed)}"

    def decrypt(self, token: str, label: str) -> str:
        try:
            version, kid, body = token.split(".", 2)
        except ValueError:
            raise UnreadableError(N_("a stored value is not one of ours")) from None
        key = self._by_kid.get(kid)
        if key is None:
            raise UnreadableError(
                N_("a stored value is under key %(kid)s, which MAILER_DATA_KEY does not list"), kid=kid
            )
        if key.aead is None or key.private is None:
            raise LockedError(N_("this process holds only the public key: it cannot read personal data"))
        try:
            if version == "v1":
                return _open(key.aead, _unb64(body), label).decode()
            if version == "s1":
                opened = SealedBox(key.private).decrypt(_unb64(body))
                bound, _, data = opened.partition(b"\0")
                if bound == label.encode():
                    return data.decode()
        except (InvalidTag, CryptoError, ValueError, binascii.Error):
            pass
        raise UnreadableError(N_("a stored value does not open with key %(kid)s"), kid=kid)

    def kids(self) -> Iterable[str]:
        return self._by_kid.keys()
