"""E. coli benchmark: refinement sessions on the PRECISE knockouts and RegulonDB (issue 7).

The data set is built as ``aligned data ecoli`` builds it (from the cached pymodulon-0.2.1
wheel, or ``--source``), into a temporary directory.  The session settings are those of
``examples/ecoli/config.toml`` (k, preset, abduction, iterations), with ``--model`` and
``--iterations`` overriding theirs.  Two experiments, each over ``--seeds``:

(a) **Leave knockouts out.**  The conditions are split train / validation / test with the
    example's fractions, grouped by deleted gene (every knockout of one gene lands in one
    split); the seed decides which knockouts are held out.  A session refines the RegulonDB
    KB on the training knockouts and :func:`aligned.evaluation.evaluate_run` scores every
    method on the held-out ones: data F1, KB F1 (against the original KB's deduction),
    balanced consistency and the Pearson correlation of LFCs on each condition's top-20 DE
    genes (the 20 scored genes of largest observed ``|LFC|``), averaged over conditions.
    Methods without an LFC (KB-only, integrated) are correlated through their predicted label;
    a condition whose prediction is constant on its top 20 has no correlation and is left out
    of the mean (so all-zero has none).

(b) **Edge recovery.**  With the same split, 20 % of the KB's signed edges out of regulators
    knocked out in the training split (the only knockouts the abduction reads) are hidden,
    drawn with the seed; a session starts from the reduced KB.  An edge counts as *added* when
    its signed triple is in the revised KB and not in the reduced one (a flip adds its new
    sign).  Recall: hidden edges among the added ones, over the hidden edges.  Precision:
    added edges that are in the full KB, over the added edges; beside it the chance
    precision, that of additions drawn at random out of the same regulators.

Usage::

    python benchmarks/ecoli.py                   # 5 seeds, the example's 3 iterations
    python benchmarks/ecoli.py --quick           # 1 seed, 1 iteration
    python benchmarks/ecoli.py --seeds 0,1 --model mlp --iterations 2
    python benchmarks/ecoli.py --out /tmp/ecoli.md --source pymodulon-0.2.1-py3-none-any.whl

Tables are printed and appended, with the command, commit, seeds and machine, to
``benchmarks/results/ecoli.md``; ``--out FILE`` writes the section to FILE instead.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
from _record import add_record_options, record_run

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ecoli" / "config.toml"
HIDDEN_FRACTION = 0.2
METHODS = ("all_zero", "mean_response", "kb_original", "kb_revised", "network", "integrated")
FIGURES = ("data_f1", "kb_f1", "balanced", "pearson_top20")


# ---- data and configuration ------------------------------------------------------------------


def example_config() -> dict:
    """The example session's settings, as written (paths are replaced per run)."""
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def build_dataset(out: Path, source: Path | None) -> Path:
    """Build the E. coli data set (data/ and kb.tsv) as ``aligned data ecoli`` does."""
    from aligned.data import build_ecoli

    build_ecoli(out, source=source)
    return out


def split_dataset(built: Path, fractions: list[float], seed: int, out: Path) -> Path:
    """Save a copy of the built data with splits drawn from ``seed``, beside the full KB.

    The build assigns its own splits, and saved splits are never redrawn on loading, so the
    seed's split is drawn here (grouped by deleted gene) and saved as a data set of its own.
    """
    from aligned.data import PerturbationData, assign_splits
    from aligned.knowledge_base import KnowledgeBase

    data = PerturbationData.load(built / "data")
    data = assign_splits(data, fractions, seed=seed, overwrite=True)
    data.save(out / "data")
    KnowledgeBase.read(built / "kb.tsv").write(out / "kb.tsv")
    return out


def session_config(base: dict, data: Path, kb: Path, args: argparse.Namespace, seed: int) -> dict:
    """The example's configuration pointed at ``data`` and ``kb``, with the benchmark's flags."""
    config = {section: dict(values) for section, values in base.items()}
    config["data"]["path"] = str(data)
    config["knowledge"]["path"] = str(kb)
    config["predictor"]["preset"] = args.model
    config["session"]["iterations"] = args.iterations
    config["session"]["seed"] = seed
    return config


def run_session(config: dict, run: Path) -> tuple[dict, dict]:
    """Run a session to the end and evaluate it on its sealed test split.

    Returns the evaluation and the session's wall seconds: in all, and in abduction (from the
    run's ``metrics.json``).
    """
    from aligned.evaluation import evaluate_run
    from aligned.session import Session

    started = time.perf_counter()
    result = Session(config, run, quiet=True).run()
    seconds = {
        "total": time.perf_counter() - started,
        "abduce": sum(entry.get("abduction", {}).get("seconds", 0.0) for entry in result.metrics),
        "iterations": len(result.metrics) - 1,
    }
    return evaluate_run(run), seconds


# ---- edge recovery ---------------------------------------------------------------------------


def signed(kb) -> set[tuple[str, str, int]]:
    """The +1/-1 edges of ``kb`` as (source, target, sign) triples (``?`` edges left out)."""
    return {edge for edge in kb.edge_tuples() if edge[2] != 0}


def hide_edges(kb, regulators: set[str], fraction: float, seed: int):
    """Remove a seeded ``fraction`` of the signed edges whose source is in ``regulators``.

    Returns
    -------
    reduced : KnowledgeBase
        ``kb`` without the hidden edges (every gene kept).
    hidden : set of (source, target, sign)
    """
    from aligned.knowledge_base import KnowledgeBase

    edges = kb.edges
    eligible = np.flatnonzero((edges["sign"] != 0) & edges["source"].isin(regulators))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(eligible, size=round(fraction * len(eligible)), replace=False)
    hidden_rows = np.zeros(len(edges), dtype=bool)
    hidden_rows[chosen] = True
    hidden = edges[hidden_rows]
    triples = set(zip(hidden["source"], hidden["target"], hidden["sign"].astype(int)))
    return KnowledgeBase(edges[~hidden_rows], genes=kb.genes), triples


def recovery(full, reduced, revised, hidden: set, regulators: set, genes: list[str]) -> dict:
    """Recall of the hidden edges among the added ones and precision of the additions.

    ``chance`` is the precision of additions drawn at random among the signed edges out of
    ``regulators`` into ``genes`` that the reduced KB lacks: the bar a real recovery clears.
    """
    added = signed(revised) - signed(reduced)
    found = added & hidden
    correct = added & signed(full)
    targets = set(genes)
    present = {edge for edge in signed(reduced) if edge[0] in regulators and edge[1] in targets}
    possible = 2 * len(regulators) * len(targets) - len(present)
    return {
        "hidden": len(hidden),
        "added": len(added),
        "recovered": len(found),
        "correct": len(correct),
        "recall": len(found) / len(hidden) if hidden else float("nan"),
        "precision": len(correct) / len(added) if added else float("nan"),
        "chance": len(hidden) / possible if possible else float("nan"),
    }


# ---- one seed --------------------------------------------------------------------------------


def run_seed(built: Path, base: dict, args: argparse.Namespace, seed: int, workdir: Path) -> dict:
    """Both experiments on the split drawn from ``seed``."""
    from aligned.data import PerturbationData
    from aligned.knowledge_base import KnowledgeBase

    directory = split_dataset(built, base["data"]["split"], seed, workdir / f"seed-{seed}")
    full = KnowledgeBase.read(directory / "kb.tsv")
    config = session_config(base, directory, directory / "kb.tsv", args, seed)
    evaluation, seconds = run_session(config, workdir / f"run-{seed}")

    train = PerturbationData.load(directory / "data").train
    knocked_out = {gene for perturbation in train.perturbations for gene in perturbation}
    reduced, hidden = hide_edges(full, knocked_out, HIDDEN_FRACTION, seed)
    reduced.write(directory / "kb_reduced.tsv")
    config = session_config(base, directory, directory / "kb_reduced.tsv", args, seed)
    hidden_run = workdir / f"run-{seed}-hidden"
    _, hidden_seconds = run_session(config, hidden_run)
    revised = KnowledgeBase.read(hidden_run / "kb" / "revised.tsv")
    return {
        "seed": seed,
        "test_conditions": evaluation["conditions"],
        "test": evaluation["test"],
        "seconds": seconds,
        "recovery": {
            **recovery(full, reduced, revised, hidden, knocked_out, train.genes),
            "seconds": hidden_seconds,
        },
    }


# ---- the tables ------------------------------------------------------------------------------


def mean_sd(values: list[float | None], digits: int = 3) -> str:
    """``mean ± SD`` over the values that exist; ``(k/n)`` when some seeds have none."""
    present = [value for value in values if value is not None and not np.isnan(value)]
    if not present:
        return "n/a"
    text = (
        f"{present[0]:.{digits}f}"
        if len(present) == 1
        else f"{statistics.mean(present):.{digits}f} ± {statistics.stdev(present):.{digits}f}"
    )
    return text if len(present) == len(values) else f"{text} ({len(present)}/{len(values)})"


def report(results: list[dict]) -> str:
    """Table (a) per method, table (b) per seed, and a mean row."""
    seeds = ",".join(str(result["seed"]) for result in results)
    lines = [
        f"(a) Leave knockouts out, test split, seeds {seeds} (mean ± SD over seeds)",
        "",
        "| method | data F1 | KB F1 (original KB) | balanced | Pearson top-20 DE |",
        "|---|---|---|---|---|",
    ]
    for method in METHODS:
        cells = [mean_sd([result["test"][method][f] for result in results]) for f in FIGURES]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "(b) Edge recovery: 20 % of the signed edges out of training knockouts hidden",
        "",
        "| seed | hidden | added | hidden recovered | recall | precision | chance precision "
        "| session |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        r = result["recovery"]
        lines.append(
            f"| {result['seed']} | {r['hidden']} | {r['added']} | {r['recovered']} | "
            f"{r['recall']:.3f} | {r['precision']:.3f} | {r['chance']:.4f} | "
            f"{_seconds(r['seconds'])} |"
        )
    if len(results) > 1:
        recall = mean_sd([result["recovery"]["recall"] for result in results])
        precision = mean_sd([result["recovery"]["precision"] for result in results])
        chance = mean_sd([result["recovery"]["chance"] for result in results], digits=4)
        lines.append(f"| mean | | | | {recall} | {precision} | {chance} | |")
    lines += ["", "Per seed, (a):", ""]
    lines += [
        f"- seed {result['seed']}: {result['test_conditions']} test conditions, session "
        f"{_seconds(result['seconds'])}"
        for result in results
    ]
    return "\n".join(lines)


def _seconds(seconds: dict) -> str:
    return (
        f"{seconds['total']:.0f} s ({seconds['abduce']:.0f} s abduction, "
        f"{seconds['iterations']} iteration(s))"
    )


def run_notes(args: argparse.Namespace, base: dict, seconds: float) -> list[str]:
    """The settings recorded under the command line (config, model, seeds, wall time)."""
    return [
        f"settings: examples/ecoli/config.toml (k = {base['knowledge']['k']}, split "
        f"{base['data']['split']} grouped by deleted gene), model {args.model}, at most "
        f"{args.iterations} iteration(s), torch threads {args.threads or 'default'}; "
        f"seeds {','.join(map(str, args.seeds))} (split, hidden edges and session)",
        "Pearson top-20: KB-only and integrated correlate through their labels; conditions "
        "with a constant prediction on their top 20 are left out (all-zero has none)",
        f"wall time: {seconds / 60:.1f} min in all",
    ]


# ---- the command line ------------------------------------------------------------------------


def parse_args(argv: list[str] | None, base: dict) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="split, hidden-edge, session seeds")
    parser.add_argument(
        "--iterations",
        type=int,
        default=base["session"]["iterations"],
        help="at most this many refinement iterations (default: the example's)",
    )
    parser.add_argument(
        "--model",
        choices=("mlp", "gnn"),
        default=base["predictor"]["preset"],
        help="predictor preset (default: the example's)",
    )
    parser.add_argument("--quick", action="store_true", help="seed 0 only, 1 iteration")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--source", type=Path, help="the pymodulon-0.2.1 wheel")
    add_record_options(parser)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.quick:
        args.seeds, args.iterations = args.seeds[:1], 1
    return args


def main(argv: list[str] | None = None) -> None:
    base = example_config()
    args = parse_args(argv, base)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="aligned-ecoli-") as workdir:
        built = build_dataset(Path(workdir) / "ecoli", args.source)
        for seed in args.seeds:
            result = run_seed(built, base, args, seed, Path(workdir))
            r = result["recovery"]
            print(
                f"seed {seed}: integrated data F1 "
                f"{result['test']['integrated']['data_f1']:.3f}, recall {r['recall']:.3f}, "
                f"precision {r['precision']:.3f} "
                f"({result['seconds']['total'] + r['seconds']['total']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    seconds = time.perf_counter() - started
    text = report(results)
    print(text)
    print(f"\nwall time {seconds / 60:.1f} min", file=sys.stderr)
    record_run("ecoli", text, args, run_notes(args, base, seconds))


if __name__ == "__main__":
    main()
