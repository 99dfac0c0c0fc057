"""Run the benchmarks and assemble ``docs/benchmarks.md`` from their sections.

Each step runs one script of this folder with ``--out``, which writes that script's section
(date, commit, command, machine, table) to ``benchmarks/results/latest/STEP.md`` (or
``latest-quick/`` in quick mode); the document is then assembled from every section present,
in the order of :data:`STEPS`, so each figure in it names the command that produced it.

Usage::

    python benchmarks/run_all.py              # the full record (hours on 2 cores)
    python benchmarks/run_all.py --quick      # CI-sized checks (minutes); docs/benchmarks-quick.md
    python benchmarks/run_all.py --only abduce,session     # rerun some steps, reassemble
    python benchmarks/run_all.py --assemble                # reassemble only

``make bench`` runs the full record and ``make bench-quick`` the quick one.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    what: str
    full: tuple[str, ...]
    quick: tuple[str, ...]


STEPS = (
    Step(
        "deduce",
        "Deduction speed",
        "Every single knockout of a random KB through the tensor backend, and the three "
        "backends timed on the same conditions of a smaller KB.",
        ("deduce.py",),
        (
            "deduce.py",
            "--genes",
            "2000",
            "--edges",
            "40000",
            "--small-genes",
            "300",
            "--small-edges",
            "3000",
            "--engine-conditions",
            "20",
        ),
    ),
    Step(
        "train",
        "Training speed",
        "One epoch of each neural predictor at 5,000 genes.",
        ("train.py",),
        ("train.py", "--genes", "1000"),
    ),
    Step(
        "abduce",
        "Abduction on the deduction protocol",
        "The corrupted KB revised against train + validation knockouts; scored against the truth.",
        ("abduce.py",),
        ("abduce.py", "--sizes", "300", "--seeds", "0", "--corruptions", "0,0.3"),
    ),
    Step(
        "abduce-linear",
        "Abduction on thresholded LFCs (the linear protocol)",
        "Labels from a damped linear model's noisy LFCs; the graded label model beside the exact "
        "one; the one-step ceiling says how far any revision can get on labels alone.",
        (
            "abduce.py",
            "--sizes",
            "300",
            "--corruptions",
            "0,0.3",
            "--protocol",
            "linear",
            "--label-model",
            "graded,exact",
        ),
        (
            "abduce.py",
            "--sizes",
            "300",
            "--seeds",
            "0",
            "--corruptions",
            "0.3",
            "--protocol",
            "linear",
        ),
    ),
    Step(
        "refinement_sweep",
        "The ALIGNED refinement protocol, side by side",
        "Do nothing, plain greedy, the ALIGNED gradient refinement (reimplemented) and ours, with "
        "the paper's published figures and the identifiability ceiling.",
        ("refinement_sweep.py",),
        ("refinement_sweep.py", "--quick"),
    ),
    Step(
        "session",
        "Whole sessions on synthetic data",
        "Pre-train, then deduce, adapt, abduce and retrain; every method on the sealed test split.",
        ("session.py",),
        ("session.py", "--genes", "150", "--seeds", "0", "--iterations", "1"),
    ),
    Step(
        "ecoli",
        "E. coli PRECISE knockouts",
        "Leave-knockouts-out by deleted gene, and recovery of hidden edges.",
        ("ecoli.py", "--threads", "1"),
        ("ecoli.py", "--quick", "--threads", "1"),
    ),
    Step(
        "scale",
        "Scale",
        "A whole session at growing gene counts: wall time, peak memory, growth exponents.",
        ("scale.py", "--threads", "1"),
        ("scale.py", "--quick", "--threads", "1"),
    ),
)


def run_step(step: Step, quick: bool, folder: Path) -> tuple[bool, float]:
    """Run one step into ``folder/STEP.md``; returns (succeeded, seconds)."""
    args = step.quick if quick else step.full
    out = folder / f"{step.name}.md"
    started = time.perf_counter()
    print(f"== {step.name}: python benchmarks/{' '.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, str(HERE / args[0]), *args[1:], "--out", str(out)], cwd=ROOT
    )
    return result.returncode == 0, time.perf_counter() - started


def assemble(folder: Path, quick: bool) -> str:
    """The document: an introduction, then each step's latest section (or a line saying none)."""
    mode = "quick (CI-sized)" if quick else "full"
    lines = [
        "# Benchmarks",
        "",
        f"Assembled by `python benchmarks/run_all.py{' --quick' if quick else ''}` ({mode} "
        "mode) from the latest recorded runs of each step. Every run names its own command, "
        "commit, machine and date: where a run's command is narrower than the step's full one "
        "(fewer sizes or seeds), its command line says so. `--only STEP` reruns a step in "
        "full; `--assemble` only rebuilds this page.",
        "",
    ]
    for step in STEPS:
        section = folder / f"{step.name}.md"
        lines += [f"## {step.title}", "", step.what, ""]
        if section.exists():
            text = section.read_text(encoding="utf-8").rstrip("\n")
            lines += [re.sub(r"(?m)^## ", "### ", text), ""]  # runs nest under the step
        else:
            lines += ["Not run yet.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized checks")
    parser.add_argument("--only", help="comma-separated steps to rerun (default: all)")
    parser.add_argument(
        "--assemble", action="store_true", help="run nothing; assemble the latest sections"
    )
    parser.add_argument("--doc", help="the document to write (default by mode)")
    args = parser.parse_args(argv)
    names = [step.name for step in STEPS]
    chosen = [] if args.assemble else names if not args.only else args.only.split(",")
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    folder = HERE / "results" / ("latest-quick" if args.quick else "latest")
    folder.mkdir(parents=True, exist_ok=True)
    failed = []
    for step in STEPS:
        if step.name in chosen:
            ok, seconds = run_step(step, args.quick, folder)
            print(f"== {step.name}: {'done' if ok else 'FAILED'} in {seconds:.0f} s", flush=True)
            if not ok:
                failed.append(step.name)
    doc = (
        Path(args.doc)
        if args.doc
        else ROOT / "docs" / ("benchmarks-quick.md" if args.quick else "benchmarks.md")
    )
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(assemble(folder, args.quick), encoding="utf-8")
    print(f"wrote {doc}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
