"""Letters to officials: checks, double opt-in, one letter per official in the official's language, pacing."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest
import yaml
from sqlalchemy import select

from mailer import campaigns, letters
from mailer.errors import MailerError
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import repository as repo
from mailer.store.models import Letter, Supporter
from mailer.targets import import_targets
from tests.factories import letter_form, prefilled_letter

SLUG = "protect-hrds-iraq"
MORNING = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)  # 10:00 in Baghdad
NIGHT = dt.datetime(2026, 11, 27, 20, 0, tzinfo=dt.UTC)  # 23:00 in Baghdad


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    return runtime


def outbox(rt: Runtime, kind: str) -> list[EmailMessage]:
    return [
        cast(EmailMessage, message_from_bytes(p.read_bytes(), policy=policy.default))
        for p in sorted(rt.settings.outbox_dir.glob(f"{kind}-*.eml"))
    ]


def confirm_link(message: EmailMessage) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return next(word for word in text.split() if "/confirm/" in word).rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Shilan\r\nBcc: victim@example.org"),
        ("note", "x" * 100_000),
        ("note", "please \u202eevil\u202c"),
        ("name", "Shi\u200blan"),
        ("note", "<script>alert(1)</script>"),
        ("email", "not-an-address"),
        ("governorate", "Atlantis"),
        ("share", "everything"),
    ],
)
def test_hostile_input_is_refused_field_by_field(field: str, value: str) -> None:
    with pytest.raises(letters.FormError) as caught:
        letters.check_form(letter_form(subject="s", body="b", **{field: value}), SLUG, "ckb")
    assert list(caught.value.fields) == [field]


def test_kurdish_spelling_with_a_zero_width_non_joiner_is_fine() -> None:
    checked = letters.check_form(letter_form(subject="s", body="b", note="هەڵبەت\u200cکە"), SLUG, "ckb")
    assert "\u200c" in checked.note


def test_confirm_then_one_letter_per_official_in_their_language(rt: Runtime) -> None:
    letters.start_letter(rt.db, rt.backend, prefilled_letter(rt, "ckb"), clock=lambda: MORNING)
    assert outbox(rt, "letter") == []  # nothing reaches an official before the link is followed
    (confirmation,) = outbox(rt, "confirm")
    assert confirmation["Content-Language"] == "ckb"
    assert confirmation["To"].addresses[0].addr_spec == "shilan@example.org"
    html = confirmation.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'dir="rtl"' in html
    assert "مجلس القضاء الأعلى" not in html  # the officials are named in the supporter's language
    assert "ئەنجومەنی باڵای دادوەری" in html
    raw = confirmation.as_string()
    # Nothing the form's writer typed reaches an address that has not confirmed: not the name, not the note.
    assert "شیلان" not in raw
    assert "تکایە ئەم دۆسیەیە" not in html

    result = letters.confirm_letter(
        rt.db, rt.backend, rt.signer, confirm_link(confirmation), clock=lambda: MORNING
    )
    assert (result.first_time, result.targets) == (True, 6)
    sent = {m["To"].addresses[0].addr_spec: m for m in outbox(rt, "letter")}
    assert len(sent) == 6
    assert sent["president-office@sjc.example.org"]["Content-Language"] == "ar"
    un = next(m for a, m in sent.items() if "un" in a or "ohchr" in a or m["Content-Language"] == "en")
    assert un["Content-Language"] == "en"
    arabic = sent["president-office@sjc.example.org"].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "رئيس مجلس القضاء الأعلى" in arabic  # salutation with the official's title, in Arabic
    assert "تکایە ئەم دۆسیەیە دابخەن." in arabic  # the note, verbatim
    letter = sent["president-office@sjc.example.org"]
    assert letter["From"].addresses[0].addr_spec == "alerts@example.org"  # never the supporter's own address
    assert "شیلان ئەحمەد" in str(letter["From"])
    assert letter["Reply-To"].addresses[0].addr_spec == "shilan@example.org"
    (copy,) = outbox(rt, "copy")
    assert copy["Content-Language"] == "ckb"
    copy_text = copy.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "٦" in copy_text  # six officials, in the digits Sorani readers use

    again = letters.confirm_letter(
        rt.db, rt.backend, rt.signer, confirm_link(confirmation), clock=lambda: MORNING
    )
    assert again.first_time is False
    assert len(outbox(rt, "letter")) == 6
    assert letters.letters_sent(rt.db, SLUG) == 6


def test_initials_only_keeps_the_name_out_of_every_letter(rt: Runtime) -> None:
    started = letters.start_letter(
        rt.db,
        rt.backend,
        prefilled_letter(
            rt, "kmr", name="Rojda Şêxo", email="rojda@example.com", governorate="Duhok", share="initials"
        ),
        clock=lambda: MORNING,
    )
    letters.confirm_letter_id(rt.db, rt.backend, started.letter_id, clock=lambda: MORNING)
    sent = outbox(rt, "letter")
    assert len(sent) == 4 + 3  # fixed officials, and Duhok's
    for message in sent:
        raw = message.as_string()
        assert "Rojda" not in raw
        assert "rojda@example.com" not in raw
        assert message["Reply-To"] is None
    duhok = next(m for m in sent if "duhok-gov" in str(m["To"]))
    assert "R. Ş." in duhok.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_edits_go_to_officials_who_read_the_supporters_language(rt: Runtime) -> None:
    edited = prefilled_letter(
        rt, "ar", name="علي كريم", email="ali@example.net", body="نص كتبته بنفسي.\n\nفقرة ثانية."
    )
    started = letters.start_letter(rt.db, rt.backend, edited, clock=lambda: MORNING)
    letters.confirm_letter_id(rt.db, rt.backend, started.letter_id, clock=lambda: MORNING)
    seen = {"ar": 0, "other": 0}
    for message in outbox(rt, "letter"):
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        arabic = message["Content-Language"] == "ar"
        assert ("نص كتبته بنفسي." in text) == arabic
        seen["ar" if arabic else "other"] += 1
    assert seen["ar"] >= 1
    assert seen["other"] >= 1


def test_a_forwarded_alert_link_never_skips_the_confirmation(rt: Runtime) -> None:
    """The alert's link carries no token: whoever holds a forwarded alert still needs the mailbox."""
    letters.start_letter(
        rt.db,
        rt.backend,
        prefilled_letter(rt, "en", name="Sarah Miller", email="sarah@example.org", governorate=""),
        clock=lambda: MORNING,
    )
    assert outbox(rt, "letter") == []
    assert len(outbox(rt, "confirm")) == 1
    with rt.db.session() as session:
        assert session.scalars(select(Letter.status)).all() == ["pending"]


def test_an_unconfirmed_form_changes_nothing_about_a_supporter(rt: Runtime) -> None:
    with rt.db.session() as session:
        repo.new_supporter(session, "zaid@example.net", "Zaid", "ar", None)
        repo.new_supporter(session, "huda@example.net", "Huda", "ar", None, subscribed=False)
        repo.add_suppression(
            session, rt.vault.address_index("huda@example.net"), "supporter", "unsubscribe", "test"
        )
    for email in ("zaid@example.net", "huda@example.net", "new@example.net"):
        letters.start_letter(
            rt.db,
            rt.backend,
            prefilled_letter(rt, "en", name="Mallory", email=email, governorate="", opt_in="1"),
            clock=lambda: MORNING,
        )
    with rt.db.session() as session:
        people = {s.email: (s.name, s.subscribed) for s in session.scalars(select(Supporter))}
    assert people == {
        "zaid@example.net": ("Zaid", True),
        "huda@example.net": ("Huda", False),
        "new@example.net": ("Mallory", False),  # opted in, not confirmed: not on the list
    }
    # The mailbox owners confirm: opt-in takes effect, but never over an unsubscribe.
    for message in outbox(rt, "confirm"):
        letters.confirm_letter(rt.db, rt.backend, rt.signer, confirm_link(message), clock=lambda: MORNING)
    with rt.db.session() as session:
        subscribed = {s.email: s.subscribed for s in session.scalars(select(Supporter))}
    assert subscribed == {"zaid@example.net": True, "huda@example.net": False, "new@example.net": True}


def load_with_pacing(rt: Runtime, tmp_path: Path, pacing: dict[str, object]) -> None:
    """The seed campaign with other pacing."""
    folder = tmp_path / "campaign"
    shutil.copytree(demo_dir() / "campaigns" / SLUG, folder)
    manifest = yaml.safe_load((folder / "campaign.yaml").read_text(encoding="utf-8"))
    manifest["pacing"] = pacing
    (folder / "campaign.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    campaigns.load_campaign(rt.db, folder)


def test_pacing_holds_letters_outside_hours(rt: Runtime, tmp_path: Path) -> None:
    load_with_pacing(rt, tmp_path, {"per_target_per_hour": 30, "hours": "08:00-20:00"})
    started = letters.start_letter(
        rt.db,
        rt.backend,
        prefilled_letter(rt, "ar", name="علي", email="a1@example.org"),
        clock=lambda: NIGHT,
    )
    letters.confirm_letter_id(rt.db, rt.backend, started.letter_id, clock=lambda: NIGHT)
    assert outbox(rt, "letter") == []  # 23:00 in Baghdad: the letters wait
    assert len(outbox(rt, "copy")) == 1
    letters.dispatch_letters(rt.db, rt.backend, clock=lambda: MORNING + dt.timedelta(days=1))
    assert len(outbox(rt, "letter")) == 6


def test_hourly_cap_per_official(rt: Runtime, tmp_path: Path) -> None:
    load_with_pacing(rt, tmp_path, {"per_target_per_hour": 2, "hours": "00:00-24:00"})
    for n in range(3):
        started = letters.start_letter(
            rt.db,
            rt.backend,
            prefilled_letter(rt, "en", name=f"Person {n}", email=f"p{n}@example.org", governorate=""),
            clock=lambda: MORNING,
        )
        letters.confirm_letter_id(rt.db, rt.backend, started.letter_id, clock=lambda: MORNING)
    per_official = {}
    for message in outbox(rt, "letter"):
        address = message["To"].addresses[0].addr_spec
        per_official[address] = per_official.get(address, 0) + 1
    assert set(per_official.values()) == {2}  # the third letter to each official waits for the next hour
    letters.dispatch_letters(rt.db, rt.backend, clock=lambda: MORNING + dt.timedelta(minutes=61))
    assert len(outbox(rt, "letter")) == 3 * 4


def test_an_old_confirmation_link_sends_nothing(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """U5: a link past its 48 hours is refused with a clear message, and nothing goes out."""
    started = letters.start_letter(
        rt.db, rt.backend, prefilled_letter(rt, "en", governorate=""), clock=lambda: MORNING
    )
    with rt.db.session() as session:
        key = repo.get_letter(session, started.letter_id).key or ""
    now = time.time()
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: now - 49 * 3600)  # signed two days ago
    old = letters.confirmation_token(rt.signer, started.letter_id, key)
    monkeypatch.undo()
    with pytest.raises(MailerError, match="not valid or has expired"):
        letters.confirm_letter(rt.db, rt.backend, rt.signer, old, clock=lambda: MORNING)
    assert letters.letter_preview(rt.db, rt.signer, old) is None
    fresh = letters.confirmation_token(rt.signer, started.letter_id, key)
    assert letters.confirm_letter(rt.db, rt.backend, rt.signer, fresh, clock=lambda: MORNING).first_time
    assert len(outbox(rt, "letter")) == 4


def test_a_campaign_open_at_any_hour_is_open_in_its_last_minute() -> None:
    pacing = letters.Pacing(30, dt.time(0, 0), None)  # "00:00-24:00"
    assert pacing.open_at(dt.datetime(2026, 11, 27, 20, 59, 30, tzinfo=dt.UTC))  # 23:59:30 in Baghdad
    office = letters.Pacing(30, dt.time(8, 0), dt.time(20, 0))
    assert not office.open_at(dt.datetime(2026, 11, 27, 17, 0, tzinfo=dt.UTC))  # 20:00 in Baghdad


def test_what_the_writer_confirms_is_what_is_sent_whatever_is_reloaded(rt: Runtime, tmp_path: Path) -> None:
    """The campaign's letter changes between the form and the confirmation: the officials get the text the
    writer was shown, not the new one."""
    started = letters.start_letter(rt.db, rt.backend, prefilled_letter(rt, "ckb"), clock=lambda: MORNING)
    folder = tmp_path / "campaign"
    shutil.copytree(demo_dir() / "campaigns" / SLUG, folder)
    arabic = folder / "letter.ar.md"
    arabic.write_text(arabic.read_text(encoding="utf-8").replace("أكتب", "نص جديد لم يره الكاتب", 1), "utf-8")
    campaigns.load_campaign(rt.db, folder)
    letters.confirm_letter_id(rt.db, rt.backend, started.letter_id, clock=lambda: MORNING)
    arabic_letters = [m for m in outbox(rt, "letter") if m["Content-Language"] == "ar"]
    assert arabic_letters
    for message in arabic_letters:
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "نص جديد لم يره الكاتب" not in text
        assert "أكتب" in text


def test_the_same_post_from_many_threads_at_once_makes_one_letter(rt: Runtime) -> None:
    """A double click reaching two server processes together: the database decides, one letter wins."""
    form = prefilled_letter(rt, "en")
    start = threading.Barrier(4)
    results: list[letters.Started] = []

    def post() -> None:
        start.wait()
        results.append(letters.start_letter(rt.db, rt.backend, form, clock=lambda: MORNING, submission="p1"))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len({r.letter_id for r in results}) == 1
    assert sorted(r.repeated for r in results) == [False, True, True, True]
    assert len(outbox(rt, "confirm")) == 1
