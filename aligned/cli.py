"""The ``aligned`` command line: a thin layer over the Python API.

Every command turns an :class:`~aligned.errors.AlignedError` into one line on stderr and a
non-zero exit status; no traceback reaches the user for bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from aligned.errors import AlignedError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reconcile perturbation data with gene regulatory knowledge.",
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> None:
    """Print one line on stderr and exit with status 1."""
    err_console.print(f"aligned: error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except AlignedError as error:
        err_console.print(f"aligned: error: {error}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)


# --- knowledge-base commands ---------------------------------------------------------------


def _parse_perturbation(items: list[str]) -> dict[str, int]:
    """Parse ``GENE=-1`` / ``GENE=+1`` items (the gene may itself contain ``=``)."""
    perturbation = {}
    for item in items:
        gene, separator, value = item.rpartition("=")
        if not separator or gene == "" or value.strip() not in ("-1", "1", "+1"):
            fail(f"--perturb expects GENE=-1 or GENE=+1, got {item!r}")
        perturbation[gene] = int(value)
    return perturbation


def _print_json(payload: object) -> None:
    import json

    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def _table(title: str, columns: list[str], rows: list[list[object]]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[escape(str(value)) for value in row])
    return table


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@app.command()
def query(
    kb: Path = typer.Argument(..., help="Knowledge base (TSV/CSV edge table or .pl facts)."),
    goal: str = typer.Argument(..., help='Prolog goal, genes as strings: edge(S, "lexA", -1)'),
    time_limit: float = typer.Option(5.0, help="Seconds before the query is stopped."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Run a (sandboxed) Prolog goal against a knowledge base."""
    from aligned.knowledge_base import KnowledgeBase

    solutions = KnowledgeBase.read(kb).query(goal, time_limit=time_limit)
    if json:
        _print_json(solutions)
        return
    columns = list(solutions[0]) if solutions else []
    rows = [[solution[column] for column in columns] for solution in solutions]
    console.print(_table(f"{len(solutions)} solution(s) of {goal}", columns, rows))


@app.command()
def explain(
    kb: Path = typer.Argument(..., help="Knowledge base (TSV/CSV edge table or .pl facts)."),
    perturb: list[str] = typer.Option(..., "--perturb", help="GENE=-1 (loss) or GENE=+1 (gain)."),
    gene: str = typer.Option(..., "--gene", help="The gene whose response to explain."),
    k: int = typer.Option(3, "--k", help="Walk length bound."),
    limit: int = typer.Option(20, help="At most this many walks."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the signed walks that carry a perturbation to a gene, shortest first."""
    from aligned.knowledge_base import KnowledgeBase

    knowledge = KnowledgeBase.read(kb)
    perturbation = _parse_perturbation(perturb)
    deduced = knowledge.deduce_many([perturbation], k=k)[0]
    status = deduced["status"].get(gene, "none")
    walks = knowledge.explain(perturbation, gene, k=k, limit=limit)
    if json:
        _print_json(
            {
                "gene": gene,
                "status": status,
                "walks": [
                    {"genes": list(w.genes), "edge_signs": list(w.edge_signs), "sign": w.sign}
                    for w in walks
                ],
            }
        )
        return
    rows = [[w.length, "+1" if w.sign > 0 else "-1", str(w)] for w in walks]
    console.print(_table(f"{gene}: {status} (k = {k})", ["length", "sign", "walk"], rows))


@app.command()
def diff(
    old: Path = typer.Argument(..., help="The earlier knowledge base."),
    new: Path = typer.Argument(..., help="The later knowledge base."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List edges added, removed and flipped between two knowledge bases."""
    import pandas as pd

    from aligned.knowledge_base import KnowledgeBase

    changes = KnowledgeBase.read(old).diff(KnowledgeBase.read(new))
    records = [
        {
            "change": row.change,
            "source": row.source,
            "target": row.target,
            "old_sign": None if pd.isna(row.old_sign) else int(row.old_sign),
            "new_sign": None if pd.isna(row.new_sign) else int(row.new_sign),
        }
        for row in changes.itertuples(index=False)
    ]
    if json:
        _print_json(records)
        return
    rows = [
        [
            r["change"],
            r["source"],
            r["target"],
            _sign_text(r["old_sign"]),
            _sign_text(r["new_sign"]),
        ]
        for r in records
    ]
    console.print(
        _table(f"{len(rows)} change(s)", ["change", "source", "target", "old", "new"], rows)
    )


def _sign_text(sign: int | None) -> str:
    return {1: "+", -1: "-", 0: "?", None: ""}[sign]


@app.command()
def deduce(
    kb: Path = typer.Argument(..., help="Knowledge base (TSV/CSV edge table or .pl facts)."),
    perturb: list[str] = typer.Option(..., "--perturb", help="GENE=-1 (loss) or GENE=+1 (gain)."),
    k: int = typer.Option(3, "--k", help="Walk length bound."),
    backend: str = typer.Option("tensor", help="tensor, prolog or asp (all agree)."),
    all_genes: bool = typer.Option(False, "--all", help="Also list genes with status none."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Deduce every gene's response to a (single or combined) perturbation."""
    from aligned.knowledge_base import KnowledgeBase

    deduced = KnowledgeBase.read(kb).deduce(_parse_perturbation(perturb), k=k, backend=backend)
    if not all_genes:
        deduced = deduced[deduced["status"] != "none"]
    if json:
        _print_json(
            {
                gene: row._asdict()
                for gene, row in zip(deduced.index, deduced.itertuples(index=False))
            }
        )
        return
    rows = [
        [gene, f"{row.label:+d}" if row.label else "0", row.status]
        for gene, row in zip(deduced.index, deduced.itertuples(index=False))
    ]
    console.print(_table(f"deduction at k = {k} ({backend})", ["gene", "label", "status"], rows))


# --- toy walkthrough ---------------------------------------------------------------------


@app.command()
def walkthrough(
    out: Path = typer.Option(
        Path("runs/walkthrough"), "--out", help="New or empty output directory."
    ),
) -> None:
    """Walk through the bundled toy knowledge base: deduce, explain, query, export."""
    from aligned.walkthrough import EXPLAINED_GENE, PERTURBATION, QUERY, run_walkthrough

    result = run_walkthrough(out)
    console.print(f"[bold]Knowledge base[/bold]: {escape(repr(result.kb))}")
    ((gene, sign),) = PERTURBATION.items()
    deduced = result.deductions["tensor"]
    moved = deduced[deduced["status"] != "none"]
    rows = [
        [g, f"{r.label:+d}" if r.label else "0", r.status]
        for g, r in zip(moved.index, moved.itertuples(index=False))
    ]
    console.print(_table(f"Knock out {gene} (k = {result.k})", ["gene", "label", "status"], rows))
    agree = "agree" if result.backends_agree else "DISAGREE"
    console.print(f"Deduction engines: tensor, Prolog and ASP {agree}", soft_wrap=True)
    console.print(
        _table(
            f"Why {EXPLAINED_GENE} is {deduced.loc[EXPLAINED_GENE, 'status']}",
            ["length", "walk"],
            [[w.length, str(w)] for w in result.walks],
        )
    )
    console.print(
        _table(
            f"Query {QUERY}",
            list(result.repressions[0]),
            [list(solution.values()) for solution in result.repressions],
        )
    )
    console.print("Exported: " + ", ".join(str(path) for path in result.exported))
    if not result.backends_agree:
        raise typer.Exit(1)


# --- data commands -----------------------------------------------------------------------------

data_app = typer.Typer(no_args_is_help=True, help="Build perturbation data sets from real sources.")
app.add_typer(data_app, name="data")


@app.command("simulate")
def simulate_command(
    out: Path = typer.Option(..., "--out", help="Output directory (new or empty)."),
    genes: int = typer.Option(300, "--genes", help="Number of genes."),
    corruption: float = typer.Option(0.3, "--corruption", help="Corruption level p, 0 to 1."),
    seed: int = typer.Option(0, "--seed", help="Seeds the network, the data and the splits."),
    protocol: str = typer.Option("linear", "--protocol", help="linear or deduction."),
    k: int = typer.Option(3, "--k", help="Deduction bound (deduction protocol)."),
    doubles: int = typer.Option(0, "--doubles", help="Double knockouts (linear protocol)."),
) -> None:
    """Simulate a true GRN, a corrupted copy of it, and perturbation data with known answers."""
    from aligned.data.dataset import refuse_non_empty
    from aligned.data.simulate import simulate, write_simulation

    refuse_non_empty(out)  # refuse before the work, not after it
    sim = simulate(genes, corruption, protocol, seed, k, doubles=doubles)
    write_simulation(sim, out)
    counts = sim.params["counts"]
    sizes = sim.data.split_sizes()
    rows = [
        ["genes / regulators", f"{counts['genes']} / {counts['regulators']}"],
        [
            "true edges (+ / -)",
            f"{counts['true_edges']} ({counts['true_activations']} / {counts['true_repressions']})",
        ],
        [
            f"corrupted edges (p = {corruption:g})",
            f"{counts['corrupted_edges']}: {counts['removed']} removed, "
            f"{counts['added_activations']} + {counts['added_repressions']} false added",
        ],
        [
            f"conditions ({protocol})",
            f"{len(sim.data)}: train {sizes['train']}, validation {sizes['validation']}, "
            f"test {sizes['test']} (sealed)",
        ],
    ]
    console.print(_table(f"Simulation written to {out}", ["", "value"], rows))


@data_app.command("ecoli")
def data_ecoli_command(
    out: Path = typer.Option(..., "--out", help="Output directory (new or empty)."),
    source: Path = typer.Option(
        None, "--source", help="The pymodulon-0.2.1 wheel (else downloaded into the cache)."
    ),
    cache: Path = typer.Option(
        None, "--cache", help="Download cache (default $ALIGNED_CACHE or ~/.cache/aligned)."
    ),
    tau: float = typer.Option(1.0, "--tau", help="Label threshold on |log2 fold change|."),
) -> None:
    """Build the E. coli PRECISE knockout data set and its RegulonDB knowledge base."""
    from aligned.data.ecoli import build_ecoli

    report = build_ecoli(out, source=source, cache=cache, tau=tau)
    rows = [[name, value] for name, value in report.summary().items()]
    console.print(_table(f"E. coli PRECISE knockouts written to {out}", ["", "value"], rows))


# --- refinement sessions -----------------------------------------------------------------------


@app.command()
def refine(
    config: Path = typer.Option(..., "--config", help="Session configuration (TOML)."),
    out: Path = typer.Option(..., "--out", help="Run directory (new, or this run to resume)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Run (or resume) a knowledge-refinement session."""
    from aligned.session import Session

    result = Session(config, out, quiet=quiet or json).run()
    if json:
        _print_json({"run": str(out), "metrics": result.metrics})
        return
    _print_session_summary(result)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="A finished run directory."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Score a finished run on its sealed test split (and its edges against a ground truth).

    The figures are also saved as RUN/evaluation.json, and RUN/report.html is refreshed to show
    them.
    """
    from aligned.evaluation import save_evaluation

    result = save_evaluation(run)
    if json:
        _print_json(result)
        return
    _print_evaluation(result)


@app.command()
def report(
    run: Path = typer.Argument(
        ..., help="A run directory (finished, or unfinished: partial report)."
    ),
    out: Path = typer.Option(
        None, "--out", help="The HTML file to write (default RUN/report.html)."
    ),
) -> None:
    """Write a self-contained HTML report of a run: metrics, edits, gate and top edits."""
    from aligned.report import write_report

    console.print(f"Report written to {escape(str(write_report(run, out)))}", soft_wrap=True)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="New or empty output directory."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """A real refinement session on bundled synthetic defaults, evaluated on held-out data."""
    from aligned.demo import SIMULATION, run_demo

    console.print(
        f"Simulating {SIMULATION['n_genes']} genes with a ground-truth network, corrupting "
        f"{SIMULATION['corruption']:.0%} of it, and refining the corrupted copy..."
    )
    result = run_demo(out, quiet=quiet)
    _print_session_summary(result.session)
    _print_evaluation(result.evaluation)
    console.print(f"Run directory: {result.run_dir}   simulation: {result.simulation_dir}")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _print_session_summary(result) -> None:
    counts = result.changes["op"].value_counts().to_dict() if len(result.changes) else {}
    console.print(
        f"Revised KB: {len(result.original)} -> {len(result.revised)} edges; edits "
        + ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))
        + f"; gate trusts the KB for {int(result.gate.trust_kb.sum())} of "
        f"{len(result.gate.table)} genes",
        soft_wrap=True,
    )
    rows = []
    for entry in result.metrics:
        validation = entry["validation"]
        truth = entry.get("truth", {})
        rows.append(
            [
                entry["iteration"],
                _fmt(validation["network"]["data_f1"]),
                _fmt(validation["kb"]["data_f1"]),
                _fmt(validation["integrated"]["data_f1"]),
                entry["edges"]["total"],
                _fmt(truth.get("f1")),
            ]
        )
    console.print(
        _table(
            "Per iteration (validation split)",
            ["iteration", "network F1", "KB F1", "integrated F1", "edges", "edge F1 vs truth"],
            rows,
        )
    )


def _print_evaluation(result: dict) -> None:
    rows = [
        [method, *(_fmt(scores[key]) for key in ("data_f1", "kb_f1", "balanced", "pearson_top20"))]
        for method, scores in result["test"].items()
    ]
    console.print(
        _table(
            f"Sealed test split ({result['conditions']} conditions)",
            ["method", "data F1", "KB F1 (original)", "balanced", "Pearson top-20"],
            rows,
        )
    )
    if "edges" in result:
        rows = [
            [
                name,
                *(
                    _fmt(scores[key])
                    for key in (
                        "precision",
                        "recall",
                        "f1",
                        "pair_macro_f1",
                        "added",
                        "removed",
                        "flipped",
                    )
                ),
            ]
            for name, scores in result["edges"].items()
        ]
        console.print(
            _table(
                "Knowledge base against the ground truth (signed edges)",
                ["KB", "precision", "recall", "F1", "pair macro-F1", "added", "removed", "flipped"],
                rows,
            )
        )


# --- abduction command ---------------------------------------------------------------------


@app.command("abduce")
def abduce_command(
    kb: Path = typer.Option(..., "--kb", help="Knowledge base (TSV/CSV edge table or .pl facts)."),
    data: Path = typer.Option(..., "--data", help="Saved dataset directory or GEARS .h5ad."),
    out: Path = typer.Option(..., "--out", help="Output directory (new or empty)."),
    perturbation: str = typer.Option("loss", "--perturbation", help=".h5ad only: loss or gain."),
    k: int = typer.Option(3, "--k", help="Deduction bound."),
    solver: str = typer.Option("auto", "--solver", help="auto, asp or greedy."),
    time_limit: float = typer.Option(300.0, "--time-limit", help="Seconds for the solve."),
    label_model: str = typer.Option(
        "auto",
        "--label-model",
        help="exact (labels are a KB's deduction), graded (thresholded LFCs: a direct target "
        "must respond, 2..k steps away may) or auto (graded when the labels record a tau).",
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Revise a KB minimally so that its deduction agrees with the data; explain each edit.

    Fits the train and validation conditions (the sealed test split is never read) and writes
    kb/original.tsv, kb/revised.tsv, changes.tsv, rules/revised.pl, rules/revised.lp and
    abduction.json into OUT.
    """
    import pandas as pd

    from aligned.abduction import SOLVERS, abduce, write_revision
    from aligned.abduction.label_model import LABEL_MODELS
    from aligned.abduction.revision import check_output_dir
    from aligned.data.loader import load_data
    from aligned.errors import InputError
    from aligned.knowledge_base import KnowledgeBase

    check_output_dir(out)  # refuse before the work, not after it
    if k < 1:
        fail(f"--k must be at least 1, got {k}")
    if solver not in SOLVERS:
        fail(f"--solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if not time_limit > 0:
        fail(f"--time-limit must be > 0 seconds, got {time_limit}")
    if label_model not in LABEL_MODELS:
        fail(f"--label-model must be one of {', '.join(LABEL_MODELS)}, got {label_model!r}")
    knowledge = KnowledgeBase.read(kb)
    dataset = load_data(data, perturbation)
    fitted = dataset.without_test()
    if len(fitted) == 0:
        raise InputError("the data set holds no train or validation condition to fit", data)
    revision = abduce(
        knowledge, fitted, k=k, solver=solver, time_limit=time_limit, label_model=label_model
    )
    write_revision(revision, out)
    summary = revision.summary()
    if json:
        _print_json({**summary, "out": str(out)})
        return
    edits = summary["edits"]
    rows = [
        ["conditions fitted", f"{len(fitted)} (test split sealed)"],
        ["label model", str(summary["counts"].get("label_model", "exact"))],
        ["objective", f"{revision.objective_before:.3f} -> {revision.objective_after:.3f}"],
        ["edits", f"{edits['add']} added, {edits['remove']} removed, {edits['flip']} flipped"],
        ["edges", f"{summary['original_edges']} -> {summary['revised_edges']}"],
        ["edges no condition can judge", str(summary["counts"].get("edges_out_of_reach", 0))],
        ["solver", revision.solver],
        ["written to", str(out)],
    ]
    console.print(_table(f"Abduction at k = {k}", ["", "value"], rows))
    top = revision.changes.sort_values("objective_change", kind="stable").head(20)
    console.print(
        _table(
            f"Edits, strongest first ({len(top)} of {len(revision.changes)}; all with their "
            "conditions in changes.tsv)",
            [
                "op",
                "source",
                "target",
                "sign",
                "objective change",
                "conditions for / against",
                "solver",
            ],
            [
                [
                    row.op,
                    row.source,
                    row.target,
                    _sign_change(row.old_sign, row.new_sign, pd),
                    f"{row.objective_change:+.3f}",
                    f"{_count_ids(row.supporting)} / {_count_ids(row.contradicting)}",
                    row.solver,
                ]
                for row in top.itertuples(index=False)
            ],
        )
    )


def _count_ids(ids: str) -> int:
    return len(ids.split(";")) if ids else 0


def _sign_change(old, new, pd) -> str:
    old_text = "" if pd.isna(old) else _sign_text(int(old))
    new_text = "" if pd.isna(new) else _sign_text(int(new))
    if old_text and new_text:
        return f"{old_text} -> {new_text}"
    return old_text or new_text
