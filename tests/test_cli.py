"""The `mailer` command as a user runs it: a real process, exit codes, stderr, --json."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.errors import N_, MailerError
from mailer.resources import demo_dir
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Mailout
from mailer.vault import Vault


def mailer(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")} | env
    return subprocess.run(
        [sys.executable, "-m", "mailer", *args],
        input=stdin,
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


COMMANDS = [
    [],
    ["db", "upgrade"],
    ["i18n", "status"],
    ["i18n", "extract"],
    ["campaign", "load"],
    ["campaign", "check"],
    ["campaign", "list"],
    ["supporters", "import"],
    ["targets", "import"],
    ["targets", "list"],
    ["mailout", "launch"],
    ["mailout", "status"],
    ["inbound", "receive"],
    ["inbound", "read"],
    ["inbound", "replies"],
    ["worker"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mailer")
def test_every_command_has_help(command: list[str], env: dict[str, str], tmp_path: Path) -> None:
    result = mailer([*command, "--help"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_wrong_setting_stops_with_one_line_naming_the_variable(env: dict[str, str], tmp_path: Path) -> None:
    result = mailer(["db", "upgrade"], env | {"MAILER_TRANSPORT": "pigeon"}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: MAILER_TRANSPORT must be one of outbox, smtp, sendgrid, not 'pigeon'"
    ]
    assert "Traceback" not in result.stderr


def test_a_coordinator_session(env: dict[str, str], tmp_path: Path) -> None:
    assert mailer(["campaign", "list"], env, tmp_path).stderr.startswith(
        "error: the database schema is not up to date"
    )
    assert mailer(["db", "upgrade"], env, tmp_path).returncode == 0
    loaded = mailer(["campaign", "load", str(demo_dir() / "campaigns" / "protect-hrds-iraq")], env, tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "drafts" in loaded.stderr
    check = mailer(["campaign", "check", "protect-hrds-iraq", "--json"], env, tmp_path)
    assert check.returncode == 0
    assert json.loads(check.stdout)["complete"] is True

    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,name,locale,governorate\nzainab@example.org,زينب حسن,ar,Basra\nbad,Nobody,en,\n",
        encoding="utf-8",
    )
    imported = mailer(["supporters", "import", str(csv)], env, tmp_path)
    assert imported.returncode == 0
    assert "people.csv: row 3, email:" in imported.stderr

    launched = mailer(
        ["mailout", "launch", "protect-hrds-iraq", "--segment", "locale=ar", "--json"], env, tmp_path
    )
    assert launched.returncode == 0, launched.stderr
    document = json.loads(launched.stdout.strip().splitlines()[-1])
    assert document["status"] == "finished"
    assert (document["total"], document["counts"]["sent"]) == (1, 1)
    status = mailer(["mailout", "status", str(document["id"]), "--json", "--watch"], env, tmp_path)
    assert json.loads(status.stdout)["counts"]["sent"] == 1
    again = mailer(["mailout", "launch", "protect-hrds-iraq", "--segment", "locale=ar"], env, tmp_path)
    assert "nothing is sent twice" in again.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_user_mistakes_get_one_line_and_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    mailer(["db", "upgrade"], env, tmp_path)
    for args, expected in [
        (["mailout", "status", "42"], "error: no mailout 42"),
        (["mailout", "launch", "nope"], "error: no campaign 'nope'"),
        (["supporters", "import", "missing.csv"], "error: missing.csv: cannot be read"),
        (["mailout", "launch", "x", "--segment", "city=Basra"], "error: --segment 'city=Basra': unknown key"),
    ]:
        result = mailer(args, env, tmp_path)
        assert result.returncode == 1, args
        assert result.stderr.startswith(expected), result.stderr
        assert "Traceback" not in result.stderr


def test_campaign_check_fails_on_missing_content(env: dict[str, str], tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "c"
    shutil.copytree(demo_dir() / "campaigns" / "protect-hrds-iraq", folder)
    (folder / "letter.ckb.md").unlink()
    mailer(["db", "upgrade"], env, tmp_path)
    mailer(["campaign", "load", str(folder)], env, tmp_path)
    result = mailer(["campaign", "check", "protect-hrds-iraq"], env, tmp_path)
    assert result.returncode == 1
    assert "ckb" in result.stderr
    assert "letter" in result.stderr


def test_interface_speaks_the_coordinators_language(env: dict[str, str], tmp_path: Path) -> None:
    result = mailer(["db", "upgrade"], env | {"MAILER_LANGUAGE": "ar"}, tmp_path)
    assert result.returncode == 0
    assert "database" not in result.stdout.lower()
    assert any("\u0600" <= ch <= "\u06ff" for ch in result.stdout)


def test_errors_speak_the_coordinators_language(env: dict[str, str], tmp_path: Path) -> None:
    mailer(["db", "upgrade"], env, tmp_path)
    result = mailer(["mailout", "status", "42"], env | {"MAILER_LANGUAGE": "ckb"}, tmp_path)
    assert result.returncode == 1
    assert "no mailout" not in result.stderr
    assert "42" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    csv = tmp_path / "p.csv"
    csv.write_text("email,name,locale,governorate\nx@example.org,=SUM(A1),ar,\n", encoding="utf-8")
    imported = mailer(["supporters", "import", str(csv)], env | {"MAILER_LANGUAGE": "kmr"}, tmp_path)
    assert "spreadsheet" not in imported.stderr
    assert "p.csv" in imported.stderr


def test_data_never_drives_the_coordinators_terminal(env: dict[str, str], tmp_path: Path) -> None:
    """A title with Rich markup is shown as written; escape codes in a CSV are shown, never run."""
    assert mailer(["db", "upgrade"], env, tmp_path).returncode == 0
    folder = tmp_path / "campaign"
    shutil.copytree(demo_dir() / "campaigns" / "protect-hrds-iraq", folder)
    manifest = folder / "campaign.yaml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace('"Protect Human Rights', '"[/b][red]Protect Human Rights', 1), "utf-8")
    assert mailer(["campaign", "load", str(folder)], env, tmp_path).returncode == 0
    listed = mailer(["campaign", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "[/b][red]Protect" in listed.stdout
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,locale,governorate\nok@example.org,Ok,en,\nx@example.org,X,en,\x1b[2J\x1b]0;owned\x07\n",
        encoding="utf-8",
    )
    imported = mailer(["supporters", "import", str(people)], env, tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "\x1b" not in imported.stderr + imported.stdout
    assert "\x07" not in imported.stderr
    assert "\\x1b[2J" in imported.stderr  # the coordinator sees what the file holds


def test_a_stopped_mailout_says_why_in_words(env: dict[str, str], tmp_path: Path) -> None:
    assert mailer(["db", "upgrade"], env, tmp_path).returncode == 0
    campaign = str(demo_dir() / "campaigns" / "protect-hrds-iraq")
    assert mailer(["campaign", "load", campaign], env, tmp_path).returncode == 0
    (tmp_path / "p.csv").write_text("email,name,locale,governorate\na@example.org,A,ar,\n", encoding="utf-8")
    assert mailer(["supporters", "import", str(tmp_path / "p.csv")], env, tmp_path).returncode == 0
    db = Database(env["MAILER_DATABASE_URL"], Vault.parse(env["MAILER_DATA_KEY"]))
    with db.session() as session:
        campaign_id = repo.get_campaign(session, "protect-hrds-iraq").id
        mailout = repo.create_mailout(
            session,
            Mailout(
                campaign_id=campaign_id,
                segment={},
                segment_key="{}",
                fallbacks={},
                status="running",
                checkpoint=0,
            ),
        )
        assert mailout is not None
        reason = MailerError(N_("the complaint rate passed 0.1%% of delivered messages")).to_json()
        repo.pause_mailout(session, mailout.id, reason)
        repo.add_messages(
            session,
            [
                {
                    "idempotency_key": "alert:x",
                    "kind": "alert",
                    "mailout_id": mailout.id,
                    "supporter_id": 1,
                    "locale": "ar",
                    "content_locale": "ar",
                    "status": "cancelled",
                    "attempts": 0,
                }
            ],
        )
    db.dispose()
    shown = mailer(["mailout", "status", "1"], env | {"MAILER_LANGUAGE": "ar"}, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert '"template"' not in shown.stdout  # not the stored JSON
    assert "0.1%" in shown.stdout or "٠٫١" in shown.stdout
    assert "cancelled" not in shown.stdout  # the state is named in Arabic too
