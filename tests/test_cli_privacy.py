"""The privacy commands as a coordinator runs them: keys, a person's export and erasure, retention."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from mailer.vault import Vault
from tests.factories import supporters_csv
from tests.test_cli import mailer


def setup(env: dict[str, str], tmp_path: Path, count: int = 4) -> None:
    assert mailer(["db", "upgrade"], env, tmp_path).returncode == 0
    supporters_csv(tmp_path / "people.csv", count)
    assert mailer(["supporters", "import", str(tmp_path / "people.csv")], env, tmp_path).returncode == 0


def test_keys_are_made_by_the_command_and_checked_at_start(env: dict[str, str], tmp_path: Path) -> None:
    made = mailer(["keys", "generate"], {}, tmp_path)
    assert made.returncode == 0
    key = made.stdout.strip()
    assert Vault.parse(key).can_read
    written = mailer(["keys", "generate", "--output", "new.key"], {}, tmp_path)
    assert written.returncode == 0, written.stderr
    assert stat.S_IMODE((tmp_path / "new.key").stat().st_mode) == 0o600
    refused = mailer(["keys", "generate", "--output", "new.key"], {}, tmp_path)  # never overwritten
    assert refused.returncode == 1
    assert "new.key" in refused.stderr
    public = mailer(["keys", "public"], {"MAILER_DATA_KEY": key}, tmp_path).stdout.strip()
    assert not Vault.parse(public).can_read
    rotated = mailer(["keys", "rotate"], {"MAILER_DATA_KEY": key}, tmp_path).stdout.strip()
    assert Vault.parse(rotated).address_index("a@example.org") == Vault.parse(key).address_index(
        "a@example.org"
    )

    keyless = {k: v for k, v in env.items() if k != "MAILER_DATA_KEY"}
    missing = mailer(["db", "upgrade"], keyless, tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: MAILER_DATA_KEY is not set")
    assert "Traceback" not in missing.stderr
    weak = mailer(["db", "upgrade"], keyless | {"MAILER_DATA_KEY": "mailer-key-v1.abc.def"}, tmp_path)
    assert weak.stderr.strip().splitlines() == [
        "error: MAILER_DATA_KEY: the index part is not 32 bytes in base64; make a key with `mailer keys generate`"
    ]
    setup(env, tmp_path)
    stranger = mailer(["supporters", "list"], keyless | {"MAILER_DATA_KEY": key}, tmp_path)
    assert stranger.returncode == 1
    assert "belongs to another installation" in stranger.stderr


def test_find_export_and_erase_one_person(env: dict[str, str], tmp_path: Path) -> None:
    setup(env, tmp_path)
    listed = json.loads(mailer(["supporters", "list", "--json"], env, tmp_path).stdout)
    assert [p["email"] for p in listed] == [f"supporter{i:05d}@example.org" for i in range(4)]
    only_ar = json.loads(
        mailer(["supporters", "list", "--json", "--segment", "governorate=Basra"], env, tmp_path).stdout
    )
    assert [p["email"] for p in only_ar] == ["supporter00001@example.org"]
    table = mailer(["supporters", "list"], env, tmp_path)
    assert "supporter00003@example.org" in table.stdout
    found = mailer(["supporters", "find", "SUPPORTER00002@example.org"], env, tmp_path)
    assert "supporter00002@example.org" in found.stdout
    exported = json.loads(
        mailer(["supporters", "export", "supporter00002@example.org", "--json"], env, tmp_path).stdout
    )
    assert exported["supporter"]["locale"] == "ckb"
    assert exported["supporter"]["governorate"] == "Erbil"

    erased = mailer(["supporters", "erase", "supporter00002@example.org", "--yes"], env, tmp_path)
    unknown = mailer(["supporters", "erase", "nobody.here@example.org", "--yes"], env, tmp_path)
    assert (erased.returncode, unknown.returncode) == (0, 0)
    assert erased.stdout == unknown.stdout  # the answer says nothing about the address
    assert "Erased" in erased.stdout
    gone = json.loads(mailer(["supporters", "export", "supporter00002@example.org"], env, tmp_path).stdout)
    assert gone["supporter"] is None
    assert [s["reason"] for s in gone["suppressions"]] == ["erased"]
    assert (
        json.loads(
            mailer(["supporters", "find", "supporter00002@example.org", "--json"], env, tmp_path).stdout
        )
        is None
    )
    listed = json.loads(mailer(["suppressions", "list", "--json"], env, tmp_path).stdout)
    assert [(s["email"], s["reason"]) for s in listed] == [("(erased)", "erased"), ("(erased)", "erased")]
    asked = mailer(
        ["supporters", "erase", "supporter00001@example.org"], env, tmp_path
    )  # no --yes, no answer
    assert asked.returncode == 1
    assert json.loads(
        mailer(["supporters", "find", "supporter00001@example.org", "--json"], env, tmp_path).stdout
    )


def test_purge_says_what_would_go_then_does_it(env: dict[str, str], tmp_path: Path) -> None:
    setup(env, tmp_path)
    dry = json.loads(mailer(["privacy", "purge", "--dry-run", "--json"], env, tmp_path).stdout)
    assert dry == {
        "dry_run": True,
        "unconfirmed_letters": 0,
        "letter_texts": 0,
        "writers_forgotten": 0,
        "events_scrubbed": 0,
        "inbound_deleted": 0,
        "replies_deleted": 0,
    }
    words = mailer(["privacy", "purge"], env, tmp_path)
    assert words.returncode == 0
    assert "0 unconfirmed letters" in words.stdout


def test_rotation_through_the_commands(env: dict[str, str], tmp_path: Path) -> None:
    setup(env, tmp_path, 2)
    new_key = mailer(["keys", "rotate"], env, tmp_path).stdout.strip()
    new_only = env | {"MAILER_DATA_KEY": new_key}
    refused = mailer(["supporters", "list"], new_only, tmp_path)
    assert refused.returncode == 1
    assert "lacks the key" in refused.stderr
    both = env | {"MAILER_DATA_KEY": f"{new_key},{env['MAILER_DATA_KEY']}"}
    rekeyed = mailer(["privacy", "rekey"], both, tmp_path)
    assert rekeyed.returncode == 0, rekeyed.stderr
    assert "may be removed from MAILER_DATA_KEY" in rekeyed.stdout
    listed = json.loads(mailer(["supporters", "list", "--json"], new_only, tmp_path).stdout)
    assert len(listed) == 2
