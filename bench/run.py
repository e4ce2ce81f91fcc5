"""Every benchmark in one run, written to bench/RESULTS.md (by this script, never by hand). Asserts nothing.

    .venv/bin/python bench/run.py [--recipients 100000] [--runs 2]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/bench_run] [--skip letters,pages]

The mailout benchmark (``bench/mailout.py``: the engine beside B0, B0+sign, B3 and B1, launch against its
floor, SMTP, requests at defaults, worker memory) runs on SQLite and, given ``--postgres-url``, on
PostgreSQL (the databases it needs are created beside the one named, then dropped). Then the letters and
pages benchmarks, when present: each module's ``sections(args)`` gets this script's arguments (an
``argparse.Namespace`` with ``recipients``, ``runs``, ``postgres_url``, ``skip`` and the rest below).
``--skip`` takes ``mailout``, ``letters``, ``pages`` and the mailout's own parts
(``launch,engine,b0,b0sign,b3,b1,smtp,defaults``). ``--recipients 1000000`` adds the 1M comparison (one
more engine run at ``--compare`` recipients).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import shlex
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import mailout  # noqa: E402
from bench.report import BENCH, Section, machine, write_results  # noqa: E402

PACKAGES = (
    "celery",
    "kombu",
    "redis",
    "SQLAlchemy",
    "psycopg",
    "httpx",
    "sendgrid",
    "itsdangerous",
    "Jinja2",
    "css-inline",
    "aiosmtpd",
)
OTHERS = ("letters", "pages")


def versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def command_line() -> str:
    """The command as it can be typed again from the repository (no path of this machine)."""
    interpreter = Path(sys.executable)
    shown = ".venv/bin/python" if ROOT / ".venv" in interpreter.parents else "python"
    return shlex.join([shown, "bench/run.py", *sys.argv[1:]])


def other_sections(name: str, args: argparse.Namespace, skip: set[str]) -> tuple[list[Section], str]:
    """A sibling benchmark's sections, or the line that says why there are none."""
    if name in skip:
        return [], f"- `bench/{name}.py`: skipped (`--skip`)."
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"bench.{name}":
            return [], f"- `bench/{name}.py`: not present in this checkout."
        return [], f"- `bench/{name}.py`: cannot be imported ({err})."
    try:
        return list(module.sections(args)), f"- `bench/{name}.py`: below."
    except (Exception, SystemExit) as err:  # one benchmark that cannot run never loses the others' figures
        traceback.print_exc()
        return [], f"- `bench/{name}.py`: did not run ({type(err).__name__}: {err})."


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mailout.add_arguments(parser)
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (postgresql://user@host:port/name)")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md", help="default: bench/RESULTS.md")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    command = command_line()
    sections: list[Section] = []
    notes: list[str] = []
    if "mailout" in skip:
        notes.append("- `bench/mailout.py`: skipped (`--skip`).")
    else:
        databases: list[str | None] = [None]
        if args.postgres_url:
            databases.append(args.postgres_url)
        for database in databases:
            found = mailout.sections(args, database, command)
            for section in found:
                print("\n" + section.markdown(), flush=True)
            sections += found
    for name in OTHERS:
        found, note = other_sections(name, args, skip)
        notes.append(note)
        for section in found:
            print("\n" + section.markdown(), flush=True)
        sections += found
    million = BENCH / "RESULTS-1M.md"
    if args.output.resolve() != million.resolve() and million.exists():
        notes.append(
            "- 1,000,000 recipients: `bench/RESULTS-1M.md`, written by this script (`--recipients 1000000 "
            "--output bench/RESULTS-1M.md`); its first lines name its commit."
        )
    intro = "\n".join(
        [
            f"Written by `bench/run.py` on {dt.date.today().isoformat()}; nothing in it is asserted: these are "
            "measurements, and the ratios (from one run, on one machine) are what compares.",
            "",
            f"Machine: {machine()}.",
            f"Packages: {versions()}.",
            "",
            f"Command: `{command}`",
            "",
            *notes,
        ]
    )
    write_results(args.output, "Benchmark results", intro, sections)
    print("\n" + "\n".join(notes))
    print(
        f"\nwritten: {args.output.resolve().relative_to(ROOT) if ROOT in args.output.resolve().parents else args.output}"
    )


if __name__ == "__main__":
    main()
