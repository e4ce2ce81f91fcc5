"""The emails around a letter as their readers see them, against golden files (regenerate on purpose:
pytest --update-golden, then review the diff).

Each block of text carries the direction of its own language, never the email's: the supporter's note
keeps the supporter's language inside a letter in the official's. Language names are in the reader's
language, numbers in the reader's digits, and the copy's subject is the letter's own. Chromium renders
each email at a phone's width and checks where every line and every bullet lands; the pages and their
screenshots are left in test-artifacts/emails/ (not committed) for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import update

from mailer import campaigns, letters, mailouts
from mailer.i18n import translations
from mailer.locales import LOCALE_CODES, REGISTRY, language_name
from mailer.resources import demo_dir
from mailer.runtime import Runtime
from mailer.store.models import Target
from mailer.supporters import import_supporters
from mailer.targets import import_targets
from tests.factories import supporters_csv
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401  (the fixture)

SLUG = "protect-hrds-iraq"
MORNING = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)  # 10:00 in Baghdad: letters go at once
GOLDEN = Path(__file__).parent / "golden"
SHOTS = ARTIFACTS / "emails"
RLM = "\u200f"
ISOLATES = re.compile("[\u2066-\u2069]")
#: Who writes, from where, with which note (each in the writer's own language). From Duhok a letter goes
#: out in all four languages (here the Duhok governor's office reads Kurmanji; the demo directory writes
#: to it in Sorani); from Basra in Arabic and English.
WRITERS = {
    "ar": ("زينب حسن", "zainab@example.org", "Duhok", "أرجو أن تُسقطوا هذه الدعاوى اليوم."),
    "ckb": ("شیلان ئەحمەد", "shilan@example.org", "Duhok", "تکایە ئەم دۆسیەیە دابخەن."),
    "en": ("Sarah Miller", "sarah@example.org", "Basra", "I stand with the defenders in Basra."),
    "kmr": ("Rojda Şêxo", "rojda@example.org", "Duhok", "Ji kerema xwe van dozan betal bikin."),
}
#: Golden case: (writer's language, kind of email, language of the official for a letter).
CASES = {
    "confirm.ar": ("ar", "confirm", None),
    "confirm.en": ("en", "confirm", None),
    "copy.ar": ("ar", "copy", None),
    "copy.en": ("en", "copy", None),
    "letter.ar.kmr-note": ("kmr", "letter", "ar"),  # a Kurmanji note in a letter to an Arabic reader
    "letter.en.ar-note": ("ar", "letter", "en"),  # an Arabic note in a letter to an English reader
}


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    import_targets(runtime.db, demo_dir() / "officials.yaml")
    with runtime.db.session() as session:  # one official who reads Kurmanji, for letters in four languages
        session.execute(update(Target).where(Target.slug == "governor-of-duhok").values(letter_locale="kmr"))
    return runtime


def campaign_letter(code: str) -> tuple[str, str]:
    spec = campaigns.parse_campaign_folder(demo_dir() / "campaigns" / SLUG)
    content = next(c for c in spec.contents if c.kind == "letter" and c.locale == code)
    return content.subject, content.body


def write_and_confirm(rt: Runtime, code: str, **changes: str) -> dict[str, list[EmailMessage]]:
    """A letter from the writer of ``code`` (the campaign's letter unless changed), confirmed: every email
    it made, by kind, in ledger order."""
    name, email, governorate, note = WRITERS[code]
    subject, body = campaign_letter(code)
    raw = {
        "name": name,
        "email": email,
        "governorate": governorate,
        "share": "name_email",
        "subject": subject,
        "body": body,
        "note": note,
    } | changes
    form = letters.check_form(raw, SLUG, code)
    started = letters.start_letter(rt.db, rt.backend, form, clock=lambda: MORNING)
    letters.confirm_letter_id(rt.db, rt.backend, started.letter_id, clock=lambda: MORNING)
    sent: dict[str, list[EmailMessage]] = {}
    for path in sorted(rt.settings.outbox_dir.glob("*.eml")):
        message = cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
        sent.setdefault(path.name.split("-", 1)[0], []).append(message)
    return sent


def case_email(rt: Runtime, case: str) -> EmailMessage:
    writer, kind, official = CASES[case]
    emails = write_and_confirm(rt, writer)[kind]
    return next(e for e in emails if official is None or e["Content-Language"] == official)


def parts(message: EmailMessage) -> tuple[str, str, str]:
    """Subject, HTML and text (line ends as a reader's client shows them), with the confirmation link's
    token (signed now, with a random key) fixed."""

    def fixed(text: str) -> str:
        return re.sub(r"/confirm/[\w.\-]+", "/confirm/TOKEN", text.replace("\r\n", "\n"))

    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return str(message["Subject"]), fixed(html), fixed(text)


def gettext(code: str, message: str) -> str:
    return translations(code).gettext(message)


@dataclass(frozen=True)
class Block:
    lang: str
    dir: str
    align: str
    classes: tuple[str, ...]
    text: str


class _Blocks(HTMLParser):
    """The <div> blocks of an email that carry a language of their own, with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[Block] = []
        self._open: list[tuple[dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div":
            self._open.append(({k: v or "" for k, v in attrs}, []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._open:
            attrs, text = self._open.pop()
            if "lang" in attrs:
                self.found.append(
                    Block(
                        attrs["lang"],
                        attrs.get("dir", ""),
                        attrs.get("align", ""),
                        tuple(attrs.get("class", "").split()),
                        "".join(text),
                    )
                )

    def handle_data(self, data: str) -> None:
        for _, text in self._open:
            text.append(data)


def blocks(html: str) -> list[Block]:
    parser = _Blocks()
    parser.feed(html)
    return parser.found


def headings(html: str) -> list[str]:
    return re.findall(r"<h2[^>]*>(.*?)</h2>", html)


@pytest.mark.parametrize("case", CASES)
def test_letter_emails_match_golden(rt: Runtime, case: str, request: pytest.FixtureRequest) -> None:
    subject, html, text = parts(case_email(rt, case))
    files = {
        GOLDEN / f"{case}.subject.txt": subject + "\n",
        GOLDEN / f"{case}.html": html,
        GOLDEN / f"{case}.txt": text,
    }
    if request.config.getoption("--update-golden"):
        GOLDEN.mkdir(exist_ok=True)
        for path, content in files.items():
            path.write_text(content, encoding="utf-8")
    for path, content in files.items():
        assert path.exists(), f"{path.name} is missing: run pytest --update-golden once, and review it"
        assert content == path.read_text(encoding="utf-8"), f"{path.name} differs from the rendering"


@pytest.mark.parametrize("reader", LOCALE_CODES)
def test_the_confirmation_names_each_language_in_the_readers_language(rt: Runtime, reader: str) -> None:
    """From Duhok a letter goes out in all four languages: each heading names one, in the reader's words."""
    writer = WRITERS[reader]
    (confirmation,) = write_and_confirm(rt, reader, governorate="Duhok", name=writer[0])["confirm"]
    _, html, text = parts(confirmation)
    heading = gettext(reader, "To these officials, in %(language)s:")
    expected = sorted(heading % {"language": language_name(code, reader)} for code in LOCALE_CODES)
    assert sorted(headings(html)) == expected
    assert all(line in text for line in expected)
    if REGISTRY[reader].is_rtl:
        # Not one Latin letter in an Arabic-script heading: "بە زمانی English" was the bug.
        assert not any(c.isascii() and c.isalpha() for h in headings(html) for c in h)
    others = {REGISTRY[c].native_name for c in LOCALE_CODES if c != reader} - {
        language_name(c, reader) for c in LOCALE_CODES
    }
    assert not any(name in html or name in text for name in others)


def test_the_arabic_confirmation_in_arabic_words_digits_and_commas(rt: Runtime) -> None:
    confirmation = case_email(rt, "confirm.ar")
    _, html, text = parts(confirmation)
    assert [h.split("باللغة ", 1)[1] for h in headings(html)] == [
        "العربية:",
        "الإنجليزية:",
        "الكردية الكرمانجية:",
        "الكردية السورانية:",
    ]
    assert "٤٨" in text  # "48 hours", in the digits Arabic readers use
    assert "٤٨" in html
    assert not re.search(r"[0-9]", re.sub(r"https://\S+", "", text))
    officials = [line for line in text.splitlines() if line.startswith(RLM + "• ")]
    assert len(officials) == 7
    assert all("، " in line and ", " not in line for line in officials)  # the Arabic comma
    assert "https://act.example.org/ar/privacy" in text
    assert 'href="https://act.example.org/ar/privacy"' in html
    # Nothing in another language: no block of its own, and nothing the writer typed (the address is
    # not proven yet, FAULTS: the form is no way to mail a stranger).
    assert blocks(html) == []
    assert WRITERS["ar"][0] not in confirmation.as_string()


def test_the_english_confirmation_names_the_arabic_letter_in_english(rt: Runtime) -> None:
    _, html, text = parts(case_email(rt, "confirm.en"))
    assert headings(html) == ["To these officials, in Arabic:", "To these officials, in English:"]
    assert "العربية" not in html
    assert "العربية" not in text
    assert "48 hours" in text
    assert "https://act.example.org/en/privacy" in text


@pytest.mark.parametrize(
    ("case", "writer", "page"),
    [("letter.ar.kmr-note", "kmr", "ar"), ("letter.en.ar-note", "ar", "en")],
)
def test_the_note_keeps_the_writers_language_in_the_officials_letter(
    rt: Runtime, case: str, writer: str, page: str
) -> None:
    subject, html, text = parts(case_email(rt, case))
    note = WRITERS[writer][3]
    language, own = REGISTRY[writer], REGISTRY[page]
    assert subject == campaign_letter(page)[0]
    assert f'<html lang="{page}" dir="{own.direction}">' in html
    (block,) = blocks(html)
    align = "right" if language.is_rtl else "left"
    assert block == Block(writer, language.direction, align, ("note", language.direction), note)
    # In the text part, a right-to-left mark opens the note only when the note is right-to-left.
    assert (RLM + note if language.is_rtl else note) in text.splitlines()
    heading = gettext(page, "In the sender's own words") + ":"
    assert (RLM + heading if own.is_rtl else heading) in text.splitlines()
    # The writer's name is isolated in HTML; the text part stays plain (no isolates: see the report).
    assert f"<bdi>{WRITERS[writer][0]}</bdi>" in html
    assert not ISOLATES.search(text)


@pytest.mark.parametrize("code", ["ar", "en"])
def test_the_copy_carries_the_letters_own_subject(rt: Runtime, code: str) -> None:
    copy = case_email(rt, f"copy.{code}")
    subject, html, text = parts(copy)
    letter_subject = campaign_letter(code)[0]
    assert subject == gettext(code, "Your letter: %(subject)s") % {"subject": letter_subject}
    assert subject != gettext(code, "Your letter is on its way")
    letter_block, note_block = blocks(html)
    direction = REGISTRY[code].direction
    assert (letter_block.lang, letter_block.dir) == (code, direction)
    assert letter_block.text.startswith(letter_subject)
    assert f"<strong>{letter_subject}</strong>" in html
    assert (note_block.lang, note_block.dir, note_block.text) == (code, direction, WRITERS[code][3])
    assert f"<bdi>{WRITERS[code][0]}</bdi>" in html
    assert f"https://act.example.org/{code}/privacy" in text
    if code == "ar":
        assert "٧" in text  # seven officials from Duhok, in Arabic-Indic digits
        assert f"{RLM}{letter_subject}" in text.splitlines()


def test_an_edited_subject_is_the_copys_subject(rt: Runtime) -> None:
    own = "ئازادی بۆ بەرگریکارانی بەسرە"
    (copy,) = write_and_confirm(rt, "ckb", subject=own, body="نامەیەکی خۆم.")["copy"]
    subject, html, _ = parts(copy)
    assert subject == gettext("ckb", "Your letter: %(subject)s") % {"subject": own}
    assert f"<strong>{own}</strong>" in html


def test_alerts_link_the_privacy_notice_in_their_language(runtime: Runtime, tmp_path: Path) -> None:
    campaigns.load_campaign(runtime.db, demo_dir() / "campaigns" / SLUG)
    readers = supporters_csv(tmp_path / "people.csv", 4)
    import_supporters(runtime.db, tmp_path / "people.csv")
    mailouts.launch_mailout(runtime.db, runtime.backend, SLUG, {}, {})
    alerts = sorted(runtime.settings.outbox_dir.glob("alert-*.eml"))
    assert len(alerts) == 4
    for path in alerts:
        alert = cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
        code = readers[alert["To"].addresses[0].addr_spec]
        url = f"https://act.example.org/{code}/privacy"
        assert f'href="{url}"' in alert.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert url in alert.get_body(("plain",)).get_content()  # type: ignore[union-attr]


#: In the page: every paragraph, heading and list item, its direction, and whether its last line sits on
#: its own start side; every list, and the padding on its start side (where its bullets hang); every
#: block with a language of its own, and the direction of the first letter of its text (isolated names
#: and marked runs left out, as dir="auto" leaves them out).
LAYOUT = """() => {
  const lines = [];
  for (const el of document.querySelectorAll('p, h2, li')) {
    const range = document.createRange();
    range.selectNodeContents(el);
    const rects = [...range.getClientRects()].filter(r => r.width > 0);
    if (!rects.length) continue;
    const bottom = Math.max(...rects.map(r => r.bottom));
    const last = rects.filter(r => bottom - r.bottom < 4);
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    const start = style.direction === 'rtl'
      ? box.right - parseFloat(style.borderRightWidth) - parseFloat(style.paddingRight) - Math.max(...last.map(r => r.right))
      : Math.min(...last.map(r => r.left)) - box.left - parseFloat(style.borderLeftWidth) - parseFloat(style.paddingLeft);
    lines.push({text: el.textContent.slice(0, 40), direction: style.direction, start: start});
  }
  const lists = [...document.querySelectorAll('ul, ol')].map(el => {
    const style = getComputedStyle(el);
    return {direction: style.direction,
            start: parseFloat(style.direction === 'rtl' ? style.paddingRight : style.paddingLeft)};
  });
  const blocks = [...document.querySelectorAll('div[lang]')].map(el => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll('bdi, [dir]').forEach(inner => inner.remove());
    const first = copy.textContent.match(/[A-Za-z\\u00C0-\\u024F]|[\\u0600-\\u06FF]/);
    return {lang: el.lang, dir: el.dir, direction: getComputedStyle(el).direction,
            script: first ? (/[\\u0600-\\u06FF]/.test(first[0]) ? 'rtl' : 'ltr') : null};
  });
  return {lines, lists, blocks, overflow: document.documentElement.scrollWidth - window.innerWidth};
}"""


@pytest.mark.integration
def test_each_block_lands_on_its_own_side_in_chromium(rt: Runtime, browser: object) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    for case in CASES:
        rt.settings.outbox_dir.mkdir(parents=True, exist_ok=True)
        for old in rt.settings.outbox_dir.glob("*.eml"):
            old.unlink()
        _, html, _ = parts(case_email(rt, case))
        path = SHOTS / f"{case}.html"
        path.write_text(html, encoding="utf-8")
        page.goto(path.as_uri())
        page.screenshot(path=str(SHOTS / f"{case}.png"), full_page=True)
        layout = page.evaluate(LAYOUT)
        assert layout["overflow"] <= 0, case
        for line in layout["lines"]:
            assert abs(line["start"]) < 1.5, (case, line)  # aligned to its own start side
        for listed in layout["lists"]:
            assert listed["start"] >= 20, (case, listed)  # room for the bullets on the start side
        for block in layout["blocks"]:
            assert block["direction"] == block["dir"] == REGISTRY[block["lang"]].direction, (case, block)
            assert block["script"] in (None, block["dir"]), (case, block)
    page.close()
