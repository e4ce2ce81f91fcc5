"""Synthetic supporters for tests: names in each locale's script, addresses on example.org only."""

from __future__ import annotations

from pathlib import Path

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
