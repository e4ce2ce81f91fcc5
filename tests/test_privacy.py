"""Privacy at rest (FAULTS R4, R5): a copy of the database names nobody; erasure, export and retention."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url

from mailer import campaigns, events, letters, mailouts, privacy
from mailer.demo_setup import SEED_CAMPAIGN, demo_settings, prepare_demo
from mailer.errors import ConfigError
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store import Database, upgrade_database
from mailer.store import repository as repo
from mailer.store.models import Event, Letter, Message, Supporter, Suppression
from mailer.supporters import import_supporters
from mailer.targets import import_targets
from mailer.transports import BulkEmail, Delivery
from mailer.vault import LockedError, Vault, generate_key
from mailer.web import create_app
from tests.conftest import DATA_KEY
from tests.factories import RecordingBackend, supporters_csv
from tests.web.conftest import MORNING, csrf_of

SLUG = SEED_CAMPAIGN
PAGE = f"/en/{SLUG}"
# What a writer types: each must reach the officials and never lie in the database in clear.
WRITER = {
    "name": "Hêvîn Zozanî",
    "email": "hevin.zozani@example.net",
    "governorate": "Duhok",
    "share": "name_email",
    "subject": "Drop the lawsuits against the Basra defenders",
    "body": "Dear officials, I ask you to drop the lawsuits against the Basra defenders today.",
    "note": "My cousin Shirin was questioned twice in October.",
    "website": "",
}
IP = "203.0.113.77"
AGENT = "Mozilla/5.0 (X11; PrivacyProbe 9.1)"


def demo_people() -> list[dict[str, str]]:
    with (demo_dir() / "supporters.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def database_bytes(db: Database) -> bytes:
    """Everything the database holds, as a thief would copy it: the SQLite file and its WAL byte by
    byte, or a pg_dump (every row of every table, as text, when pg_dump is not installed)."""
    url = make_url(db.url)
    if url.get_backend_name() == "sqlite":
        db.dispose()
        path = Path(url.database or "")
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    dump = shutil.which("pg_dump")
    if dump:
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return subprocess.run([dump, "--no-owner", plain], check=True, capture_output=True).stdout
    blob = b""
    with db.engine.connect() as connection:
        tables = connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        for (name,) in tables.all():
            rows = connection.execute(text(f'SELECT t::text FROM "{name}" t'))  # noqa: S608
            blob += "\n".join(row[0] for row in rows).encode()
    return blob


def secrets_found(blob: bytes, secrets: list[str]) -> list[str]:
    lowered = blob.lower()
    return [s for s in secrets if s.lower().encode() in lowered]


@pytest.fixture
def demo(runtime: Runtime) -> Runtime:
    """`mailer demo`'s data, on this test's database, at a time within the campaign's sending hours."""
    runtime.clock = lambda: MORNING
    prepare_demo(runtime)
    return runtime


def write_letter(client: FlaskClient, runtime: Runtime, form: dict[str, str], code: str = "en") -> None:
    """A letter through the pages: the form, the link in the confirmation email, the button."""
    page = f"/{code}/{SLUG}"
    token = csrf_of(client.get(page).get_data(as_text=True))
    before = set(runtime.settings.outbox_dir.glob("confirm-*.eml"))
    assert client.post(page, data={"csrf_token": token, **form}).status_code == 200
    (confirmation,) = set(runtime.settings.outbox_dir.glob("confirm-*.eml")) - before
    link = re.search(
        r"https://act\.example\.org(/confirm/[\w.\-]+)", confirmation.read_text(errors="replace")
    )
    assert link
    shown = client.get(link.group(1))
    assert form["note"] in shown.get_data(as_text=True)  # the page reads the letter with the link's key
    answer = client.post(link.group(1), data={"csrf_token": csrf_of(shown.get_data(as_text=True))})
    assert answer.status_code == 200


def provider_events(runtime: Runtime, kinds: dict[int, str]) -> None:
    """SendGrid's events for these messages, with an IP, a user agent and the address, applied."""
    now = runtime.clock()
    with runtime.db.session() as session:
        addresses = {
            m.id: repo.get_supporters(session, [m.supporter_id or 0])[m.supporter_id or 0].email
            for m in repo.get_messages(session, list(kinds))
        }
    batch = [
        {
            "email": addresses[message_id],
            "event": kind,
            "timestamp": int(now.timestamp()),
            "sg_event_id": f"e{message_id}{kind}",
            "sg_message_id": f"sg{message_id}.filter",
            "mailer_message": str(message_id),
            "ip": IP,
            "useragent": AGENT,
            "reason": f"550 5.1.1 <{addresses[message_id]}>: no such user" if kind == "bounce" else None,
        }
        for message_id, kind in kinds.items()
    ]
    stored = events.store_events(runtime.db, batch, now)
    events.apply_events(runtime.db, stored, now)


def test_r5_a_copy_of_the_database_names_nobody(demo: Runtime) -> None:
    """The demo, a letter through the pages, a mailout with events, an unsubscribe: then the raw file."""
    client = create_app(demo).test_client()
    write_letter(client, demo, WRITER)
    launched = mailouts.launch_mailout(demo.db, demo.backend, SLUG, {}, {})
    people = demo_people()
    with demo.db.session() as session:
        ids = session.scalars(
            select(Message.id).where(Message.mailout_id == launched.mailout_id).order_by(Message.id)
        ).all()
    provider_events(demo, {ids[0]: "open", ids[1]: "click", ids[2]: "bounce", ids[3]: "delivered"})
    unsubscribe = re.search(
        r"https://act\.example\.org(/u/[\w.\-]+)",
        sorted(demo.settings.outbox_dir.glob("alert-*.eml"))[4].read_text(errors="replace"),
    )
    assert unsubscribe
    page = client.get(unsubscribe.group(1)).get_data(as_text=True)
    client.post(unsubscribe.group(1), data={"csrf_token": csrf_of(page)})

    secrets = [p["email"] for p in people] + [p["name"] for p in people]
    secrets += [WRITER[k] for k in ("name", "email", "body", "note")] + [IP, AGENT]
    # Not a vacuous test: every one of these went through the engine, and it can still read them.
    outbox = b"".join(p.read_bytes() for p in demo.settings.outbox_dir.glob("*.eml"))
    assert secrets_found(outbox, [p["email"] for p in people] + [WRITER["email"]]) != []
    assert privacy.find_supporter(demo.db, people[0]["email"].upper())["name"] == people[0]["name"]  # type: ignore[index]
    exported = privacy.export_person(demo.db, people[0]["email"])
    assert {e["details"].get("ip") for e in exported["events"]} == {IP}
    assert privacy.export_person(demo.db, WRITER["email"])["letters"][0]["words"]["note"] == WRITER["note"]
    assert len(events.list_suppressions(demo.db)) == 2  # the bounce and the unsubscribe

    assert secrets_found(database_bytes(demo.db), secrets) == []


def test_r4_erasure_during_an_inflight_mailout(runtime: Runtime, tmp_path: Path) -> None:
    """Erased while its batch is being sent: the person's message, claimed already, never leaves; the
    counts stay; a later import does not bring them back to the mailing list."""
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    people = supporters_csv(tmp_path / "people.csv", 6)
    import_supporters(runtime.db, tmp_path / "people.csv")
    erased = "supporter00005@example.org"
    recorder = RecordingBackend()
    runtime.__dict__["backend"] = recorder
    launched = mailouts.launch_mailout(runtime.db, recorder, SLUG, {}, {}, batch_size=10)
    batch = [i for queued in recorder.batches for i in queued]  # one claim, as a worker makes it
    outbox = runtime.transport
    answers: list[privacy.Erasure] = []

    class ErasingMidBatch:
        """The outbox, and the person's erasure request arriving as the batch's first email leaves."""

        name, chunk_size = outbox.name, outbox.chunk_size

        def send(self, email: BulkEmail) -> list[Delivery]:
            if not answers:
                answers.append(privacy.erase_person(runtime.db, erased.upper()))
            return outbox.send(email)

        def close(self) -> None:
            outbox.close()

    runtime.__dict__["transport"] = ErasingMidBatch()
    runtime.send_batch(batch)

    (erasure,) = answers
    assert (erasure.supporter_erased, erasure.messages_cancelled) == (True, 1)
    sent_to = b"".join(p.read_bytes() for p in runtime.settings.outbox_dir.glob("*.eml"))
    assert erased.encode() not in sent_to
    assert all(address.encode() in sent_to for address in people if address != erased)
    status = mailouts.mailout_status(runtime.db, launched.mailout_id)
    assert (status.counts["sent"], status.counts["cancelled"], status.total) == (5, 1, 6)  # counts kept
    assert privacy.find_supporter(runtime.db, erased) is None
    assert privacy.export_person(runtime.db, erased)["supporter"] is None
    with runtime.db.session() as session:
        (suppression,) = session.scalars(select(Suppression)).all()
        assert (suppression.reason, suppression.email) == ("erased", None)
    # The next import brings the address back as a record, never onto the list of the next mailout.
    again = import_supporters(runtime.db, tmp_path / "people.csv")
    assert again.suppressed == 1
    second = mailouts.launch_mailout(runtime.db, recorder, SLUG, {"locale": ["ckb"]}, {})
    assert second.new_messages == 1  # supporter00002 only: supporter00005 is not in it again
    with runtime.db.session() as session:
        recipients = session.scalars(
            select(Message.supporter_id).where(Message.mailout_id == second.mailout_id)
        )
        assert [repo.get_supporters(session, [i])[i].email for i in recipients] == [
            "supporter00002@example.org"
        ]


def test_erasure_answers_the_same_for_an_unknown_address(runtime: Runtime) -> None:
    assert privacy.erase_person(runtime.db, "never.seen@example.org") == privacy.Erasure()
    with runtime.db.session() as session:
        # ... and that address is not mailed by a later import either.
        assert repo.is_suppressed(session, runtime.vault.address_index("Never.Seen@example.org"), "supporter")


def letter_at(runtime: Runtime, when: dt.datetime, email: str, opt_in: str = "") -> int:
    form = letters.check_form(WRITER | {"email": email, "opt_in": opt_in}, SLUG, "en")
    return letters.start_letter(runtime.db, runtime.backend, form, clock=lambda: when).letter_id


def confirm(runtime: Runtime, letter_id: int, when: dt.datetime) -> None:
    letters.confirm_letter_id(runtime.db, runtime.backend, letter_id, clock=lambda: when)


def rows(runtime: Runtime, model: type) -> int:
    with runtime.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_retention_with_the_clock_moved_forward(runtime: Runtime) -> None:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    start = MORNING
    runtime.clock = lambda: start
    unconfirmed = letter_at(runtime, start, "never.confirms@example.net")
    kept_writer = letter_at(runtime, start, "keeps.news@example.net", opt_in="1")
    one_time = letter_at(runtime, start, "writes.once@example.net")
    confirm(runtime, kept_writer, start)
    confirm(runtime, one_time, start)
    sent_before = letters.letters_sent(runtime.db, SLUG)
    assert sent_before == 2 * 7
    with runtime.db.session() as session:
        message_id = session.scalars(select(Message.id).where(Message.kind == "copy")).first()
    provider_events(runtime, {message_id: "open"})  # type: ignore[dict-item]
    retention = runtime.retention

    def purge(after: dt.timedelta, dry_run: bool = False) -> privacy.PurgeReport:
        return privacy.purge(runtime.db, retention, start + after, dry_run=dry_run)

    # Within every period: nothing goes.
    assert purge(dt.timedelta(hours=71)) == privacy.PurgeReport()
    # The link expired 48 hours after the form, and the grace period (24 hours) is over.
    assert purge(dt.timedelta(hours=73), dry_run=True).unconfirmed_letters == 1
    assert rows(runtime, Letter) == 3  # a dry run changes nothing
    report = purge(dt.timedelta(hours=73))
    assert (report.unconfirmed_letters, report.writers_forgotten) == (1, 1)
    assert privacy.find_supporter(runtime.db, "never.confirms@example.net") is None
    with runtime.db.session() as session:
        assert session.get(Letter, unconfirmed) is None
        assert session.scalar(select(func.count()).where(Message.letter_id == unconfirmed)) == 0
    # Four weeks after sending, the words go; the letters still count; writers without news go too.
    report = purge(dt.timedelta(days=29))
    assert (report.letter_texts, report.writers_forgotten) == (2, 1)
    assert letters.letters_sent(runtime.db, SLUG) == sent_before
    with runtime.db.session() as session:
        for letter in session.scalars(select(Letter)):
            assert (letter.private, letter.key, letter.purged_at) == (
                None,
                None,
                start + dt.timedelta(days=29),
            )
            assert letters.letter_secrets(letter) is None
    assert privacy.find_supporter(runtime.db, "writes.once@example.net") is None
    assert privacy.find_supporter(runtime.db, "keeps.news@example.net") is not None  # asked for news
    assert privacy.export_person(runtime.db, "keeps.news@example.net")["letters"][0]["words"] is None
    # A month after they came, provider events keep what happened, not who, where from or with what.
    assert purge(dt.timedelta(days=31)).events_scrubbed == 1
    with runtime.db.session() as session:
        (event,) = session.scalars(select(Event)).all()
        assert event.payload == {
            "event": "open",
            "timestamp": int(start.timestamp()),
            "sg_event_id": f"e{message_id}open",
            "sg_message_id": f"sg{message_id}.filter",
            "mailer_message": str(message_id),
        }
    assert purge(dt.timedelta(days=400)) == privacy.PurgeReport()  # nothing twice


def test_the_sweep_enforces_retention(runtime: Runtime) -> None:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    letter_at(runtime, MORNING, "never.confirms@example.net")
    runtime.clock = lambda: MORNING + dt.timedelta(days=4)
    runtime.sweep()
    assert rows(runtime, Letter) == 0


def test_export_holds_everything_about_the_person_and_nothing_about_others(
    runtime: Runtime, tmp_path: Path
) -> None:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    supporters_csv(tmp_path / "people.csv", 4)
    import_supporters(runtime.db, tmp_path / "people.csv")
    letter = letter_at(runtime, MORNING, "supporter00001@example.org")
    confirm(runtime, letter, MORNING)
    mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {})
    document = privacy.export_person(runtime.db, "Supporter00001@Example.org")
    assert document["supporter"]["email"] == "supporter00001@example.org"
    assert document["letters"][0]["words"]["body"] == WRITER["body"]
    kinds = sorted(m["kind"] for m in document["messages"])
    assert kinds == ["alert", "confirm", "copy"] + ["letter"] * 7
    others = str(document)
    assert "supporter00000" not in others
    assert "supporter00002" not in others
    assert privacy.export_person(runtime.db, "nobody@example.org")["supporter"] is None


def test_the_action_pages_write_with_the_public_key_and_read_nothing(runtime: Runtime) -> None:
    """The most exposed process holds only the public key: letters, confirmation, unsubscribe and
    erasure all work there, and reading anything stored fails; the workers read what it wrote."""
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    public = dataclasses.replace(runtime.settings, data_key=runtime.vault.public_form())
    web = Runtime(public)
    web.clock = lambda: MORNING
    recorder = RecordingBackend()
    web.__dict__["backend"] = recorder
    client = create_app(web).test_client()
    token = csrf_of(client.get(PAGE).get_data(as_text=True))
    assert client.post(PAGE, data={"csrf_token": token, **WRITER}).status_code == 200
    with web.db.session() as session, pytest.raises(LockedError):
        session.scalars(select(Supporter)).all()
    # The worker (the full key) sends the confirmation; the page shows the letter from the link alone.
    for batch in recorder.batches:
        runtime.send_batch(batch)
    (confirmation,) = runtime.settings.outbox_dir.glob("confirm-*.eml")
    link = re.search(
        r"https://act\.example\.org(/confirm/[\w.\-]+)", confirmation.read_text(errors="replace")
    )
    assert link
    shown = client.get(link.group(1)).get_data(as_text=True)
    assert WRITER["note"] in shown
    assert WRITER["email"] in shown
    sent_before = len(recorder.batches)
    client.post(link.group(1), data={"csrf_token": csrf_of(shown)})
    for batch in recorder.batches[sent_before:]:  # queued by the page, sent by the worker
        runtime.send_batch(batch)
    sent = [p.read_text(errors="replace") for p in runtime.settings.outbox_dir.glob("letter-*.eml")]
    assert len(sent) == 7
    # The webhook stores and applies a bounce with the public key alone: applying never reads a payload.
    with runtime.db.session() as session:
        copy_id = session.scalars(select(Message.id).where(Message.kind == "copy")).one()
    bounce = {"event": "bounce", "type": "bounce", "email": WRITER["email"], "mailer_message": str(copy_id)}
    stored = events.store_events(web.db, [bounce | {"timestamp": int(MORNING.timestamp())}], MORNING)
    assert events.apply_events(web.db, stored, MORNING).suppressions == 1
    assert (
        privacy.export_person(runtime.db, WRITER["email"])["events"][0]["details"]["email"] == WRITER["email"]
    )
    # A forged key in a genuine-looking link shows nothing.
    forged = letters.confirmation_token(runtime.signer, 1, generate_key().split(".")[2])
    assert client.get(f"/confirm/{forged}").status_code == 400
    # Unsubscribe and erase, from the page, where the key cannot read.
    supporter_id = privacy.find_supporter(runtime.db, WRITER["email"])["id"]  # type: ignore[index]
    with runtime.db.session() as session:  # a provider's error, encrypted, on the message the link names
        session.execute(update(Message).where(Message.id == copy_id).values(error="421 try later"))
    unsubscribe = runtime.signer.sign("unsubscribe", {"s": supporter_id, "m": copy_id})
    page = client.get(f"/u/{unsubscribe}").get_data(as_text=True)
    assert "erase" in page
    done = client.post(f"/u/{unsubscribe}", data={"csrf_token": csrf_of(page), "erase": "1"})
    assert "erased" in done.get_data(as_text=True)
    assert privacy.find_supporter(runtime.db, WRITER["email"]) is None
    assert letters.letters_sent(runtime.db, SLUG) == 7
    web.close()


def test_a_wrong_key_or_a_missing_old_key_is_refused_at_start(runtime: Runtime, tmp_path: Path) -> None:
    supporters_csv(tmp_path / "people.csv", 2)
    import_supporters(runtime.db, tmp_path / "people.csv")
    runtime.db.check_current()  # the right key
    stranger = Database(runtime.db.url, Vault.parse(generate_key()))
    with pytest.raises(ConfigError, match="another installation"):
        stranger.check_current()
    stranger.dispose()
    beat = Runtime(dataclasses.replace(runtime.settings, data_key=generate_key()))  # the beat checks too
    with pytest.raises(ConfigError, match="another installation"):
        beat.sweep()
    beat.close()
    new_only = Vault.parse(runtime.vault.rotated_key())
    with pytest.raises(ConfigError, match=runtime.vault.current.kid):
        Database(runtime.db.url, new_only).check_current()
    # The action pages, given the new key's public form during a rotation, start: they read nothing.
    Database(runtime.db.url, Vault.parse(new_only.public_form())).check_current()


def test_rotation_then_rekey_retires_the_old_key(runtime: Runtime, tmp_path: Path) -> None:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    supporters_csv(tmp_path / "people.csv", 3)
    import_supporters(runtime.db, tmp_path / "people.csv")
    public = Database(runtime.db.url, Vault.parse(runtime.vault.public_form()))
    with public.session() as session:  # a sealed value, as the action pages write them
        repo.new_supporter(session, "sealed@example.net", "Sealed Writer", "en", None, subscribed=False)
    public.dispose()
    new_key = runtime.vault.rotated_key()
    both = Database(runtime.db.url, Vault.parse(f"{new_key},{DATA_KEY}"))
    both.check_current()  # the new key registers itself; the old one is still listed
    result = privacy.rekey(both)
    # Three imported: address, name, tags each, and the two governorates given; the sealed one's three.
    assert result.values == 3 * 3 + 2 + 3
    assert result.retired_keys == [runtime.vault.current.kid]
    assert privacy.rekey(both).values == 0
    both.dispose()
    only = Database(runtime.db.url, Vault.parse(new_key))
    only.check_current()  # the old key is no longer needed
    assert privacy.find_supporter(only, "sealed@example.net")["name"] == "Sealed Writer"  # type: ignore[index]
    assert privacy.find_supporter(only, "supporter00001@example.org") is not None
    only.dispose()


def test_files_we_create_are_private_to_their_owner(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    settings = demo_settings(folder, {})
    rt = Runtime(settings)
    upgrade_database(settings.database_url, rt.vault)
    rt.db.check_current()
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(folder) == 0o700
    assert mode(folder / "mailer.db") == 0o600
    assert mode(folder / "data.key") == 0o600
    assert mode(folder / "secret.key") == 0o600
    rt.close()
    # A database file an earlier version left readable by all is made private when it is next opened.
    older = tmp_path / "older.db"
    older.touch(mode=0o644)
    older.chmod(0o644)
    Database(f"sqlite:///{older}", rt.vault).dispose()
    assert mode(older) == 0o600


def test_an_existing_database_in_clear_is_encrypted_by_the_upgrade(
    database_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """An installation of the previous version upgrades: its clear values are encrypted in place."""
    vault = Vault.parse(DATA_KEY)
    upgrade_database(database_url, vault, "0006")
    old = Database(database_url, vault)
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with old.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO supporter (id, email, email_key, name, locale, governorate, tags, subscribed,"
                " created_at, updated_at) VALUES (1, 'Old.Friend@example.net', 'old.friend@example.net',"
                " 'Old Friend', 'ar', 'Basra', '[\"press\"]', true, :now, :now)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO campaign (id, slug, title, default_locale, locales, translation_status,"
                " manifest, created_at, updated_at) VALUES (1, 'c-one', '{}', 'en', '[]', '{}', '{}', :now, :now)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO letter (id, campaign_id, supporter_id, locale, name, governorate, share, subject,"
                " body, edited, note, targets, status, created_at, opt_in) VALUES (1, 1, 1, 'ar', 'Old Friend',"
                " 'Basra', 'name', 'An old subject', 'An old body', true, 'An old note', '[]', 'confirmed',"
                " :now, false)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO suppression (id, email_key, scope, reason, source, created_at) VALUES"
                " (1, 'gone@example.net', 'supporter', 'hard_bounce', 'smtp: 550 <gone@example.net>', :now)"
            ),
            {"now": now},
        )
    old.dispose()
    upgrade_database(database_url, vault)
    db = Database(database_url, vault)
    assert privacy.find_supporter(db, "old.friend@example.net") == privacy.find_supporter(
        db, "OLD.FRIEND@example.net"
    )
    record = privacy.export_person(db, "old.friend@example.net")
    assert (record["supporter"]["name"], record["supporter"]["governorate"], record["supporter"]["tags"]) == (
        "Old Friend",
        "Basra",
        ["press"],
    )
    assert record["letters"][0]["words"]["note"] == "An old note"
    assert record["letters"][0]["words"]["email"] == "Old.Friend@example.net"
    assert [s["email"] for s in events.list_suppressions(db)] == ["gone@example.net"]
    with db.session() as session:  # the tags it had are indexed for segments (0009)
        assert repo.count_segment_by_locale(session, {"tag": ["press"]}) == {"ar": 1}
        assert repo.count_segment_by_locale(session, {"tag": ["other"]}) == {}
    assert (
        secrets_found(database_bytes(db), ["old.friend@example.net", "Old Friend", "An old note", "gone@ex"])
        == []
    )
    db.dispose()


def test_outbox_folder_is_private(runtime: Runtime, tmp_path: Path) -> None:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    supporters_csv(tmp_path / "people.csv", 1)
    import_supporters(runtime.db, tmp_path / "people.csv")
    mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {})
    folder = runtime.settings.outbox_dir
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}


def test_logs_name_rows_never_people(
    runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A transport that fails quoting the address (as an SMTP refusal does): the log names the rows only;
    the reason, address and all, is kept on the ledger row, encrypted, for the coordinator."""
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    supporters_csv(tmp_path / "people.csv", 1)
    import_supporters(runtime.db, tmp_path / "people.csv")

    class Refusing:
        name, chunk_size = "refusing", 1

        def send(self, email: BulkEmail) -> list[Delivery]:
            raise RuntimeError(f"relay refused {email.recipients[0].address.addr_spec}")

        def close(self) -> None:
            """Nothing held."""

    runtime.__dict__["transport"] = Refusing()
    launched = mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {})
    assert "transport failed on messages [1]" in caplog.text
    assert "supporter00000" not in caplog.text
    with runtime.db.session() as session:
        (message,) = repo.get_messages(session, [1])
        assert "supporter00000@example.org" in (message.error or "")
    assert mailouts.mailout_status(runtime.db, launched.mailout_id).counts["unknown"] == 1
