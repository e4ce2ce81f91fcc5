"""`mailer demo` from nothing, twice."""

import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path


def run_demo(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return subprocess.run(
        [sys.executable, "-m", "mailer", "demo", "--dir", str(folder), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder.parent,
    )


def test_demo_sends_each_supporter_one_alert_then_nothing_twice(tmp_path: Path) -> None:
    folder = tmp_path / "mailer-demo"
    first = run_demo(folder)
    assert first.returncode == 0, first.stderr
    outbox = folder / "outbox"
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 200
    languages = {}
    for path in files:
        email = message_from_bytes(path.read_bytes(), policy=policy.default)
        languages[email["Content-Language"]] = languages.get(email["Content-Language"], 0) + 1
        assert str(email["To"]).split("@")[-1].rstrip(">") in {"example.org", "example.net", "example.com"}
    assert set(languages) == {"en", "ar", "ckb", "kmr"}
    for code in languages:
        assert f"{code}: {outbox}" in first.stdout  # one sample path per language
    second = run_demo(folder)
    assert second.returncode == 0, second.stderr
    assert "nothing is sent twice" in second.stdout
    assert len(list(outbox.glob("*.eml"))) == 200


def test_demo_no_launch_prepares_only(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    result = run_demo(folder, "--no-launch")
    assert result.returncode == 0, result.stderr
    assert "mailer mailout launch protect-hrds-iraq" in result.stdout
    assert not (folder / "outbox").exists()
    assert (folder / "mailer.db").exists()
