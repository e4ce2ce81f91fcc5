"""Campaign folders: parsing and validating them, storing them, and the translation completeness gate.

A folder holds ``campaign.yaml`` (the manifest) and one Markdown file per kind and locale, such as
``alert.ar.md`` or ``letter.ckb.md``, each starting with front matter (``subject``, ``preheader``), and
may hold the picture a chat shows when the page is shared: ``share.png`` (or ``.jpg``) for every language,
``share.ar.png`` for one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from markupsafe import Markup
from sqlalchemy import CompoundSelect, String, bindparam, cast, literal, null, select, union_all

from mailer.content import PLACEHOLDERS, find_unknown_placeholders, markdown_to_html
from mailer.errors import N_, CampaignError, CampaignProblem, LocaleError
from mailer.fields import FieldProblem, check_line
from mailer.governorates import find_governorate
from mailer.locales import LOCALE_CODES, get_locale
from mailer.rendering import AlertContent, RenderedEmail, Renderer
from mailer.sharing import MEDIA_TYPES, ImageProblem, ShareImage, check_image
from mailer.store import Database
from mailer.store import repository as repo
from mailer.store.models import SLUG, Campaign, CampaignContent, CampaignImage

MANIFEST = "campaign.yaml"
#: The kinds of text a campaign holds, and the placeholders each may use.
#: A ``page`` is the action page's own short text (what happened, what we ask); its ``subject:`` is the
#: line shown when the page is shared. Without one, the page shows the alert.
KINDS: dict[str, frozenset[str]] = {
    "alert": frozenset(PLACEHOLDERS),
    "letter": frozenset(),
    "page": frozenset(),
}
TRANSLATION_STATUSES = ("source", "draft", "reviewed")
MANIFEST_KEYS = (
    "slug",
    "title",
    "default_locale",
    "locales",
    "translations",
    "tracking",
    "targets",
    "pacing",
    "organisation",
    "goal",
    "names",
    "follow_up_days",
)
#: A name written once in the manifest and used in the texts as {key} (the activist's name, say).
_NAME_KEY = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
#: Pages that live where a campaign's page would (/LOCALE/SLUG).
RESERVED_SLUGS = frozenset({"privacy"})
#: The largest goal a campaign may set for its letters (a typo such as 10000000 is caught).
MAX_GOAL = 1_000_000
#: The latest a writer may be asked whether the officials answered (a letter's words are kept less long).
MAX_FOLLOW_UP_DAYS = 90
_HTTPS_URL = re.compile(r"^https://[^\s<>\"'\\]{3,290}$")
# "08:00-20:00"; an end of "24:00" means until midnight ("00:00-24:00": at any hour).
_HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")
_CONTENT_FILE = re.compile(r"^(?P<kind>[a-z]+)\.(?P<locale>[A-Za-z_-]+)\.md$")
_SHARE_IMAGE = re.compile(r"^share(\.(?P<locale>[A-Za-z_-]+))?\.(?P<ext>png|jpe?g)$", re.IGNORECASE)


@dataclass(frozen=True)
class ContentSpec:
    kind: str
    locale: str
    subject: str
    preheader: str
    body: str
    source_file: str


@dataclass(frozen=True)
class CampaignSpec:
    slug: str
    title: dict[str, str]
    default_locale: str
    locales: tuple[str, ...]
    translation_status: dict[str, str]
    contents: tuple[ContentSpec, ...]
    manifest: dict[str, Any] = field(default_factory=dict)
    images: tuple[ShareImage, ...] = ()


@dataclass(frozen=True)
class LocaleCompleteness:
    """What one locale of a campaign has, and whether a launch may use it."""

    locale: str
    enabled: bool
    translation_status: str
    title: bool
    alert: bool
    letter: bool
    needs_letter: bool

    @property
    def complete(self) -> bool:
        return self.title and self.alert and (self.letter or not self.needs_letter)

    @property
    def missing(self) -> list[str]:
        parts = [
            ("title", self.title),
            ("alert", self.alert),
            ("letter", self.letter or not self.needs_letter),
        ]
        return [name for name, present in parts if not present]


class _Problems:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.items: list[CampaignProblem] = []

    def add(self, file: str, line: int | None, message: str, **params: Any) -> None:
        self.items.append(CampaignProblem(file, line, message, **params))

    def fatal(self, file: str, line: int | None, message: str, **params: Any) -> CampaignError:
        self.add(file, line, message, **params)
        return CampaignError(str(self.folder), self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise CampaignError(str(self.folder), self.items)


def parse_campaign_folder(folder: Path) -> CampaignSpec:
    """Read and validate a campaign folder; every problem is reported with its file and line."""
    problems = _Problems(folder)
    if not folder.is_dir():
        raise problems.fatal(str(folder), None, N_("not a folder"))
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise problems.fatal(MANIFEST, None, N_("the manifest is missing"))
    data, lines = _read_yaml(manifest_path, problems)
    if not isinstance(data, dict):
        raise problems.fatal(
            MANIFEST, 1, N_("the manifest must be a mapping of keys such as slug, title, locales")
        )

    def line_of(*path: str) -> int:
        return lines.get(path, lines.get(path[:1], 1))

    slug = data.get("slug")
    if not isinstance(slug, str) or not SLUG.match(slug):
        problems.add(MANIFEST, line_of("slug"), N_("slug must be 3-100 characters of a-z, 0-9 and -"))
        slug = ""
    elif slug in RESERVED_SLUGS:
        problems.add(
            MANIFEST,
            line_of("slug"),
            N_("the address /LOCALE/%(slug)s is a page of its own: choose another slug"),
            slug=slug,
        )
        slug = ""

    locales: list[str] = []
    raw_locales = data.get("locales")
    if not isinstance(raw_locales, list) or not raw_locales:
        problems.add(
            MANIFEST,
            line_of("locales"),
            N_("locales must be a list such as [%(codes)s]"),
            codes=", ".join(LOCALE_CODES),
        )
    else:
        for raw in raw_locales:
            try:
                code = get_locale(str(raw)).code
            except LocaleError as err:
                problems.add(MANIFEST, line_of("locales"), err.template, **err.params)
                continue
            if code in locales:
                problems.add(MANIFEST, line_of("locales"), N_("locale %(code)s is listed twice"), code=code)
            locales.append(code)

    default_locale = ""
    try:
        default_locale = get_locale(str(data.get("default_locale", ""))).code
        if locales and default_locale not in locales:
            problems.add(
                MANIFEST,
                line_of("default_locale"),
                N_("default_locale %(code)s is not in locales"),
                code=default_locale,
            )
    except LocaleError as err:
        problems.add(MANIFEST, line_of("default_locale"), N_("default_locale: %(reason)s"), reason=err)

    title = _locale_mapping(data.get("title"), "title", problems, line_of)
    if default_locale and default_locale not in title:
        problems.add(
            MANIFEST,
            line_of("title"),
            N_("title has no text for the default locale %(code)s"),
            code=default_locale,
        )
    statuses = _locale_mapping(data.get("translations"), "translations", problems, line_of)
    for code in locales:
        status = statuses.get(code)
        if status is None:
            problems.add(
                MANIFEST,
                line_of("translations"),
                N_("translations has no status for %(code)s (one of %(choices)s)"),
                code=code,
                choices=", ".join(TRANSLATION_STATUSES),
            )
        elif status not in TRANSLATION_STATUSES:
            problems.add(
                MANIFEST,
                line_of("translations", code),
                N_("translation status of %(code)s must be one of %(choices)s, not '%(value)s'"),
                code=code,
                choices=", ".join(TRANSLATION_STATUSES),
                value=status,
            )

    unknown_keys = sorted(str(k) for k in data if k not in MANIFEST_KEYS)
    if unknown_keys:
        problems.add(
            MANIFEST,
            line_of(unknown_keys[0]),
            N_("unknown key(s) %(keys)s (known: %(known)s)"),
            keys=", ".join(unknown_keys),
            known=", ".join(MANIFEST_KEYS),
        )
    tracking = data.get("tracking", {})
    if not isinstance(tracking, dict) or any(
        k not in ("opens", "clicks") or not isinstance(v, bool) for k, v in tracking.items()
    ):
        problems.add(
            MANIFEST,
            line_of("tracking"),
            N_("tracking must be {opens: true or false, clicks: true or false}"),
        )
    _check_targets(data.get("targets"), problems, line_of)
    _check_pacing(data.get("pacing"), problems, line_of)
    _check_organisation(data.get("organisation"), problems, line_of)
    goal = data.get("goal")
    if goal is not None and (
        not isinstance(goal, int) or isinstance(goal, bool) or not 1 <= goal <= MAX_GOAL
    ):
        problems.add(
            MANIFEST,
            line_of("goal"),
            N_("goal must be a whole number of letters from 1 to %(max)d"),
            max=MAX_GOAL,
        )
    follow_up = data.get("follow_up_days")
    if follow_up is not None and (
        not isinstance(follow_up, int)
        or isinstance(follow_up, bool)
        or not 0 <= follow_up <= MAX_FOLLOW_UP_DAYS
    ):
        problems.add(
            MANIFEST,
            line_of("follow_up_days"),
            N_("follow_up_days must be a whole number of days from 0 (never ask) to %(max)d"),
            max=MAX_FOLLOW_UP_DAYS,
        )
    names = _check_names(data.get("names"), locales, problems, line_of)
    contents = _read_contents(folder, problems, names)
    images = _read_share_images(folder, problems)
    problems.raise_if_any()
    return CampaignSpec(
        slug=slug,
        title=title,
        default_locale=default_locale,
        locales=tuple(locales),
        translation_status=statuses,
        contents=tuple(contents),
        manifest=data,
        images=tuple(images),
    )


def _check_targets(value: Any, problems: _Problems, line_of: Any) -> None:
    if value is None:
        return
    fixed = value.get("fixed", []) if isinstance(value, dict) else None
    local = value.get("by_governorate", {}) if isinstance(value, dict) else None
    if not isinstance(fixed, list) or not isinstance(local, dict) or set(value) - {"fixed", "by_governorate"}:
        problems.add(
            MANIFEST,
            line_of("targets"),
            N_("targets must have fixed: [slugs] and/or by_governorate: {Governorate: [slugs]}"),
        )
        return
    for name, slugs in local.items():
        if find_governorate(str(name)) is None:
            problems.add(
                MANIFEST,
                line_of("targets", "by_governorate", str(name)),
                N_("unknown governorate '%(value)s'"),
                value=name,
            )
        elif not isinstance(slugs, list):
            problems.add(
                MANIFEST,
                line_of("targets", "by_governorate", str(name)),
                N_("give a list of officials' slugs"),
            )


def _check_organisation(value: Any, problems: _Problems, line_of: Any) -> None:
    """Who asks: shown at the top of the action page and in its footer, in each locale."""
    if value is None:
        return
    if not isinstance(value, dict) or "name" not in value or set(value) - {"name", "url"}:
        problems.add(
            MANIFEST,
            line_of("organisation"),
            N_("organisation must have name: {locale: text} and may have url: https://..."),
        )
        return
    _locale_mapping(value["name"], "organisation", problems, line_of, ("organisation", "name"))
    url = value.get("url")
    if url is not None and not (isinstance(url, str) and _HTTPS_URL.match(url)):
        problems.add(
            MANIFEST, line_of("organisation", "url"), N_("organisation url must be an https:// address")
        )


def _check_pacing(value: Any, problems: _Problems, line_of: Any) -> None:
    if value is None:
        return
    cap = value.get("per_target_per_hour", 30) if isinstance(value, dict) else None
    hours = str(value.get("hours", "08:00-20:00")) if isinstance(value, dict) else ""
    if not isinstance(cap, int) or cap < 1 or not _HOURS.match(hours) or hours[:5] >= hours[6:]:
        problems.add(
            MANIFEST,
            line_of("pacing"),
            N_('pacing must be {per_target_per_hour: a number from 1, hours: "08:00-20:00"}'),
        )


def _locale_mapping(
    value: Any, key: str, problems: _Problems, line_of: Any, path: tuple[str, ...] = ()
) -> dict[str, str]:
    """{locale: one line of text}; ``path`` is where the mapping sits in the manifest (``key`` by default)."""
    where = path or (key,)
    if value is None:
        problems.add(MANIFEST, line_of(*where), N_("%(key)s is missing: give one entry per locale"), key=key)
        return {}
    if not isinstance(value, dict):
        problems.add(MANIFEST, line_of(*where), N_("%(key)s must map each locale to a text"), key=key)
        return {}
    result: dict[str, str] = {}
    for raw_code, text in value.items():
        try:
            code = get_locale(str(raw_code)).code
        except LocaleError as err:
            problems.add(
                MANIFEST, line_of(*where, str(raw_code)), N_("%(key)s: %(reason)s"), key=key, reason=err
            )
            continue
        if not isinstance(text, str) or not text.strip():
            problems.add(
                MANIFEST,
                line_of(*where, str(raw_code)),
                N_("%(key)s.%(code)s must be a non-empty text"),
                key=key,
                code=raw_code,
            )
            continue
        try:  # titles go into headers ("<name> via <campaign>") and subjects
            result[code] = check_line(text, 300, html=True)
        except FieldProblem as refused:
            problems.add(
                MANIFEST,
                line_of(*where, str(raw_code)),
                N_("%(key)s: %(reason)s"),
                key=f"{key}.{code}",
                reason=refused,
            )
    return result


def _read_yaml(path: Path, problems: _Problems) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The document and the line of each mapping key, for error messages."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise problems.fatal(
            path.name, None, N_("not UTF-8 text (at byte %(byte)d); save it as UTF-8"), byte=err.start
        ) from err
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else 1
        raise problems.fatal(
            path.name, line, N_("invalid YAML: %(reason)s"), reason=str(err.problem)
        ) from err
    lines: dict[tuple[str, ...], int] = {}

    def walk(current: Any, prefix: tuple[str, ...]) -> None:
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = (*prefix, str(key_node.value))
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)

    walk(node, ())
    return data, lines


def _check_names(value: Any, locales: Any, problems: _Problems, line_of: Any) -> dict[str, dict[str, str]]:
    """``names: {key: {reviewed: true|false, <locale>: text, ...}}``: one spelling per language, kept in one
    place, and whether the campaign has confirmed it (a launch names those it has not)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(MANIFEST, line_of("names"), N_("names must map a key such as activist to its spellings"))
        return {}
    names: dict[str, dict[str, str]] = {}
    for key, entry in value.items():
        if not isinstance(key, str) or not _NAME_KEY.match(key) or key in PLACEHOLDERS:
            problems.add(
                MANIFEST,
                line_of("names", str(key)),
                N_("names: '%(key)s' must be a-z, 0-9 and _ and not one of %(taken)s"),
                key=key,
                taken=", ".join(sorted(PLACEHOLDERS)),
            )
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("reviewed"), bool):
            problems.add(
                MANIFEST,
                line_of("names", key),
                N_("names.%(key)s needs reviewed: true or false, then one spelling per locale"),
                key=key,
            )
            continue
        spellings = {k: v for k, v in entry.items() if k != "reviewed"}
        found = _locale_mapping(spellings, f"names.{key}", problems, line_of, ("names", key))
        for code in locales if isinstance(locales, list) else ():
            if code not in found and code in LOCALE_CODES:
                problems.add(
                    MANIFEST,
                    line_of("names", key),
                    N_("names.%(key)s has no spelling in %(code)s"),
                    key=key,
                    code=code,
                )
        names[key] = found
    return names


def _read_contents(
    folder: Path, problems: _Problems, names: Mapping[str, Mapping[str, str]]
) -> list[ContentSpec]:
    contents: list[ContentSpec] = []
    seen: dict[tuple[str, str], str] = {}
    for path in sorted(folder.glob("*.md")):
        match = _CONTENT_FILE.match(path.name)
        if not match or match["kind"] not in KINDS:
            problems.add(
                path.name,
                None,
                N_("content files are named KIND.LOCALE.md with KIND one of %(kinds)s"),
                kinds=", ".join(KINDS),
            )
            continue
        try:
            locale = get_locale(match["locale"]).code
        except LocaleError as err:
            problems.add(path.name, None, err.template, **err.params)
            continue
        kind = match["kind"]
        if (kind, locale) in seen:
            problems.add(
                path.name,
                None,
                N_("the %(kind)s in %(code)s is already given by %(other)s"),
                kind=kind,
                code=locale,
                other=seen[kind, locale],
            )
            continue
        seen[kind, locale] = path.name
        content = _read_content_file(path, kind, locale, problems, names)
        if content is not None:
            contents.append(content)
    return contents


def _read_share_images(folder: Path, problems: _Problems) -> list[ShareImage]:
    images: dict[str, ShareImage] = {}
    for path in sorted(folder.iterdir()):
        match = _SHARE_IMAGE.match(path.name)
        if not match:
            continue
        try:
            locale = get_locale(match["locale"]).code if match["locale"] else ""
            if locale in images:
                raise ImageProblem(N_("a second share image for the same language"))
            data = path.read_bytes()
            media_type = MEDIA_TYPES[match["ext"].lower()]
            check_image(data, media_type)
        except (LocaleError, ImageProblem) as err:
            problems.add(path.name, None, err.template, **err.params)
            continue
        images[locale] = ShareImage(locale, media_type, data)
    return list(images.values())


def _read_content_file(
    path: Path, kind: str, locale: str, problems: _Problems, names: Mapping[str, Mapping[str, str]]
) -> ContentSpec | None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        problems.add(
            path.name, None, N_("not UTF-8 text (at byte %(byte)d); save it as UTF-8"), byte=err.start
        )
        return None
    # The manifest's names go in as the texts load: every later step sees one finished text.
    for key, spellings in names.items():
        if locale in spellings:
            text = text.replace("{" + key + "}", spellings[locale])
    return _parse_content(text, path, kind, locale, problems)


def _parse_content(text: str, path: Path, kind: str, locale: str, problems: _Problems) -> ContentSpec | None:
    """A content file's text (front matter, then Markdown): the same checks wherever it comes from."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        problems.add(
            path.name, 1, N_("the file must start with front matter: a line ---, subject: ..., then ---")
        )
        return None
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---")
    except StopIteration:
        problems.add(path.name, 1, N_("the front matter is not closed by a line ---"))
        return None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 2 if err.problem_mark else 1
        problems.add(path.name, line, N_("invalid front matter: %(reason)s"), reason=str(err.problem))
        return None
    if not isinstance(meta, dict):
        problems.add(path.name, 2, N_("the front matter must be keys such as subject: and preheader:"))
        return None
    unknown_keys = set(meta) - {"subject", "preheader"}
    if unknown_keys:
        problems.add(
            path.name,
            2,
            N_("unknown front matter key(s): %(keys)s"),
            keys=", ".join(sorted(map(str, unknown_keys))),
        )
    subject = meta.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        problems.add(path.name, 2, N_("subject is missing from the front matter"))
        return None
    preheader = meta.get("preheader") or ""
    if not isinstance(preheader, str):
        problems.add(path.name, 2, N_("preheader must be a text"))
        return None
    for name, value in (("subject", subject), ("preheader", preheader)):
        if "\n" in value.strip() or len(value) > 300:
            problems.add(path.name, 2, N_("%(key)s must be one line of at most 300 characters"), key=name)
            continue
        try:  # the subject becomes a header: the same check as every field people give us
            check_line(value, 300, required=False, html=True)
        except FieldProblem as refused:
            problems.add(path.name, 2, N_("%(key)s: %(reason)s"), key=name, reason=refused)
    body_lines = lines[end + 1 :]
    skipped = next((i for i, line in enumerate(body_lines) if line.strip()), len(body_lines))
    body = "\n".join(body_lines[skipped:]).rstrip("\n")
    body_first_line = end + 2 + skipped
    if not body.strip():
        problems.add(path.name, end + 2, N_("the body is empty"))
    allowed = KINDS[kind]
    key_line = {key: _line_of_key(lines[:end], key) for key in ("subject", "preheader")}
    parts = ((subject, key_line["subject"]), (preheader, key_line["preheader"]), (body, body_first_line))
    for text_part, first_line in parts:
        for problem in find_unknown_placeholders(text_part, allowed, first_line):
            known = ", ".join("{" + p + "}" for p in sorted(allowed)) or "none"
            problems.add(
                path.name,
                problem.line,
                N_("unknown placeholder %(text)s (allowed in the %(kind)s: %(known)s)"),
                text=problem.text,
                kind=kind,
                known=known,
            )
    return ContentSpec(kind, locale, subject.strip(), preheader.strip(), body + "\n", path.name)


MAX_CONTENT_CHARS = 200_000


def content_file_name(kind: str, locale: str) -> str:
    return f"{kind}.{locale}.md"


def check_content(kind: str, locale: str, text: str) -> tuple[ContentSpec | None, list[CampaignProblem]]:
    """A content file edited in the browser, checked exactly as ``campaign load`` checks a file."""
    if kind not in KINDS:
        raise CampaignError(kind, [CampaignProblem(kind, None, N_("unknown kind of content"))])
    code = get_locale(locale).code
    name = content_file_name(kind, code)
    problems = _Problems(Path(name))
    if len(text) > MAX_CONTENT_CHARS:
        problems.add(name, None, N_("longer than %(num)d characters"), num=MAX_CONTENT_CHARS)
        return None, problems.items
    spec = _parse_content(text.replace("\r\n", "\n"), Path(name), kind, code, problems)
    return (spec if not problems.items else None), problems.items


def content_text(db: Database, slug: str, kind: str, locale: str) -> str:
    """The stored content of one kind and locale as the file a coordinator edits (empty if none)."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        if (kind, locale) not in repo.content_kinds(session, campaign.id):
            return "---\nsubject: \n---\n\n"
        content = repo.get_content(session, campaign.id, kind, locale)
        meta = {"subject": content.subject, **({"preheader": content.preheader} if content.preheader else {})}
        # A JSON string is a YAML double-quoted scalar: any quote or colon in the text stays safe.
        front = "".join(f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in meta.items())
        return f"---\n{front}---\n\n{content.body}"


def save_content(db: Database, slug: str, kind: str, locale: str, text: str) -> int:
    """Store an edited content file as a new version of it (mailouts already launched keep the text they
    launched with); the new version number. Refused whole, with every problem by line, if invalid."""
    spec, problems = check_content(kind, locale, text)
    if spec is None:
        raise CampaignError(content_file_name(kind, locale), problems)
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        return repo.save_content(session, campaign.id, spec)


def content_versions(db: Database, slug: str) -> dict[tuple[str, str], int]:
    """The version of each (kind, locale) of a campaign."""
    with db.session() as session:
        return repo.content_versions(session, repo.get_campaign(session, slug).id)


# Built once: on every request, building the statement would cost more than running it. One statement,
# the campaign's row with each text's version, then each share image's digest ("~image" is no kind).
_PAGE_VERSION: CompoundSelect[Any] = union_all(
    select(
        Campaign.updated_at,
        CampaignContent.kind,
        CampaignContent.locale,
        cast(CampaignContent.version, String),
    )
    .outerjoin(CampaignContent, CampaignContent.campaign_id == Campaign.id)
    .where(Campaign.slug == bindparam("slug")),
    select(null(), literal("~image"), CampaignImage.locale, CampaignImage.digest)
    .join(Campaign, CampaignImage.campaign_id == Campaign.id)
    .where(Campaign.slug == bindparam("slug")),
)


def page_version(db: Database, slug: str) -> frozenset[tuple[object, ...]] | None:
    """What a cached action page of the campaign depends on (the campaign's row, each text's version,
    each share image's digest): cheap enough to ask on every request, so that a reload or an edit shows
    at once. None for an unknown campaign."""
    # A bare connection, no ORM session: one read, about a tenth of a millisecond.
    with db.engine.connect() as connection:
        rows = connection.execute(_PAGE_VERSION, {"slug": slug}).all()
    return frozenset(tuple(row) for row in rows) or None


def preview_html(
    db: Database,
    renderer: Renderer,
    slug: str,
    kind: str,
    locale: str,
    today: dt.date,
    draft: ContentSpec | None = None,
) -> str:
    """One locale's alert as its readers will see it (or a letter's text), from the stored content or from
    an unsaved draft; personal values are the preview's made-up ones."""
    code = get_locale(locale).code
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        title = dict(campaign.title)
        title_text = title.get(code) or title.get(campaign.default_locale, slug)
        if draft is None:
            stored = repo.get_content(session, campaign.id, kind, code)
            draft = ContentSpec(kind, code, stored.subject, stored.preheader, stored.body, stored.source_file)
    if kind == "alert":
        return str(_preview_alert(renderer, title_text, draft, code, today).html)
    # markdown-it with raw HTML off: the body is HTML it wrote itself, never the text's own markup.
    body_html = Markup(markdown_to_html(draft.body, get_locale(code).is_rtl))  # noqa: S704
    return renderer.render_page(
        "preview/letter.html", {"subject": draft.subject, "body_html": body_html}, code
    )


def _preview_alert(renderer: Renderer, title: str, content: Any, code: str, today: dt.date) -> RenderedEmail:
    prepared = renderer.render_alert(
        AlertContent(title, content.subject, content.preheader, content.body), code, today
    )
    name = PREVIEW_NAMES[code]
    return prepared.personalise(
        {
            "first_name": name.split()[0],
            "name": name,
            "governorate": "",
            "action_url": "#",
            "unsubscribe_url": "#",
        }
    )


def _line_of_key(front_matter: list[str], key: str) -> int:
    return next((i + 1 for i, line in enumerate(front_matter) if line.startswith(f"{key}:")), 2)


def load_campaign(db: Database, folder: Path) -> tuple[CampaignSpec, bool]:
    """Validate a folder and store it (replacing an earlier load of the same slug); True when new."""
    spec = parse_campaign_folder(folder)
    with db.session() as session:
        created = repo.save_campaign(session, spec)
    return spec, created


def completeness(db: Database, slug: str) -> list[LocaleCompleteness]:
    """Per locale (enabled ones first): title, alert and letter present or not."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        present = repo.content_kinds(session, campaign.id)
    needs_letter = any(kind == "letter" for kind, _ in present)
    codes = list(campaign.locales) + [c for c in LOCALE_CODES if c not in campaign.locales]
    report = []
    for code in codes:
        enabled = code in campaign.locales
        has_any = enabled or any(locale == code for _, locale in present)
        if not has_any:
            continue
        report.append(
            LocaleCompleteness(
                locale=code,
                enabled=enabled,
                translation_status=campaign.translation_status.get(code, "-"),
                title=code in campaign.title,
                alert=("alert", code) in present,
                letter=("letter", code) in present,
                needs_letter=needs_letter,
            )
        )
    return report


@dataclass(frozen=True)
class CampaignSummary:
    slug: str
    title: dict[str, str]
    locales: list[str]
    translation_status: dict[str, str]


def list_campaigns(db: Database) -> list[CampaignSummary]:
    """Every stored campaign, by slug."""
    with db.session() as session:
        return [
            CampaignSummary(c.slug, dict(c.title), list(c.locales), dict(c.translation_status))
            for c in repo.list_campaigns(session)
        ]


#: Names that previews and test messages show in place of a supporter's.
PREVIEW_NAMES = {"en": "Sarah Miller", "ar": "زينب حسن", "ckb": "شیلان ئەحمەد", "kmr": "Rojda Şêxo"}


def preview_campaign(db: Database, renderer: Renderer, slug: str, out: Path, today: dt.date) -> list[Path]:
    """Every locale's alert as HTML and text in ``out``, and an index.html showing them side by side."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        codes = [c for c in LOCALE_CODES if ("alert", c) in repo.content_kinds(session, campaign.id)]
        contents = {c: repo.get_content(session, campaign.id, "alert", c) for c in codes}
        title, default = dict(campaign.title), campaign.default_locale
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for code in codes:
        email = _preview_alert(renderer, title.get(code, title[default]), contents[code], code, today)
        (out / f"{code}.html").write_text(email.html, encoding="utf-8")
        (out / f"{code}.txt").write_text(f"{email.subject}\n\n{email.text}", encoding="utf-8")
        written += [out / f"{code}.html", out / f"{code}.txt"]
    index = renderer.render_page(
        "preview/index.html",
        {
            "slug": slug,
            "locales": [get_locale(c) for c in codes],
            "subjects": {c: contents[c].subject for c in codes},
        },
    )
    (out / "index.html").write_text(index, encoding="utf-8")
    return [out / "index.html", *written]


def enabled_locales(db: Database, slug: str) -> list[str]:
    with db.session() as session:
        return list(repo.get_campaign(session, slug).locales)


@dataclass(frozen=True)
class ShareCard:
    """What a shared link of the campaign's page shows in one language."""

    title: str
    text: str  # the page's share line, else the title
    organisation: str | None
    image: str | None  # the share image's digest (its address changes with it), None without one


def share_card(db: Database, slug: str, code: str) -> ShareCard:
    """The campaign's share card in a language; NotFoundError for an unknown campaign."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        title = campaign.title.get(code) or campaign.title[campaign.default_locale]
        page = (
            repo.get_content(session, campaign.id, "page", code)
            if ("page", code) in repo.content_kinds(session, campaign.id)
            else None
        )
        image = repo.share_image(session, campaign.id, code)
        names = (campaign.manifest.get("organisation") or {}).get("name") or {}
        return ShareCard(
            title=title,
            text=page.subject if page is not None else title,
            organisation=names.get(code) or names.get(campaign.default_locale),
            image=image.digest if image is not None else None,
        )


def share_image(db: Database, slug: str, code: str) -> ShareImage | None:
    """The picture for a shared link in this language (its own, else the campaign's), or None."""
    with db.session() as session:
        campaign = repo.get_campaign(session, slug)
        row = repo.share_image(session, campaign.id, code)
        return ShareImage(row.locale, row.media_type, row.data) if row is not None else None
