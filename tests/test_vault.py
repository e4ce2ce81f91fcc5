"""The vault: authenticated encryption bound to its column, blind indexes, keys from settings only."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from mailer.config import Settings
from mailer.errors import ConfigError
from mailer.vault import (
    KEY_PREFIX,
    LockedError,
    UnreadableError,
    Vault,
    generate_key,
    new_record_key,
    open_record,
    seal_record,
)
from tests.conftest import DATA_KEY

VAULT = Vault.parse(DATA_KEY)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_value_comes_back_and_its_token_shows_nothing_of_it() -> None:
    token = VAULT.encrypt("Rojda Şêxo <rojda@example.net>", "supporter.name")
    assert "rojda" not in token.lower()
    assert "example" not in token
    assert VAULT.decrypt(token, "supporter.name") == "Rojda Şêxo <rojda@example.net>"
    # The same value twice gives two tokens: nobody can tell that two rows hold the same name.
    assert VAULT.encrypt("Rojda", "supporter.name") != VAULT.encrypt("Rojda", "supporter.name")


def test_a_flipped_bit_or_a_value_moved_to_another_column_does_not_open() -> None:
    token = VAULT.encrypt("yasir@example.org", "supporter.email")
    version, kid, body = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 1
    with pytest.raises(UnreadableError):
        VAULT.decrypt(f"{version}.{kid}.{b64(bytes(raw))}", "supporter.email")
    with pytest.raises(UnreadableError):
        VAULT.decrypt(token, "supporter.name")  # bound to its column
    with pytest.raises(UnreadableError, match="not one of ours"):
        VAULT.decrypt("yasir@example.org", "supporter.email")


def test_the_public_form_writes_but_never_reads() -> None:
    public = Vault.parse(VAULT.public_form())
    assert not public.can_read
    sealed = public.encrypt("a letter's words", "letter.key")
    assert sealed.startswith("s1.")
    with pytest.raises(LockedError):
        public.decrypt(sealed, "letter.key")
    with pytest.raises(LockedError):  # not even what the full key wrote
        public.decrypt(VAULT.encrypt("x", "letter.key"), "letter.key")
    assert VAULT.decrypt(sealed, "letter.key") == "a letter's words"
    with pytest.raises(UnreadableError):
        VAULT.decrypt(sealed, "supporter.email")  # a sealed value is bound to its column too
    # Lookups work the same on both sides: the index key is in the public form.
    assert public.address_index("Rojda@Example.net") == VAULT.address_index("rojda@example.net ")


def test_blind_indexes_depend_on_the_key_and_the_kind() -> None:
    other = Vault.parse(generate_key())
    assert VAULT.address_index("a@example.org") != other.address_index("a@example.org")
    assert VAULT.index("Basra", "governorate") != VAULT.index("Basra", "email")
    assert "@" not in VAULT.address_index("a@example.org")


def test_a_record_opens_with_its_own_key_only() -> None:
    key = new_record_key()
    sealed = seal_record(key, {"body": "Birêz, dozan rakin.", "note": ""}, "letter")
    assert open_record(key, sealed, "letter")["body"] == "Birêz, dozan rakin."
    with pytest.raises(UnreadableError):
        open_record(new_record_key(), sealed, "letter")
    with pytest.raises(UnreadableError):
        open_record("not a key", sealed, "letter")


def test_rotation_new_key_first_and_old_values_still_read() -> None:
    rotated_key = VAULT.rotated_key()
    both = Vault.parse(f"{rotated_key},{DATA_KEY}")
    old = VAULT.encrypt("old value", "supporter.name")
    assert both.decrypt(old, "supporter.name") == "old value"
    assert both.encrypt("new", "supporter.name").startswith(f"v1.{both.current.kid}.")
    assert both.current.kid != VAULT.current.kid
    assert both.address_index("a@example.org") == VAULT.address_index("a@example.org")  # lookups unchanged
    with pytest.raises(UnreadableError, match=VAULT.current.kid):
        Vault.parse(rotated_key).decrypt(old, "supporter.name")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "holds no key"),
        ("changeme", "each key starts with"),
        (f"{KEY_PREFIX}.short.short", "not 32 bytes"),
        (f"{KEY_PREFIX}.{b64(bytes(32))}.{b64(os.urandom(32))}", "too weak"),
        (f"{KEY_PREFIX}.{b64(os.urandom(32))}.{b64(b'ab' * 16)}", "too weak"),
        (f"{generate_key()},{generate_key()}", "different installations"),
        (f"{DATA_KEY},{DATA_KEY}", "same key twice"),
    ],
)
def test_a_wrong_or_weak_key_stops_the_program_naming_the_variable(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as refused:
        Vault.parse(value, "MAILER_DATA_KEY")
    assert "MAILER_DATA_KEY" in str(refused.value)


def test_settings_read_the_key_from_a_private_file_only(tmp_path: Path) -> None:
    key_file = tmp_path / "data.key"
    key_file.write_text(DATA_KEY + "\n")
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Settings.from_env({"MAILER_DATA_KEY_FILE": "data.key"}, cwd=tmp_path)
    key_file.chmod(0o600)
    settings = Settings.from_env({"MAILER_DATA_KEY_FILE": "data.key"}, cwd=tmp_path)
    assert settings.require_vault().current.kid == VAULT.current.kid
    assert DATA_KEY not in repr(settings)
    with pytest.raises(ConfigError, match="not both"):
        Settings.from_env({"MAILER_DATA_KEY_FILE": "data.key", "MAILER_DATA_KEY": DATA_KEY}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="cannot be read"):
        Settings.from_env({"MAILER_DATA_KEY_FILE": "missing.key"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="MAILER_DATA_KEY is not set"):
        Settings.from_env({}, cwd=tmp_path).require_vault()
