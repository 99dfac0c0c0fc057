"""Scale benchmark: one full refinement session at growing genome sizes (issue 7).

For each size ``n``, ``aligned.data.simulate(n, 0.3, protocol="deduction", seed=SEED)`` draws
a true network, a copy with 30 % of it corrupted and the true network's deduction (k = 3) of
every regulator's knockout, and saves them as a data set in a temporary directory (in a
child process of its own).  A second, fresh interpreter then runs
``aligned.session.Session(config, run).run()`` on it: pre-train, then deduce -> adapt -> abduce ->
retrain for ``--iterations`` rounds (fewer when an iteration accepts no edit), then the final
gate and the rule files.  Its peak resident memory (max RSS) is therefore the session's own.

Every step of the session is timed from outside (its methods are wrapped, the loop itself is
unchanged); the abduction's own time comes from the run's ``metrics.json``.  The growth
exponents are least-squares slopes of log wall time and log peak memory against log genes.
The targets of DESIGN.md section 7 (on a 2-core CPU: 5,000 genes in under 5 minutes; 10,000
genes in under 15 minutes and 8 GB) are printed as met or missed for the sizes that ran.

Usage::

    python benchmarks/scale.py                         # 1,000, 5,000 and 10,000 genes
    python benchmarks/scale.py --quick                 # 300 and 1,000 genes (CI-sized)
    python benchmarks/scale.py --sizes 1000,5000 --model gnn --iterations 3
    python benchmarks/scale.py --out /tmp/scale.md     # write the section there instead
    python benchmarks/scale.py --no-record             # print only
    python benchmarks/scale.py --threads 1             # on cores other work shares

torch's default of one thread per core is fastest on idle cores; on cores that other
processes keep busy it oversubscribes them, and training runs several times slower than
with ``--threads 1`` (the table records the threads and the load average).

The table is printed and appended, with the command, commit, seed and machine, to
``benchmarks/results/scale.md``; ``--out FILE`` writes the section to FILE instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _record import add_record_options, peak_rss_gib, record_run

CORRUPTION = 0.3
K = 3
SIZES = (1000, 5000, 10000)
QUICK_SIZES = (300, 1000)
# DESIGN.md section 7, on the 2-core CPU: genes -> (seconds, GB or None)
TARGETS = {5000: (300.0, None), 10000: (900.0, 8.0)}
# Session methods timed from outside; nested calls (adapt inside iterate) count once, in the
# innermost step, so the stage times add up to the total
STEPS = ("prepare", "pretrain", "iterate", "adapt", "retrain", "_record_metrics", "finish")
STAGES = ("prepare", "pretrain", "adapt", "abduce", "retrain", "metrics", "other", "finish")


# ---- the children --------------------------------------------------------------------------


def simulate_case(genes: int, seed: int, out: Path) -> dict:
    """Simulate the deduction protocol and save it where the session's config points."""
    from aligned.data import simulate, write_simulation

    started = time.perf_counter()
    sim = simulate(genes, CORRUPTION, protocol="deduction", seed=seed, k=K)
    write_simulation(sim, out)
    return {
        "seconds": time.perf_counter() - started,
        "conditions": len(sim.data),
        "true_edges": len(sim.kb_true),
        "kb_edges": len(sim.kb_corrupted),
    }


class StepTimer:
    """Exclusive wall time per named step: a nested step's time is taken off its caller's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._children: list[float] = []

    def wrap(self, name: str, method: Callable) -> Callable:
        def timed(*args, **kwargs):
            self._children.append(0.0)
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds[name] += elapsed - self._children.pop()
                if self._children:
                    self._children[-1] += elapsed

        return timed


def session_case(
    simulation: Path,
    run: Path,
    model: str,
    iterations: int,
    seed: int,
    device: str,
    threads: int | None,
) -> dict:
    """Run one session on a saved simulation; return its stage times, memory and quality."""
    import torch

    from aligned.session import Session

    if threads:
        torch.set_num_threads(threads)
    config = {
        "data": {"path": str(simulation)},
        "knowledge": {"path": str(simulation / "kb_corrupted.tsv"), "k": K},
        "predictor": {"preset": model, "device": device},
        "session": {"iterations": iterations, "seed": seed},
    }
    load = os.getloadavg()[0]  # other work on the shared cores slows every figure
    session = Session(config, run, quiet=True)
    timer = StepTimer()
    for step in STEPS:
        # instance attributes shadow the class's methods, so run() calls the timed ones
        setattr(session, step, timer.wrap(step, getattr(session, step)))
    started = time.perf_counter()
    metrics = session.run().metrics
    total = time.perf_counter() - started
    abduce = sum(entry.get("abduction", {}).get("seconds", 0.0) for entry in metrics)
    stages = {
        "prepare": timer.seconds["prepare"],
        "pretrain": timer.seconds["pretrain"],
        "adapt": timer.seconds["adapt"],
        "abduce": abduce,
        "retrain": timer.seconds["retrain"],
        "metrics": timer.seconds["_record_metrics"],
        # iterate's own time: the abduction, the network's probabilities for it, file writes
        "other": timer.seconds["iterate"] - abduce,
        "finish": timer.seconds["finish"],
    }
    first, last = metrics[0], metrics[-1]
    edits = [entry["abduction"]["edits"] for entry in metrics if "abduction" in entry]
    return {
        "total": total,
        "stages": stages,
        "peak_gib": peak_rss_gib(),
        "iterations_run": len(metrics) - 1,
        "edits": edits,
        # run() stops early only when an iteration accepts no edit
        "converged": not edits or edits[-1] == 0,
        "f1_before": first.get("truth", {}).get("f1"),
        "f1_after": last.get("truth", {}).get("f1"),
        "threads": torch.get_num_threads(),
        "load": load,
    }


def run_child(arguments: list[str]) -> dict:
    """Run this file with ``arguments`` in a fresh interpreter and read its last JSON line."""
    done = subprocess.run(
        [sys.executable, __file__, *arguments], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {arguments} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(genes: int, args: argparse.Namespace, workdir: Path) -> dict:
    """Simulate (one child), then run the session (another child): one row of the table."""
    simulation, run = workdir / f"sim-{genes}", workdir / f"run-{genes}"
    made = run_child(["--simulate", str(genes), "--seed", str(args.seed), "--dir", str(simulation)])
    case = ["--session", str(simulation), "--dir", str(run), "--model", args.model]
    case += ["--iterations", str(args.iterations), "--seed", str(args.seed)]
    case += ["--device", args.device]
    if args.threads:
        case += ["--threads", str(args.threads)]
    result = run_child(case)
    return {"genes": genes, "simulation": made, **result}


# ---- the summary ---------------------------------------------------------------------------


def growth_exponent(genes: list[int], values: list[float]) -> float | None:
    """Least-squares slope of log(value) against log(genes); None with fewer than two sizes."""
    if len(set(genes)) < 2:
        return None
    slope, _ = np.polyfit(np.log(genes), np.log(values), 1)
    return float(slope)


def target_lines(rows: list[dict]) -> list[str]:
    """Met / missed for every target size that ran."""
    lines = []
    for size, (seconds, gb) in TARGETS.items():
        goal = f"{size} genes: under {seconds / 60:g} min" + (f" and {gb:g} GB" if gb else "")
        row = next((row for row in rows if row["genes"] == size), None)
        if row is not None:
            peak_gb = row["peak_gib"] * 2**30 / 1e9  # the target is in GB, RSS in GiB
            met = row["total"] < seconds and (gb is None or peak_gb < gb)
            # a session cut short by --iterations is not the full session the target means
            ended = "converged" if row["converged"] else "stopped at the --iterations cap"
            lines.append(
                f"- {goal}: **{'met' if met else 'missed'}** ({row['total'] / 60:.1f} min, "
                f"{row['peak_gib']:.2f} GiB = {peak_gb:.2f} GB; "
                f"{row['iterations_run']} iteration(s), {ended})"
            )
        else:
            lines.append(f"- {goal}: not run")
    return lines


def report(rows: list[dict], args: argparse.Namespace) -> str:
    """The markdown table, the growth exponents and the targets."""
    header = ["genes", "conditions", "KB edges", "iterations", "edits per iteration"]
    header += [f"{stage} s" for stage in STAGES]
    header += ["total s", "peak RSS GiB", "signed-edge F1 before → after", "threads", "load"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        f1 = (
            f"{row['f1_before']:.3f} → {row['f1_after']:.3f}"
            if row["f1_before"] is not None
            else "n/a"
        )
        values = [
            row["genes"],
            row["simulation"]["conditions"],
            row["simulation"]["kb_edges"],
            row["iterations_run"],
            "/".join(str(edits) for edits in row["edits"]) or "none",
            *(f"{row['stages'][stage]:.1f}" for stage in STAGES),
            f"{row['total']:.1f}",
            f"{row['peak_gib']:.2f}",
            f1,
            row["threads"],
            f"{row['load']:.1f}",
        ]
        lines.append("| " + " | ".join(str(value) for value in values) + " |")
    genes = [row["genes"] for row in rows]
    time_exponent = growth_exponent(genes, [row["total"] for row in rows])
    memory_exponent = growth_exponent(genes, [row["peak_gib"] for row in rows])
    lines += [
        "",
        f"- growth exponent (least-squares slope over {len(rows)} sizes): wall time "
        f"{_exponent(time_exponent)}, peak memory {_exponent(memory_exponent)}",
        *target_lines(rows),
    ]
    return "\n".join(lines)


def _exponent(value: float | None) -> str:
    return "n/a (one size)" if value is None else f"n^{value:.2f}"


def run_notes(args: argparse.Namespace) -> list[str]:
    """The settings recorded under the command line (data, model, stages)."""
    return [
        f"data: simulate(n, {CORRUPTION}, protocol='deduction', seed={args.seed}), k = {K}; "
        f"model {args.model} on {args.device}, at most {args.iterations} iterations, "
        f"session seed {args.seed}",
        "stages: exclusive wall seconds; adapt = deduction + gate (every iteration and the "
        "final one), metrics = validation figures, other = network probabilities and files "
        "of each iteration; abduce from metrics.json",
    ]


# ---- the command line ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from aligned.config import SCHEMA

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help=f"gene counts (default {','.join(map(str, SIZES))})")
    parser.add_argument("--seed", type=int, default=0, help="simulation and session seed")
    parser.add_argument(
        "--iterations",
        type=int,
        default=SCHEMA["session"]["iterations"].default,
        help="at most this many refinement iterations (default: the session's default)",
    )
    parser.add_argument("--model", choices=("mlp", "gnn"), default="mlp")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--quick", action="store_true", help=f"sizes {','.join(map(str, QUICK_SIZES))}"
    )
    add_record_options(parser)
    parser.add_argument("--simulate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--session", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.sizes:
        args.sizes = [int(size) for size in args.sizes.split(",")]
    else:
        args.sizes = list(QUICK_SIZES if args.quick else SIZES)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.simulate:
        print(json.dumps(simulate_case(args.simulate, args.seed, args.dir)))
        return
    if args.session:
        case = (args.session, args.dir, args.model, args.iterations, args.seed, args.device)
        print(json.dumps(session_case(*case, args.threads)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="aligned-scale-") as workdir:
        for genes in args.sizes:
            row = measure(genes, args, Path(workdir))
            print(
                f"{genes} genes: {row['total']:.1f} s, {row['peak_gib']:.2f} GiB, "
                f"{row['iterations_run']} iteration(s) (simulated in "
                f"{row['simulation']['seconds']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            rows.append(row)
    text = report(rows, args)
    print(text)
    record_run("scale", text, args, run_notes(args))


if __name__ == "__main__":
    main()
