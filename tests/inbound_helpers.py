"""What the inbound tests share: a runtime that reads an inbound address, the sample messages with our
addresses written in, and the outbox."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

from sqlalchemy import select

from mailer import campaigns, letters
from mailer.config import Settings
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.store.models import InboundMessage, Suppression
from mailer.targets import import_targets
from tests.factories import prefilled_letter

SLUG = "protect-hrds-iraq"
MORNING = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)  # 10:00 in Baghdad
INBOUND = "reply@in.example.org"
MAIL = Path(__file__).parent / "inbound"


def inbound_runtime(env: dict[str, str], tmp_path: Path, db: Database, **more: str) -> Runtime:
    """A runtime reading ``INBOUND``, with the seed campaign and its officials, at ``MORNING``."""
    runtime = Runtime(Settings.from_env(env | {"MAILER_INBOUND_ADDRESS": INBOUND} | more, cwd=tmp_path))
    runtime.__dict__["db"] = db
    runtime.clock = lambda: MORNING
    campaigns.load_campaign(db, demo_dir() / "campaigns" / SLUG)
    import_targets(db, demo_dir() / "officials.yaml")
    return runtime


def outbox(rt: Runtime, kind: str) -> list[EmailMessage]:
    return [
        cast(EmailMessage, message_from_bytes(p.read_bytes(), policy=policy.default))
        for p in sorted(rt.settings.outbox_dir.glob(f"{kind}-*.eml"))
    ]


def sample(name: str, **values: str) -> bytes:
    text = (MAIL / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text.replace("\n", "\r\n").encode()


def link_in(message: EmailMessage, path: str) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return next(word for word in text.split() if path in word).split(path, 1)[1]


def write_and_confirm(rt: Runtime, share: str = "initials") -> EmailMessage:
    """A Sorani supporter's letter, confirmed and sent: the first letter to an official."""
    started = letters.start_letter(
        rt.db, rt.backend, prefilled_letter(rt, "ckb", share=share), clock=rt.clock
    )
    letters.confirm_letter_id(rt.db, rt.backend, started.letter_id, clock=rt.clock)
    return outbox(rt, "letter")[0]


def inbound_rows(db: Database) -> list[InboundMessage]:
    with db.session() as session:
        rows = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        session.expunge_all()
    return rows


def suppressions(db: Database) -> list[tuple[str, str]]:
    with db.session() as session:
        return [(s.scope, s.reason) for s in session.scalars(select(Suppression).order_by(Suppression.id))]
