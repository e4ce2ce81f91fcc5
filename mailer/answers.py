"""Did the officials answer? The follow-up that asks each letter's writer, and each official's response
rate: letters answered, by a reply that came back (mailer.inbound) or by the writer's word, counted once.

The follow-up goes once per letter, ``follow_up_days`` after it was confirmed (a campaign setting), in the
writer's language, never to a writer who was erased or unsubscribed. Its buttons open a page whose button
records the answer: a GET never does, as mail scanners follow links.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from mailer.letters import LetterSecrets, NotToSend, compose_to_writers, letter_ledger_row, official_line
from mailer.sending import ComposeContext, Composed
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import Letter
from mailer.store.repository import Claimed
from mailer.tokens import InvalidToken, TokenSigner

# The follow-up: "Did you get an answer?"

#: Days after a letter is confirmed that its writer is asked whether the officials answered; a campaign
#: sets its own (``follow_up_days``; 0 asks nobody).
FOLLOW_UP_DAYS = 14
ANSWERS = ("yes", "no", "not_yet")


def follow_up_days(manifest: dict[str, Any]) -> int:
    days = manifest.get("follow_up_days", FOLLOW_UP_DAYS)
    return days if isinstance(days, int) and not isinstance(days, bool) and days >= 0 else FOLLOW_UP_DAYS


def queue_follow_ups(db: Database, now: dt.datetime) -> int:
    """One follow-up per confirmed letter whose time has come (the ledger's key makes it one, whatever
    races); whether it may still go (the writer erased, unsubscribed) is decided when it is sent."""
    queued = 0
    with db.session() as session:
        for campaign in repo.list_campaigns(session):
            days = follow_up_days(campaign.manifest)
            if not days:
                continue
            due = repo.letters_due_follow_up(session, campaign.id, now - dt.timedelta(days=days))
            queued += repo.add_messages(
                session,
                [
                    letter_ledger_row(
                        f"follow_up:{letter_id}", "follow_up", letter_id, None, writer, locale, now
                    )
                    for letter_id, writer, locale in due
                ],
            )
    return queued


def follow_up_token(signer: TokenSigner, letter_id: int) -> str:
    return signer.sign("follow_up", {"l": letter_id})


def _officials_to_ask(session: Session, letter_id: int) -> list[tuple[Any, str]]:
    """(official, slug) of each official the letter reached whose answer we do not know yet."""
    known = repo.answered_targets(session, letter_id)
    return [(t, t.slug) for t in repo.letter_recipients(session, letter_id) if t.id not in known]


def _follow_up_values(
    session: Session, message: Claimed, letter: Letter, secrets: LetterSecrets, context: ComposeContext
) -> dict[str, Any]:
    if repo.is_suppressed(session, repo.vault(session).address_index(secrets.email), "supporter"):
        raise NotToSend("the writer unsubscribed")
    officials = _officials_to_ask(session, letter.id)
    if not officials:
        raise NotToSend("every official's answer is known")
    code = letter.locale
    campaign = repo.get_campaign_by_id(session, letter.campaign_id)
    url = f"{context.sender.base_url}/answers/{follow_up_token(context.signer, letter.id)}"
    return {
        "name": secrets.name,
        "campaign_title": campaign.title.get(code, campaign.title[campaign.default_locale]),
        "officials": [
            {
                "line": official_line(target, code),
                "title": target.title.get(code, ""),
                "links": {answer: f"{url}?t={slug}&a={answer}" for answer in ANSWERS},
            }
            for target, slug in officials
        ],
        "answer_url": url,
        "privacy_url": context.sender.privacy_url(code),
    }


def compose_follow_ups(session: Session, messages: list[Claimed], context: ComposeContext) -> Composed:
    """The one follow-up of a letter: each official it reached, with Yes / No / Not yet."""
    return compose_to_writers(session, messages, context, "follow_up", _follow_up_values)


@dataclass(frozen=True)
class AnswerPage:
    """The follow-up's page: the letter's officials, each with the answer given so far."""

    letter_id: int
    locale: str
    officials: list[dict[str, str]]  # {"slug", "line", "answer"}


def answer_page(db: Database, signer: TokenSigner, token: str) -> AnswerPage | None:
    """None for a forged link or a letter that is gone."""
    letter_id = _letter_of_follow_up(signer, token)
    if letter_id is None:
        return None
    with db.session() as session:
        letter = session.get(Letter, letter_id)
        if letter is None:
            return None
        given = repo.letter_answers(session, letter_id)
        officials = [
            {"slug": t.slug, "line": official_line(t, letter.locale), "answer": given.get(t.id, "")}
            for t in repo.letter_recipients(session, letter_id)
        ]
        return AnswerPage(letter_id, letter.locale, officials)


def record_answers(
    db: Database, signer: TokenSigner, token: str, answers: dict[str, str], now: dt.datetime
) -> int | None:
    """Keep what the writer said of each official (one answer each, replaced when they answer again);
    how many were given, or None for a forged link. Officials the letter did not reach are ignored."""
    letter_id = _letter_of_follow_up(signer, token)
    if letter_id is None:
        return None
    with db.session() as session:
        reached = {t.slug: t.id for t in repo.letter_recipients(session, letter_id)}
        given = {reached[slug]: a for slug, a in answers.items() if slug in reached and a in ANSWERS}
        repo.set_letter_answers(session, letter_id, given, now)
    return len(given)


def _letter_of_follow_up(signer: TokenSigner, token: str) -> int | None:
    try:
        return int(signer.verify("follow_up", token)["l"])
    except (InvalidToken, KeyError, TypeError, ValueError):
        return None


# Response rates


@dataclass(frozen=True)
class OfficialResponses:
    """How one official answered a campaign's letters: replies we received, and what writers told us."""

    slug: str
    letters: int  # letters handed over to the official
    replies: int  # letters with a reply matched to them
    auto_replies: int
    yes: int
    no: int
    not_yet: int
    answered: int  # letters known to be answered: a reply came or the writer said so (counted once)

    @property
    def rate(self) -> float | None:
        return self.answered / self.letters if self.letters else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "letters": self.letters,
            "replies": self.replies,
            "auto_replies": self.auto_replies,
            "answered_yes": self.yes,
            "answered_no": self.no,
            "not_yet": self.not_yet,
            "answered": self.answered,
            "response_rate": None if self.rate is None else round(self.rate, 4),
        }


def official_responses(db: Database, slug: str) -> dict[str, OfficialResponses]:
    """Per official of a campaign (by slug): letters, replies, answers and the response rate."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        rows = repo.responses_per_target(session, campaign.id)
    return {target: OfficialResponses(target, **counts) for target, counts in sorted(rows.items())}


def campaign_total(responses: dict[str, OfficialResponses]) -> OfficialResponses:
    """A campaign's responses over all its officials: each (letter, official) pair counts once."""
    fields = ("letters", "replies", "auto_replies", "yes", "no", "not_yet", "answered")
    return OfficialResponses("", **{f: sum(getattr(r, f) for r in responses.values()) for f in fields})


COMPOSERS = {"follow_up": compose_follow_ups}
