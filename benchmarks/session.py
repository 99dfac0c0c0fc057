"""Session benchmark: whole refinement sessions on synthetic data, over seeds.

For each seed, ``aligned.data.simulate`` draws a true network, a corrupted copy (the ALIGNED
refinement protocol: labels are the true KB's deduction of every regulator's knockout) and the
data; ``aligned.Session`` refines the corrupted KB (pre-train, then deduce, adapt, abduce and
retrain per iteration); ``aligned.evaluation.evaluate_run`` scores every method on the sealed
test split and the KBs against the truth.  The table answers two questions per seed: does the
revised KB beat the corrupted one (signed-edge F1), and is the integrated prediction at least
as good as the better of network-only and KB-only (data macro-F1 on the test split)?

Usage::

    python benchmarks/session.py                       # 300 genes, p = 0.3, seeds 0-4, MLP
    python benchmarks/session.py --seeds 0 --genes 200 --model gnn --no-record

Each seed runs in a fresh interpreter (its own peak memory); the table is printed and
appended, with the command and machine, to ``benchmarks/results/session.md``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from _record import add_record_options, answer_case, mean_sd, record_run, run_in_child

METHODS = ("all_zero", "mean_response", "kb_original", "kb_revised", "network", "integrated")


def run_case(
    genes: int, corruption: float, seed: int, model: str, iterations: int, time_limit: float
) -> dict:
    """One seed, in this process: simulate, refine, evaluate."""
    from aligned.data.simulate import simulate, write_simulation
    from aligned.evaluation import evaluate_run
    from aligned.session import Session

    with tempfile.TemporaryDirectory(prefix="aligned-session-bench-") as scratch:
        simulation_dir = Path(scratch) / "simulation"
        write_simulation(
            simulate(genes, corruption, protocol="deduction", seed=seed, k=3), simulation_dir
        )
        config = {
            "data": {"path": str(simulation_dir)},
            "knowledge": {"path": str(simulation_dir / "kb_corrupted.tsv"), "k": 3},
            "predictor": {"preset": model, "device": "auto"},
            "abduction": {"time_limit": time_limit},
            "session": {"iterations": iterations, "seed": seed},
        }
        started = time.perf_counter()
        Session(config, Path(scratch) / "run", quiet=True).run()
        seconds = time.perf_counter() - started
        evaluation = evaluate_run(Path(scratch) / "run")
    test = evaluation["test"]
    return {
        "genes": genes,
        "corruption": corruption,
        "seed": seed,
        "model": model,
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "edge_f1_before": evaluation["edges"]["original"]["f1"],
        "edge_f1_after": evaluation["edges"]["revised"]["f1"],
        "data_f1": {method: test[method]["data_f1"] for method in METHODS},
        "balanced": {method: test[method]["balanced"] for method in METHODS},
    }


def run_isolated(**case) -> dict:
    """Run one case in a fresh interpreter (its own peak memory)."""
    return run_in_child(__file__, case)


def table(results: list[dict]) -> str:
    """Per-seed rows, then mean ± SD, then the two checks."""
    header = (
        "| seed | wall s | peak MB | signed-edge F1 corrupted → revised | "
        + " | ".join(f"data F1 {m}" for m in METHODS)
        + " |"
    )
    lines = [header, "|" + "---|" * (4 + len(METHODS))]
    for r in results:
        lines.append(
            f"| {r['seed']} | {r['seconds']:.0f} | {r['peak_mb']:.0f} | "
            f"{r['edge_f1_before']:.3f} → {r['edge_f1_after']:.3f} | "
            + " | ".join(f"{r['data_f1'][m]:.3f}" for m in METHODS)
            + " |"
        )
    lines.append(
        f"| mean | {statistics.mean(r['seconds'] for r in results):.0f} | "
        f"{max(r['peak_mb'] for r in results):.0f} | "
        f"{mean_sd([r['edge_f1_before'] for r in results])} → "
        f"{mean_sd([r['edge_f1_after'] for r in results])} | "
        + " | ".join(mean_sd([r["data_f1"][m] for r in results]) for m in METHODS)
        + " |"
    )
    improved = sum(r["edge_f1_after"] > r["edge_f1_before"] for r in results)
    integrated_ok = sum(
        r["data_f1"]["integrated"]
        >= max(r["data_f1"]["network"], r["data_f1"]["kb_revised"], r["data_f1"]["kb_original"])
        for r in results
    )
    lines += [
        "",
        f"- revised KB beats the corrupted KB (signed-edge F1) on {improved} of {len(results)} "
        "seeds",
        f"- integrated data F1 >= max(network, kb_original, kb_revised) on {integrated_ok} of "
        f"{len(results)} seeds",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=300)
    parser.add_argument("--corruption", type=float, default=0.3)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--model", choices=("mlp", "gnn"), default="mlp")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=60.0)
    add_record_options(parser, cases=True)
    args = parser.parse_args(argv)
    if answer_case(args, run_case):
        return

    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        result = run_isolated(
            genes=args.genes,
            corruption=args.corruption,
            seed=seed,
            model=args.model,
            iterations=args.iterations,
            time_limit=args.time_limit,
        )
        print(
            f"seed {seed}: edge F1 {result['edge_f1_before']:.3f} -> "
            f"{result['edge_f1_after']:.3f}; data F1 "
            + ", ".join(f"{m} {result['data_f1'][m]:.3f}" for m in METHODS)
            + f"; {result['seconds']:.0f} s",
            flush=True,
        )
        results.append(result)
    text = table(results)
    print()
    print(text)
    notes = [
        f"{args.genes} genes, corruption {args.corruption:g}, deduction protocol, k = 3, "
        f"{args.model}, {args.iterations} iterations, abduction time limit {args.time_limit:g} s; "
        "test split sealed until evaluation"
    ]
    record_run("session", text, args, notes)


if __name__ == "__main__":
    main()
