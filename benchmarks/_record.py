"""Shared helpers for benchmarks: the machine, the commit, and writing result sections.

A benchmark prints its figures and records them as a markdown section (date, commit, command,
machine, then the table).  By default the section is appended to ``results/NAME.md``, the
history; with ``out`` it is written to that file alone, which is how ``run_all.py`` collects
the sections of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line naming the CPU, core count and memory of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}"


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def commit() -> str:
    """The short hash of the checked-out commit, with ``+dirty`` when files differ from it."""
    here = Path(__file__).resolve().parent

    def git(*arguments: str) -> str:
        done = subprocess.run(
            ["git", *arguments], capture_output=True, text=True, check=True, cwd=here
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table of ``rows`` under ``header``."""
    return "\n".join(
        [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(str(value) for value in row) + " |" for row in rows),
        ]
    )


def record_section(
    name: str, body: str, out: str | Path | None = None, notes: list[str] | None = None
) -> Path:
    """Record one run: a dated section with the command, commit, machine, ``notes`` and ``body``.

    Parameters
    ----------
    name : str
        The benchmark; without ``out`` the section is appended to ``results/NAME.md``.
    body : str
        Markdown: the table and whatever follows it.
    out : path, optional
        Write the section to this file instead (replacing it).
    notes : list of str, optional
        Extra bullet lines (protocol, seeds) under the command and machine.
    """
    command = " ".join(shlex.quote(arg) for arg in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [
        f"## {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}",
        "",
        f"- command: `python {command}`",
        f"- machine: {machine()}",
        *(f"- {note}" for note in notes or []),
        "",
        body.rstrip("\n"),
        "",
    ]
    text = "\n".join(lines) + "\n"
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    if not path.exists():
        path.write_text(f"# {name} benchmark record\n\nNewest last.\n\n", encoding="utf-8")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
    return path


def add_record_options(parser: argparse.ArgumentParser, cases: bool = False) -> None:
    """The options :func:`record_run` reads (``--out``, ``--no-record``), and with ``cases``
    the hidden ``--case`` of :func:`run_in_child` (see :func:`answer_case`)."""
    parser.add_argument("--no-record", action="store_true", help="print only, append nothing")
    parser.add_argument("--out", type=Path, help="write the section to this file instead")
    if cases:
        parser.add_argument("--case", help=argparse.SUPPRESS)


def answer_case(args: argparse.Namespace, run_case) -> bool:
    """In a child of :func:`run_in_child`: run its case, print the result as JSON, say True;
    in the parent (no ``--case``) do nothing and say False."""
    if not args.case:
        return False
    print(json.dumps(run_case(**json.loads(args.case))))
    return True


def record_run(name: str, body: str, args, notes: list[str] | None = None) -> Path | None:
    """Record one run as its command line asks, and say where on stderr.

    ``--out FILE`` writes the section to FILE; ``--no-record`` alone writes nothing; otherwise
    the section is appended to ``results/NAME.md`` (see :func:`record_section`).
    """
    if args.no_record and not args.out:
        return None
    path = record_section(name, body, args.out, notes)
    print(f"recorded in {path}", file=sys.stderr)
    return path


def append_record(
    name: str, header: list[str], rows: list[list[object]], out: str | Path | None = None
) -> Path:
    """Record a markdown table of ``rows`` (see :func:`record_section`)."""
    return record_section(name, markdown_table(header, rows), out)


def run_in_child(script: str | Path, case: dict) -> dict:
    """Run ``script --case JSON`` in a fresh interpreter and read back its last line as JSON.

    A fresh interpreter gives each case its own peak memory (max RSS).

    Raises
    ------
    RuntimeError
        When the child fails; the message carries its stderr.
    """
    text = json.dumps(case)
    result = subprocess.run(
        [sys.executable, str(script), "--case", text], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"case {text} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def mean_sd(values: list[float | None], digits: int = 3) -> str:
    """``mean ± SD`` of the values that are numbers (one value alone; ``—`` for none)."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "\u2014"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
