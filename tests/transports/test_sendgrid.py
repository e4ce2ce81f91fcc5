"""SendGrid against the local fake that validates every request with the official schema."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mailer.content import marker
from mailer.transports import BulkEmail, Mailbox, Recipient, TransportHalted
from mailer.transports.sendgrid import LEDGER_ARG, SendGridTransport, build_payload
from tests.conftest import free_port
from tests.fakes.sendgrid_server import (
    RESERVED_HEADERS,
    FakeSendGrid,
    Fault,
    mail_send_validator,
    request_problems,
    rule_errors,
)
from tests.transports.test_contract import bulk

THOUSAND = [(i, f"supporter{i:04d}@example.org", f"Name{i}") for i in range(1, 1001)]
VALIDATOR = mail_send_validator()
NOW = 1_795_000_000.0  # the fake's clock for send_at, a Unix time


def test_a_thousand_recipients_in_one_valid_request() -> None:
    payload = build_payload(bulk(THOUSAND))
    assert list(mail_send_validator().iter_errors(payload)) == []
    assert rule_errors(payload) == []
    assert len(payload["personalizations"]) == 1000
    first = payload["personalizations"][0]
    assert first["custom_args"] == {LEDGER_ARG: "1"}  # an opaque id, never personal data
    assert first["headers"]["List-Unsubscribe"] == "<https://act.example.org/u/1>"
    assert payload["tracking_settings"] == {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
        "subscription_tracking": {"enable": False},
        "ganalytics": {"enable": False},
    }
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    with pytest.raises(ValueError, match="at most 1000"):
        build_payload(bulk([*THOUSAND, (1001, "x@example.org", "X")]))


def test_values_are_escaped_apart_for_html_and_text() -> None:
    payload = build_payload(bulk([(1, "a@example.org", "Sara <b>")]))
    subs = payload["personalizations"][0]["substitutions"]
    key = marker("first_name")
    assert subs[key + "t"] == "Sara <b>"
    assert subs[key + "h"] == '<span dir="ltr">Sara &lt;b&gt;</span>'
    html = next(c["value"] for c in payload["content"] if c["type"] == "text/html")
    assert key + "h" in html
    assert key + "t" not in html


def test_a_value_every_recipient_shares_goes_into_the_content_once() -> None:
    """A value the same for the whole request (an action page's address) is written into the subject, text
    and HTML once, escaped for each; the values that differ stay substitutions."""
    payload = build_payload(bulk([(1, "a@example.org", "Sara <b>"), (2, "b@example.org", "Sara <b>")]))
    assert list(VALIDATOR.iter_errors(payload)) == []
    assert rule_errors(payload) == []
    first, link = marker("first_name"), marker("unsubscribe_url")
    text, html = (c["value"] for c in payload["content"])
    assert payload["subject"] == "مرحبا Sara <b>"
    assert "عزيزي Sara <b>،" in text
    assert '<p>عزيزي <span dir="ltr">Sara &lt;b&gt;</span></p>' in html
    assert first not in payload["subject"] + text + html
    assert [sorted(p["substitutions"]) for p in payload["personalizations"]] == [[link + "h", link + "t"]] * 2


def test_a_shared_value_that_cannot_be_sent_is_refused_per_recipient_as_before() -> None:
    """A value no recipient could be sent (a control character) is never written into the content, even when
    every recipient has it: each recipient is refused for their own value, as before."""
    people = [(1, "a@example.org", "Sara\x07"), (2, "b@example.org", "Sara\x07")]
    with FakeSendGrid() as fake:
        deliveries = SendGridTransport(fake.api_key, fake.url).send(bulk(people))
        assert fake.requests == 0
    assert [(d.ledger_id, d.status) for d in deliveries] == [(1, "permanent"), (2, "permanent")]
    assert all("the first_name holds the control character" in (d.error or "") for d in deliveries)


def test_a_shared_value_that_looks_like_a_marker_stays_a_substitution() -> None:
    """Written into the content, it would be read as a marker there: it stays each recipient's value."""
    name = marker("unsubscribe_url")
    payload = build_payload(bulk([(1, "a@example.org", name), (2, "b@example.org", name)]))
    assert [p["substitutions"][marker("first_name") + "t"] for p in payload["personalizations"]] == [name] * 2


def test_connections_are_kept_alive_across_requests() -> None:
    with FakeSendGrid() as fake:
        transport = SendGridTransport(fake.api_key, fake.url)
        for start in range(0, 30, 10):
            transport.send(bulk(THOUSAND[start : start + 10]))
        transport.shutdown()
    assert (fake.requests, fake.connections) == (3, 1)


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault(status=503), "transient"),
        (Fault(status=500, accept=True), "unknown"),
        (Fault(status=502), "unknown"),
        (Fault(status=400), "permanent"),
        (Fault(status=413), "permanent"),
        (Fault(drop=True, accept=True), "unknown"),
    ],
)
def test_provider_answers_map_to_ledger_outcomes(fault: Fault, status: str) -> None:
    with FakeSendGrid() as fake:
        fake.inject(fault)
        transport = SendGridTransport(fake.api_key, fake.url)
        deliveries = transport.send(bulk(THOUSAND[:3]))
        again = transport.send(bulk(THOUSAND[3:6]))  # the next request is served normally
        transport.shutdown()
    assert {d.status for d in deliveries} == {status}
    assert {d.status for d in again} == {"sent"}


def test_rate_limit_says_when_to_come_back() -> None:
    with FakeSendGrid() as fake:
        fake.inject(Fault(status=429, headers={"X-RateLimit-Reset": str(int(time.time()) + 60)}))
        transport = SendGridTransport(fake.api_key, fake.url)
        deliveries = transport.send(bulk(THOUSAND[:2]))
        transport.shutdown()
    assert {d.status for d in deliveries} == {"transient"}
    assert all(d.retry_after is not None and 50 <= d.retry_after <= 61 for d in deliveries)


def test_refused_key_halts_everything() -> None:
    with FakeSendGrid() as fake:
        transport = SendGridTransport("SG.wrong", fake.url)
        with pytest.raises(TransportHalted, match="401"):
            transport.send(bulk(THOUSAND[:2]))
        transport.shutdown()
    assert fake.counts() == {}


def test_invalid_request_is_refused_with_the_providers_reason() -> None:
    with FakeSendGrid() as fake:
        transport = SendGridTransport(fake.api_key, fake.url)
        deliveries = transport.send(bulk([(1, "a@example.org", "A"), (2, "A@example.org", "B")]))
        transport.shutdown()
    assert {d.status for d in deliveries} == {"permanent"}
    assert "appears twice" in (deliveries[0].error or "")


def test_unreachable_is_transient_and_slow_is_unknown() -> None:
    transport = SendGridTransport("SG.x", f"http://127.0.0.1:{free_port()}")
    assert {d.status for d in transport.send(bulk(THOUSAND[:2]))} == {"transient"}
    with FakeSendGrid() as fake:
        fake.inject(Fault(status=202, delay=2.0, accept=True))
        slow = SendGridTransport(fake.api_key, fake.url, client=httpx.Client(timeout=httpx.Timeout(0.5)))
        assert {d.status for d in slow.send(bulk(THOUSAND[:2]))} == {"unknown"}
        slow.shutdown()


# What the fake refuses: SendGrid's document, its prose included, so that a payload mistake fails a test.


WRITER = Mailbox(display_name="شیلان ئەحمەد", addr_spec="shilan@example.org")


def letter(reply_to: Mailbox | None = WRITER) -> BulkEmail:
    """A letter to one official as the letters composer builds it: the writer only in Reply-To."""
    return BulkEmail(
        kind="letter",
        locale="ar",
        rtl=True,
        sender=Mailbox(display_name="شیلان ئەحمەد via Protect HRDs", addr_spec="alerts@example.org"),
        subject="الإفراج عن المدافعين",
        text="\u200fسيادة الرئيس،\n\nنص الرسالة.\n",
        html='<html lang="ar" dir="rtl"><body><p>سيادة الرئيس،</p></body></html>',
        date=dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC),
        recipients=[
            Recipient(
                ledger_id=7,
                address=Mailbox(
                    display_name="رئيس مجلس القضاء الأعلى", addr_spec="president-office@sjc.example.org"
                ),
                values={},
                message_id="<letter.7.abc@example.org>",
            )
        ],
        categories=("letter",),
        reply_to=reply_to,
    )


def problems(payload: dict[str, Any]) -> list[str]:
    return [str(p) for p in request_problems(payload, VALIDATOR, now=NOW)]


def test_reserved_headers_are_the_documents_list() -> None:
    assert {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    } == RESERVED_HEADERS


def test_a_letter_with_reply_to_passes_and_uses_the_api_field() -> None:
    payload = build_payload(letter())
    assert problems(payload) == []
    assert payload["reply_to"] == {"name": "شیلان ئەحمەد", "email": "shilan@example.org"}
    headers = {**payload["headers"], **payload["personalizations"][0].get("headers", {})}
    assert {name.lower() for name in headers}.isdisjoint(RESERVED_HEADERS)
    assert "reply_to" not in build_payload(letter(reply_to=None))
    assert problems(build_payload(letter(reply_to=None))) == []


def test_an_alert_with_list_unsubscribe_headers_passes() -> None:
    payload = build_payload(bulk(THOUSAND[:3]))
    assert problems(payload) == []
    assert [p["headers"]["List-Unsubscribe"] for p in payload["personalizations"]] == [
        f"<https://act.example.org/u/{i}>" for i in (1, 2, 3)
    ]


def test_a_thousand_recipients_pass_the_whole_fake() -> None:
    assert problems(build_payload(bulk(THOUSAND))) == []


def _set(payload: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    target: Any = payload
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()
P0 = ("personalizations", 0)


def _patch(*changes: tuple[tuple[str | int, ...], Any]) -> Callable[[dict[str, Any]], None]:
    def apply(payload: dict[str, Any]) -> None:
        for path, value in changes:
            _set(payload, path, value)

    return apply


def _thousand_and_one_in_bcc(payload: dict[str, Any]) -> None:
    payload["personalizations"][0]["bcc"] = [{"email": f"b{i}@example.net"} for i in range(998)]


def _too_many_personalizations(payload: dict[str, Any]) -> None:
    first = payload["personalizations"][0]
    payload["personalizations"] = [{**first, "to": [{"email": f"p{i}@example.net"}]} for i in range(1001)]


def _subject_in_one_personalization_only(payload: dict[str, Any]) -> None:
    payload["personalizations"][0]["subject"] = payload.pop("subject")


def _html_first(payload: dict[str, Any]) -> None:
    payload["content"].reverse()


# Each case breaks one rule of the otherwise valid alert payload (three recipients).
RULES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "reply-to in personalization headers": (
        _patch(((*P0, "headers", "Reply-To"), "shilan@example.org")),
        "personalizations.0.headers.Reply-To: the Reply-To header may not be set here",
    ),
    "reserved header in any case": (
        _patch((("headers", "REPLY-to"), "shilan@example.org")),
        "headers.REPLY-to: the REPLY-to header may not be set here",
    ),
    "CRLF in a personalization header": (
        _patch(((*P0, "headers", "List-Unsubscribe"), "<https://x.example.org>\r\nBcc: x@evil.example")),
        "personalizations.0.headers.List-Unsubscribe: a header value may not hold CR or LF",
    ),
    "LF in a message header": (
        _patch((("headers", "List-Id"), "<a.example.org>\nBcc: x@evil.example")),
        "headers.List-Id: a header value may not hold CR or LF",
    ),
    "CR alone in a header": (
        _patch((("headers", "List-Id"), "<a.example.org>\rx")),
        "headers.List-Id: a header value may not hold CR or LF",
    ),
    "header name with a colon": (
        _patch((("headers", "X-A: b"), "c")),
        "a header name is printable ASCII without a colon",
    ),
    "header value not a string": (
        _patch(((*P0, "headers", "X-Count"), 3)),
        "personalizations.0.headers.X-Count: a header value must be a string",
    ),
    "no personalization": (_patch((("personalizations",), [])), "at least one personalization is required"),
    "a personalization without recipients": (
        _patch(((*P0, "to"), [])),
        "personalizations.0.to: must hold at least one recipient",
    ),
    "1001 personalizations": (_too_many_personalizations, "is too long"),
    "1001 recipients with bcc": (_thousand_and_one_in_bcc, "1001 recipients in to, cc and bcc together"),
    "one address twice in a request, any case": (
        _patch((("personalizations", 2, "cc"), [{"email": "Supporter0001@Example.org"}])),
        "supporter0001@example.org appears twice in one request",
    ),
    "one address in to and bcc": (
        _patch(((*P0, "bcc"), [{"email": "supporter0001@example.org"}])),
        "personalizations.0.bcc.0: supporter0001@example.org appears twice",
    ),
    "custom_args over 10000 bytes": (
        _patch(((*P0, "custom_args", "x"), "ع" * 5000)),
        "personalizations.0.custom_args: 10032 bytes in all, more than 10000",
    ),
    "custom_args value not a string": (
        _patch(((*P0, "custom_args", LEDGER_ARG), 1)),
        f"personalizations.0.custom_args.{LEDGER_ARG}: must be a string",
    ),
    "eleven categories": (
        _patch(
            (("categories",), [f"c{i}" for i in range(11)]),
        ),
        "is too long",
    ),
    "a category over 255 characters": (
        _patch(
            (("categories",), ["c" * 256]),
        ),
        "is too long",
    ),
    "a category twice": (
        _patch(
            (("categories",), ["alert", "alert"]),
        ),
        "has non-unique elements",
    ),
    "no subject anywhere": (
        _patch((("subject",), _DELETE)),
        "personalizations.0.subject: a subject is required",
    ),
    "a subject for some personalizations only": (
        _subject_in_one_personalization_only,
        "personalizations.1.subject: a subject is required",
    ),
    "text/html before text/plain": (_html_first, "content: text/plain, then text/html, must come first"),
    "no content": (_patch((("content",), [])), "content: at least one content type is required"),
    "reply_to and reply_to_list": (
        _patch(
            (("reply_to",), {"email": "a@example.org"}),
            (("reply_to_list",), [{"email": "b@example.org"}]),
        ),
        "use either reply_to or reply_to_list, not both",
    ),
    "substitutions over 10000 bytes": (
        _patch(((*P0, "substitutions", "MAILERPH00t"), "x" * 10_000)),
        "personalizations.0.substitutions: 10160 bytes, more than 10000",
    ),
    "a substitution that breaks the subject": (
        _patch(((*P0, "substitutions", "MAILERPH00t"), "Ali\r\nBcc: x@evil.example")),
        "personalizations.0.subject: the subject holds a line break after substitution",
    ),
    "a substitution that breaks the reply-to": (
        _patch(
            (("reply_to",), {"email": "a@example.org", "name": "MAILERPH00t"}),
            ((*P0, "substitutions", "MAILERPH00t"), "Ali\nBcc: x@evil.example"),
        ),
        "reply_to.name: holds a line break after personalizations.0's substitutions",
    ),
    "substitutions with a dynamic template": (
        _patch((("template_id",), "d-0123456789abcdef")),
        "personalizations.0.substitutions: may not be used with a dynamic template",
    ),
    "send_at more than 72 hours ahead": (
        _patch((("send_at",), int(NOW) + 72 * 3600 + 1)),
        "send_at: a send cannot be scheduled more than 72 hours ahead",
    ),
    "a personalization's send_at more than 72 hours ahead": (
        _patch(((*P0, "send_at"), int(NOW) + 73 * 3600)),
        "personalizations.0.send_at: a send cannot be scheduled more than 72 hours ahead",
    ),
    "a line break in the subject": (
        _patch((("subject",), "Hello\nBcc: x@evil.example")),
        "personalizations.0.subject: the subject holds a line break",
    ),
    "a line break in the sender's name": (
        _patch((("from", "name"), "Solidarity\nBcc: x@evil.example")),
        "from.name: may not hold CR or LF",
    ),
    "a line break in a recipient's name": (
        _patch(((*P0, "to", 0, "name"), "A\rB")),
        "personalizations.0.to.0.name: may not hold CR or LF",
    ),
    "two addresses in one address field": (
        _patch(((*P0, "to", 0, "email"), "a@example.org, x@evil.example")),
        "personalizations.0.to.0.email: does not contain a valid address",
    ),
    "bypass_list_management with another bypass": (
        _patch(
            (
                ("mail_settings",),
                {"bypass_list_management": {"enable": True}, "bypass_spam_management": {"enable": True}},
            )
        ),
        "mail_settings.bypass_spam_management: cannot be combined with bypass_list_management",
    ),
    "an attachment that is not Base64": (
        _patch((("attachments",), [{"content": "not base64!", "filename": "a.txt"}])),
        "attachments.0.content: must be Base64 encoded",
    ),
}


@pytest.mark.parametrize("case", list(RULES))
def test_the_fake_refuses_what_sendgrid_forbids(case: str) -> None:
    breaks, reason = RULES[case]
    payload = build_payload(bulk(THOUSAND[:3]))
    assert problems(payload) == []
    breaks(payload)
    found = problems(payload)
    assert any(reason in problem for problem in found), found


@pytest.mark.parametrize("where", ["headers", "personalizations"])
@pytest.mark.parametrize("name", sorted(RESERVED_HEADERS))
def test_every_reserved_header_is_refused_at_both_levels(where: str, name: str) -> None:
    payload = build_payload(bulk(THOUSAND[:2]))
    headers = (
        payload["headers"] if where == "headers" else payload["personalizations"][1].setdefault("headers", {})
    )
    headers[name.title()] = "x"
    assert len(rule_errors(payload)) == 1
    assert "may not be set here" in rule_errors(payload)[0]


def test_the_limits_are_limits_not_less() -> None:
    """Exactly at each limit, the fake accepts: it refuses what SendGrid refuses, not more."""
    payload = build_payload(bulk(THOUSAND[:999]))
    payload["personalizations"][0]["cc"] = [{"email": "one-more@example.net"}]  # 1000 recipients
    payload["send_at"] = int(NOW) + 72 * 3600
    payload["categories"] = ["c" * 255] + [f"c{i}" for i in range(9)]
    args = payload["personalizations"][1]["custom_args"]
    args["x"] = ""
    args["x"] = "ع" * ((10_000 - len(json.dumps(args).encode())) // 2)  # exactly 10000 bytes in all
    assert len(json.dumps(args, ensure_ascii=False).encode()) == 10_000
    for personalization in payload["personalizations"]:
        personalization["subject"] = payload["subject"]
    del payload["subject"]  # a subject in every personalization is enough
    assert problems(payload) == []


def test_reply_to_in_personalization_headers_is_refused_over_http() -> None:
    """The old bug: Reply-To set as a header. SendGrid answers 400 with its error shape, and sends nothing."""
    payload = build_payload(letter(reply_to=None))
    payload["personalizations"][0]["headers"] = {"Reply-To": "shilan@example.org"}
    with FakeSendGrid() as fake:
        response = httpx.post(
            f"{fake.url}/v3/mail/send", json=payload, headers={"Authorization": f"Bearer {fake.api_key}"}
        )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "the Reply-To header may not be set here",
                "field": "personalizations.0.headers.Reply-To",
                "help": None,
            }
        ]
    }
    assert (fake.delivered, fake.bodies) == ([], [])
    assert fake.rejected == [
        (400, ["personalizations.0.headers.Reply-To: the Reply-To header may not be set here"])
    ]


@pytest.mark.parametrize("level", ["message", "recipient"])
def test_the_transport_never_posts_a_header_sendgrid_reserves(level: str) -> None:
    email = bulk(THOUSAND[:2])
    if level == "message":
        email = dataclasses.replace(email, headers={"Reply-To": "x@evil.example"})
    else:
        bad = dataclasses.replace(email.recipients[0], headers={"reply-to": "x@evil.example"})
        email = dataclasses.replace(email, recipients=[bad, email.recipients[1]])
    with FakeSendGrid() as fake:
        transport = SendGridTransport(fake.api_key, fake.url)
        deliveries = transport.send(email)
        transport.shutdown()
    refused = deliveries if level == "message" else deliveries[:1]
    assert {d.status for d in refused} == {"permanent"}
    assert all("Reply-To" in (d.error or "") or "reply-to" in (d.error or "") for d in refused)
    assert fake.rejected == []  # refused before SendGrid had to
    assert fake.counts() == ({} if level == "message" else {"supporter0002@example.org": 1})
