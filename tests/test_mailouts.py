"""The whole mailout path on the embedded default: ledger, batches, outbox files."""

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import func, select

from mailer import campaigns, mailouts
from mailer.errors import MailoutError
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store.models import Message, Suppression
from mailer.supporters import import_supporters
from mailer.tokens import TokenSigner
from tests.conftest import SECRET
from tests.factories import supporters_csv

SEED = demo_dir() / "campaigns" / "protect-hrds-iraq"


def read_outbox(folder: Path) -> list[EmailMessage]:
    return [
        cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
        for path in sorted(folder.glob("*.eml"))
    ]


@pytest.fixture
def loaded(runtime: Runtime, tmp_path: Path) -> dict[str, str]:
    campaigns.load_campaign(runtime.db, SEED)
    expected = supporters_csv(tmp_path / "people.csv", 40)
    import_supporters(runtime.db, tmp_path / "people.csv")
    return expected


def launch(
    runtime: Runtime, segment: list[str] | None = None, fallback: list[str] | None = None
) -> mailouts.LaunchResult:
    return mailouts.launch_mailout(
        runtime.db,
        runtime.backend,
        "protect-hrds-iraq",
        mailouts.parse_segment(segment or []),
        mailouts.parse_fallbacks(fallback or []),
        batch_size=7,
    )


def test_each_supporter_gets_one_alert_in_their_language(runtime: Runtime, loaded: dict[str, str]) -> None:
    result = launch(runtime)
    assert result.created
    assert result.new_messages == 40
    status = mailouts.mailout_status(runtime.db, result.mailout_id)
    assert (status.status, status.counts["sent"], status.total) == ("finished", 40, 40)
    emails = read_outbox(runtime.settings.outbox_dir)
    assert sorted(str(e["To"].addresses[0].addr_spec) for e in emails) == sorted(loaded)
    for email in emails:
        code = loaded[email["To"].addresses[0].addr_spec]
        assert email["Content-Language"] == code
        assert email.get_content_type() == "multipart/alternative"
        html = email.get_body(("html",)).get_content()
        text = email.get_body(("plain",)).get_content()
        assert f'lang="{code}"' in html
        assert text.strip()
        assert email["Message-ID"].startswith("<alert.")
        assert email["Date"]
        assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # Only the https link: no inbound address is read here, and a mailto nobody reads would lose requests.
        https = email["List-Unsubscribe"].strip(" <>")
        assert https.startswith("https://act.example.org/u/")
        payload = TokenSigner((SECRET,)).verify("unsubscribe", https.rsplit("/", 1)[1])
        assert set(payload) == {"s", "m"}
    subjects = {e["Content-Language"]: str(e["Subject"]) for e in emails}
    assert subjects["ar"] != subjects["en"]
    assert subjects["ckb"] != subjects["ar"]


def test_launching_again_sends_nothing_twice(
    runtime: Runtime, loaded: dict[str, str], tmp_path: Path
) -> None:
    first = launch(runtime)
    second = launch(runtime)
    assert second.mailout_id == first.mailout_id
    assert (second.created, second.new_messages, second.queued_batches) == (False, 0, 0)
    assert len(list(runtime.settings.outbox_dir.glob("*.eml"))) == 40
    # A new supporter joins: the same mailout reaches only them.
    (tmp_path / "new.csv").write_text("email,name,locale,governorate\nlate@example.org,Late Comer,en,\n")
    import_supporters(runtime.db, tmp_path / "new.csv")
    third = launch(runtime)
    assert (third.mailout_id, third.new_messages) == (first.mailout_id, 1)
    assert len(list(runtime.settings.outbox_dir.glob("*.eml"))) == 41


def test_segments_narrow_and_widen(runtime: Runtime, loaded: dict[str, str]) -> None:
    result = launch(runtime, ["locale=ar", "locale=ckb-IQ"])
    by_locale = mailouts.mailout_status(runtime.db, result.mailout_id).by_locale
    assert set(by_locale) == {"ar", "ckb"}
    narrowed = launch(runtime, ["locale=ar", "governorate=Erbil"])
    assert narrowed.mailout_id != result.mailout_id
    assert narrowed.new_messages == 0  # Arabic readers in the test data live in Basra


def test_tags_narrow_a_segment_and_follow_later_imports(
    runtime: Runtime, loaded: dict[str, str], tmp_path: Path
) -> None:
    """A tag segment selects through the tags' blind indexes, kept equal to the tags by every import."""
    assert mailouts.parse_segment(["tag= Lawyers ", "tag=lawyers", "locale=ar"]) == {
        "locale": ["ar"],
        "tag": ["lawyers"],
    }
    path = tmp_path / "tags.csv"
    path.write_text(
        "email,name,locale,governorate,tags\na@example.net,A,ar,Basra,lawyers\nb@example.net,B,ar,Basra,students\n"
    )
    import_supporters(runtime.db, path)

    def plan(segment: list[str]) -> dict[str, int]:
        found = mailouts.plan_mailout(runtime.db, "protect-hrds-iraq", mailouts.parse_segment(segment), {})
        return found.recipients

    assert plan(["tag=lawyers"]) == {"ar": 1}
    assert plan(["tag=lawyers", "tag=students"]) == {"ar": 2}
    path.write_text("email,name,locale,governorate,tags\nb@example.net,B,ar,Basra,lawyers\n")
    import_supporters(runtime.db, path)  # b gains a tag (imports add tags, never remove them)
    assert plan(["tag=lawyers"]) == {"ar": 2}
    assert plan(["tag=students"]) == {"ar": 1}


def test_a_plan_names_the_languages_it_would_send_unreviewed(
    runtime: Runtime, loaded: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name,locale,governorate\na@example.net,A,ar,Basra\nb@example.net,B,ckb,Erbil\nc@example.net,C,en,\n"
    )
    import_supporters(runtime.db, path)

    def drafts(segment: list[str], fallbacks: dict[str, str]) -> tuple[str, ...]:
        return mailouts.plan_mailout(
            runtime.db, "protect-hrds-iraq", mailouts.parse_segment(segment), fallbacks
        ).draft_locales

    assert drafts([], {}) == ("ar", "ckb", "kmr")  # the seed's translations are drafts; English is the source
    assert drafts(["locale=en"], {}) == ()
    assert drafts([], {"ar": "en", "ckb": "en", "kmr": "en"}) == ()  # what is sent counts, not who reads it


def test_bad_segment_options_are_explained() -> None:
    with pytest.raises(MailoutError, match="a tag holds only"):
        mailouts.parse_segment(["tag==cmd"])
    with pytest.raises(MailoutError, match="unknown key 'city'"):
        mailouts.parse_segment(["city=Basra"])
    with pytest.raises(MailoutError, match="unknown governorate 'Atlantis'"):
        mailouts.parse_segment(["governorate=Atlantis"])
    with pytest.raises(MailoutError, match="ambiguous"):
        mailouts.parse_fallbacks(["ku=en"])


def test_missing_translation_refuses_launch_unless_a_fallback_is_chosen(
    runtime: Runtime, loaded: dict[str, str], tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "campaign"
    shutil.copytree(SEED, folder)
    (folder / "alert.kmr.md").unlink()
    campaigns.load_campaign(runtime.db, folder)
    with pytest.raises(MailoutError, match=r"no complete alert in kmr.*--fallback kmr=en"):
        launch(runtime)
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
    result = launch(runtime, fallback=["kmr=en"])
    assert result.content_locales["kmr"] == "en"
    kurmanji = [
        e
        for e in read_outbox(runtime.settings.outbox_dir)
        if "Rojda" in str(e["To"]) or "Azad" in str(e["To"])
    ]
    assert kurmanji
    assert all(e["Content-Language"] == "en" for e in kurmanji)


def test_a_batch_delivered_twice_sends_once(runtime: Runtime, loaded: dict[str, str]) -> None:
    sent: list[list[int]] = []
    runtime.__dict__["backend"] = type(
        "Recorder", (), {"enqueue_send_batch": lambda self, ids, queue="bulk": sent.append(list(ids))}
    )()
    launch(runtime)
    ids = [i for batch in sent for i in batch]
    assert len(ids) == 40
    first = runtime.send_batch(ids)
    again = runtime.send_batch(ids)  # a redelivered task
    assert (first.claimed, first.outcomes) == (40, {"sent": 40})
    assert (again.claimed, again.outcomes) == (0, {})
    assert len(list(runtime.settings.outbox_dir.glob("*.eml"))) == 40


def test_suppression_is_checked_at_send_time(runtime: Runtime, loaded: dict[str, str]) -> None:
    sent: list[list[int]] = []
    runtime.__dict__["backend"] = type(
        "Recorder", (), {"enqueue_send_batch": lambda self, ids, queue="bulk": sent.append(list(ids))}
    )()
    result = launch(runtime)
    with runtime.db.session() as session:  # unsubscribed after launch, before the batch ran
        session.add(
            Suppression(
                email_index=runtime.vault.address_index("supporter00000@example.org"),
                scope="supporter",
                reason="unsubscribe",
            )
        )
    for batch in sent:
        runtime.send_batch(batch)
    status = mailouts.mailout_status(runtime.db, result.mailout_id)
    assert (status.counts["sent"], status.counts["suppressed"], status.status) == (39, 1, "finished")
    addresses = {e["To"].addresses[0].addr_spec for e in read_outbox(runtime.settings.outbox_dir)}
    assert "supporter00000@example.org" not in addresses


def test_idempotency_key_is_unique(runtime: Runtime, loaded: dict[str, str]) -> None:
    from sqlalchemy.exc import IntegrityError

    launch(runtime)
    with runtime.db.session() as session:
        existing = session.scalars(select(Message)).first()
        assert existing is not None
        key = existing.idempotency_key
    duplicate = Message(idempotency_key=key, kind="alert", locale="en", content_locale="en")
    with pytest.raises(IntegrityError), runtime.db.session() as session:
        session.add(duplicate)
