"""The coordinator's controls through the `mailer` command: dry run, schedule, pause, resume, cancel,
test messages, previews and the sweep."""

from __future__ import annotations

import json
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from mailer.resources import demo_dir
from tests.factories import supporters_csv
from tests.test_cli import mailer


@pytest.fixture
def loaded(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    assert mailer(["db", "upgrade"], env, tmp_path).returncode == 0
    assert (
        mailer(
            ["campaign", "load", str(demo_dir() / "campaigns" / "protect-hrds-iraq")], env, tmp_path
        ).returncode
        == 0
    )
    supporters_csv(tmp_path / "people.csv", 20)
    assert mailer(["supporters", "import", str(tmp_path / "people.csv")], env, tmp_path).returncode == 0
    return env


def last_json(stdout: str) -> dict[str, object]:
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def test_dry_run_counts_and_sends_nothing(loaded: dict[str, str], tmp_path: Path) -> None:
    result = mailer(
        ["mailout", "launch", "protect-hrds-iraq", "--segment", "locale=ckb", "--dry-run", "--json"],
        loaded,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["recipients"] == {"ckb": 5}
    assert last_json(result.stdout)["draft_locales"] == ["ckb"]
    assert "ckb are drafts" in result.stderr  # said before a launch, beside the JSON, not in it
    assert not (tmp_path / "outbox").exists()
    human = mailer(["mailout", "launch", "protect-hrds-iraq", "--dry-run"], loaded, tmp_path)
    assert "20" in human.stdout
    english = mailer(
        ["mailout", "launch", "protect-hrds-iraq", "--segment", "locale=en", "--dry-run"], loaded, tmp_path
    )
    assert "drafts" not in english.stderr


def test_schedule_then_sweep_when_due(loaded: dict[str, str], tmp_path: Path) -> None:
    later = mailer(
        ["mailout", "launch", "protect-hrds-iraq", "--at", "2099-01-01T09:00+03:00", "--json"],
        loaded,
        tmp_path,
    )
    document = last_json(later.stdout)
    assert document["status"] == "scheduled"
    assert document["scheduled_at"] == "2099-01-01T06:00:00+00:00"
    assert mailer(["sweep"], loaded, tmp_path).returncode == 0
    assert not (tmp_path / "outbox").exists()
    naive = mailer(["mailout", "launch", "protect-hrds-iraq", "--at", "2099-01-01T09:00"], loaded, tmp_path)
    assert naive.returncode == 1
    assert "UTC offset" in naive.stderr


def test_pause_resume_cancel(loaded: dict[str, str], tmp_path: Path) -> None:
    scheduled = last_json(
        mailer(
            ["mailout", "launch", "protect-hrds-iraq", "--at", "2099-01-01T09:00+03:00", "--json"],
            loaded,
            tmp_path,
        ).stdout
    )
    mailout = str(scheduled["id"])

    def state() -> object:
        return last_json(mailer(["mailout", "status", mailout, "--json"], loaded, tmp_path).stdout)["status"]

    assert mailer(["mailout", "pause", mailout], loaded, tmp_path).returncode == 0
    assert state() == "paused"
    resumed = mailer(["mailout", "resume", mailout], loaded, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert state() == "scheduled"  # resumed before its time: it waits for it again
    assert mailer(["mailout", "cancel", mailout], loaded, tmp_path).returncode == 0
    assert state() == "cancelled"
    assert mailer(["mailout", "resume", mailout], loaded, tmp_path).returncode == 1
    assert not (tmp_path / "outbox").exists()


def test_a_finished_mailout_cannot_be_paused(loaded: dict[str, str], tmp_path: Path) -> None:
    done = last_json(mailer(["mailout", "launch", "protect-hrds-iraq", "--json"], loaded, tmp_path).stdout)
    assert done["status"] == "finished"
    result = mailer(["mailout", "pause", str(done["id"])], loaded, tmp_path)
    assert result.returncode == 1
    assert "finished" in result.stderr
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 20


def test_cancel_a_scheduled_mailout(loaded: dict[str, str], tmp_path: Path) -> None:
    scheduled = last_json(
        mailer(
            ["mailout", "launch", "protect-hrds-iraq", "--at", "2099-01-01T09:00+03:00", "--json"],
            loaded,
            tmp_path,
        ).stdout
    )
    result = mailer(["mailout", "cancel", str(scheduled["id"])], loaded, tmp_path)
    assert result.returncode == 0, result.stderr
    status = last_json(mailer(["mailout", "status", str(scheduled["id"]), "--json"], loaded, tmp_path).stdout)
    assert (status["status"], status["counts"]["cancelled"]) == ("cancelled", 20)  # type: ignore[index]
    assert mailer(["sweep"], loaded, tmp_path).returncode == 0
    assert not (tmp_path / "outbox").exists()


def test_test_messages_one_per_locale(loaded: dict[str, str], tmp_path: Path) -> None:
    result = mailer(
        [
            "mailout",
            "test",
            "protect-hrds-iraq",
            "--to",
            "coordinator@example.org",
            "--locale",
            "ar",
            "--locale",
            "kmr",
        ],
        loaded,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert [f.name.split("-")[-1] for f in files] == ["ar.eml", "kmr.eml"]
    for file in files:
        message = message_from_bytes(file.read_bytes(), policy=policy.default)
        assert str(message["Subject"]).startswith("[TEST] ")  # never mistaken for the real mailout
    bad = mailer(["mailout", "test", "protect-hrds-iraq", "--to", "not-an-address"], loaded, tmp_path)
    assert bad.returncode == 1


def test_preview_side_by_side(loaded: dict[str, str], tmp_path: Path) -> None:
    result = mailer(
        ["campaign", "preview", "protect-hrds-iraq", "--out", str(tmp_path / "preview")], loaded, tmp_path
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "preview").iterdir())
    assert names == [
        "ar.html",
        "ar.txt",
        "ckb.html",
        "ckb.txt",
        "en.html",
        "en.txt",
        "index.html",
        "kmr.html",
        "kmr.txt",
    ]
    index = (tmp_path / "preview" / "index.html").read_text(encoding="utf-8")
    assert '<section class="column" lang="ckb" dir="rtl">' in index
    assert '<iframe src="kmr.html"' in index
    assert 'dir="rtl"' in (tmp_path / "preview" / "ar.html").read_text(encoding="utf-8")


def test_suppressions_and_reports_from_the_command_line(loaded: dict[str, str], tmp_path: Path) -> None:
    assert mailer(["suppressions", "add", "supporter00001@example.org"], loaded, tmp_path).returncode == 0
    listed = json.loads(mailer(["suppressions", "list", "--json"], loaded, tmp_path).stdout)
    assert [(s["email"], s["reason"]) for s in listed] == [("supporter00001@example.org", "manual")]
    launched = last_json(
        mailer(["mailout", "launch", "protect-hrds-iraq", "--json"], loaded, tmp_path).stdout
    )
    assert launched["total"] == 19
    report = json.loads(mailer(["mailout", "report", str(launched["id"]), "--json"], loaded, tmp_path).stdout)
    assert report["total"]["sent"] == 19
    assert set(report["locales"]) == {"en", "ar", "ckb", "kmr"}
    campaign = json.loads(
        mailer(["campaign", "report", "protect-hrds-iraq", "--json"], loaded, tmp_path).stdout
    )
    assert campaign["mailouts"][0]["id"] == launched["id"]
    exported = mailer(["suppressions", "export"], loaded, tmp_path).stdout
    assert exported.splitlines()[0] == "email,scope,reason,source,created_at"
    removed = mailer(["suppressions", "remove", "supporter00001@example.org"], loaded, tmp_path)
    assert removed.returncode == 0
    bad = mailer(["suppressions", "add", "x@example.org", "--scope", "planet"], loaded, tmp_path)
    assert bad.returncode == 1


def test_a_launch_that_cannot_send_leaves_nothing_behind(loaded: dict[str, str], tmp_path: Path) -> None:
    """Without the signing key a launch is refused before it writes anything; the dry run says the same."""
    keyless = {k: v for k, v in loaded.items() if k != "MAILER_SECRET_KEY"}
    for options in (["--dry-run"], []):
        refused = mailer(["mailout", "launch", "protect-hrds-iraq", *options], keyless, tmp_path)
        assert refused.returncode == 1
        assert "MAILER_SECRET_KEY" in refused.stderr
        assert "Traceback" not in refused.stderr
    missing = mailer(["mailout", "status", "1"], loaded, tmp_path)
    assert (missing.returncode, "no mailout 1" in missing.stderr) == (1, True)  # nothing was created
    launched = mailer(["mailout", "launch", "protect-hrds-iraq", "--json"], loaded, tmp_path)
    document = last_json(launched.stdout)
    assert (document["status"], document["created"]) == ("finished", True)  # the retry is a first launch


def test_the_dry_run_refuses_what_the_launch_refuses(loaded: dict[str, str], tmp_path: Path) -> None:
    """Both count the same people (suppressed ones are nobody's recipients) and give the same answer."""
    folder = tmp_path / "campaign"
    shutil.copytree(demo_dir() / "campaigns" / "protect-hrds-iraq", folder)
    (folder / "alert.ckb.md").unlink()
    (folder / "letter.ckb.md").unlink()
    manifest = (folder / "campaign.yaml").read_text(encoding="utf-8")
    manifest = manifest.replace("locales: [en, ar, ckb, kmr]", "locales: [en, ar, kmr]")
    manifest = "\n".join(line for line in manifest.splitlines() if not line.strip().startswith("ckb:"))
    (folder / "campaign.yaml").write_text(manifest + "\n", encoding="utf-8")
    assert mailer(["campaign", "load", str(folder)], loaded, tmp_path).returncode == 0
    sorani = [f"supporter{i:05d}@example.org" for i in range(20) if i % 4 == 2]
    for address in sorani[1:]:  # every Sorani reader but one has unsubscribed
        assert mailer(["suppressions", "add", address], loaded, tmp_path).returncode == 0
    for options in (["--dry-run"], []):
        refused = mailer(["mailout", "launch", "protect-hrds-iraq", *options], loaded, tmp_path)
        assert refused.returncode == 1
        assert "--fallback ckb=en" in refused.stderr
    assert mailer(["suppressions", "add", sorani[0]], loaded, tmp_path).returncode == 0
    for options in (["--dry-run", "--json"], ["--json"]):  # nobody left who reads Sorani: both agree
        accepted = mailer(["mailout", "launch", "protect-hrds-iraq", *options], loaded, tmp_path)
        assert accepted.returncode == 0, accepted.stderr
    assert last_json(accepted.stdout)["total"] == 15
