"""A Dovecot IMAP server of our own (Debian's dovecot-imapd) on a loopback port, with STARTTLS under a test
certificate authority (trustme): the mailbox door is tested against a real IMAP server, never a stub."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import trustme

USER = "inbound@example.org"
PASSWORD = "a-mailbox-password-for-tests"


class DovecotServer:
    def __init__(self, port: int) -> None:
        binary = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
        )
        if binary is None:
            pytest.fail("dovecot is not installed: run `make test`, which installs dovecot-imapd")
        self.binary = binary
        # Its own folder, which Dovecot's unprivileged processes can enter (pytest's are the owner's alone).
        self.folder = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
        self.folder.chmod(0o755)
        folder = self.folder
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        ca = trustme.CA()
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            folder / "server.pem"
        )
        self.ca_file = folder / "ca.pem"
        ca.cert_pem.write_to_path(self.ca_file)

    @property
    def url(self) -> str:
        user = USER.replace("@", "%40")
        return f"imap://{user}:{PASSWORD}@127.0.0.1:{self.port}/INBOX?cafile={self.ca_file}"

    def _config(self) -> Path:
        me = pwd.getpwuid(os.getuid())
        # Dovecot never reads mail as root: as root it uses the "mail" account, otherwise our own.
        owner = pwd.getpwnam("mail") if os.getuid() == 0 else me
        home = self.folder / "home"
        home.mkdir(exist_ok=True)
        if os.getuid() == 0:
            os.chown(home, owner.pw_uid, owner.pw_gid)
        (self.folder / "state").mkdir(exist_ok=True)
        (self.folder / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        own_users = (
            ""
            if os.getuid() == 0
            else f"default_internal_user = {me.pw_name}\ndefault_login_user = {me.pw_name}\n"
        )
        config = self.folder / "dovecot.conf"
        config.write_text(
            f"""base_dir = {self.folder}/run
state_dir = {self.folder}/state
log_path = {self.folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.folder}/server.pem
ssl_key = <{self.folder}/server.pem
disable_plaintext_auth = yes
first_valid_uid = {owner.pw_uid}
mail_location = maildir:~/Maildir
{own_users}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.folder}/users
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={home}/%u
}}
"""
        )
        return config

    def start(self) -> None:
        # In the foreground (-F): the process is ours, and stops with the test.
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self._config())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                log = self.folder / "dovecot.log"
                pytest.fail("dovecot did not start: " + (log.read_text()[-2000:] if log.exists() else ""))
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)
