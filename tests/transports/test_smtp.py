"""SMTP against a real server (aiosmtpd): refusals, TLS, credentials, one connection per batch."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import trustme

from mailer import campaigns, mailouts, sending
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import repository as repo
from mailer.supporters import import_supporters
from mailer.transports import TransportHalted
from mailer.transports.smtp import SmtpTransport
from tests.conftest import free_port
from tests.factories import supporters_csv
from tests.fakes.smtp_server import SmtpServer
from tests.transports.test_contract import bulk


def test_4xx_is_transient_5xx_permanent_and_the_rest_still_goes() -> None:
    with SmtpServer(free_port()) as server:
        server.recorder.replies = {
            "full@example.org": "452 4.2.2 mailbox full",
            "gone@example.org": "550 5.1.1 no such user",
        }
        transport = SmtpTransport(server.url())
        deliveries = transport.send(
            bulk([(1, "full@example.org", "A"), (2, "gone@example.org", "B"), (3, "fine@example.org", "C")])
        )
        transport.close()
    assert [(d.ledger_id, d.status) for d in deliveries] == [(1, "transient"), (2, "permanent"), (3, "sent")]
    assert deliveries[1].error is not None
    assert "550" in deliveries[1].error
    assert server.recorder.counts() == {"fine@example.org": 1}


def test_unreachable_server_is_transient() -> None:
    transport = SmtpTransport(f"smtp://127.0.0.1:{free_port()}", timeout=5)
    deliveries = transport.send(bulk([(1, "a@example.org", "A")]))
    assert deliveries[0].status == "transient"


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


def test_starttls_and_credentials(
    certificate_authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import ssl

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    cafile = tmp_path_factory.mktemp("ca") / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(cafile))
    with SmtpServer(free_port(), tls=server_context, credentials=("relay", "s3cret")) as server:
        good = SmtpTransport(server.url("relay", "s3cret", f"?cafile={cafile}"))
        assert good.send(bulk([(1, "a@example.org", "A")]))[0].status == "sent"
        good.close()
        bad = SmtpTransport(server.url("relay", "wrong", f"?cafile={cafile}"))
        with pytest.raises(TransportHalted, match="refused the credentials"):
            bad.send(bulk([(2, "b@example.org", "B")]))
        untrusted = SmtpTransport(server.url("relay", "s3cret"))  # the system CAs do not know this one
        assert untrusted.send(bulk([(3, "c@example.org", "C")]))[0].status == "transient"
    assert server.recorder.counts() == {"a@example.org": 1}


def test_credentials_are_never_sent_in_clear() -> None:
    with SmtpServer(free_port()) as server:
        transport = SmtpTransport(server.url("relay", "s3cret"))
        with pytest.raises(TransportHalted, match="STARTTLS"):
            transport.send(bulk([(1, "a@example.org", "A")]))
    assert server.recorder.counts() == {}


def test_one_connection_for_a_batch() -> None:
    with SmtpServer(free_port()) as server:
        transport = SmtpTransport(server.url())
        transport.send(bulk([(i, f"p{i}@example.org", "P") for i in range(1, 6)]))
        transport.send(bulk([(i, f"p{i}@example.org", "P") for i in range(6, 9)]))
        transport.close()
    assert len(server.recorder.counts()) == 8
    assert len(server.recorder.peers) == 1


def test_a_connection_lost_after_the_final_dot_is_unknown_never_sent_again(
    runtime: Runtime, tmp_path: Path
) -> None:
    """P9: the relay took the message but the 250 never came; the row is 'unknown' and no sweep resends it.
    Its Message-ID is the same whenever the row is composed, so a person's resend would be one message."""
    with SmtpServer(free_port()) as server:
        server.recorder.drop_after_data = {"supporter00001@example.org"}
        rt = Runtime(dataclasses.replace(runtime.settings, transport="smtp", smtp_url=server.url()))
        rt.__dict__["db"] = runtime.db
        campaigns.load_campaign(rt.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
        supporters_csv(tmp_path / "people.csv", 4)
        import_supporters(rt.db, tmp_path / "people.csv")
        result = mailouts.launch_mailout(rt.db, rt.backend, "protect-hrds-iraq", {}, {})
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
        mailouts.sweep(rt.db, rt.backend, lambda: later)
        status = mailouts.mailout_status(rt.db, result.mailout_id)
        rt.close()
    assert (status.counts["sent"], status.counts["unknown"]) == (3, 1)
    assert set(server.recorder.counts().values()) == {1}
    assert len(server.recorder.counts()) == 4  # the relay has all four, each once
    with runtime.db.session() as session:
        (row,) = [m for m in repo.get_messages(session, [1, 2, 3, 4]) if m.status == "unknown"]
        assert "connection lost" in (row.error or "")
        first = sending.ledger_message_id(row, "example.org")
        assert sending.ledger_message_id(row, "example.org") == first
    received = {address: message["Message-ID"] for address, message in server.recorder.received}
    assert received["supporter00001@example.org"] == first


def test_a_mailbox_that_does_not_exist_is_suppressed_a_policy_refusal_is_not(
    runtime: Runtime, tmp_path: Path
) -> None:
    """P8: SMTP 5xx fails the message; only a refusal that says the address is bad (5.1.x) suppresses it."""
    with SmtpServer(free_port()) as server:
        server.recorder.replies = {
            "supporter00000@example.org": "550 5.1.1 no such user",
            "supporter00001@example.org": "550 5.7.1 message refused by policy",
        }
        rt = Runtime(dataclasses.replace(runtime.settings, transport="smtp", smtp_url=server.url()))
        rt.__dict__["db"] = runtime.db
        campaigns.load_campaign(rt.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
        supporters_csv(tmp_path / "people.csv", 4)
        import_supporters(rt.db, tmp_path / "people.csv")
        result = mailouts.launch_mailout(rt.db, rt.backend, "protect-hrds-iraq", {}, {})
        status = mailouts.mailout_status(rt.db, result.mailout_id)
        rt.close()
    assert (status.counts["sent"], status.counts["failed"]) == (2, 2)
    with runtime.db.session() as session:
        index = runtime.vault.address_index
        assert repo.is_suppressed(session, index("supporter00000@example.org"), "supporter")
        assert not repo.is_suppressed(session, index("supporter00001@example.org"), "supporter")
