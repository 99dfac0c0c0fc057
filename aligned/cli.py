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


# --- demo --------------------------------------------------------------------------------------


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="New or empty output directory."),
) -> None:
    """Walk through the bundled toy knowledge base: deduce, explain, query, export."""
    from aligned.demo import EXPLAINED_GENE, PERTURBATION, QUERY, run_walkthrough

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
