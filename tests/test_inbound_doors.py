"""Both inbound doors with the same real messages: a Dovecot mailbox read over IMAP (STARTTLS) by the beat's
sweep, and SendGrid Inbound Parse's multipart POST. Whatever the door, the same suppressions, matches and
counts follow."""

from __future__ import annotations

import base64
import json
from email.message import EmailMessage
from pathlib import Path

import pytest
from imap_tools import MailBoxStartTls
from sqlalchemy import select

from mailer import letters
from mailer.config import Settings
from mailer.errors import ConfigError
from mailer.mailbox import MailboxUnavailable, read_mailbox
from mailer.mailouts import launch_mailout
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Message
from mailer.supporters import import_supporters
from mailer.web import create_app
from tests.conftest import free_port
from tests.dovecot import PASSWORD, USER, DovecotServer
from tests.factories import supporters_csv
from tests.fakes.smtp_server import SmtpServer
from tests.inbound_helpers import (
    INBOUND,
    SLUG,
    inbound_rows,
    inbound_runtime,
    outbox,
    sample,
    suppressions,
    write_and_confirm,
)

PARSE_SECRET = "s3cretPathSegmentForInboundParse0123456789"
PARSE_AUTH = "sendgrid:a-long-basic-auth-password-for-inbound-parse"


@pytest.fixture
def dovecot() -> DovecotServer:
    server = DovecotServer(free_port())
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


def the_mail(rt: Runtime, tmp_path: Path) -> dict[str, bytes]:
    """A letter answered by an official (Outlook, Arabic, quoted), a vacation reply to another letter's
    official, a hard bounce of an alert, and two emailed unsubscribes: one with our tag, one forged."""
    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    supporters_csv(tmp_path / "people.csv", 4)
    import_supporters(rt.db, tmp_path / "people.csv")
    launch_mailout(rt.db, rt.backend, SLUG, {}, {}, batch_size=10)
    alerts = outbox(rt, "alert")
    tags = rt.tags
    assert tags is not None
    bounced, unsubscribing, forging = alerts[0], alerts[1], alerts[2]
    mailto = unsubscribing["List-Unsubscribe"].split("<mailto:", 1)[1].split("?", 1)[0]
    local, domain = mailto.split("@")
    return {
        "reply": sample("outlook-reply-ar.eml", to=reply_to, message_id=letter["Message-ID"]),
        "vacation": sample("gmail-vacation.eml", to=reply_to, message_id=letter["Message-ID"]).replace(
            b"vacation=abc123", b"vacation=def456"
        ),
        "bounce": sample(
            "postfix-dsn-hard.eml",
            to=tags.address("b", _ledger_id(bounced)),
            recipient=bounced["To"].addresses[0].addr_spec,
            message_id=bounced["Message-ID"],
        ),
        "unsubscribe": sample(
            "mailto-unsubscribe.eml", to=mailto, recipient=unsubscribing["To"].addresses[0].addr_spec
        ),
        "forged": sample(
            "mailto-unsubscribe.eml",
            to=f"{local[:-3]}abc@{domain}",
            recipient=forging["To"].addresses[0].addr_spec,
        ).replace(b"unsub=QpR7", b"unsub=ZZZZ"),
    }


def _ledger_id(alert: EmailMessage) -> int:
    return int(alert["Message-ID"].split(".")[1])


def expect_the_same_results(rt: Runtime) -> None:
    kinds = sorted(row.kind or "" for row in inbound_rows(rt.db))
    assert kinds == ["auto_reply", "bounce", "forged", "reply", "unsubscribe"]
    assert sorted(suppressions(rt.db)) == [("supporter", "hard_bounce"), ("supporter", "unsubscribe")]
    letters.dispatch_letters(rt.db, rt.backend, rt.clock)
    (notice,) = outbox(rt, "reply_notice")  # the reply only: never the vacation message
    assert notice["To"].addresses[0].addr_spec == "shilan@example.org"
    with rt.db.session() as session:
        delivery = session.scalars(select(Message.delivery).where(Message.kind == "alert")).all()
    assert delivery.count("bounced") == 1


# The mailbox, read over IMAP by the beat's sweep


def test_the_beat_reads_the_mailbox_and_acts_on_each_message_once(
    env: dict[str, str], tmp_path: Path, db: Database, dovecot: DovecotServer
) -> None:
    rt = inbound_runtime(env, tmp_path, db, MAILER_IMAP_URL=dovecot.url)
    mail = the_mail(rt, tmp_path)
    with MailBoxStartTls("127.0.0.1", dovecot.port, ssl_context=_trusting(dovecot)).login(
        USER, PASSWORD
    ) as box:
        for raw in mail.values():
            box.append(raw, "INBOX")
        box.append(mail["reply"], "INBOX")  # delivered twice (a retry upstream): stored once
    rt.sweep()
    expect_the_same_results(rt)
    with MailBoxStartTls("127.0.0.1", dovecot.port, ssl_context=_trusting(dovecot)).login(
        USER, PASSWORD
    ) as box:
        assert box.uids() == []  # taken out once stored: the mailbox keeps nobody's mail in clear
    rt.sweep()
    assert len(inbound_rows(rt.db)) == 5


def _trusting(dovecot: DovecotServer):  # type: ignore[no-untyped-def]
    import ssl

    return ssl.create_default_context(cafile=str(dovecot.ca_file))


def test_a_message_too_large_stays_in_the_mailbox_for_a_person(
    env: dict[str, str], tmp_path: Path, db: Database, dovecot: DovecotServer
) -> None:
    with MailBoxStartTls("127.0.0.1", dovecot.port, ssl_context=_trusting(dovecot)).login(
        USER, PASSWORD
    ) as box:
        box.append(b"Subject: big\r\nMessage-ID: <big@example.net>\r\n\r\n" + b"x" * 100_000, "INBOX")
        box.append(b"Subject: small\r\nMessage-ID: <small@example.net>\r\n\r\nhello", "INBOX")
    taken: list[bytes] = []
    assert read_mailbox(dovecot.url, taken.append, max_bytes=65_536) == 1
    assert b"small" in taken[0]
    with MailBoxStartTls("127.0.0.1", dovecot.port, ssl_context=_trusting(dovecot)).login(
        USER, PASSWORD
    ) as box:
        assert len(box.uids()) == 1


def test_a_refused_password_is_a_clear_error_without_the_password(dovecot: DovecotServer) -> None:
    url = dovecot.url.replace(PASSWORD, "wrong-password-123")
    with pytest.raises(MailboxUnavailable) as refused:
        read_mailbox(url, lambda raw: None, max_bytes=65_536)
    assert "MAILER_IMAP_URL" in str(refused.value)
    assert "wrong-password-123" not in str(refused.value)


def test_an_untrusted_certificate_is_refused(dovecot: DovecotServer) -> None:
    with pytest.raises(MailboxUnavailable, match="could not be read"):
        read_mailbox(dovecot.url.split("?", 1)[0], lambda raw: None, max_bytes=65_536)


# SendGrid Inbound Parse


@pytest.fixture
def parse_rt(env: dict[str, str], tmp_path: Path, db: Database) -> Runtime:
    return inbound_runtime(
        env, tmp_path, db, MAILER_INBOUND_PARSE_SECRET=PARSE_SECRET, MAILER_INBOUND_PARSE_AUTH=PARSE_AUTH
    )


def parse_post(raw: bytes, to: str) -> dict[str, object]:
    """The fields SendGrid posts with "POST the raw, full MIME message" ticked."""
    return {
        "email": raw.decode("utf-8"),
        "to": to,
        "from": "sender@example.net",
        "subject": "whatever the message says",
        "envelope": json.dumps({"to": [to], "from": "sender@example.net"}),
        "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8"}),
        "SPF": "pass",
        "dkim": "{@example.net : pass}",
        "sender_ip": "192.0.2.44",
        "spam_score": "0.1",
    }


def basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def test_inbound_parse_posts_lead_to_the_same_results(parse_rt: Runtime, tmp_path: Path) -> None:
    mail = the_mail(parse_rt, tmp_path)
    client = create_app(parse_rt).test_client()
    for raw in [*mail.values(), mail["reply"]]:
        to = INBOUND
        answer = client.post(
            f"/webhooks/inbound/{PARSE_SECRET}",
            data=parse_post(raw, to),
            headers=basic(PARSE_AUTH),
            content_type="multipart/form-data",
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
    assert len(inbound_rows(parse_rt.db)) == 5  # the repeated post stored nothing new
    parse_rt.sweep()
    expect_the_same_results(parse_rt)


@pytest.mark.parametrize(
    ("path", "auth", "status"),
    [
        (PARSE_SECRET, "", 401),
        (PARSE_SECRET, "sendgrid:wrong-password-wrong-password-wrong", 401),
        ("s3cretPathSegmentForInboundParse0123456780", PARSE_AUTH, 401),
        ("", PARSE_AUTH, 404),
    ],
)
def test_inbound_parse_refuses_strangers_and_stores_nothing(
    parse_rt: Runtime, path: str, auth: str, status: int
) -> None:
    client = create_app(parse_rt).test_client()
    answer = client.post(
        f"/webhooks/inbound/{path}",
        data=parse_post(b"Subject: hi\r\nMessage-ID: <x@example.net>\r\n\r\nhello", INBOUND),
        headers=basic(auth) if auth else {},
        content_type="multipart/form-data",
    )
    assert answer.status_code == status
    assert inbound_rows(parse_rt.db) == []


def test_inbound_parse_takes_messages_up_to_the_setting_and_refuses_larger_posts(
    env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    rt = inbound_runtime(
        env,
        tmp_path,
        db,
        MAILER_INBOUND_PARSE_SECRET=PARSE_SECRET,
        MAILER_INBOUND_PARSE_AUTH=PARSE_AUTH,
        MAILER_INBOUND_MAX_BYTES=str(3 * 1024 * 1024),
    )
    client = create_app(rt).test_client()

    def post(size: int, name: str) -> int:
        raw = f"Subject: {name}\r\nMessage-ID: <{name}@example.net>\r\n\r\n".encode() + b"x" * size
        answer = client.post(
            f"/webhooks/inbound/{PARSE_SECRET}",
            data=parse_post(raw, INBOUND),
            headers=basic(PARSE_AUTH),
            content_type="multipart/form-data",
        )
        return answer.status_code

    assert post(2_500_000, "large") == 200  # above every other form's cap, within this one
    assert post(3 * 1024 * 1024 + 300_000, "huge") == 413
    assert len(inbound_rows(rt.db)) == 1


def test_inbound_parse_without_the_raw_message_is_rebuilt_from_its_parts(parse_rt: Runtime) -> None:
    """The "raw" box left unticked: SendGrid posts the headers and the text apart."""
    client = create_app(parse_rt).test_client()
    fields = {
        "headers": "From: Office <office@example.net>\nTo: reply@in.example.org\nSubject: Hello\n"
        "Message-ID: <parsed@example.net>\nContent-Type: multipart/alternative; boundary=x\n",
        "text": "Thank you for your letter.",
        "html": "<p>Thank you for your letter.</p>",
        "envelope": json.dumps({"to": [INBOUND], "from": "office@example.net"}),
    }
    answer = client.post(
        f"/webhooks/inbound/{PARSE_SECRET}",
        data=fields,
        headers=basic(PARSE_AUTH),
        content_type="multipart/form-data",
    )
    assert answer.json == {"stored": True}
    parse_rt.process_inbound()
    (row,) = inbound_rows(parse_rt.db)
    assert row.kind == "unmatched"  # no tag of ours: kept for the retention period, acting on nothing


def test_inbound_parse_is_off_until_configured(runtime: Runtime) -> None:
    client = create_app(runtime).test_client()
    answer = client.post(
        f"/webhooks/inbound/{PARSE_SECRET}", data={"email": "Subject: x\r\n\r\ny"}, headers=basic(PARSE_AUTH)
    )
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("more", "variable"),
    [
        (
            {"MAILER_INBOUND_PARSE_SECRET": PARSE_SECRET, "MAILER_INBOUND_PARSE_AUTH": PARSE_AUTH},
            "MAILER_INBOUND_ADDRESS",
        ),
        (
            {"MAILER_INBOUND_ADDRESS": INBOUND, "MAILER_INBOUND_PARSE_SECRET": "short"},
            "MAILER_INBOUND_PARSE_SECRET",
        ),
        (
            {"MAILER_INBOUND_ADDRESS": INBOUND, "MAILER_INBOUND_PARSE_SECRET": PARSE_SECRET},
            "MAILER_INBOUND_PARSE_AUTH",
        ),
        ({"MAILER_INBOUND_ADDRESS": "reply+x@in.example.org"}, "MAILER_INBOUND_ADDRESS"),
        ({"MAILER_INBOUND_ADDRESS": INBOUND, "MAILER_IMAP_URL": "pop3://u:p@host"}, "MAILER_IMAP_URL"),
        ({"MAILER_INBOUND_ADDRESS": INBOUND, "MAILER_IMAP_URL": "imaps://host/INBOX"}, "MAILER_IMAP_URL"),
    ],
)
def test_inbound_settings_are_checked_at_start(
    env: dict[str, str], more: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env | more)


def test_an_smtp_installation_learns_of_a_late_bounce_through_its_signed_return_path(
    env: dict[str, str], tmp_path: Path, db: Database, dovecot: DovecotServer
) -> None:
    """P8, asynchronously: the relay took the message (250) and bounced it later, to the return path that
    names the message; the report comes back through the mailbox and suppresses that supporter only."""
    with SmtpServer(free_port()) as relay:
        rt = inbound_runtime(
            env,
            tmp_path,
            db,
            MAILER_TRANSPORT="smtp",
            MAILER_SMTP_URL=relay.url(),
            MAILER_IMAP_URL=dovecot.url,
        )
        supporters_csv(tmp_path / "people.csv", 4)
        import_supporters(rt.db, tmp_path / "people.csv")
        launch_mailout(rt.db, rt.backend, SLUG, {}, {}, batch_size=10)
        rt.close()
    assert len(relay.recorder.return_paths) == 4
    assert len(set(relay.recorder.return_paths.values())) == 4  # one per message
    bounced, message = relay.recorder.received[0]
    return_path = relay.recorder.return_paths[bounced]
    assert return_path.startswith("reply+b")
    assert return_path.endswith("@in.example.org")
    report = sample(
        "postfix-dsn-hard.eml", to=return_path, recipient=bounced, message_id=message["Message-ID"]
    )
    with MailBoxStartTls("127.0.0.1", dovecot.port, ssl_context=_trusting(dovecot)).login(
        USER, PASSWORD
    ) as box:
        box.append(report, "INBOX")
    rt.sweep()
    assert suppressions(rt.db) == [("supporter", "hard_bounce")]
    with rt.db.session() as session:
        assert repo.is_suppressed(session, rt.db.vault.address_index(bounced), "supporter")


def test_the_web_door_stores_with_the_write_only_key_and_the_sweep_reads_it(
    env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    """The action pages' processes hold only the key's public form: they can store what SendGrid posts,
    sealed, and read nothing; the beat, with the whole key, reads it."""
    from mailer.vault import Vault

    full = inbound_runtime(
        env, tmp_path, db, MAILER_INBOUND_PARSE_SECRET=PARSE_SECRET, MAILER_INBOUND_PARSE_AUTH=PARSE_AUTH
    )
    mail = the_mail(full, tmp_path)
    public_key = Vault.parse(full.settings.data_key or "").public_form()
    web_only = Runtime(
        Settings.from_env(
            env
            | {
                "MAILER_DATA_KEY": public_key,
                "MAILER_INBOUND_ADDRESS": INBOUND,
                "MAILER_INBOUND_PARSE_SECRET": PARSE_SECRET,
                "MAILER_INBOUND_PARSE_AUTH": PARSE_AUTH,
            },
            cwd=tmp_path,
        )
    )
    client = create_app(web_only).test_client()
    answer = client.post(
        f"/webhooks/inbound/{PARSE_SECRET}",
        data=parse_post(mail["unsubscribe"], INBOUND),
        headers=basic(PARSE_AUTH),
        content_type="multipart/form-data",
    )
    assert answer.json == {"stored": True}
    web_only.close()
    with db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT raw FROM inbound_message").scalar_one()
    assert stored.startswith("s1.")  # sealed to the public key
    full.sweep()
    assert suppressions(db) == [("supporter", "unsubscribe")]
