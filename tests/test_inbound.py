"""Mail that comes back: replies from officials, bounce reports, automatic answers and emailed unsubscribes,
read from real messages (a Postfix DSN, a Gmail vacation reply, an Outlook reply in Arabic, Gmail's
unsubscribe), stored once and acted on once."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import undefer

from mailer import answers, campaigns, inbound, letters
from mailer.mailouts import launch_mailout
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import Database
from mailer.store.models import InboundMessage, LetterAnswer, Message, Supporter, Target
from mailer.supporters import import_supporters
from mailer.targets import import_targets
from mailer.tokens import AddressTags, InvalidToken
from tests.factories import prefilled_letter, supporters_csv
from tests.inbound_helpers import (
    INBOUND,
    MORNING,
    SLUG,
    inbound_rows,
    inbound_runtime,
    link_in,
    outbox,
    sample,
    suppressions,
    write_and_confirm,
)


@pytest.fixture
def rt(env: dict[str, str], tmp_path: Path, db: Database) -> Runtime:
    return inbound_runtime(env, tmp_path, db)


# Replies to letters


def test_an_officials_reply_reaches_the_writer_in_their_language_and_never_their_address(rt: Runtime) -> None:
    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith("reply+r")
    assert reply_to.endswith("@in.example.org")
    assert "shilan@example.org" not in letter.as_string()  # the writer chose not to share it

    raw = sample("outlook-reply-ar.eml", to=reply_to, message_id=letter["Message-ID"])
    assert rt.receive_inbound(raw, "pipe") is not None
    processed = rt.process_inbound()
    assert processed.kinds == {"reply": 1}
    assert processed.notices == 1
    (row,) = inbound_rows(rt.db)
    assert row.kind == "reply"
    assert row.letter_id is not None
    assert row.target_id is not None

    letters.dispatch_letters(rt.db, rt.backend, rt.clock)
    (notice,) = outbox(rt, "reply_notice")
    assert notice["To"].addresses[0].addr_spec == "shilan@example.org"
    assert notice["Content-Language"] == "ckb"
    with rt.db.session() as session:
        official = session.get(Target, row.target_id)
        assert official is not None
        assert official.title["ckb"] in notice["Subject"]  # named in the writer's language
    assert "تسلمنا" not in notice.as_string()  # the answer itself is read behind the link, not mailed

    client = rt_app(rt).test_client()
    page = client.get("/replies/" + link_in(notice, "/replies/"))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'lang="ckb"' in html
    assert 'dir="rtl"' in html
    answer, quoted = html.split("<details", 1)
    assert "تسلمنا رسالتكم" in answer  # the official's words
    assert "نطالبكم بإسقاط" in quoted
    assert "نطالبكم بإسقاط" not in answer
    assert page.headers["Cache-Control"] == "no-store"


def rt_app(rt: Runtime):  # type: ignore[no-untyped-def]
    from mailer.web import create_app

    return create_app(rt)


def test_an_answer_that_quotes_a_delivery_failure_is_still_an_answer(rt: Runtime) -> None:
    """Bounce detectors guess from words; only what looks like a bounce (a report, the mail daemon, an
    empty return path, our bounce tag) is given to them."""
    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    answer = (
        f"From: Office <office@example.net>\r\nTo: {reply_to}\r\nSubject: Re: your letter\r\n"
        "Message-ID: <quoting-a-bounce@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Thank you. Our earlier answer did not reach you:\r\n\r\n"
        "----- The following addresses had permanent fatal errors -----\r\n<shilan@example.org>\r\n"
    ).encode()
    rt.receive_inbound(answer, "pipe")
    assert rt.process_inbound().kinds == {"reply": 1}
    assert suppressions(rt.db) == []


def test_a_read_receipt_is_never_taken_for_an_answer(rt: Runtime) -> None:
    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    receipt = (
        f"From: Office <office@example.net>\r\nTo: {reply_to}\r\nSubject: Read: your letter\r\n"
        "Message-ID: <mdn@example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n"
        "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Final-Recipient: rfc822; office@example.net\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n"
        "--b--\r\n"
    ).encode()
    rt.receive_inbound(receipt, "pipe")
    assert rt.process_inbound().kinds == {"auto_reply": 1}


def test_a_vacation_reply_is_never_taken_for_an_answer(rt: Runtime) -> None:
    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    rt.receive_inbound(sample("gmail-vacation.eml", to=reply_to, message_id=letter["Message-ID"]), "pipe")
    assert rt.process_inbound().kinds == {"auto_reply": 1}
    letters.dispatch_letters(rt.db, rt.backend, rt.clock)
    assert outbox(rt, "reply_notice") == []
    responses = answers.official_responses(rt.db, SLUG)
    official = next(r for r in responses.values() if r.auto_replies)
    assert official.replies == 0
    assert official.answered == 0


def test_notices_are_capped_per_letter_however_often_an_official_writes(rt: Runtime) -> None:
    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    raw = sample("outlook-reply-ar.eml", to=reply_to, message_id=letter["Message-ID"])
    for n in range(inbound.MAX_NOTICES_PER_LETTER + 3):
        rt.receive_inbound(raw.replace(b"A5B6C7D8E9F0@", f"A5B6C7D8E9F{n}@".encode()), "pipe")
    processed = rt.process_inbound()
    assert processed.kinds == {"reply": inbound.MAX_NOTICES_PER_LETTER + 3}  # every reply is kept
    assert processed.notices == inbound.MAX_NOTICES_PER_LETTER
    letters.dispatch_letters(rt.db, rt.backend, rt.clock)
    assert len(outbox(rt, "reply_notice")) == inbound.MAX_NOTICES_PER_LETTER


def test_a_reply_to_a_forged_tag_reaches_nobody(rt: Runtime) -> None:
    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    local, domain = reply_to.split("@")
    forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    rt.receive_inbound(sample("outlook-reply-ar.eml", to=forged, message_id=letter["Message-ID"]), "pipe")
    assert rt.process_inbound().kinds == {"forged": 1}
    letters.dispatch_letters(rt.db, rt.backend, rt.clock)
    assert outbox(rt, "reply_notice") == []


def test_a_writer_who_shared_their_address_gets_replies_directly(rt: Runtime) -> None:
    letter = write_and_confirm(rt, share="name_email")
    assert letter["Reply-To"].addresses[0].addr_spec == "shilan@example.org"


def test_without_an_inbound_address_no_tag_is_sent(runtime: Runtime) -> None:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    runtime.clock = lambda: MORNING
    letter = write_and_confirm(runtime)
    assert letter["Reply-To"] is None


# Bounces, unsubscribes and the store


@pytest.fixture
def alerts(rt: Runtime, tmp_path: Path) -> list[EmailMessage]:
    supporters_csv(tmp_path / "people.csv", 4)
    import_supporters(rt.db, tmp_path / "people.csv")
    launch_mailout(rt.db, rt.backend, SLUG, {}, {}, batch_size=10)
    return outbox(rt, "alert")


def test_a_hard_bounce_to_the_signed_return_path_suppresses_and_a_delayed_one_only_counts(
    rt: Runtime, alerts: list[EmailMessage]
) -> None:
    tags = rt.tags
    assert tags is not None
    with rt.db.session() as session:
        rows = list(session.scalars(select(Message).where(Message.kind == "alert").order_by(Message.id)))
        first, second = ((m.id, m.kind, m.idempotency_key) for m in rows[:2])
    recipients = [m["To"].addresses[0].addr_spec for m in alerts]

    def message_id(row: tuple[int, str, str]) -> str:
        return next(m["Message-ID"] for m in alerts if f".{row[0]}." in m["Message-ID"])

    def recipient(row: tuple[int, str, str]) -> str:
        return next(m["To"].addresses[0].addr_spec for m in alerts if f".{row[0]}." in m["Message-ID"])

    hard = sample(
        "postfix-dsn-hard.eml",
        to=tags.address("b", first[0]),
        recipient=recipient(first),
        message_id=message_id(first),
    )
    soft = sample(
        "postfix-dsn-delayed.eml",
        to=tags.address("b", second[0]),
        recipient=recipient(second),
        message_id=message_id(second),
    )
    rt.receive_inbound(hard, "pipe")
    rt.receive_inbound(soft, "pipe")
    processed = rt.process_inbound()
    assert processed.kinds == {"bounce": 2}
    assert processed.suppressions == 1
    assert suppressions(rt.db) == [("supporter", "hard_bounce")]
    with rt.db.session() as session:
        assert session.get(Message, first[0]).delivery == "bounced"  # type: ignore[union-attr]
        assert session.get(Message, second[0]).delivery == "deferred"  # type: ignore[union-attr]
    assert len(recipients) == 4


def test_a_bounce_report_made_up_by_a_stranger_suppresses_nobody(
    rt: Runtime, alerts: list[EmailMessage]
) -> None:
    # Sent to the plain address (no signed tag), naming a message of ours but another address.
    target = alerts[0]
    made_up = sample(
        "postfix-dsn-hard.eml",
        to=INBOUND,
        recipient="someone-else@example.net",
        message_id=target["Message-ID"],
    )
    rt.receive_inbound(made_up, "pipe")
    assert rt.process_inbound().kinds == {"bounce": 1}
    assert suppressions(rt.db) == []


def test_a_bounce_quoting_our_message_to_the_address_that_failed_is_believed(
    rt: Runtime, alerts: list[EmailMessage]
) -> None:
    target = alerts[0]
    genuine = sample(
        "postfix-dsn-hard.eml",
        to=INBOUND,
        recipient=target["To"].addresses[0].addr_spec,
        message_id=target["Message-ID"],
    )
    rt.receive_inbound(genuine, "pipe")
    rt.process_inbound()
    assert suppressions(rt.db) == [("supporter", "hard_bounce")]


def test_an_emailed_unsubscribe_with_our_tag_suppresses_and_a_forged_one_does_nothing(
    rt: Runtime, alerts: list[EmailMessage]
) -> None:
    first, second = alerts[0], alerts[1]
    header = first["List-Unsubscribe"]
    mailto = header.split("<mailto:", 1)[1].split("?", 1)[0]
    assert mailto.startswith("reply+u")
    local, domain = mailto.split("@")
    forged = f"{local[:-2]}zz@{domain}"
    rt.receive_inbound(
        sample("mailto-unsubscribe.eml", to=forged, recipient=second["To"].addresses[0].addr_spec), "pipe"
    )
    assert rt.process_inbound().kinds == {"forged": 1}
    assert suppressions(rt.db) == []

    rt.receive_inbound(
        sample("mailto-unsubscribe.eml", to=mailto, recipient=first["To"].addresses[0].addr_spec).replace(
            b"unsub=QpR7", b"unsub=QpR8"
        ),
        "pipe",
    )
    assert rt.process_inbound().kinds == {"unsubscribe": 1}
    assert suppressions(rt.db) == [("supporter", "unsubscribe")]
    with rt.db.session() as session:
        subscribed = session.scalars(select(Supporter.subscribed).order_by(Supporter.id)).all()
    assert subscribed.count(False) == 1


def test_the_same_message_through_two_doors_is_stored_and_acted_on_once(
    rt: Runtime, alerts: list[EmailMessage]
) -> None:
    mailto = alerts[0]["List-Unsubscribe"].split("<mailto:", 1)[1].split("?", 1)[0]
    raw = sample("mailto-unsubscribe.eml", to=mailto, recipient="x@example.org")
    assert rt.receive_inbound(b"From MAILER-DAEMON Wed Dec  2 11:02:46 2026\n" + raw, "pipe") is not None
    # The copy a mailbox holds carries the headers its servers added on the way, and a gateway marked its
    # subject: the same Message-ID is the same message.
    copy = b"Delivered-To: " + mailto.encode() + b"\r\n" + raw.replace(b"Subject: ", b"Subject: [External] ")
    assert rt.receive_inbound(copy, "imap") is None
    assert rt.receive_inbound(raw, "sendgrid") is None
    rt.process_inbound()
    rt.process_inbound()
    assert len(inbound_rows(rt.db)) == 1
    assert suppressions(rt.db) == [("supporter", "unsubscribe")]


def test_the_message_is_stored_encrypted(rt: Runtime, alerts: list[EmailMessage]) -> None:
    mailto = alerts[0]["List-Unsubscribe"].split("<mailto:", 1)[1].split("?", 1)[0]
    rt.receive_inbound(sample("mailto-unsubscribe.eml", to=mailto, recipient="shown@example.org"), "pipe")
    with rt.db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT raw FROM inbound_message").scalar_one()
    assert "shown@example.org" not in stored
    assert "Gmail" not in stored


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),
        (b"%PDF-1.7 not a message", "header"),
        (b"Subject: x\r\n\r\n" + b"x" * 70_000, "bytes"),
    ],
)
def test_what_is_not_a_message_is_refused_with_a_reason(rt: Runtime, raw: bytes, reason: str) -> None:
    with pytest.raises(inbound.InboundRejected) as refused:
        inbound.receive(rt.db, raw, "pipe", MORNING, max_bytes=65_536)
    assert reason in str(refused.value)
    assert inbound_rows(rt.db) == []


def test_a_message_that_breaks_the_reader_is_set_aside_and_the_next_is_read(
    rt: Runtime, alerts: list[EmailMessage], monkeypatch: pytest.MonkeyPatch
) -> None:
    mailto = alerts[0]["List-Unsubscribe"].split("<mailto:", 1)[1].split("?", 1)[0]
    rt.receive_inbound(b"Subject: poison\r\nMessage-ID: <poison@example.net>\r\n\r\nboom", "pipe")
    rt.receive_inbound(sample("mailto-unsubscribe.eml", to=mailto, recipient="x@example.org"), "pipe")
    real = inbound.read_message

    def fragile(message, tags, envelope_to=()):  # type: ignore[no-untyped-def]
        if message["Subject"] == "poison":
            raise RuntimeError("a reader bug")
        return real(message, tags, envelope_to)

    monkeypatch.setattr(inbound, "read_message", fragile)
    assert rt.process_inbound().kinds == {"unreadable": 1, "unsubscribe": 1}
    assert rt.process_inbound().total == 0  # never tried again and again


def test_address_tags_survive_case_changes_and_refuse_tampering() -> None:
    tags = AddressTags(("k" * 32,), INBOUND)
    address = tags.address("r", 987654)
    assert tags.read(address.upper()) is not None
    assert tags.read("reply@in.example.org") is None
    assert tags.read("other+r1-x@in.example.org") is None
    rotated = AddressTags(("n" * 32, "k" * 32), INBOUND)
    assert rotated.read(address) == tags.read(address)
    for bad in (address.replace("+r", "+u"), address[:-20] + "@in.example.org", "reply+r-@in.example.org"):
        with pytest.raises(InvalidToken, match=r"signature|not a tag"):
            tags.read(bad)


# The follow-up


def test_the_follow_up_goes_once_per_letter_after_two_weeks_and_answers_count_once(rt: Runtime) -> None:
    write_and_confirm(rt)
    rt.sweep()
    assert outbox(rt, "follow_up") == []  # not yet: the clock has not moved
    later = MORNING + dt.timedelta(days=14, hours=1)
    rt.clock = lambda: later
    rt.sweep()
    rt.sweep()
    (follow_up,) = outbox(rt, "follow_up")
    assert follow_up["Content-Language"] == "ckb"
    token = link_in(follow_up, "/answers/").split("?", 1)[0]
    client = rt_app(rt).test_client()
    page = client.get(f"/answers/{token}")
    assert page.status_code == 200
    with rt.db.session() as session:
        slugs = [
            t.slug
            for t in session.scalars(
                select(Target).join(Message, Message.target_id == Target.id).where(Message.kind == "letter")
            )
        ]
    first = slugs[0]
    for answer in ("not_yet", "yes", "yes"):  # answered again: replaced, never counted twice
        csrf = page.get_data(as_text=True).split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        saved = client.post(f"/answers/{token}", data={"csrf_token": csrf, f"answer-{first}": answer})
        assert saved.status_code == 200
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(LetterAnswer)) == 1
    official = answers.official_responses(rt.db, SLUG)[first]
    assert (official.letters, official.yes, official.answered, official.rate) == (1, 1, 1, 1.0)


def test_no_follow_up_for_an_erased_or_unsubscribed_writer(rt: Runtime) -> None:
    from mailer import events, privacy

    write_and_confirm(rt)
    second = letters.start_letter(
        rt.db, rt.backend, prefilled_letter(rt, "ar", email="erased@example.org"), clock=rt.clock
    )
    letters.confirm_letter_id(rt.db, rt.backend, second.letter_id, clock=rt.clock)
    with rt.db.session() as session:
        writers = dict(session.execute(select(Supporter.email_index, Supporter.id)).all())
    events.add_suppression(rt.db, "shilan@example.org", "supporter", "unsubscribe")
    privacy.erase_supporter(rt.db, writers[rt.db.vault.address_index("erased@example.org")], rt.clock())
    rt.clock = lambda: MORNING + dt.timedelta(days=15)
    rt.sweep()
    assert outbox(rt, "follow_up") == []


# Privacy: retention, erasure, export


def test_retention_deletes_what_arrived_and_later_the_answers_but_keeps_the_counts(rt: Runtime) -> None:
    from mailer import privacy

    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    rt.receive_inbound(sample("outlook-reply-ar.eml", to=reply_to, message_id=letter["Message-ID"]), "pipe")
    rt.process_inbound()
    waiting = rt.receive_inbound(
        b"Subject: late\r\nMessage-ID: <late@example.net>\r\n\r\nnot read yet", "pipe"
    )
    retention = rt.retention
    month = MORNING + retention.inbound_raw + dt.timedelta(days=1)
    report = privacy.purge(rt.db, retention, month)
    assert (report.inbound_deleted, report.replies_deleted) == (1, 0)
    # The message as it arrived is gone, the answer is kept; a message not read yet waits to be read.
    assert _raw_rows(rt.db) == [("reply", False, True), (None, True, False)]
    assert waiting is not None
    year = MORNING + retention.replies + dt.timedelta(days=1)
    assert privacy.purge(rt.db, retention, year, dry_run=True).replies_deleted == 1
    assert privacy.purge(rt.db, retention, year).replies_deleted == 1
    assert _raw_rows(rt.db)[0] == ("reply", False, False)
    official = next(r for r in answers.official_responses(rt.db, SLUG).values() if r.replies)
    assert (official.replies, official.answered) == (1, 1)  # counts survive


def _raw_rows(db: Database) -> list[tuple[str | None, bool, bool]]:
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT kind, raw, private FROM inbound_message ORDER BY id").all()
    return [(kind, raw is not None, private is not None) for kind, raw, private in rows]


def test_erasure_leaves_nothing_of_what_came_back_and_export_shows_it_before(rt: Runtime) -> None:
    from mailer import privacy

    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    rt.receive_inbound(sample("outlook-reply-ar.eml", to=reply_to, message_id=letter["Message-ID"]), "pipe")
    rt.process_inbound()
    exported = privacy.export_person(rt.db, "shilan@example.org")
    (reply,) = exported["replies"]
    assert reply["kind"] == "reply"
    assert "تسلمنا" in reply["answer"]["answer"]
    privacy.erase_person(rt.db, "shilan@example.org", MORNING)
    assert _raw_rows(rt.db) == [("reply", False, False)]
    letters.dispatch_letters(rt.db, rt.backend, rt.clock)
    assert outbox(rt, "reply_notice") == []  # the notice queued before the erasure never goes


def test_rekeying_moves_what_came_back_to_the_new_key(
    env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    from mailer import privacy
    from mailer.vault import Vault

    rt = inbound_runtime(env, tmp_path, db)
    rt.receive_inbound(b"Subject: hi\r\nMessage-ID: <k@example.net>\r\n\r\nhello", "pipe")
    new_key = db.vault.rotated_key()
    newer = Database(rt.settings.database_url, Vault.parse(f"{new_key},{rt.settings.data_key}"))
    try:
        result = privacy.rekey(newer)
        assert result.values >= 1
        assert result.retired_keys == [db.vault.current.kid]  # nothing is left under it
    finally:
        newer.dispose()
    only = Database(rt.settings.database_url, Vault.parse(new_key))
    try:
        with only.session() as session:
            (row,) = session.scalars(select(InboundMessage).options(undefer(InboundMessage.raw))).all()
            assert row.raw is not None
            assert b"hello" in row.raw
    finally:
        only.dispose()


# The command line


def test_a_mail_server_pipes_messages_in_and_the_report_shows_who_answers(
    rt: Runtime, env: dict[str, str], tmp_path: Path
) -> None:
    import json
    import subprocess

    from tests.test_cli import mailer as run

    def mailer(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        variables = env | {"MAILER_INBOUND_ADDRESS": INBOUND}
        return run(args, variables, tmp_path, None if stdin is None else stdin.decode("ascii"))

    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    raw = sample("outlook-reply-ar.eml", to=reply_to, message_id=letter["Message-ID"])
    stored = mailer(["inbound", "receive"], raw)
    assert stored.returncode == 0, stored.stderr
    assert mailer(["inbound", "receive"], raw).returncode == 0  # delivered twice: kept once
    junk = mailer(["inbound", "receive"], b"%PDF-1.7")
    assert junk.returncode == 65  # EX_DATAERR: the mail server bounces it
    assert "header" in junk.stderr
    read = mailer(["inbound", "read", "--json"])
    assert json.loads(read.stdout)["kinds"] == {"reply": 1}
    report = json.loads(mailer(["campaign", "report", SLUG, "--json"]).stdout)
    answered = {slug: r for slug, r in report["responses"].items() if r["replies"]}
    assert [r["response_rate"] for r in answered.values()] == [1.0]
    total = report["responses_total"]
    assert (total["answered"], total["letters"]) == (
        1,
        sum(r["letters"] for r in report["responses"].values()),
    )
    (listed,) = json.loads(mailer(["inbound", "replies", SLUG, "--json"]).stdout)
    shown = json.loads(mailer(["inbound", "show", str(listed["id"]), "--json"]).stdout)
    assert shown["answer"].startswith("السيدة المحترمة")
    assert mailer(["inbound", "show", "999"]).returncode == 1


def test_a_process_without_the_key_reads_nothing_and_loses_nothing(
    rt: Runtime, alerts: list[EmailMessage]
) -> None:
    """A sweep run where only the write-only key is (a misconfigured beat) stops; the message waits."""
    from mailer.vault import LockedError, Vault

    mailto = alerts[0]["List-Unsubscribe"].split("<mailto:", 1)[1].split("?", 1)[0]
    rt.receive_inbound(sample("mailto-unsubscribe.eml", to=mailto, recipient="x@example.org"), "pipe")
    public = Database(rt.settings.database_url, Vault.parse(rt.db.vault.public_form()))
    try:
        with pytest.raises(LockedError):
            inbound.process_inbound(public, inbound.InboundContext(rt.tags, rt.signer), MORNING)
    finally:
        public.dispose()
    assert rt.process_inbound().kinds == {"unsubscribe": 1}


def test_two_sweeps_reading_at_once_act_on_each_message_once(rt: Runtime) -> None:
    import threading

    letter = write_and_confirm(rt)
    reply_to = letter["Reply-To"].addresses[0].addr_spec
    raw = sample("outlook-reply-ar.eml", to=reply_to, message_id=letter["Message-ID"])
    for n in range(4):
        rt.receive_inbound(raw.replace(b"A5B6C7D8E9F0@", f"A5B6C7D8E9F{n}@".encode()), "pipe")
    results: list[inbound.Processed] = []
    start = threading.Barrier(2)

    def sweep() -> None:
        start.wait()
        results.append(inbound.process_inbound(rt.db, inbound.InboundContext(rt.tags, rt.signer), MORNING))

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.total for r in results) == 4
    assert sum(r.notices for r in results) == 4
    with rt.db.session() as session:
        notices = session.scalar(select(func.count()).where(Message.kind == "reply_notice"))
    assert notices == 4
