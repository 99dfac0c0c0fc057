"""Knowledge-refinement sweep: the ALIGNED protocol, our abduction and baselines side by side.

Each instance is ``aligned.data.simulate(genes, corruption=p, protocol="deduction", seed=s,
k=3)``: a true signed network, a corrupted copy (p/2 of its edges removed, p/4 false activations
and p/4 false repressions added) and the true network's deduction of every regulator's
knockout.  Every method revises the corrupted KB against the train and validation conditions
(the test split stays sealed until scoring) and is scored against the truth:

* pair macro-F1 (the paper's figure) and signed-edge F1 (DESIGN.md section 3);
* the macro-F1 of the revised KB's deduction on the sealed test split (knockouts of regulators
  no method saw) against the truth's labels.

Methods (``--methods``):

``nothing``
    The corrupted KB itself (always shown: the baseline every refinement must beat).
``aligned``
    Ours: ``aligned.abduction.abduce(kb, fitted, k=3, time_limit=...)``.
``greedy``
    Plain greedy of single edits with exact rescoring, through the public options of the same
    vectorised solver: ``abduce(..., solver="greedy", schedule=(1.0,),
    search_options={"compound": False})``, i.e. no clingo, no compound moves, no staged add
    costs.  Each round evaluates every candidate single edit (remove, flip, add among the
    per-target candidates) exactly and applies the improving ones best first, several per round
    only when their effects provably add up; it stops when no single edit improves.
``gradient``, ``gradient_clamped``
    ALIGNED's gradient refinement reimplemented in ``benchmarks/gradient_refinement.py``
    (reference notes section 7.1: tanh objective, L1 anchor, Adam, 5,000 steps), signed and
    with the reference's clamp of the weights to >= 0.  Dense genes x genes: a run whose
    projected length exceeds ``--time-limit`` stops after a few timed steps ("timed only"),
    and the remaining cases of that size skip the method; its time per step is still
    recorded.  On two CPU cores a full run takes minutes at 300 genes and about half an hour
    at 1,000, so with the default limit the full comparison is ``--sizes 300``.

For every instance the identifiability ceiling is computed too: true edges whose removal
alone changes no fitted label, and false edges whose addition alone to the truth changes no
fitted label, are invisible to the data; the ceiling is the score of the truth with exactly
those errors of the corrupted KB left in (single edits evaluated exactly with
``DeductionState``; silent edits could still matter jointly, so this is an estimate).

Each (instance, method) runs in a fresh interpreter, so its peak memory is its own.

Usage::

    python benchmarks/refinement_sweep.py            # 1,000 and 5,000 genes, 9 levels, 3 seeds
    python benchmarks/refinement_sweep.py --quick    # 300 genes, p in {0,.2,.5,.9}, 1 seed
    python benchmarks/refinement_sweep.py --sizes 300 --seeds 0 --corruptions 0,0.3,0.9
    python benchmarks/refinement_sweep.py --methods aligned,greedy --out /tmp/sweep.md

The tables are printed and appended, with the command, commit, machine and load, to
``benchmarks/results/refinement_sweep.md``; ``--out FILE`` writes the section to FILE instead.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import resource
import statistics
import time

from _record import add_record_options, answer_case, mean_sd, record_run, run_in_child

SWEEP = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)
METHODS = ("nothing", "aligned", "greedy", "gradient", "gradient_clamped")
GRADIENTS = ("gradient", "gradient_clamped")
QUICK = {"sizes": "300", "seeds": "0", "corruptions": "0,0.2,0.5,0.9", "gradient_steps": 6}

# The one quoted constant: the paper's published pair macro-F1 of its refined R^(0) (ALIGNED
# refine, F1(R^(0)), reference notes section 7.3; OmniPath/Norman ground truth, k = 5, three
# replicates), by corruption level.  A different network family: compare trends, not digits.
PAPER_PAIR_F1 = {
    0.0: 0.890,
    0.05: 0.855,
    0.1: 0.834,
    0.2: 0.804,
    0.3: 0.789,
    0.4: 0.746,
    0.5: 0.723,
    0.7: 0.671,
    0.9: 0.627,
}

_SILENT = 1e-9  # objective changes below this leave every fitted label as it was


# ---- one case, inside its own interpreter ------------------------------------------------


def instance(genes: int, corruption: float, seed: int, k: int):
    """The simulation and its fitted (train + validation) conditions, as abduce.py makes them."""
    from aligned.data import simulate

    sim = simulate(genes, corruption, protocol="deduction", seed=seed, k=k)
    return sim, sim.data.without_test()


def score(kb, sim, k: int) -> dict:
    """Pair macro-F1, signed-edge F1, test-split deduction macro-F1 and edits from the start."""
    from aligned.data.splits import open_sealed_test
    from aligned.metrics import edge_changes, macro_f1, pair_macro_f1, signed_edge_scores

    test = open_sealed_test(sim.data, "evaluation")
    labels, _ = kb.deduce_matrix(test.perturbation_matrix(), k, genes=test.genes)
    return {
        "pair_f1": pair_macro_f1(kb, sim.kb_true, sim.kb_true.genes),
        "signed_f1": signed_edge_scores(kb, sim.kb_true)["f1"],
        "deduction_f1": macro_f1(test.labels, labels, mask=test.scored),
        "edits": edge_changes(sim.kb_corrupted, kb),
    }


def silent_edits(truth, fitted, k: int, removals: list, additions: list) -> tuple[list, list]:
    """Which single edits of the truth leave every fitted label unchanged.

    Parameters
    ----------
    truth : KnowledgeBase
        The true KB; its deduction is the fitted labels, so its objective is 0.
    fitted : PerturbationData
    k : int
    removals, additions : list of (source, target, sign)
        Edges to remove from, and to add to, the truth, one at a time.

    Returns
    -------
    two lists of bool
        Per removal and per addition: True when no fitted label changes.

    Notes
    -----
    One batched exact evaluation (:meth:`DeductionState.evaluate`) in chunks: with every label
    right, an edit changes the objective exactly when it changes a scored label.
    """
    from aligned.abduction import build_problem
    from aligned.abduction.edits import EdgeSet, Moves
    from aligned.abduction.state import DeductionState

    problem = build_problem(truth, fitted, k, confidence="uniform")
    state = DeductionState(problem, EdgeSet(problem.n_genes, problem.edges))
    if state.data_objective() > _SILENT:
        raise RuntimeError("the truth does not reproduce the fitted labels: no ceiling")
    index = {gene: i for i, gene in enumerate(problem.genes)}
    changes = [[(index[s], index[t], e, -1)] for s, t, e in removals]
    changes += [[(index[s], index[t], e, 1)] for s, t, e in additions]
    silent: list[bool] = []
    for start in range(0, len(changes), 4000):  # bounds the (move, condition) rows held
        chunk = changes[start : start + 4000]
        moves = Moves.build(chunk, ["compound"] * len(chunk))
        silent += (abs(state.evaluate(moves).delta) <= _SILENT).tolist()
    return silent[: len(removals)], silent[len(removals) :]


def ceiling(sim, fitted, k: int) -> dict:
    """The identifiability ceiling of one instance (module docstring)."""
    from aligned.knowledge_base import KnowledgeBase

    truth = {edge for edge in sim.kb_true.edge_tuples() if edge[2] != 0}
    corrupted = {edge for edge in sim.kb_corrupted.edge_tuples() if edge[2] != 0}
    true_edges = sorted(truth)
    false_edges = sorted(corrupted - truth)
    removal_silent, addition_silent = silent_edits(sim.kb_true, fitted, k, true_edges, false_edges)
    silent_true = {edge for edge, silent in zip(true_edges, removal_silent) if silent}
    missing = truth - corrupted
    left_missing = missing & silent_true
    left_false = {edge for edge, silent in zip(false_edges, addition_silent) if silent}
    best = KnowledgeBase.from_edges(
        sorted((truth - left_missing) | left_false), genes=sim.kb_true.genes
    )
    scores = score(best, sim, k)
    return {
        "true_edges": len(truth),
        "true_silent": len(silent_true),
        "missing": len(missing),
        "missing_silent": len(left_missing),
        "false": len(false_edges),
        "false_silent": len(left_false),
        "ceiling_pair_f1": scores["pair_f1"],
        "ceiling_signed_f1": scores["signed_f1"],
        "ceiling_deduction_f1": scores["deduction_f1"],
    }


def refine_with(method: str, sim, fitted, k: int, time_limit: float, gradient_steps):
    """Run one method on an instance; returns (revised KB, notes about the run)."""
    if method == "nothing":
        return sim.kb_corrupted, {}
    if method in ("aligned", "greedy"):
        from aligned.abduction import abduce

        options = {}
        if method == "greedy":
            options = {
                "solver": "greedy",
                "schedule": (1.0,),
                "search_options": {"compound": False},
            }
        revision = abduce(sim.kb_corrupted, fitted, k=k, time_limit=time_limit, **options)
        return revision.revised, {"solver": revision.solver}
    from gradient_refinement import refine

    result = refine(
        sim.kb_corrupted,
        fitted,
        k=k,
        clamp=method == "gradient_clamped",
        time_limit=time_limit,
        max_steps=gradient_steps,
    )
    notes = {
        "epochs": result.epochs,
        "steps": result.steps,
        "stopped": result.stopped,
        "seconds_per_step": result.seconds_per_step,
        "fastest_step": result.fastest_step,
        "device": f"{result.device} ({result.threads} threads)",
        "timed_only": result.stopped in ("steps", "projected over time limit"),
    }
    return result.kb, notes


def run_case(
    genes: int,
    corruption: float,
    seed: int,
    k: int,
    method: str,
    time_limit: float,
    gradient_steps: int | None,
) -> dict:
    """One (instance, method) in this process; ``method="instance"`` gives the instance's
    sizes, its ceiling and the scores of the unrevised KB."""
    sim, fitted = instance(genes, corruption, seed, k)
    case = {"genes": genes, "corruption": corruption, "seed": seed, "method": method}
    if method == "instance":
        started = time.perf_counter()
        case.update(ceiling(sim, fitted, k))
        case["ceiling_seconds"] = time.perf_counter() - started
        case["conditions"] = len(fitted)
        case["corrupted_edges"] = len(sim.kb_corrupted)
        case["nothing"] = score(sim.kb_corrupted, sim, k)
        return case
    # imports (torch's is seconds) stay out of the method's wall time
    importlib.import_module("gradient_refinement" if method in GRADIENTS else "aligned.abduction")
    started = time.perf_counter()
    kb, notes = refine_with(method, sim, fitted, k, time_limit, gradient_steps)
    case["seconds"] = time.perf_counter() - started
    case["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    case.update(notes)
    if not notes.get("timed_only"):
        case.update(score(kb, sim, k))
    return case


def run_isolated(**case) -> dict:
    """Run one case in a fresh interpreter (its own peak memory)."""
    return run_in_child(__file__, case)


# ---- tables --------------------------------------------------------------------------------


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.mean(values) if values else math.nan


def _cell(runs: list[dict], key: str) -> str:
    """Mean ± SD of ``key`` over the runs, or why there is no figure."""
    if not runs:
        return "not run"
    if any(run.get("timed_only") or run.get("skipped") for run in runs):
        return "timed only"
    suffix = " (partial)" if any(run.get("stopped") == "time limit" for run in runs) else ""
    return mean_sd([run[key] for run in runs]) + suffix


def targets(corruption: float, ours: list[dict], greedy: list[dict]) -> str:
    """The issue's targets for our method at one level, each marked met or missed."""
    if not ours or any("pair_f1" not in run for run in ours):
        return "—"
    pair = _mean([run["pair_f1"] for run in ours])
    marks = []
    floor = {0.5: 0.95, 0.9: 0.90}.get(corruption, 0.99 if corruption <= 0.2 else None)
    if floor is not None:
        marks.append(f"≥ {floor:.2f} {'met' if pair >= floor else 'missed'}")
    if greedy and all("pair_f1" in run for run in greedy):
        other = _mean([run["pair_f1"] for run in greedy])
        if corruption == 0 and pair == other:
            marks.append("= greedy (nothing to fix)")
        else:
            marks.append(f"> greedy {'met' if pair > other else 'missed'}")
    if corruption == 0:
        edits = sum(sum(run["edits"].values()) for run in ours)
        marks.append(f"no change {'met' if edits == 0 else f'missed ({edits} edits)'}")
    return "; ".join(marks) or "—"


def _groups(results: list[dict]) -> dict[tuple, dict[str, list[dict]]]:
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for result in results:
        key = (result["genes"], result["corruption"])
        groups.setdefault(key, {}).setdefault(result["method"], []).append(result)
    for group in groups.values():  # the unrevised KB's scores come with the instance
        group["nothing"] = [
            {**run, **run["nothing"], "method": "nothing"} for run in group.get("instance", [])
        ]
    return dict(sorted(groups.items()))


def score_table(results: list[dict], methods: list[str], key: str, paper: bool) -> list[str]:
    """One row per (genes, p): the ceiling, each method's ``key``, and (for ``pair_f1``) the
    paper's figure and the targets."""
    ceiling_key = f"ceiling_{key}"
    header = ["genes", "p", "seeds"]
    header += ["paper (published ALIGNED)"] if paper else []
    header += ["ceiling", *methods]
    header += ["targets (ours)"] if paper else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (genes, corruption), group in _groups(results).items():
        instances = group.get("instance", [])
        row = [str(genes), f"{corruption:g}", ",".join(str(r["seed"]) for r in instances)]
        if paper:
            published = PAPER_PAIR_F1.get(corruption)
            row.append("—" if published is None else f"{published:.3f}")
        row.append(mean_sd([r[ceiling_key] for r in instances]))
        row += [_cell(group.get(method, []), key) for method in methods]
        if paper:
            row.append(targets(corruption, group.get("aligned", []), group.get("greedy", [])))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def identifiability_table(results: list[dict]) -> list[str]:
    """Per (genes, p): how many errors of the corrupted KB the fitted data cannot see."""
    header = [
        "genes",
        "p",
        "fitted conditions",
        "true edges",
        "true edges silent",
        "missing",
        "missing silent",
        "false",
        "false silent",
        "ceiling s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (genes, corruption), group in _groups(results).items():
        runs = group.get("instance", [])
        if not runs:
            continue
        row = [str(genes), f"{corruption:g}", str(runs[0]["conditions"])]
        row += [
            mean_sd([r[name] for r in runs], 0)
            for name in ("true_edges", "true_silent", "missing", "missing_silent", "false")
        ]
        row += [mean_sd([r["false_silent"] for r in runs], 0)]
        row += [mean_sd([r["ceiling_seconds"] for r in runs], 1)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def cost_table(results: list[dict], methods: list[str]) -> list[str]:
    """Per (genes, p, method): wall time, peak memory, edits and how the run ended."""
    header = ["genes", "p", "method", "wall s", "peak MB", "edits add/remove/flip", "run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (genes, corruption), group in _groups(results).items():
        for method in methods:
            runs = [run for run in group.get(method, []) if not run.get("skipped")]
            if method == "nothing" or not runs:
                continue
            edits = "—"
            if all("edits" in run for run in runs):
                edits = "/".join(
                    f"{_mean([run['edits'][op] for run in runs]):.0f}"
                    for op in ("added", "removed", "flipped")
                )
            how = sorted({run.get("solver") or run.get("stopped") or "" for run in runs})
            row = [
                str(genes),
                f"{corruption:g}",
                method,
                mean_sd([run["seconds"] for run in runs], 1),
                f"{max(run['peak_mb'] for run in runs):.0f}",
                edits,
                "/".join(how),
            ]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def speed_table(results: list[dict]) -> list[str]:
    """Per size: the gradient's step time, the length of its full run (measured where it ran,
    else projected as epochs x fastest step), and our method's wall time beside it."""
    header = [
        "genes",
        "method",
        "device",
        "s / step (median)",
        "fastest step s",
        "steps run",
        "full run s",
        "ours (aligned) wall s",
        "full run / ours",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for genes in sorted({r["genes"] for r in results}):
        at_size = [r for r in results if r["genes"] == genes and not r.get("skipped")]
        ours = _mean([r["seconds"] for r in at_size if r["method"] == "aligned"])
        for method in GRADIENTS:
            runs = [r for r in at_size if r["method"] == method]
            if not runs:
                continue
            fastest = min(r["fastest_step"] for r in runs)
            if any(r.get("timed_only") for r in runs):
                full, how = fastest * runs[0]["epochs"], "projected"
            else:
                full, how = _mean([r["seconds"] for r in runs]), "measured"
            row = [
                str(genes),
                method,
                runs[0]["device"],
                f"{_mean([r['seconds_per_step'] for r in runs]):.4f}",
                f"{fastest:.4f}",
                str(sum(r["steps"] for r in runs)),
                f"{full:.0f} ({how})",
                "—" if math.isnan(ours) else f"{ours:.1f}",
                "—" if math.isnan(ours) else f"{full / ours:.0f}",
            ]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def report(results: list[dict], methods: list[str]) -> str:
    """Every table of a sweep, as markdown."""
    shown = ["nothing", *[m for m in methods if m != "nothing"]]
    parts = [
        "Pair macro-F1 against the truth (the paper's figure; the paper column is its published "
        "ALIGNED refinement on another network, quoted, not rerun):",
        "",
        *score_table(results, shown, "pair_f1", paper=True),
        "",
        '"timed only": the method ran a few timed steps (at its size\'s first case) and no '
        "refinement, as `--gradient-steps` asked or because its full run was projected past "
        "`--time-limit`; see the speed table.",
        "",
        "Signed-edge F1 against the truth:",
        "",
        *score_table(results, shown, "signed_f1", paper=False),
        "",
        "Deduction macro-F1 on the sealed test split (knockouts no method saw) against the "
        "truth's labels:",
        "",
        *score_table(results, shown, "deduction_f1", paper=False),
        "",
        "Identifiability (single edits evaluated exactly against the fitted labels):",
        "",
        *identifiability_table(results),
        "",
        "Cost:",
        "",
        *cost_table(results, shown),
    ]
    if any(r["method"] in GRADIENTS for r in results):
        parts += ["", "Gradient refinement speed:", "", *speed_table(results)]
    per_seed = ["", "Per seed (pair macro-F1 / signed-edge F1 / deduction F1 / seconds):", ""]
    for r in sorted(results, key=lambda r: (r["genes"], r["corruption"], r["seed"], r["method"])):
        if r["method"] == "instance" or "pair_f1" not in r:
            continue
        per_seed.append(
            f"- {r['genes']} genes, p = {r['corruption']:g}, seed {r['seed']}, {r['method']}: "
            f"{r['pair_f1']:.4f} / {r['signed_f1']:.3f} / {r['deduction_f1']:.3f} / "
            f"{r['seconds']:.1f} s"
        )
    return "\n".join(parts + per_seed)


# ---- the sweep -----------------------------------------------------------------------------


def _load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def _progress(result: dict) -> str:
    where = f"{result['genes']} genes, p = {result['corruption']:g}, seed {result['seed']}"
    if result["method"] == "instance":
        return (
            f"{where}: ceiling pair {result['ceiling_pair_f1']:.4f}, nothing "
            f"{result['nothing']['pair_f1']:.4f}; silent missing {result['missing_silent']}/"
            f"{result['missing']}, false {result['false_silent']}/{result['false']}"
        )
    if result.get("skipped"):
        return f"{where}, {result['method']}: not run (timed only, at this size's first case)"
    figure = f"pair {result['pair_f1']:.4f}" if "pair_f1" in result else "timed only"
    extra = f", {result['seconds_per_step']:.4f} s/step" if "seconds_per_step" in result else ""
    return (
        f"{where}, {result['method']}: {figure}, {result['seconds']:.1f} s, "
        f"{result['peak_mb']:.0f} MB{extra}"
    )


def sweep(args, methods: list[str]) -> list[dict]:
    """Every case, each in its own interpreter; a gradient variant that was only timed at a
    size is not run again at that size (its cost does not depend on p or the seed)."""
    sizes = [int(size) for size in args.sizes.split(",")]
    levels = [float(p) for p in args.corruptions.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    timed_only: set[tuple[int, str]] = set()
    results = []
    for genes in sizes:
        for corruption in levels:
            for seed in seeds:
                for method in ["instance", *[m for m in methods if m != "nothing"]]:
                    case = {"genes": genes, "corruption": corruption, "seed": seed}
                    if (genes, method) in timed_only:
                        result = {**case, "method": method, "skipped": True}
                    else:
                        result = run_isolated(
                            **case,
                            k=args.k,
                            method=method,
                            time_limit=args.time_limit,
                            gradient_steps=args.gradient_steps,
                        )
                        if result.get("timed_only"):
                            timed_only.add((genes, method))
                    print(_progress(result), flush=True)
                    results.append(result)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000", help="gene counts")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--corruptions", default=",".join(f"{p:g}" for p in SWEEP))
    parser.add_argument("--methods", default=",".join(METHODS), help=", ".join(METHODS))
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per run")
    parser.add_argument(
        "--gradient-steps",
        type=int,
        default=None,
        help="time this many gradient steps instead of refining (quick mode: 6)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI-sized: 300 genes, p in {0, .2, .5, .9}, seed 0, gradients timed only (6 steps)",
    )
    add_record_options(parser, cases=True)
    args = parser.parse_args(argv)
    if answer_case(args, run_case):
        return
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s) {', '.join(sorted(unknown))}; use {', '.join(METHODS)}")

    load = _load()
    started = time.perf_counter()
    results = sweep(args, methods)
    text = report(results, methods)
    text += f"\n\nSweep wall time: {time.perf_counter() - started:.0f} s."
    print()
    print(text)
    notes = [
        f"protocol: deduction, k = {args.k}, fitted on train + validation (test sealed); "
        f"sizes {args.sizes}, seeds {args.seeds}; time limit {args.time_limit:g} s per run",
        f"load average (1/5/15 min) at start {load}, at end {_load()} (2 cores shared: "
        "timings are contended)",
    ]
    record_run("refinement_sweep", text, args, notes)


if __name__ == "__main__":
    main()
