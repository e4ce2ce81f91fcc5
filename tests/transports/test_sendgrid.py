"""SendGrid against the local fake that validates every request with the official schema."""

from __future__ import annotations

import time

import httpx
import pytest

from mailer.content import marker
from mailer.transports import TransportHalted
from mailer.transports.sendgrid import LEDGER_ARG, SendGridTransport, build_payload
from tests.conftest import free_port
from tests.fakes.sendgrid_server import FakeSendGrid, Fault, mail_send_validator, rule_errors
from tests.transports.test_contract import bulk

THOUSAND = [(i, f"supporter{i:04d}@example.org", f"Name{i}") for i in range(1, 1001)]


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
