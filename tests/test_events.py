"""The signed SendGrid event webhook, unsubscribes and suppressions, end to end through the web app."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy import update as sa_update

from mailer import campaigns, events, mailouts
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.store.models import Event, Message, Supporter, Suppression
from mailer.supporters import import_supporters
from mailer.tokens import TokenSigner
from mailer.web import create_app
from tests.factories import supporters_csv
from tests.web.conftest import csrf_of

VECTOR = json.loads(
    (Path(__file__).parent / "fakes" / "sendgrid" / "event-webhook-test-vector.json").read_text()
)
NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


class Signer:
    """A key pair of the test's own, standing in for SendGrid's."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signature = self.key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
            "Content-Type": "application/json",
        }


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def sent(env: dict[str, str], tmp_path: Path, db: Database, signer: Signer) -> Runtime:
    """40 supporters, one finished mailout through the outbox, a webhook key of our own."""
    return sent_runtime(env, tmp_path, db, signer)


def sent_runtime(env: dict[str, str], tmp_path: Path, db: Database, signer: Signer) -> Runtime:
    settings = Settings.from_env(env | {"MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public}, cwd=tmp_path)
    runtime = Runtime(settings)
    runtime.__dict__["db"] = db
    runtime.clock = lambda: NOW
    campaigns.load_campaign(db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    supporters_csv(tmp_path / "people.csv", 40)
    import_supporters(db, tmp_path / "people.csv")
    mailouts.launch_mailout(db, runtime.backend, "protect-hrds-iraq", {}, {})
    return runtime


@pytest.fixture
def web(sent: Runtime) -> FlaskClient:
    app: Flask = create_app(sent)
    return app.test_client()


def message_ids(runtime: Runtime) -> list[int]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Message.id).order_by(Message.id)))


def event(message_id: int, name: str, timestamp: int, event_id: str, **extra: object) -> dict[str, object]:
    return {
        "email": f"supporter{message_id - 1:05d}@example.org",
        "event": name,
        "timestamp": timestamp,
        "sg_event_id": event_id,
        "sg_message_id": f"abc.filter{message_id}",
        "mailer_message": str(message_id),
        **extra,
    }


def post(
    web: FlaskClient, signer: Signer, batch: list[dict[str, object]], timestamp: int | None = None
) -> int:
    body = json.dumps(batch).encode()
    when = timestamp if timestamp is not None else int(NOW.timestamp())
    return web.post("/webhooks/sendgrid", data=body, headers=signer.headers(body, when)).status_code


def count(runtime: Runtime, model: type) -> int:
    with runtime.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_sendgrid_published_example_is_accepted() -> None:
    verifier = events.WebhookVerifier(VECTOR["public_key"], max_age=0)
    batch = verifier.verify(VECTOR["payload"].encode(), VECTOR["signature"], VECTOR["timestamp"], NOW)
    assert batch
    with pytest.raises(events.WebhookRejected):
        verifier.verify(VECTOR["payload"].encode() + b" ", VECTOR["signature"], VECTOR["timestamp"], NOW)
    with pytest.raises(events.WebhookRejected, match="too old"):
        events.WebhookVerifier(VECTOR["public_key"], max_age=600).verify(
            VECTOR["payload"].encode(), VECTOR["signature"], VECTOR["timestamp"], NOW
        )


def test_replayed_and_reordered_batches_change_each_message_once(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    first, second, third = message_ids(sent)[:3]
    batch = [
        event(first, "delivered", 1000, "e1"),
        event(second, "bounce", 1000, "e2", type="bounce"),
        event(third, "processed", 900, "e3"),
    ]
    assert post(web, signer, batch) == 200
    assert post(web, signer, batch) == 200  # SendGrid retries: nothing new
    late = [event(second, "delivered", 2000, "e4"), event(third, "delivered", 950, "e5")]  # out of order
    assert post(web, signer, late) == 200
    with sent.db.session() as session:
        states = {
            m.id: m.delivery
            for m in session.scalars(select(Message).where(Message.id.in_([first, second, third])))
        }
        assert states == {first: "delivered", second: "bounced", third: "delivered"}  # a bounce is not undone
        assert session.scalar(select(func.count()).select_from(Event)) == 5
    reasons = {(s["email"], s["reason"]) for s in events.list_suppressions(sent.db)}
    assert reasons == {(f"supporter{second - 1:05d}@example.org", "hard_bounce")}


def test_the_same_batch_delivered_concurrently_is_stored_once(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    ids = message_ids(sent)
    batch = [event(i, "delivered", 1000, f"c{i}") for i in ids[:20]]
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(post(web, signer, batch))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 4
    assert count(sent, Event) == 20


def test_retried_events_with_a_new_id_are_recognised(web: FlaskClient, sent: Runtime, signer: Signer) -> None:
    target = message_ids(sent)[0]
    without_id = event(target, "delivered", 1000, "")
    assert post(web, signer, [without_id]) == 200
    assert post(web, signer, [without_id]) == 200
    assert count(sent, Event) == 1


def test_forged_stale_and_oversize_requests_change_nothing(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    target = message_ids(sent)[0]
    body = json.dumps([event(target, "spamreport", 1000, "f1")]).encode()
    assert (
        web.post(
            "/webhooks/sendgrid", data=body, headers=Signer().headers(body, int(NOW.timestamp()))
        ).status_code
        == 403
    )
    assert web.post("/webhooks/sendgrid", data=body).status_code == 403
    stale = int(NOW.timestamp()) - 3600
    assert web.post("/webhooks/sendgrid", data=body, headers=signer.headers(body, stale)).status_code == 403
    big = b"[" + b" " * (events.MAX_WEBHOOK_BYTES + 10) + b"]"
    assert (
        web.post(
            "/webhooks/sendgrid", data=big, headers=signer.headers(big, int(NOW.timestamp()))
        ).status_code
        == 413
    )
    assert count(sent, Event) == 0
    assert count(sent, Suppression) == 0


def test_events_for_messages_we_never_sent_are_kept_for_audit(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    assert post(web, signer, [event(999_999, "spamreport", 1000, "x1")]) == 200
    with sent.db.session() as session:
        (stored,) = session.scalars(select(Event))
        assert stored.message_id is None
        assert stored.payload["mailer_message"] == "999999"
    assert count(sent, Suppression) == 0


def test_an_unknown_message_is_resolved_by_its_events(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    target = message_ids(sent)[0]
    with sent.db.session() as session:
        session.get(Message, target).status = "unknown"  # type: ignore[union-attr]
    assert post(web, signer, [event(target, "delivered", 1000, "u1")]) == 200
    with sent.db.session() as session:
        assert session.get(Message, target).status == "sent"  # type: ignore[union-attr]


def test_complaints_past_the_threshold_pause_the_mailout(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    ids = message_ids(sent)
    with sent.db.session() as session:  # imagine it is still running
        from mailer.store.models import Mailout

        session.scalars(select(Mailout)).one().status = "running"
    delivered = [event(i, "delivered", 990, f"d{i}") for i in ids]
    assert post(web, signer, [*delivered, event(ids[0], "spamreport", 1000, "s1")]) == 200
    # One reader's click on "spam" in a small mailout is no reason to stop it.
    assert mailouts.mailout_status(sent.db, 1).status == "running"
    assert post(web, signer, [event(i, "spamreport", 1001, f"s{i}") for i in ids[1:3]]) == 200
    status = mailouts.mailout_status(sent.db, 1)
    assert status.status == "paused"
    assert "complaint rate" in (status.to_json()["status_reason"] or "")
    report = events.mailout_report(sent.db, 1)
    assert report["total"]["complained"] == 3


def unsubscribe_token(runtime: Runtime, message_id: int) -> str:
    with runtime.db.session() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return TokenSigner(runtime.settings.secret_keys).sign(
            "unsubscribe", {"s": message.supporter_id, "m": message.id}
        )


def subscribed(runtime: Runtime, message_id: int) -> bool:
    with runtime.db.session() as session:
        message = session.get(Message, message_id)
        supporter = session.get(Supporter, message.supporter_id)  # type: ignore[union-attr]
        return bool(supporter.subscribed)  # type: ignore[union-attr]


def test_a_get_never_unsubscribes_the_button_does(web: FlaskClient, sent: Runtime) -> None:
    target = message_ids(sent)[1]  # an Arabic reader
    token = unsubscribe_token(sent, target)
    page = web.get(f"/u/{token}")
    assert page.status_code == 200
    assert 'lang="ar" dir="rtl"' in page.get_data(as_text=True)
    assert subscribed(sent, target)
    done = web.post(f"/u/{token}", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert done.status_code == 200
    assert not subscribed(sent, target)
    again = web.post(f"/u/{token}", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert again.status_code == 200
    assert count(sent, Suppression) == 1


def test_one_click_post_exactly_as_a_mail_provider_sends_it(sent: Runtime, web: FlaskClient) -> None:
    target = message_ids(sent)[2]
    response = web.post(
        f"/u/{unsubscribe_token(sent, target)}",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert not subscribed(sent, target)
    assert events.mailout_report(sent.db, 1)["total"]["unsubscribed"] == 1


def test_forged_tokens_get_the_same_answer(web: FlaskClient, sent: Runtime) -> None:
    real = web.post(
        f"/u/{unsubscribe_token(sent, message_ids(sent)[3])}",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    forged = web.post(
        "/u/not.a.token",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (real.status_code, real.get_data()) == (forged.status_code, forged.get_data())
    assert web.get("/u/not.a.token").status_code == 200


def forgeries(runtime: Runtime, message_id: int) -> dict[str, str]:
    """U1: a tampered payload, another supporter's id under this MAC, a cut MAC, a key no longer in use."""
    real = unsubscribe_token(runtime, message_id)
    payload, _, mac = real.rpartition(".")
    head, _, stamp = payload.rpartition(".")
    other = base64.urlsafe_b64encode(json.dumps({"s": 2, "m": message_id}).encode()).decode().rstrip("=")
    return {
        "tampered payload": head[:-2] + ("AA" if head[-2:] != "AA" else "BB") + "." + stamp + "." + mac,
        "other supporter, own MAC": f"{other}.{stamp}.{mac}",
        "truncated MAC": f"{payload}.{mac[:-6]}",
        "retired key": TokenSigner(("retired-key-0123456789abcdef0123",)).sign(
            "unsubscribe", {"s": 1, "m": message_id}
        ),
        "confirmation token": TokenSigner(runtime.settings.secret_keys).sign("confirm", {"l": 1}),
    }


def test_forged_unsubscribe_tokens_change_nothing_and_look_like_any_other(
    web: FlaskClient, sent: Runtime
) -> None:
    target = message_ids(sent)[0]  # an English reader, like the page's language for forged links
    one_click = {
        "data": "List-Unsubscribe=One-Click",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }
    page = web.get(f"/u/{unsubscribe_token(sent, target)}")
    button = {"data": {"csrf_token": csrf_of(page.get_data(as_text=True))}}
    answers = {}
    for name, token in forgeries(sent, target).items():
        answers[name] = [
            (r.status_code, r.get_data())
            for r in (web.post(f"/u/{token}", **one_click), web.post(f"/u/{token}", **button))  # type: ignore[arg-type]
        ]
    assert subscribed(sent, target)  # none of them unsubscribed anyone
    assert count(sent, Suppression) == 0
    genuine = [
        (r.status_code, r.get_data())
        for r in (
            web.post(f"/u/{unsubscribe_token(sent, target)}", **one_click),  # type: ignore[arg-type]
            web.post(f"/u/{unsubscribe_token(sent, target)}", **button),  # type: ignore[arg-type]
        )
    ]
    assert not subscribed(sent, target)
    assert all(answer == genuine for answer in answers.values()), answers.keys()


def test_unsubscribing_tells_nobody_whether_an_address_was_subscribed(
    web: FlaskClient, sent: Runtime
) -> None:
    """U2: a subscribed supporter and one who never was get the same answer, byte for byte."""
    subscribed_one, never = message_ids(sent)[0], message_ids(sent)[4]  # both English readers
    with sent.db.session() as session:
        supporter = session.get(Supporter, session.get(Message, never).supporter_id)  # type: ignore[union-attr]
        supporter.subscribed = False  # type: ignore[union-attr]
    one_click = {
        "data": "List-Unsubscribe=One-Click",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }
    first = web.post(f"/u/{unsubscribe_token(sent, subscribed_one)}", **one_click)  # type: ignore[arg-type]
    second = web.post(f"/u/{unsubscribe_token(sent, never)}", **one_click)  # type: ignore[arg-type]
    pages = [
        web.get(f"/u/{unsubscribe_token(sent, m)}").get_data(as_text=True) for m in (subscribed_one, never)
    ]
    assert (first.status_code, first.get_data()) == (second.status_code, second.get_data())
    strip = [re.sub(r'value="[^"]+"', "", re.sub(r"/u/[^\"]+", "", p)) for p in pages]
    assert strip[0] == strip[1]


def test_tokens_signed_with_the_previous_key_still_work(sent: Runtime) -> None:
    old = TokenSigner(("old-key-0123456789abcdef",)).sign("unsubscribe", {"s": 1, "m": 1})
    rotated = TokenSigner(("new-key-0123456789abcdef", "old-key-0123456789abcdef"))
    assert events.read_unsubscribe_token(sent.db, rotated, old) is not None


def test_unsubscribed_supporters_are_left_out_of_later_mailouts(
    web: FlaskClient, sent: Runtime, tmp_path: Path
) -> None:
    target = message_ids(sent)[0]
    web.post(
        f"/u/{unsubscribe_token(sent, target)}",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    import_supporters(sent.db, tmp_path / "people.csv")  # a re-import never resubscribes
    result = mailouts.launch_mailout(sent.db, sent.backend, "protect-hrds-iraq", {"locale": ["en"]}, {})
    assert result.new_messages == 9  # the ten English readers but the one who left


def test_suppressions_export_neutralises_formulas() -> None:
    text = events.export_suppressions_csv(
        [
            {
                "email": '=HYPERLINK("http://evil.example.com")',
                "scope": "supporter",
                "reason": "manual",
                "source": "+x",
                "created_at": "2026",
            },
        ]
    )
    assert "'=HYPERLINK" in text
    assert ",'+x," in text


def test_unsubscribe_while_the_message_is_still_queued(
    env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    from tests.test_ledger import Queue

    runtime = Runtime(Settings.from_env(env, cwd=tmp_path))
    runtime.__dict__["db"] = db
    queue = Queue()
    runtime.__dict__["backend"] = queue
    campaigns.load_campaign(db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    supporters_csv(tmp_path / "people.csv", 8)
    import_supporters(db, tmp_path / "people.csv")
    mailouts.launch_mailout(db, queue, "protect-hrds-iraq", {}, {})
    first = message_ids(runtime)[0]
    client = create_app(runtime).test_client()
    client.post(
        f"/u/{unsubscribe_token(runtime, first)}",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    for batch in queue.take():
        runtime.send_batch(batch)
    files = list(runtime.settings.outbox_dir.glob("*.eml"))
    assert len(files) == 7
    assert not any(f.name.startswith(f"alert-{first:07d}-") for f in files)


def test_a_bounced_official_stops_receiving_letters(runtime: Runtime) -> None:
    from mailer import letters
    from mailer.store.models import Target
    from mailer.targets import import_targets, list_targets

    runtime.clock = lambda: NOW
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / "protect-hrds-iraq")
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    raw = {
        "name": "Sarah Miller",
        "email": "sarah@example.org",
        "governorate": "",
        "share": "name",
        "subject": "Drop the lawsuits",
        "body": "Please drop them.",
        "note": "",
    }
    started = letters.start_letter(
        runtime.db,
        runtime.backend,
        letters.check_form(raw, "protect-hrds-iraq", "en"),
        clock=runtime.clock,
    )
    letters.confirm_letter_id(runtime.db, runtime.backend, started.letter_id, clock=runtime.clock)
    with runtime.db.session() as session:
        target = session.scalars(select(Target).where(Target.slug == "supreme-judicial-council")).one()
        letter_message = session.scalars(select(Message).where(Message.target_id == target.id)).one()
        bounce = {
            "email": target.email,
            "event": "bounce",
            "type": "bounce",
            "timestamp": 1000,
            "sg_event_id": "b1",
            "mailer_message": str(letter_message.id),
        }
    stored = events.store_events(runtime.db, [bounce], NOW)
    events.apply_events(runtime.db, stored, NOW)
    officials = {t["slug"]: t["status"] for t in list_targets(runtime.db)}
    assert officials["supreme-judicial-council"] == "bounced"
    again = letters.start_letter(
        runtime.db,
        runtime.backend,
        letters.check_form(raw | {"email": "other@example.org"}, "protect-hrds-iraq", "en"),
        clock=runtime.clock,
    )
    confirmed = letters.confirm_letter_id(runtime.db, runtime.backend, again.letter_id, clock=runtime.clock)
    assert confirmed.targets == 3  # the bounced official is no longer written to


def test_drops_are_reported_apart_and_suppress_only_addresses_on_sendgrid_lists(
    web: FlaskClient, sent: Runtime, signer: Signer
) -> None:
    ids = message_ids(sent)
    reasons = {
        "Bounced Address": "hard_bounce",
        "Unsubscribed Address": "unsubscribe",
        "Spam Reporting Address": "complaint",
        "Invalid": "hard_bounce",
        "Spam Content": None,
        "Invalid SMTPAPI header": None,
        "Recipient List over Package Quota": None,
    }
    batch = [
        event(message_id, "dropped", 1000, f"drop{n}", reason=reason)
        for n, (message_id, reason) in enumerate(zip(ids, reasons, strict=False))
    ]
    assert post(web, signer, batch) == 200
    found = {(s["email"], s["reason"]) for s in events.list_suppressions(sent.db)}
    expected = {
        (f"supporter{message_id - 1:05d}@example.org", suppression)
        for message_id, suppression in zip(ids, reasons.values(), strict=False)
        if suppression
    }
    assert found == expected
    assert [subscribed(sent, i) for i in ids[: len(reasons)]] == [False] * 4 + [True] * 3
    total = events.mailout_report(sent.db, 1)["total"]
    assert (total["dropped"], total["bounced"]) == (len(reasons), 0)
    assert list(total) == list(events.DELIVERY_COLUMNS)


def test_the_unsubscribe_page_stores_its_event_as_applied(web: FlaskClient, sent: Runtime) -> None:
    target = message_ids(sent)[5]
    web.post(
        f"/u/{unsubscribe_token(sent, target)}",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with sent.db.session() as session:
        (stored,) = session.scalars(select(Event))
        assert (stored.provider, stored.applied_at) == ("mailer", NOW)
    assert events.apply_unapplied_events(sent.db, NOW + dt.timedelta(hours=1)).events == 0


def test_a_body_reserialised_by_a_proxy_is_refused(web: FlaskClient, sent: Runtime, signer: Signer) -> None:
    """H5: the signature covers the raw bytes; the same events with other whitespace or key order are not them."""
    body = json.dumps([event(message_ids(sent)[0], "bounce", 1000, "r1", type="bounce")]).encode()
    headers = signer.headers(body, int(NOW.timestamp()))
    for changed in (
        json.dumps(json.loads(body), indent=1).encode(),
        json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode(),
    ):
        assert changed != body
        assert web.post("/webhooks/sendgrid", data=changed, headers=headers).status_code == 403
    assert count(sent, Event) == 0
    assert web.post("/webhooks/sendgrid", data=body, headers=headers).status_code == 200
    assert count(sent, Event) == 1


def test_a_mailout_timeline_counts_each_outcome_once_and_cumulatively(sent: Runtime) -> None:
    """The dashboard's chart: handed over, then what the provider said, hour by hour, never counted twice."""
    ids = message_ids(sent)
    start = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
    with sent.db.session() as session:
        session.execute(sa_update(Message).values(sent_at=start + dt.timedelta(minutes=5)))
        session.execute(
            sa_update(Message)
            .where(Message.id.in_(ids[:30]))
            .values(delivery="delivered", delivery_at=start + dt.timedelta(hours=1, minutes=10))
        )
        session.execute(
            sa_update(Message)
            .where(Message.id.in_(ids[30:32]))
            .values(delivery="bounced", delivery_at=start + dt.timedelta(hours=2, minutes=50))
        )
    timeline = events.mailout_timeline(sent.db, 1)
    hour = 3600
    first = int(start.timestamp()) - hour
    assert timeline["times"] == [first, first + hour, first + 2 * hour, first + 3 * hour]
    assert timeline["series"]["sent"] == [0, 40, 40, 40]
    assert timeline["series"]["delivered"] == [0, 0, 30, 30]
    assert timeline["series"]["bounced"] == [0, 0, 0, 2]
    assert timeline["series"]["failed"] == [0, 0, 0, 0]
    assert events.mailout_timeline(sent.db, 999) == {
        "times": [],
        "series": {key: [] for key in events.TIMELINE_SERIES},
    }
