"""`mailer users` as an operator runs it: the first admin, passwords never on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mailer import accounts
from mailer.config import Settings
from mailer.runtime import Runtime
from tests.test_cli import mailer

PASSWORD = "correct horse battery staple"


def users(args: list[str], env: dict[str, str], cwd: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")} | env
    return subprocess.run(
        [sys.executable, "-m", "mailer", "users", *args],
        env=full_env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_first_admin_is_made_with_the_command_line(env: dict[str, str], tmp_path: Path) -> None:
    assert mailer(["db", "upgrade"], env, tmp_path).returncode == 0
    made = users(
        ["add", "Admin@Example.org", "--role", "admin", "--password-stdin"], env, tmp_path, PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    assert "Admin@example.org" in made.stdout
    listed = json.loads(users(["list", "--json"], env, tmp_path, "").stdout)
    assert [(a["email"], a["role"], a["two_factor"]) for a in listed] == [
        ("Admin@example.org", "admin", False)
    ]

    again = users(["add", "admin@example.org", "--password-stdin"], env, tmp_path, PASSWORD + "\n")
    assert again.returncode == 1
    assert again.stderr.strip() == "error: an account with the address admin@example.org exists"
    short = users(["add", "c@example.org", "--password-stdin"], env, tmp_path, "short\n")
    assert short.stderr.strip() == "error: the password must have at least 12 characters"
    role = users(["add", "c@example.org", "--role", "boss", "--password-stdin"], env, tmp_path, PASSWORD)
    assert role.stderr.strip() == "error: unknown role boss (one of: viewer, coordinator, admin)"
    empty = users(["add", "c@example.org", "--password-stdin"], env, tmp_path, "")
    assert empty.returncode == 1
    assert "Traceback" not in empty.stderr + short.stderr + role.stderr

    last = users(["remove", "admin@example.org"], env, tmp_path, "")
    assert last.stderr.strip() == "error: this is the last admin account; add another admin first"

    reset = users(
        ["reset-password", "admin@example.org", "--reset-two-factor", "--password-stdin"],
        env,
        tmp_path,
        "a brand new passphrase\n",
    )
    assert reset.returncode == 0, reset.stderr
    runtime = Runtime(Settings.from_env(env, cwd=tmp_path))
    try:
        assert accounts.authenticate(runtime.db, "admin@example.org", "a brand new passphrase") is not None
        assert accounts.authenticate(runtime.db, "admin@example.org", PASSWORD) is None
        log = [(row.action, row.account, row.origin) for row in accounts.audit_log(runtime.db)]
    finally:
        runtime.close()
    assert log == [
        ("account.reset_password", None, "command line"),
        ("account.add", None, "command line"),
    ]
