import shutil
import struct
from gettext import NullTranslations
from pathlib import Path

import pytest

from mailer import campaigns, mailouts, sharing
from mailer.errors import CampaignError
from mailer.resources import demo_dir
from mailer.store import Database

SEED = demo_dir() / "campaigns" / "protect-hrds-iraq"


def copy_seed(tmp_path: Path) -> Path:
    folder = tmp_path / "campaign"
    shutil.copytree(SEED, folder)
    return folder


def test_seed_campaign_is_complete_and_marked_draft() -> None:
    spec = campaigns.parse_campaign_folder(SEED)
    assert spec.slug == "protect-hrds-iraq"
    assert spec.locales == ("en", "ar", "ckb", "kmr")
    assert spec.translation_status == {"en": "source", "ar": "draft", "ckb": "draft", "kmr": "draft"}
    assert {(c.kind, c.locale) for c in spec.contents} == {
        (kind, code) for kind in ("alert", "letter", "page") for code in ("en", "ar", "ckb", "kmr")
    }
    english = next(c for c in spec.contents if c.kind == "alert" and c.locale == "en")
    assert "Jassem Al-Amiri" in english.body
    assert "Supreme Judicial Council" in english.body


def test_unknown_placeholder_names_file_and_line(tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    path = folder / "alert.ckb.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(6, "سڵاو {frist_name}")
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(CampaignError, match=r"alert\.ckb\.md:7: unknown placeholder \{frist_name\}"):
        campaigns.parse_campaign_folder(folder)


def test_placeholders_are_refused_in_letters(tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    path = folder / "letter.en.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nFrom {name}\n", encoding="utf-8")
    with pytest.raises(CampaignError, match=r"letter\.en\.md:\d+: unknown placeholder \{name\}"):
        campaigns.parse_campaign_folder(folder)


def test_manifest_errors_name_the_line(tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    manifest = folder / "campaign.yaml"
    text = manifest.read_text(encoding="utf-8").replace(
        "locales: [en, ar, ckb, kmr]", "locales: [en, ar, ku, kmr]"
    )
    manifest.write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if row.startswith("locales:"))
    with pytest.raises(CampaignError, match=rf"campaign\.yaml:{line}: locale 'ku' is ambiguous"):
        campaigns.parse_campaign_folder(folder)


def test_broken_yaml_and_front_matter(tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    (folder / "alert.en.md").write_text("no front matter\n", encoding="utf-8")
    (folder / "campaign.yaml").write_text("slug: [unclosed\n", encoding="utf-8")
    with pytest.raises(CampaignError, match=r"campaign\.yaml:\d+: invalid YAML"):
        campaigns.parse_campaign_folder(folder)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    (folder / "alert.en.md").write_text("no front matter\n", encoding="utf-8")
    (folder / "alert.fr.md").write_text("---\nsubject: x\n---\nbody\n", encoding="utf-8")
    with pytest.raises(CampaignError) as caught:
        campaigns.parse_campaign_folder(folder)
    message = str(caught.value)
    assert "alert.en.md:1: the file must start with front matter" in message
    assert "alert.fr.md: unknown locale 'fr'" in message


def test_load_then_check_completeness(db: Database, tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    (folder / "alert.kmr.md").unlink()
    spec, created = campaigns.load_campaign(db, folder)
    assert created
    report = {row.locale: row for row in campaigns.completeness(db, spec.slug)}
    assert report["ar"].complete
    assert not report["kmr"].complete
    assert report["kmr"].missing == ["alert"]
    _, created_again = campaigns.load_campaign(db, SEED)
    assert not created_again
    assert all(row.complete for row in campaigns.completeness(db, spec.slug))


def test_manifest_typos_and_bad_tracking_are_caught(tmp_path: Path) -> None:
    folder = copy_seed(tmp_path)
    manifest = folder / "campaign.yaml"
    manifest.write_text(
        manifest.read_text(encoding="utf-8") + "tracking: {opens: yes please}\ndefault_lcoale: en\n",
        encoding="utf-8",
    )
    with pytest.raises(CampaignError) as caught:
        campaigns.parse_campaign_folder(folder)
    assert "unknown key(s) default_lcoale" in str(caught.value)
    assert "tracking must be" in str(caught.value)


@pytest.mark.parametrize(
    ("replace", "by", "expected", "on_line_with"),
    [
        ("goal: 1000", "goal: 10000000", "goal must be a whole number of letters from 1 to 1000000", "goal:"),
        ("goal: 1000", "goal: yes", "goal must be a whole number", "goal:"),
        ("slug: protect-hrds-iraq", "slug: privacy", "/LOCALE/privacy is a page of its own", "slug:"),
        ("goal: 1000", "goal: -5", "goal must be a whole number", "goal:"),
        ('url: "https://example.org/"', 'url: "javascript:alert(1)"', "organisation url must be", "url:"),
        (
            'url: "https://example.org/"',
            'url: "https://example.org/\\"><script>"',
            "organisation url",
            "url:",
        ),
        ('url: "https://example.org/"', "logo: x.png", "organisation must have name", "organisation:"),
        ('    en: "Example Solidarity Network"', '    en: "\u202eExample"', "organisation.en", "Example"),
    ],
)
def test_who_asks_and_the_goal_are_checked_and_named_by_line(
    tmp_path: Path, replace: str, by: str, expected: str, on_line_with: str
) -> None:
    folder = copy_seed(tmp_path)
    manifest = folder / "campaign.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert replace in text
    text = text.replace(replace, by)
    manifest.write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if on_line_with in row)
    with pytest.raises(CampaignError) as caught:
        campaigns.parse_campaign_folder(folder)
    assert expected in str(caught.value)
    assert f"campaign.yaml:{line}:" in str(caught.value)


def _png(width: int, height: int, padding: int = 0) -> bytes:
    """A PNG's signature and header chunk: all the checks read (chats would read the rest)."""
    return (
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + struct.pack(">II", width, height) + b"\x00" * padding
    )


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof0 = b"\xff\xc0" + struct.pack(">HBHH", 11, 8, height, width) + b"\x01\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def test_the_seed_has_a_share_image_per_language() -> None:
    spec = campaigns.parse_campaign_folder(SEED)
    assert sorted(image.locale for image in spec.images) == ["ar", "ckb", "en", "kmr"]
    assert {image.media_type for image in spec.images} == {"image/png"}


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("share.png", _png(1200, 630, padding=sharing.MAX_IMAGE_BYTES), "at most 600000"),
        ("share.png", _png(150, 630), "150 x 630 pixels"),
        ("share.jpg", _jpeg(1200, 100), "1200 x 100 pixels"),
        ("share.png", _jpeg(1200, 630), "not the image its name says"),
        ("share.jpeg", b"<svg></svg>", "not the image its name says"),
        ("share.xx.png", _png(1200, 630), "xx"),
    ],
)
def test_a_share_image_a_chat_would_not_show_is_named(
    tmp_path: Path, name: str, data: bytes, expected: str
) -> None:
    folder = copy_seed(tmp_path)
    (folder / name).write_bytes(data)
    with pytest.raises(CampaignError) as caught:
        campaigns.parse_campaign_folder(folder)
    (problem,) = caught.value.problems
    assert problem.file == name
    assert expected in problem.render(NullTranslations())


def test_a_jpeg_for_every_language_and_a_png_for_one(tmp_path: Path, db: Database) -> None:
    folder = copy_seed(tmp_path)
    for old in folder.glob("share.*"):
        old.unlink()
    (folder / "share.jpg").write_bytes(_jpeg(1200, 630))
    (folder / "share.ar.png").write_bytes(_png(1200, 630))
    campaigns.load_campaign(db, folder)
    arabic = campaigns.share_image(db, "protect-hrds-iraq", "ar")
    kurmanji = campaigns.share_image(db, "protect-hrds-iraq", "kmr")
    assert arabic is not None
    assert arabic.media_type == "image/png"
    assert kurmanji is not None
    assert kurmanji.media_type == "image/jpeg"
    (folder / "share.jpg").unlink()
    campaigns.load_campaign(db, folder)  # a reload replaces the images
    assert campaigns.share_image(db, "protect-hrds-iraq", "kmr") is None
    card = campaigns.share_card(db, "protect-hrds-iraq", "kmr")
    assert card.image is None
    assert card.organisation
    assert campaigns.share_card(db, "protect-hrds-iraq", "ar").image == arabic.digest


NAMES = """names:
  activist:
    reviewed: false
    en: "Jassem Al-Amiri"
    ar: "جاسم الأميري"
    ckb: "جاسم ئەلئەمیری"
    kmr: "Casim El-Emîrî"
"""


def test_a_name_is_spelled_once_in_the_manifest_and_used_in_every_text(tmp_path: Path, db: Database) -> None:
    folder = copy_seed(tmp_path)
    manifest = folder / "campaign.yaml"
    text = manifest.read_text(encoding="utf-8")
    if "names:" not in text:
        manifest.write_text(text + NAMES, encoding="utf-8")
    for code in ("en", "ar", "ckb", "kmr"):
        page = folder / f"page.{code}.md"
        page.write_text(page.read_text(encoding="utf-8") + "\n{activist}\n", encoding="utf-8")
    spec = campaigns.parse_campaign_folder(folder)
    pages = {c.locale: c.body for c in spec.contents if c.kind == "page"}
    assert "جاسم الأميري" in pages["ar"]
    assert "Casim El-Emîrî" in pages["kmr"]
    assert not any("{activist}" in body for body in pages.values())
    campaigns.load_campaign(db, folder)
    plan = mailouts.plan_mailout(db, "protect-hrds-iraq", {}, {})
    assert plan.unreviewed_names == ("activist",)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ('names:\n  activist:\n    reviewed: no\n    en: "A"\n', "has no spelling in ar"),
        ('names:\n  activist:\n    en: "A"\n', "needs reviewed: true or false"),
        ("names:\n  first_name:\n    reviewed: true\n", "'first_name' must be"),
        (
            'names:\n  activist:\n    reviewed: true\n    en: "A"\n    ar: "\\u202eB"\n    ckb: "C"\n    kmr: "D"\n',
            "names.activist.ar",
        ),
    ],
)
def test_a_name_without_every_spelling_or_a_review_state_is_refused(
    tmp_path: Path, names: str, expected: str
) -> None:
    folder = copy_seed(tmp_path)
    manifest = folder / "campaign.yaml"
    text = manifest.read_text(encoding="utf-8")
    text = text.split("names:")[0] if "names:" in text else text
    manifest.write_text(text + names, encoding="utf-8")
    with pytest.raises(CampaignError) as caught:
        campaigns.parse_campaign_folder(folder)
    assert expected in str(caught.value)
