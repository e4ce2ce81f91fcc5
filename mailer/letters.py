"""Letters to officials: the form's checks, double opt-in, one letter per official in the official's
language, pacing, and the copy to the supporter.

A supporter writes once, in their own language. Each official receives the campaign's letter in the
language that official reads (the supporter's own edits go to officials who read the supporter's
language), with the supporter's personal note verbatim under a heading that says whose words they are.
Nothing goes to an official before the supporter confirms from their own mailbox: the confirmation email
carries a signed, expiring link to a page that shows the letter exactly as it will be sent, and only that
page's button releases it. The email itself carries none of the form's text (a stranger could type
anything into it), so the form cannot make our address send someone else's words to a stranger.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.content import markdown_to_html, markdown_to_text, substitute
from mailer.errors import N_, MailerError, NotFoundError
from mailer.fields import FieldProblem, check_address, check_line, check_text
from mailer.governorates import find_governorate, governorate_name
from mailer.locales import LOCALE_CODES, get_locale, language_name
from mailer.sending import ComposeContext, Composed, single_parcel, utc_now
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Campaign, Letter, Target
from mailer.store.repository import Claimed
from mailer.tasking import LETTERS_QUEUE, TaskBackend
from mailer.tokens import InvalidToken, TokenSigner
from mailer.transports import Mailbox
from mailer.vault import UnreadableError, new_record_key, open_record, seal_record

Clock = Callable[[], dt.datetime]
SHARE_CHOICES = ("name_email", "name", "initials")
BAGHDAD = ZoneInfo("Asia/Baghdad")
CONFIRM_MAX_AGE = 2 * 24 * 3600  # seconds a confirmation link stays valid
LIMITS = {"name": 100, "subject": 200, "body": 6000, "note": 2000}


class FormError(MailerError):
    """The form has problems; ``fields`` maps each field to its problem (shown in the page's language)."""

    def __init__(self, fields: Mapping[str, MailerError]) -> None:
        super().__init__(N_("the form has %(num)d problems"), num=len(fields))
        self.fields = dict(fields)


@dataclass(frozen=True)
class LetterForm:
    """What a supporter sent from the action page, checked."""

    campaign: str
    locale: str
    name: str
    email: str
    governorate: str | None
    subject: str
    body: str
    note: str
    share: str
    opt_in: bool


def check_form(raw: Mapping[str, str], campaign: str, locale: str) -> LetterForm:
    """Every field checked; all problems at once, each naming its field, nothing half-accepted."""
    problems: dict[str, MailerError] = {}

    def checked(field_name: str, check: Callable[[], str]) -> str:
        try:
            return check()
        except FieldProblem as problem:
            problems[field_name] = problem
            return ""

    name = checked("name", lambda: check_line(raw.get("name"), LIMITS["name"]))
    subject = checked("subject", lambda: check_line(raw.get("subject"), LIMITS["subject"]))
    body = checked("body", lambda: check_text(raw.get("body"), LIMITS["body"]))
    note = checked("note", lambda: check_text(raw.get("note"), LIMITS["note"], required=False))
    email = checked("email", lambda: check_address(raw.get("email")))
    governorate = None
    if (raw.get("governorate") or "").strip():
        governorate = find_governorate(raw["governorate"])
        if governorate is None:
            problems["governorate"] = MailerError(N_("choose a governorate from the list"))
    share = raw.get("share") or ""
    if share not in SHARE_CHOICES:
        problems["share"] = MailerError(N_("choose what the officials may see of you"))
    if problems:
        raise FormError(problems)
    return LetterForm(
        campaign,
        get_locale(locale).code,
        name,
        email,
        governorate,
        subject,
        body,
        note,
        share,
        raw.get("opt_in") in ("1", "on", "yes", "true"),
    )


@dataclass(frozen=True)
class LetterSecrets:
    """What a letter holds of its writer: stored under the letter's own key (``Letter.private``), read
    by the workers through the vault and by the confirmation page through the key in its link."""

    name: str
    email: str
    governorate: str | None
    subject: str
    body: str
    note: str

    def seal(self, key: str) -> str:
        return seal_record(key, dataclasses.asdict(self), "letter")

    @classmethod
    def open(cls, key: str, sealed: str) -> LetterSecrets:
        record = open_record(key, sealed, "letter")
        try:
            return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls)})
        except KeyError as err:
            raise UnreadableError(N_("a stored record does not open with its key")) from err


def letter_secrets(letter: Letter) -> LetterSecrets | None:
    """The writer's part of a letter, for a process holding the data key; None once it was deleted."""
    if letter.private is None or letter.key is None:
        return None
    return LetterSecrets.open(letter.key, letter.private)


# Targeting and pacing


@dataclass(frozen=True)
class Targeting:
    """Which officials a campaign's letters reach: fixed ones, and ones chosen by the supporter's governorate."""

    fixed: tuple[str, ...] = ()
    by_governorate: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def slugs_for(self, governorate: str | None) -> list[str]:
        local = self.by_governorate.get(governorate, ()) if governorate else ()
        return list(dict.fromkeys([*self.fixed, *local]))


@dataclass(frozen=True)
class Pacing:
    """At most ``per_target_per_hour`` letters to one official in an hour, and only within sending hours
    (Asia/Baghdad), so that the campaign stays credible and deliverable."""

    per_target_per_hour: int = 30
    start: dt.time = dt.time(8, 0)
    end: dt.time | None = dt.time(20, 0)  # None: until midnight

    def open_at(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(BAGHDAD).time()
        return self.start <= local and (self.end is None or local < self.end)


def campaign_targeting(campaign: Campaign) -> Targeting:
    spec = campaign.manifest.get("targets") or {}
    by_governorate = {
        str(find_governorate(str(g)) or g): tuple(str(s) for s in slugs)
        for g, slugs in (spec.get("by_governorate") or {}).items()
    }
    return Targeting(tuple(str(s) for s in spec.get("fixed") or ()), by_governorate)


def campaign_pacing(campaign: Campaign) -> Pacing:
    spec = campaign.manifest.get("pacing") or {}
    start, _, end = str(spec.get("hours", "08:00-20:00")).partition("-")
    return Pacing(
        int(spec.get("per_target_per_hour", 30)),
        dt.time.fromisoformat(start),
        None if end == "24:00" else dt.time.fromisoformat(end),
    )


def targets_for(db: Database, slug: str, governorate: str | None) -> list[Target]:
    """The active officials a supporter from this governorate would write to (shown before sending)."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        targets = repo.active_targets(session, campaign_targeting(campaign).slugs_for(governorate))
        session.expunge_all()
    return targets


# The supporter's path


@dataclass(frozen=True)
class Started:
    letter_id: int
    #: The same form post came before: nothing new was stored and no second confirmation goes out.
    repeated: bool = False


def letter_by_submission(db: Database, submission: str) -> int | None:
    with db.session() as session:
        return repo.letter_id_by_submission(session, submission)


def start_letter(
    db: Database,
    backend: TaskBackend,
    form: LetterForm,
    clock: Clock | None = None,
    submission: str | None = None,
) -> Started:
    """Store the letter and send the confirmation to the address given. Nothing else changes: an
    unconfirmed form neither subscribes anyone nor alters what we know of a supporter.

    ``submission`` names the form post (see :attr:`Letter.submission`): a post seen before, even one still
    being stored by another process, answers with the first letter and sends nothing more."""
    if submission is not None and (earlier := letter_by_submission(db, submission)) is not None:
        return Started(earlier, repeated=True)
    try:
        letter_id = _store_letter(db, form, (clock or utc_now)(), submission)
    except IntegrityError:
        if submission is None or (earlier := letter_by_submission(db, submission)) is None:
            raise
        return Started(earlier, repeated=True)
    dispatch_letters(db, backend, clock)
    return Started(letter_id)


def _store_letter(db: Database, form: LetterForm, now: dt.datetime, submission: str | None) -> int:
    with db.session() as session:
        campaign = repo.get_campaign(session, form.campaign)
        letter_content = repo.get_content(session, campaign.id, "letter", form.locale)
        targets = repo.active_targets(session, campaign_targeting(campaign).slugs_for(form.governorate))
        if not targets:
            raise MailerError(N_("this campaign has no official to write to from your governorate"))
        # By blind index only: this process may hold just the public key, and reads nobody's data.
        supporter_id = repo.supporter_id_by_index(session, db.vault.address_index(form.email))
        if supporter_id is None:
            # Known from now on only as the writer of this letter: never mailed an alert unless they
            # confirm with "keep me informed" ticked, and forgotten with the letter otherwise.
            supporter = repo.new_supporter(
                session,
                form.email,
                form.name,
                form.locale,
                form.governorate,
                subscribed=False,
                origin="letter",
            )
            session.flush()
            supporter_id = supporter.id
        edited = (form.subject, form.body.strip()) != (letter_content.subject, letter_content.body.strip())
        texts = {}
        for code in dict.fromkeys(t.letter_locale for t in targets):
            content = repo.get_content(session, campaign.id, "letter", code)
            texts[code] = {"subject": content.subject, "body": content.body}
        key = new_record_key()
        secrets = LetterSecrets(form.name, form.email, form.governorate, form.subject, form.body, form.note)
        letter = Letter(
            campaign_id=campaign.id,
            supporter_id=supporter_id,
            locale=form.locale,
            share=form.share,
            edited=edited,
            private=secrets.seal(key),
            key=key,
            targets=[t.slug for t in targets],
            opt_in=form.opt_in,
            texts=texts,
            status="pending",
            created_at=now,
            submission=submission,
        )
        session.add(letter)
        session.flush()
        letter_id = letter.id
        # Always a confirmation from the mailbox: nothing puts a person's name before an official
        # without it (a forwarded alert, a guessed address and a stolen link prove nothing).
        repo.add_messages(
            session,
            [
                letter_ledger_row(
                    f"confirm:{letter_id}", "confirm", letter_id, None, supporter_id, form.locale, now
                )
            ],
        )
    return letter_id


def confirmation_token(signer: TokenSigner, letter_id: int, key: str) -> str:
    """The link's token: which letter, and the letter's own key (so the page can show it, and only it)."""
    return signer.sign("confirm", {"l": letter_id, "k": key})


@dataclass(frozen=True)
class Confirmed:
    letter_id: int
    campaign: str
    locale: str
    targets: int
    first_time: bool


def confirm_letter(
    db: Database, backend: TaskBackend, signer: TokenSigner, token: str, clock: Clock | None = None
) -> Confirmed:
    """Follow a confirmation link: the letters go out (once: following it again sends nothing more)."""
    link = _letter_of_link(signer, token)
    if link is None:
        raise MailerError(
            N_("this confirmation link is not valid or has expired; please write your letter again")
        )
    return confirm_letter_id(db, backend, link[0], clock)


def confirm_letter_id(
    db: Database, backend: TaskBackend, letter_id: int, clock: Clock | None = None
) -> Confirmed:
    now = (clock or utc_now)()
    with db.session() as session:
        letter = repo.get_letter(session, letter_id)
        campaign = repo.get_campaign_by_id(session, letter.campaign_id)
        first_time = repo.confirm_letter(session, letter_id, now)
        if first_time and letter.opt_in and letter.supporter_id is not None:
            # Consent from the mailbox itself; still never over an unsubscribe, a bounce or a complaint.
            repo.subscribe_unless_suppressed(session, letter.supporter_id)
        if first_time:
            targets = repo.active_targets(session, letter.targets)
            rows = [
                letter_ledger_row(
                    f"letter:{letter_id}:{t.id}",
                    "letter",
                    letter_id,
                    t.id,
                    letter.supporter_id,
                    t.letter_locale,
                    now,
                )
                for t in targets
            ]
            rows.append(
                letter_ledger_row(
                    f"copy:{letter_id}", "copy", letter_id, None, letter.supporter_id, letter.locale, now
                )
            )
            repo.add_messages(session, rows)
        result = Confirmed(letter_id, campaign.slug, letter.locale, len(letter.targets), first_time)
    dispatch_letters(db, backend, clock)
    return result


def letter_ledger_row(
    key: str,
    kind: str,
    letter_id: int,
    target_id: int | None,
    supporter_id: int | None,
    locale: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """A ledger row about a letter (the letter to one official, or an email to its writer), queued now."""
    return {
        "idempotency_key": key,
        "kind": kind,
        "letter_id": letter_id,
        "target_id": target_id,
        "supporter_id": supporter_id,
        "locale": locale,
        "content_locale": locale,
        "status": "queued",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def dispatch_letters(
    db: Database,
    backend: TaskBackend,
    clock: Clock | None = None,
    batch_size: int = 100,
    redispatch_after: dt.timedelta = dt.timedelta(minutes=10),
) -> int:
    """Release what may go now on the letters queue: confirmations and copies at once; letters within
    sending hours and each official's hourly cap. The number of batches queued."""
    now = (clock or utc_now)()
    with db.session() as session:
        caps = _remaining_caps(session, now)
        ids = repo.mark_letters_dispatched(session, now, now - redispatch_after, caps)
    for start in range(0, len(ids), batch_size):
        backend.enqueue_send_batch(ids[start : start + batch_size], queue=LETTERS_QUEUE)
    return -(-len(ids) // batch_size)


def _remaining_caps(session: Session, now: dt.datetime) -> dict[int, int]:
    """For each official with letters waiting: how many more may go this hour (0 outside sending hours)."""
    released = repo.letters_released_since(session, now - dt.timedelta(hours=1))
    caps: dict[int, int] = {}
    for target_id in repo.letter_targets_waiting(session):
        pacing = _pacing_for_target(session, target_id)
        caps[target_id] = (
            max(0, pacing.per_target_per_hour - released.get(target_id, 0)) if pacing.open_at(now) else 0
        )
    return caps


def _pacing_for_target(session: Session, target_id: int) -> Pacing:
    # One official may be written to from several campaigns: the strictest pacing applies.
    campaigns = repo.campaigns_writing_to(session, target_id)
    pacings = [campaign_pacing(c) for c in campaigns] or [Pacing()]
    return min(pacings, key=lambda p: p.per_target_per_hour)


def letters_sent(db: Database, slug: str) -> int:
    with db.session() as session:
        return repo.letters_sent_count(session, repo.get_campaign(session, slug).id)


# Composing the emails (the send step calls these with the claimed rows of each kind)


@dataclass(frozen=True)
class _LetterText:
    subject: str
    html: str
    text: str


def _plain_html(text: str) -> str:
    """The supporter's own text, verbatim: escaped, paragraphs and line breaks kept."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _plain_text(text: str, rtl: bool) -> str:
    """The supporter's own text for a text/plain part; each paragraph of a right-to-left language opens with
    a right-to-left mark, for clients that guess a paragraph's direction from its first letter."""
    prefix = "\u200f" if rtl else ""
    return "\n\n".join(prefix + p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip())


def _letter_text(session: Session, letter: Letter, secrets: LetterSecrets, code: str) -> _LetterText:
    """The letter as an official reading ``code`` receives it: the supporter's own edits when they wrote in
    that language, otherwise the campaign's letter in that language."""
    rtl = get_locale(code).is_rtl
    if letter.edited and letter.locale == code:
        return _LetterText(secrets.subject, _plain_html(secrets.body), _plain_text(secrets.body, rtl))
    kept = (letter.texts or {}).get(code)
    if kept is not None:
        subject, body = kept["subject"], kept["body"]
    else:  # a letter written before texts were kept with it
        content = repo.get_content(session, letter.campaign_id, "letter", code)
        subject, body = content.subject, content.body
    return _LetterText(subject, markdown_to_html(body, rtl), markdown_to_text(body, rtl).rstrip())


def initials(name: str) -> str:
    return " ".join(word[0] + "." for word in name.split())


def _signature(letter: Letter, secrets: LetterSecrets, code: str) -> list[str]:
    if letter.share == "name_email":
        return [secrets.name, secrets.email]
    if letter.share == "name":
        return [secrets.name]
    place = governorate_name(secrets.governorate, code) if secrets.governorate else ""
    return [line for line in (initials(secrets.name), place) if line]


def official_line(target: Target, code: str) -> str:
    """ "Title, Institution" of an official in a language, with that script's comma."""
    comma = "، " if get_locale(code).script == "Arab" else ", "  # Arabic script has its own comma
    return f"{target.title[code]}{comma}{target.institution[code]}"


def compose_letters(session: Session, messages: list[Claimed], context: ComposeContext) -> Composed:
    """One email per (letter, official), in the official's language, from "<supporter> via <campaign>"."""
    composed = Composed()
    for message in messages:
        letter = repo.get_letter(session, message.letter_id or 0)
        target = session.get(Target, message.target_id or 0)
        secrets = letter_secrets(letter)
        if secrets is None:
            composed.skipped.append((message.id, "the writer's letter was erased"))
            continue
        if (
            target is None
            or target.status != "active"
            or repo.is_suppressed(session, repo.vault(session).address_index(target.email), "target")
        ):
            composed.skipped.append((message.id, "the official no longer receives letters"))
            continue
        code = target.letter_locale
        campaign = repo.get_campaign_by_id(session, letter.campaign_id)
        title = campaign.title.get(code, campaign.title[campaign.default_locale])
        text = _letter_text(session, letter, secrets, code)
        email = context.renderer.render_email(
            "letter",
            {
                "subject": text.subject,
                "title": target.title[code],
                "body_html": text.html,
                "body_text": text.text,
                **_note_context(secrets, letter.locale),
                "signature": _signature(letter, secrets, code),
                "campaign_title": title,
            },
            code,
        )
        shown = secrets.name if letter.share != "initials" else initials(secrets.name)
        via = context.renderer.gettext(code, N_("%(name)s via %(campaign)s")) % {
            "name": shown,
            "campaign": title,
        }
        # Never the supporter's own address in From: their domain's DMARC policy would reject the letter.
        sender = Mailbox(display_name=via, addr_spec=context.sender.from_email)
        if letter.share == "name_email":
            reply_to: Mailbox | None = Mailbox(display_name=secrets.name, addr_spec=secrets.email)
        elif context.tags is not None:
            # The writer's address stays theirs: an answer comes to us, signed for this letter and this
            # official, and the writer is told (mailer.inbound).
            reply_to = Mailbox(display_name=title, addr_spec=context.tags.address("r", message.id))
        else:
            reply_to = None
        to = Mailbox(display_name=target.name[code], addr_spec=target.email)
        composed.parcels.append(single_parcel(message, email, context, to, sender, reply_to))
    return composed


def _note_context(secrets: LetterSecrets, code: str) -> dict[str, Any]:
    """The supporter's note, in ``code``: the language the supporter wrote in, never the official's (a
    Kurmanji note in a letter to an Arabic reader still runs left to right)."""
    locale = get_locale(code)
    return {
        "note": secrets.note,
        "note_locale": locale,
        "note_html": _plain_html(secrets.note),
        "note_text": _plain_text(secrets.note, locale.is_rtl),
    }


class NotToSend(Exception):
    """An email to a writer that must not go now (raised by its values function, saying why)."""


#: The values of an email to a letter's writer, from its ledger row, the letter and the writer's part.
WriterValues = Callable[[Session, Claimed, Letter, LetterSecrets, ComposeContext], dict[str, Any]]


def compose_to_writers(
    session: Session,
    messages: list[Claimed],
    context: ComposeContext,
    kind: str,
    values_for: WriterValues,
    named: bool = True,
) -> Composed:
    """Emails to the supporter who wrote each letter, in their language, from the campaign's address; a
    writer who is gone, or whose values say :class:`NotToSend`, is skipped with the reason."""
    composed = Composed()
    sender = Mailbox(display_name=context.sender.from_name, addr_spec=context.sender.from_email)
    for message in messages:
        letter = repo.get_letter(session, message.letter_id or 0)
        secrets = letter_secrets(letter)
        if secrets is None or letter.supporter_id is None:
            composed.skipped.append((message.id, "the supporter is gone"))
            continue
        try:
            values = values_for(session, message, letter, secrets, context)
        except NotToSend as reason:
            composed.skipped.append((message.id, str(reason)))
            continue
        email = context.renderer.render_email(kind, values, letter.locale)
        to = Mailbox(display_name=secrets.name if named else "", addr_spec=secrets.email)
        composed.parcels.append(single_parcel(message, email, context, to, sender, kind=kind))
    return composed


def _letter_groups(session: Session, letter: Letter, secrets: LetterSecrets) -> list[dict[str, Any]]:
    """Each language's letter, with the officials who get it; the language and the officials are named in
    the supporter's language (a Sorani reader reads "بە زمانی ئینگلیزی", never "بە زمانی English")."""
    targets = repo.active_targets(session, letter.targets)
    groups = []
    for target_code in dict.fromkeys(t.letter_locale for t in targets):
        locale = get_locale(target_code)
        text = _letter_text(session, letter, secrets, target_code)
        groups.append(
            {
                "locale": locale,
                "language": language_name(target_code, letter.locale),
                "subject": text.subject,
                "body_html": text.html,
                "body_text": text.text,
                "officials": [
                    official_line(t, letter.locale) for t in targets if t.letter_locale == target_code
                ],
            }
        )
    return groups


def _confirmation_values(
    session: Session, message: Claimed, letter: Letter, secrets: LetterSecrets, context: ComposeContext
) -> dict[str, Any]:
    """Who the letter goes to and the link, nothing that the form's writer typed: the address is not
    proven yet, and the form must not be a way to send a stranger one's own words from our address."""
    groups = [
        {"language": g["language"], "officials": g["officials"]}
        for g in _letter_groups(session, letter, secrets)
    ]
    token = confirmation_token(context.signer, letter.id, letter.key or "")
    return {
        "groups": groups,
        "confirm_url": f"{context.sender.base_url}/confirm/{token}",
        "confirm_hours": CONFIRM_MAX_AGE // 3600,
        "privacy_url": context.sender.privacy_url(letter.locale),
    }


def _copy_values(
    session: Session, message: Claimed, letter: Letter, secrets: LetterSecrets, context: ComposeContext
) -> dict[str, Any]:
    """The supporter's own letter, and the officials it goes to (sent after they confirmed). The email's
    subject carries the letter's own ("Your letter: <subject>"): it is a checked one-line field."""
    text = _letter_text(session, letter, secrets, letter.locale)
    targets = repo.active_targets(session, letter.targets)
    return {
        "name": secrets.name,
        **_note_context(secrets, letter.locale),
        "officials": [official_line(t, letter.locale) for t in targets],
        "letter_locale": get_locale(letter.locale),
        "letter_subject": text.subject,
        "body_html": text.html,
        "body_text": text.text,
        "privacy_url": context.sender.privacy_url(letter.locale),
    }


def compose_confirmations(session: Session, messages: list[Claimed], context: ComposeContext) -> Composed:
    """The email with the signed link to the page where the supporter reads and confirms the letter."""
    return compose_to_writers(session, messages, context, "confirm", _confirmation_values, named=False)


def compose_copies(session: Session, messages: list[Claimed], context: ComposeContext) -> Composed:
    """The supporter's copy, in their language, naming the officials it goes to."""
    return compose_to_writers(session, messages, context, "copy", _copy_values)


COMPOSERS = {"letter": compose_letters, "confirm": compose_confirmations, "copy": compose_copies}


def _letter_of_link(signer: TokenSigner, token: str) -> tuple[int, str] | None:
    """(letter id, the letter's key) from a genuine, fresh link; None otherwise (a link sent before
    letters had keys of their own has none either: its writer is asked to write again)."""
    try:
        payload = signer.verify("confirm", token, max_age=CONFIRM_MAX_AGE)
        return int(payload["l"]), str(payload["k"])
    except (InvalidToken, KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class LetterPreview:
    """The letter as it will be sent, shown on the confirmation page before the supporter says yes."""

    locale: str
    status: str
    groups: list[dict[str, Any]]
    note_html: str
    signature: list[str]  # what every official sees of the writer


def letter_preview(db: Database, signer: TokenSigner, token: str) -> LetterPreview | None:
    """None for a link that is forged, expired or names no letter."""
    link = _letter_of_link(signer, token)
    if link is None:
        return None
    letter_id, key = link
    with db.session() as session:
        letter = session.get(Letter, letter_id)
        if letter is None or letter.private is None or letter.supporter_id is None:
            return None  # gone: deleted unconfirmed, or erased
        try:
            secrets = LetterSecrets.open(key, letter.private)
        except UnreadableError:
            return None  # a key that is not this letter's
        return LetterPreview(
            locale=letter.locale,
            status=letter.status,
            groups=_letter_groups(session, letter, secrets),
            note_html=_plain_html(secrets.note),
            signature=_signature(letter, secrets, letter.locale),
        )


@dataclass(frozen=True)
class Official:
    """An official as a supporter sees them on the page: title and institution in the page's language."""

    title: str
    institution: str


@dataclass(frozen=True)
class ActionPage:
    """What the action page of a campaign shows in one language."""

    slug: str
    title: str
    organisation: str | None  # who asks, in this language
    organisation_url: str | None
    intro_html: str  # the page's own text, or the alert when the campaign has none in this language
    share_text: str  # the line a shared link carries
    subject: str
    body: str
    fixed: list[Official]  # every letter reaches these
    # The officials a governorate adds ({governorate key: officials}), only governorates that add some.
    local: dict[str, list[Official]]
    sent: int
    goal: int | None
    locales: list[str]  # the languages this page exists in

    def officials_for(self, governorate: str | None) -> list[Official]:
        """Who a letter from this governorate reaches (the fixed ones when it adds none)."""
        return self.fixed + self.local.get(governorate or "", [])


def action_page(db: Database, slug: str, code: str, greeting_name: str) -> ActionPage:
    """The page's content; NotFoundError when the campaign has no alert or letter in this language."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        kinds = repo.content_kinds(session, campaign.id)
        available = [c for c in LOCALE_CODES if ("alert", c) in kinds and ("letter", c) in kinds]
        if code not in available:
            raise NotFoundError(N_("the campaign has no %(kind)s in %(code)s"), kind="letter", code=code)
        intro = repo.get_content(session, campaign.id, "page" if ("page", code) in kinds else "alert", code)
        letter = repo.get_content(session, campaign.id, "letter", code)
        targeting = campaign_targeting(campaign)

        def seen(slugs: Sequence[str]) -> list[Official]:
            return [Official(t.title[code], t.institution[code]) for t in repo.active_targets(session, slugs)]

        fixed = seen(targeting.fixed)
        local = {g: officials for g, slugs in targeting.by_governorate.items() if (officials := seen(slugs))}
        sent = repo.letters_sent_count(session, campaign.id)
        title = campaign.title.get(code) or campaign.title[campaign.default_locale]
        manifest = dict(campaign.manifest)
    organisation = manifest.get("organisation") or {}
    names = organisation.get("name") or {}
    values = {
        "first_name": greeting_name,
        "name": greeting_name,
        "action_url": "#write",
        "unsubscribe_url": "#",
        "governorate": "",
    }
    intro_html = substitute(markdown_to_html(intro.body, get_locale(code).is_rtl), values, for_html=True)
    return ActionPage(
        slug=slug,
        title=title,
        organisation=names.get(code) or names.get(campaign.default_locale),
        organisation_url=organisation.get("url"),
        intro_html=intro_html,
        share_text=intro.subject if intro.kind == "page" else title,
        subject=letter.subject,
        body=letter.body.strip(),
        fixed=fixed,
        local=local,
        sent=sent,
        goal=manifest.get("goal"),
        locales=available,
    )


def letters_per_official_since(db: Database, since: dt.datetime) -> dict[str, int]:
    """Letters on their way to or handed over for each official since a time (by official's slug)."""
    with db.session() as session:
        return repo.letters_per_target_since(session, since)


def letters_by_official_and_day(
    db: Database, since: dt.datetime, zone: dt.tzinfo
) -> dict[str, dict[dt.date, int]]:
    """Letters per official per day (days in ``zone``, the campaign's), since a time."""
    days: dict[str, dict[dt.date, int]] = {}
    with db.session() as session:
        for slug, created in repo.letter_times_since(session, since):
            day = created.astimezone(zone).date()
            per_day = days.setdefault(slug, {})
            per_day[day] = per_day.get(day, 0) + 1
    return days


def pending_confirmations(db: Database) -> dict[str, int]:
    """Letters waiting for their writer's confirmation, per campaign."""
    with db.session() as session:
        return repo.pending_letters_per_campaign(session)
