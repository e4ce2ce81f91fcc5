"""Letters to officials through real parts: a redis-server, `mailer worker` processes and the fake SendGrid.

Three supporters write, one for each way of signing; each confirms with the link of the confirmation email
as SendGrid received it. The fake's requests are the oracle: one per (letter, official), in the official's
language, the writer's address only where they agreed to share it, and nothing SendGrid stores (custom_args,
categories) that names anybody.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailer import campaigns, letters
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import upgrade_database
from mailer.store.models import Message, Target
from mailer.targets import import_targets
from mailer.transports.sendgrid import LEDGER_ARG
from tests.conftest import RedisServer
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.workers.conftest import Worker

pytestmark = pytest.mark.integration
SLUG = "protect-hrds-iraq"
FROM_EMAIL = "alerts@example.org"
DEADLINE = 180  # seconds: a bound against hanging, not a performance check
TRACKING_OFF = {
    "click_tracking": {"enable": False, "enable_text": False},
    "open_tracking": {"enable": False},
    "subscription_tracking": {"enable": False},
    "ganalytics": {"enable": False},
}


@dataclass(frozen=True)
class Writer:
    name: str
    email: str
    locale: str
    governorate: str
    share: str
    officials: int  # how many officials the campaign's targeting gives this governorate


WRITERS = [
    Writer("شیلان ئەحمەد", "shilan@example.org", "ckb", "Basra", "name_email", 6),
    Writer("Rojda Şêxo", "rojda@example.com", "kmr", "Duhok", "initials", 7),
    Writer("علي كريم", "ali@example.net", "ar", "", "name", 4),
]


@pytest.fixture
def setup(
    env: dict[str, str], tmp_path: Path, fake: FakeSendGrid, redis: RedisServer, worker_factory: list[Worker]
) -> Iterator[tuple[Runtime, Worker]]:
    env = env | {
        "MAILER_BROKER_URL": redis.url,
        "MAILER_TRANSPORT": "sendgrid",
        "MAILER_SENDGRID_API_KEY": fake.api_key,
        "MAILER_SENDGRID_API_URL": fake.url,
        "MAILER_FROM_EMAIL": FROM_EMAIL,
    }
    settings = Settings.from_env(env, cwd=tmp_path)
    upgrade_database(settings.database_url, settings.require_vault())
    runtime = Runtime(settings)
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    worker = Worker(env, tmp_path)
    worker_factory.append(worker)
    yield runtime, worker
    runtime.close()


def wait_for(condition: Callable[[], bool], what: str, runtime: Runtime, worker: Worker) -> None:
    """Poll, sweeping now and then as Celery beat would."""
    deadline = time.monotonic() + DEADLINE
    next_sweep = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{worker.logs()[-3000:]}")
        if time.monotonic() > next_sweep:
            runtime.sweep()
            next_sweep = time.monotonic() + 5
        time.sleep(0.2)


def requests_of(fake: FakeSendGrid, category: str) -> list[dict[str, Any]]:
    with fake.lock:
        return [body for body in fake.bodies if body.get("categories") == [category]]


def recipient(body: dict[str, Any]) -> str:
    (personalization,) = body["personalizations"]
    (to,) = personalization["to"]
    return str(to["email"])


def plain_text(body: dict[str, Any]) -> str:
    """The text part as its recipient reads it: SendGrid fills in the substitutions."""
    text = next(c["value"] for c in body["content"] if c["type"] == "text/plain")
    for key, value in body["personalizations"][0].get("substitutions", {}).items():
        text = text.replace(key, value)
    return str(text)


def confirm_token(body: dict[str, Any]) -> str:
    links: set[str] = set(
        re.findall(r"https://act\.example\.org/confirm/([A-Za-z0-9_.\-]+)", plain_text(body))
    )
    (token,) = links  # one link, the same wherever it is repeated
    return token


def test_letters_reach_each_official_once_through_workers(
    setup: tuple[Runtime, Worker], fake: FakeSendGrid
) -> None:
    runtime, worker = setup
    worker.start()
    spec = campaigns.parse_campaign_folder(demo_dir() / "campaigns" / SLUG)
    started: dict[str, int] = {}
    for writer in WRITERS:
        content = next(c for c in spec.contents if c.kind == "letter" and c.locale == writer.locale)
        form = letters.check_form(
            {
                "name": writer.name,
                "email": writer.email,
                "governorate": writer.governorate,
                "share": writer.share,
                "subject": content.subject,
                "body": content.body,
                "note": "",
            },
            SLUG,
            writer.locale,
        )
        started[writer.email] = letters.start_letter(runtime.db, runtime.backend, form).letter_id

    # The confirmation emails, as SendGrid received them; nothing reaches an official before the link.
    wait_for(lambda: len(requests_of(fake, "confirm")) == len(WRITERS), "the confirmations", runtime, worker)
    assert requests_of(fake, "letter") == []
    confirmations = {recipient(body): body for body in requests_of(fake, "confirm")}
    assert sorted(confirmations) == sorted(w.email for w in WRITERS)
    for writer in WRITERS:
        confirmed = letters.confirm_letter(
            runtime.db, runtime.backend, runtime.signer, confirm_token(confirmations[writer.email])
        )
        assert (confirmed.letter_id, confirmed.first_time, confirmed.targets) == (
            started[writer.email],
            True,
            writer.officials,
        )

    expected_letters = sum(w.officials for w in WRITERS)

    def ledger() -> list[tuple[Message, Target | None]]:
        with runtime.db.session() as session:
            rows = session.execute(
                select(Message, Target)
                .outerjoin(Target, Target.id == Message.target_id)
                .where(Message.letter_id.in_(started.values()))
            ).all()
            session.expunge_all()
        return [(message, target) for message, target in rows]

    def settled() -> bool:
        rows = ledger()
        return len(rows) == expected_letters + 2 * len(WRITERS) and all(
            m.status not in ("queued", "sending") for m, _ in rows
        )

    wait_for(settled, "every letter and copy", runtime, worker)
    rows = ledger()
    assert {(m.kind, m.status) for m, _ in rows} == {
        ("confirm", "sent"),
        ("letter", "sent"),
        ("copy", "sent"),
    }
    assert all(m.provider_message_id for m, _ in rows)

    # One request per ledger row, whatever its kind, and nothing refused along the way.
    with fake.lock:
        bodies = list(fake.bodies)
        assert fake.rejected == []
    per_ledger_id = Counter(p["custom_args"][LEDGER_ARG] for body in bodies for p in body["personalizations"])
    assert per_ledger_id == Counter({str(m.id): 1 for m, _ in rows})
    by_ledger_id = {body["personalizations"][0]["custom_args"][LEDGER_ARG]: body for body in bodies}

    subjects = {c.locale: c.subject for c in spec.contents if c.kind == "letter"}
    writers = {started[w.email]: w for w in WRITERS}
    per_writer: dict[str, list[str]] = {w.email: [] for w in WRITERS}
    for message, target in rows:
        body = by_ledger_id[str(message.id)]
        assert len(body["personalizations"]) == 1
        assert body["tracking_settings"] == TRACKING_OFF
        assert body["personalizations"][0]["custom_args"] == {LEDGER_ARG: str(message.id)}  # opaque only
        assert "custom_args" not in body
        assert body["from"]["email"] == FROM_EMAIL  # never the writer's own address
        writer = writers[message.letter_id or 0]
        if message.kind != "letter":
            assert recipient(body) == writer.email
            continue
        assert target is not None
        per_writer[writer.email].append(recipient(body))
        assert body["categories"] == ["letter"]
        assert recipient(body) == target.email
        # In the official's language: the campaign's letter in that language (the writer did not edit it).
        assert body["headers"]["Content-Language"] == target.letter_locale
        assert body["subject"] == subjects[target.letter_locale]
        serialised = json.dumps(body, ensure_ascii=False)
        if writer.share == "name_email":
            assert body["reply_to"] == {"email": writer.email, "name": writer.name}
        else:
            assert "reply_to" not in body
            assert "reply_to_list" not in body
            assert writer.email not in serialised  # the address is nowhere in what SendGrid receives
        if writer.share == "initials":
            assert letters.initials(writer.name) in body["from"]["name"]
            for word in writer.name.split():
                assert word not in serialised
        else:
            assert writer.name in body["from"]["name"]
        for personalization in body["personalizations"]:
            assert "reply-to" not in {name.lower() for name in personalization.get("headers", {})}
    # Each official the writer's governorate gives, once.
    for writer in WRITERS:
        officials = letters.targets_for(runtime.db, SLUG, writer.governorate or None)
        assert len(officials) == writer.officials
        assert sorted(per_writer[writer.email]) == sorted(t.email for t in officials)
