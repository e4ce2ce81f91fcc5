"""Synthetic supporters, letter forms and a recording task backend for tests: names in each locale's script,
addresses on example.org only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mailer import campaigns, letters
from mailer.resources import demo_dir
from mailer.runtime import Runtime

NAMES = {
    "en": ["Sarah Miller", "John Okafor", "Maria Rossi"],
    "ar": ["زينب حسن", "علي كريم", "نور الهدى جاسم"],
    "ckb": ["شیلان ئەحمەد", "ئاران عومەر", "ژیلا محەمەد"],
    "kmr": ["Rojda Şêxo", "Azad Çelîk", "Berfîn Ûsiv"],
}
GOVERNORATES = {"en": "", "ar": "Basra", "ckb": "Erbil", "kmr": "Duhok"}
CODES = ("en", "ar", "ckb", "kmr")


def supporters_csv(path: Path, count: int) -> dict[str, str]:
    """Write ``count`` supporters spread over the four locales; returns address -> locale."""
    expected: dict[str, str] = {}
    lines = ["email,name,locale,governorate,tags"]
    for i in range(count):
        code = CODES[i % len(CODES)]
        email = f"supporter{i:05d}@example.org"
        name = NAMES[code][i % 3]
        lines.append(f"{email},{name},{code},{GOVERNORATES[code]},")
        expected[email] = code
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return expected


class RecordingBackend:
    """A task backend that keeps the batches it is given, so that a test (or a benchmark) runs them when it
    chooses, in its own process."""

    name = "recorder"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def enqueue_send_batch(self, message_ids: Sequence[int], queue: str = "bulk") -> None:
        self.batches.append(list(message_ids))

    def enqueue_apply_events(self, event_ids: Sequence[int]) -> None:
        """Events are applied by the caller."""


def letter_form(**changes: str) -> dict[str, str]:
    """What the action page posts for a letter in Sorani, with ``changes``."""
    base = {
        "name": "شیلان ئەحمەد",
        "email": "shilan@example.org",
        "governorate": "Basra",
        "share": "name_email",
        "subject": "",
        "body": "",
        "note": "تکایە ئەم دۆسیەیە دابخەن.",
    }
    return base | changes


def prefilled_letter(rt: Runtime, code: str, **changes: str) -> letters.LetterForm:
    """The seed campaign's letter in ``code``, checked as the action page checks it."""
    slug = "protect-hrds-iraq"
    spec = campaigns.parse_campaign_folder(demo_dir() / "campaigns" / slug)
    letter = next(c for c in spec.contents if c.kind == "letter" and c.locale == code)
    raw = letter_form(subject=letter.subject, body=letter.body) | changes
    return letters.check_form(raw, slug, code)
