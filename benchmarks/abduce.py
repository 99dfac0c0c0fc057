"""Abduction benchmark: quality and cost of ``aligned.abduce`` on simulated data.

For each case, ``aligned.data.simulate(protocol="deduction")`` draws a true network, a corrupted
copy and the true network's deduction (k = 3) of every regulator's knockout; abduction revises
the corrupted KB against the train and validation conditions (the test split stays sealed), and
the revised KB is scored against the truth: signed-edge F1 and pair macro-F1 (DESIGN.md section
3), before and after.  Each case runs in a fresh interpreter, so its peak memory (max RSS) is its
own.

With ``--protocol linear`` the labels threshold a damped linear model's noisy LFCs instead
(abduction then runs its ``graded`` label model unless ``--label-model`` says otherwise), and
each case also reports its *one-step ceiling*: the signed-edge F1 of the corrupted KB after
every edit a label can show at one step and no other, i.e. adding each missing true edge whose
target responds with the edge's sign when its source is knocked out in a fitted condition, and
removing each false edge whose target stays silent there.  (Two steps away a true edge's
target responds in about one condition in ten, hardly more often than an unrelated gene, so
labels say next to nothing about edges out of genes that are not perturbed.)

Usage::

    python benchmarks/abduce.py                  # everything (about 15 minutes on 2 cores)
    python benchmarks/abduce.py --sizes 300 --seeds 0 --corruptions 0.3
    python benchmarks/abduce.py --no-record      # print the table only

The table is printed and appended, with the command, seeds and machine, to
``benchmarks/results/abduce.md``.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import time

from _record import add_record_options, answer_case, mean_sd, record_run, run_in_child

SWEEP = (0.0, 0.1, 0.2, 0.3, 0.5, 0.9)


def one_step_ceiling(sim, fitted) -> float:
    """Signed-edge F1 of the corrupted KB after every one-step edit the labels support."""
    import numpy as np

    from aligned.knowledge_base import KnowledgeBase
    from aligned.metrics import signed_edge_scores

    index = {gene: i for i, gene in enumerate(fitted.genes)}
    labels = np.asarray(fitted.labels)
    knocked = {
        gene: (row, sign)
        for row, perturbation in enumerate(fitted.perturbations)
        for gene, sign in perturbation.items()
    }

    def shown(source: str, target: str, sign: int) -> int:
        """The label of ``target`` where ``source`` is perturbed, times the expected sign."""
        row, direction = knocked[source]
        return int(labels[row, index[target]]) * direction * sign

    def edge_set(kb):
        return set(kb.edges[["source", "target", "sign"]].itertuples(index=False, name=None))

    true, corrupted = edge_set(sim.kb_true), edge_set(sim.kb_corrupted)
    best = set(corrupted)
    best |= {edge for edge in true - corrupted if edge[0] in knocked and shown(*edge) == 1}
    best -= {edge for edge in corrupted - true if edge[0] in knocked and shown(*edge) == 0}
    frame = KnowledgeBase.from_edges(sorted(best), genes=sim.kb_true.genes)
    return signed_edge_scores(frame, sim.kb_true)["f1"]


def response_rates(sim, fitted, k: int) -> dict[str, float]:
    """Share of scored genes that respond, by their distance from the knocked-out gene in the
    true KB (the shortest bound at which its deduction calls them), and for genes it never
    reaches within ``k``."""
    import numpy as np

    genes = list(fitted.genes)
    X = fitted.perturbation_matrix(genes)
    distance = np.full((len(fitted), len(genes)), k + 1)
    for bound in range(k, 0, -1):
        called, _ = sim.kb_true.deduce_matrix(X, bound, genes=genes)
        distance[called != 0] = bound
    labels, scored = np.asarray(fitted.labels), np.asarray(fitted.scored)
    rates = {}
    for bound in range(1, k + 2):
        chosen = scored & (distance == bound)
        name = str(bound) if bound <= k else "unreached"
        rates[name] = float((labels[chosen] != 0).mean()) if chosen.any() else float("nan")
    return rates


def run_case(
    genes: int,
    corruption: float,
    seed: int,
    k: int,
    time_limit: float,
    protocol: str,
    label_model: str = "auto",
) -> dict:
    """One case, in this process: simulate, abduce, score."""
    from aligned.abduction import abduce
    from aligned.data import simulate
    from aligned.metrics import pair_macro_f1, signed_edge_scores

    sim = simulate(genes, corruption, protocol=protocol, seed=seed, k=k)
    fitted = sim.data.without_test()
    started = time.perf_counter()
    revision = abduce(sim.kb_corrupted, fitted, k=k, time_limit=time_limit, label_model=label_model)
    seconds = time.perf_counter() - started
    universe = sim.kb_true.genes
    before = signed_edge_scores(sim.kb_corrupted, sim.kb_true)
    after = signed_edge_scores(revision.revised, sim.kb_true)
    summary = revision.summary()
    return {
        "genes": genes,
        "corruption": corruption,
        "seed": seed,
        "conditions": len(fitted),
        "true_edges": len(sim.kb_true),
        "solver": revision.solver,
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "f1_before": before["f1"],
        "f1_after": after["f1"],
        "pair_before": pair_macro_f1(sim.kb_corrupted, sim.kb_true, universe),
        "pair_after": pair_macro_f1(revision.revised, sim.kb_true, universe),
        "objective_before": revision.objective_before,
        "objective_after": revision.objective_after,
        "edits": summary["edits"],
        "out_of_reach": summary["counts"].get("edges_out_of_reach", 0),
        "label_model": summary["counts"].get("label_model", "exact"),
        "ceiling": one_step_ceiling(sim, fitted) if protocol == "linear" else None,
        "response_rates": response_rates(sim, fitted, k) if protocol == "linear" else None,
    }


def run_isolated(case: dict) -> dict:
    """Run one case (:func:`run_case`'s arguments) in a fresh interpreter: its own peak memory."""
    return run_in_child(__file__, case)


def table(results: list[dict]) -> str:
    """A markdown table: one row per (genes, corruption), mean ± SD over seeds."""
    header = (
        "| genes | corruption | seeds | conditions | solver | label model | wall s | peak MB | "
        "signed-edge F1 before → after | one-step ceiling | pair macro-F1 before → after | "
        "edits add/remove/flip |"
    )
    lines = [header, "|" + "---|" * 12]
    groups: dict[tuple, list[dict]] = {}
    for result in results:
        key = (result["genes"], result["corruption"], result.get("label_model", "exact"))
        groups.setdefault(key, []).append(result)
    for (genes, corruption, _), group in sorted(groups.items()):
        seeds = ",".join(str(r["seed"]) for r in group)
        solvers = "/".join(sorted({r["solver"] for r in group}))
        edits = "/".join(
            f"{statistics.mean(r['edits'][op] for r in group):.0f}"
            for op in ("add", "remove", "flip")
        )
        models = "/".join(sorted({r.get("label_model", "exact") for r in group}))
        ceilings = [r["ceiling"] for r in group if r.get("ceiling") is not None]
        lines.append(
            f"| {genes} | {corruption:g} | {seeds} | {group[0]['conditions']} | {solvers} | "
            f"{models} | {mean_sd([r['seconds'] for r in group], 1)} | "
            f"{max(r['peak_mb'] for r in group):.0f} | "
            f"{mean_sd([r['f1_before'] for r in group])} → "
            f"{mean_sd([r['f1_after'] for r in group])} | "
            f"{mean_sd(ceilings) if ceilings else 'n/a'} | "
            f"{mean_sd([r['pair_before'] for r in group])} → "
            f"{mean_sd([r['pair_after'] for r in group])} | {edits} |"
        )
    per_seed = ["", "Per seed (signed-edge F1 after, pair macro-F1 after, seconds):", ""]
    order = ("genes", "corruption", "label_model", "seed")
    for result in sorted(results, key=lambda r: tuple(r.get(key, "") for key in order)):
        per_seed.append(
            f"- {result['genes']} genes, p = {result['corruption']:g}, "
            f"{result.get('label_model', 'exact')}, seed {result['seed']}: "
            f"{result['f1_after']:.3f}, {result['pair_after']:.4f}, {result['seconds']:.1f} s"
        )
    rated = [r["response_rates"] for r in results if r.get("response_rates")]
    if rated:
        per_seed += [
            "",
            "Share of genes that respond to a knockout, by their distance from it in the true KB "
            "(mean ± SD over the cases above): "
            + "; ".join(
                f"{name}: {mean_sd([rates[name] for rates in rated])}" for name in rated[0]
            ),
        ]
    return "\n".join(lines + per_seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,1000,5000", help="gene counts")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds at 300 genes")
    parser.add_argument("--large-seeds", default="0", help="seeds at larger sizes")
    parser.add_argument("--corruptions", default=",".join(f"{p:g}" for p in SWEEP))
    parser.add_argument("--large-corruption", type=float, default=0.3)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument(
        "--protocol",
        choices=("deduction", "linear"),
        default="deduction",
        help="labels from the true KB's deduction, or from a noisy linear model",
    )
    parser.add_argument(
        "--label-model",
        default="auto",
        help="how labels relate to the deduction: auto (graded for thresholded LFCs), exact, "
        "graded, or several, comma-separated, side by side",
    )
    parser.add_argument("--time-limit", type=float, default=600.0)
    add_record_options(parser, cases=True)
    args = parser.parse_args(argv)
    if answer_case(args, run_case):
        return

    sizes = [int(size) for size in args.sizes.split(",")]
    cases = []
    for genes in sizes:
        if genes <= 300:
            for corruption in (float(p) for p in args.corruptions.split(",")):
                cases += [(genes, corruption, int(s)) for s in args.seeds.split(",")]
        else:
            cases += [(genes, args.large_corruption, int(s)) for s in args.large_seeds.split(",")]
    models = args.label_model.split(",")
    unknown = sorted(set(models) - {"auto", "exact", "graded"})
    if unknown:
        parser.error(f"unknown label model(s) {', '.join(unknown)}; use auto, exact, graded")
    results = []
    for (genes, corruption, seed), model in itertools.product(cases, models):
        result = run_isolated(
            {
                "genes": genes,
                "corruption": corruption,
                "seed": seed,
                "k": args.k,
                "time_limit": args.time_limit,
                "protocol": args.protocol,
                "label_model": model,
            }
        )
        print(
            f"{genes} genes, p = {corruption:g}, seed {seed}: F1 {result['f1_before']:.3f} -> "
            f"{result['f1_after']:.3f}, pair {result['pair_before']:.4f} -> "
            f"{result['pair_after']:.4f}, {result['seconds']:.1f} s, {result['peak_mb']:.0f} MB, "
            f"{result['solver']}",
            flush=True,
        )
        results.append(result)
    text = table(results)
    print()
    print(text)
    notes = [
        f"protocol: {args.protocol}, k = {args.k}, label model {args.label_model}, fitted on "
        "train + validation (test sealed); seeds as listed"
    ]
    record_run("abduce" if args.protocol == "deduction" else "abduce-linear", text, args, notes)


if __name__ == "__main__":
    main()
