"""What every benchmark hands to the results file: figures beside their baselines, and the machine they ran on.

A benchmark measures; this module only formats. ``bench/RESULTS.md`` is written from these sections by the
scripts themselves, never by hand, and nothing here asserts anything about time.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Row:
    """One figure of the issue's targets table: what was measured, its baseline, and how they compare."""

    figure: str
    measured: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""


@dataclass
class Section:
    """A benchmark's part of the results file: the command that produced it and its tables."""

    title: str
    command: str
    body: str
    rows: list[Row] = field(default_factory=list)
    #: What follows the rows (a fuller table of every run, notes on reading them).
    footer: str = ""

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", f"`{self.command}`", "", self.body.rstrip()]
        if self.rows:
            parts += ["", table(self.rows)]
        if self.footer:
            parts += ["", self.footer.rstrip()]
        return "\n".join(parts) + "\n"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table of rows, the columns padded so that the file reads as well as it renders."""
    header = ("figure", "measured", "baseline", "ratio", "target")
    cells = [header] + [(r.figure, r.measured, r.baseline, r.ratio, r.target) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of any columns (a benchmark's fuller table of every run), padded like :func:`table`."""
    cells = [tuple(header)] + [tuple(row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def min_median(values: Sequence[float]) -> tuple[float, float]:
    """The best and the typical of repeated runs (at least two are asked of every figure)."""
    return min(values), statistics.median(values)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def source() -> str:
    """The commit measured, and whether the checkout held changes beside it."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, cwd=BENCH
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
        cwd=BENCH,
    ).stdout.strip()
    return f"commit {commit or '?'}" + (" with uncommitted changes" if dirty else "")


def machine() -> str:
    """The machine and the versions that matter, for the header of a results file."""
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
    redis_version = next((w.removeprefix("v=") for w in redis.stdout.split() if w.startswith("v=")), "?")
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}; Redis {redis_version}; {source()}"
    )


def write_results(path: Path, title: str, intro: str, sections: Sequence[Section]) -> None:
    """Write a results file whole (atomically): a reader never sees half of one."""
    text = "\n".join([f"# {title}", "", intro.rstrip(), "", *[s.markdown() for s in sections]])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
