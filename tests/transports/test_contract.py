"""One contract, every transport: each recipient gets their own message, once, with their own values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest

from mailer.content import marker
from mailer.transports import BulkEmail, Mailbox, Recipient, Transport
from mailer.transports.outbox import OutboxTransport
from mailer.transports.sendgrid import SendGridTransport
from mailer.transports.smtp import SmtpTransport
from tests.conftest import free_port
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.smtp_server import SmtpServer


@dataclass
class Received:
    address: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]


def from_mime(address: str, message: EmailMessage) -> Received:
    return Received(
        address,
        str(message["Subject"]),
        message.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
        message.get_body(("html",)).get_content(),  # type: ignore[union-attr]
        {k: str(v) for k, v in message.items()},
    )


def fill(text: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


def from_sendgrid(fake: FakeSendGrid) -> list[Received]:
    """What each recipient would receive: SendGrid fills the substitutions into subject and content."""
    received = []
    for body in fake.bodies:
        content = {c["type"]: c["value"] for c in body["content"]}
        for p in body["personalizations"]:
            subs = p.get("substitutions", {})
            headers = {**body.get("headers", {}), **p.get("headers", {})}
            received.append(
                Received(
                    p["to"][0]["email"],
                    fill(body["subject"], subs),
                    fill(content["text/plain"], subs),
                    fill(content["text/html"], subs),
                    headers,
                )
            )
    return received


Harness = tuple[Transport, Callable[[], list[Received]]]


@pytest.fixture(params=["outbox", "smtp", "sendgrid"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "outbox":
        transport = OutboxTransport(tmp_path / "outbox")

        def outbox_received() -> list[Received]:
            result = []
            for path in sorted((tmp_path / "outbox").glob("*.eml")):
                message = cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
                result.append(from_mime(message["To"].addresses[0].addr_spec, message))
            return result

        yield transport, outbox_received
    elif request.param == "smtp":
        with SmtpServer(free_port()) as server:
            yield SmtpTransport(server.url()), lambda: [from_mime(a, m) for a, m in server.recorder.received]
    else:
        with FakeSendGrid() as fake:
            transport = SendGridTransport(fake.api_key, fake.url)
            yield transport, lambda: from_sendgrid(fake)
            transport.shutdown()


def bulk(recipients: list[tuple[int, str, str]]) -> BulkEmail:
    first = marker("first_name")
    return BulkEmail(
        kind="alert",
        locale="ar",
        rtl=True,
        sender=Mailbox(display_name="Solidarity", addr_spec="alerts@example.org"),
        subject=f"مرحبا {first}",
        text=f"\u200fعزيزي {first}،\nرابط: {marker('unsubscribe_url')}\n",
        html=f'<html lang="ar" dir="rtl"><body><p>عزيزي {first}</p><a href="{marker("unsubscribe_url")}">x</a></body></html>',
        date=dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC),
        recipients=[
            Recipient(
                ledger_id=ledger_id,
                address=Mailbox(display_name=name, addr_spec=email),
                values={"first_name": name, "unsubscribe_url": f"https://act.example.org/u/{ledger_id}"},
                message_id=f"<alert.{ledger_id}@example.org>",
                headers={"List-Unsubscribe": f"<https://act.example.org/u/{ledger_id}>"},
            )
            for ledger_id, email, name in recipients
        ],
        headers={"List-Id": "<protect-hrds-iraq.example.org>"},
    )


def test_each_recipient_gets_their_own_message_once(harness: Harness) -> None:
    transport, received = harness
    people = [
        (11, "zainab@example.org", "زينب"),
        (12, "sara@example.net", "Sara <b>&"),
        (13, "ali@example.com", "علي"),
    ]
    deliveries = transport.send(bulk(people))
    transport.close()
    assert [(d.ledger_id, d.status) for d in deliveries] == [(11, "sent"), (12, "sent"), (13, "sent")]
    assert all(d.provider_id for d in deliveries)
    messages = {r.address: r for r in received()}
    assert sorted(messages) == sorted(email for _, email, _ in people)
    for ledger_id, email, name in people:
        message = messages[email]
        assert message.subject == f"مرحبا {name}"
        assert f"عزيزي {name}" in message.text
        assert message.headers["List-Unsubscribe"] == f"<https://act.example.org/u/{ledger_id}>"
        assert message.headers["List-Id"] == "<protect-hrds-iraq.example.org>"
        assert f'href="https://act.example.org/u/{ledger_id}"' in message.html
    assert "Sara &lt;b&gt;&amp;" in messages["sara@example.net"].html
    assert '<span dir="ltr">Sara &lt;b&gt;&amp;</span>' in messages["sara@example.net"].html


def test_transport_can_be_used_again_after_close(harness: Harness) -> None:
    transport, received = harness
    transport.send(bulk([(1, "one@example.org", "One")]))
    transport.close()
    transport.send(bulk([(2, "two@example.org", "Two")]))
    transport.close()
    assert sorted(r.address for r in received()) == ["one@example.org", "two@example.org"]
