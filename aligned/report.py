"""The run report: one self-contained HTML page that shows what a refinement session did.

``write_report(run_dir)`` reads the files a session leaves (``run.json``, ``config.toml``,
``metrics.json``, ``changes.tsv``, ``gate.tsv``, ``kb/*.tsv`` and, when ``aligned evaluate``
results were saved, ``evaluation.json``) and writes ``report.html`` with:

1. the run's summary and configuration;
2. the validation metrics per iteration (figure and table);
3. the edits (added, removed, flipped edges) accepted per iteration;
4. the neighbourhood of the best-supported edits, before and after the revision;
5. the adaptor's gate: which genes trust the KB and which the network, and why;
6. the top edits with the conditions that support and contradict them;
7. the evaluation on the sealed test split, when one was saved.

The figures are PNG images embedded as ``data:`` URIs and the style sheet is inline, so the
single file opens offline and loads nothing from anywhere.  Every string read from a file is
HTML-escaped (gene names may hold quotes, ``<``, ``>``, ``&`` or any Unicode).  A run still
in progress (or killed) gets a report of what exists so far, marked unfinished.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aligned.errors import InputError
from aligned.io import atomic_write_text
from aligned.knowledge_base import KnowledgeBase

REPORT_NAME = "report.html"
EVALUATION_NAME = "evaluation.json"
TOP_EDITS = 20  # rows of the edit table (all edits stay in changes.tsv)
DRAWN_EDITS = 6  # edits whose neighbourhood is drawn
MAX_DRAWN_GENES = 30  # beyond this a network drawing stops being readable
LISTED_CONDITIONS = 12  # condition ids shown per edit before "and N more"
LAYOUT_SEED = 0  # the same run always gives the same drawing

# Okabe-Ito colours: distinguishable with the common forms of colour blindness
ACTIVATION = "#0072B2"
REPRESSION = "#D55E00"
UNKNOWN_SIGN = "#8c8c8c"
SIGN_COLOURS = {1: ACTIVATION, -1: REPRESSION, 0: UNKNOWN_SIGN}
PREDICTOR_COLOURS = {"network": "#E69F00", "kb": "#0072B2", "integrated": "#009E73"}
PREDICTOR_NAMES = {"network": "network", "kb": "knowledge base", "integrated": "integrated"}
GATE_SOURCES = (("kb", "knowledge base"), ("network", "network"))
OPS = ("add", "remove", "flip")
OP_NAMES = {"add": "added", "remove": "removed", "flip": "flipped"}
OP_COLOURS = {"add": "#009E73", "remove": "#D55E00", "flip": "#CC79A7"}
SIGN_TEXT = {1: "+", -1: "\u2212", 0: "?"}
SIGN_TOKENS = {"+": 1, "+1": 1, "1": 1, "-": -1, "-1": -1, "0": 0, "?": 0}


# ---- reading the run directory -------------------------------------------------------------


@dataclass
class RunFiles:
    """What a run directory holds now; absent parts are None (or empty).

    ``revised`` is the final KB of a finished run, or the KB after the last completed iteration
    of an unfinished one; ``revised_label`` says which.  ``gate`` likewise.
    """

    path: Path
    run: dict
    config_text: str | None
    metrics: list[dict]
    changes: pd.DataFrame
    original: KnowledgeBase | None
    revised: KnowledgeBase | None
    revised_label: str
    gate: pd.DataFrame | None
    gate_label: str
    evaluation: dict | None

    @property
    def finished(self) -> bool:
        return self.run.get("status") == "finished"

    @property
    def iterations(self) -> list[int]:
        """Completed refinement iterations (0, the pre-trained start, excluded)."""
        done = {int(entry["iteration"]) for entry in self.metrics} - {0}
        return sorted(done | set(self.changes["iteration"].tolist()))


def read_run(run_dir: str | os.PathLike) -> RunFiles:
    """Read everything the report shows from a (finished or unfinished) run directory.

    Raises
    ------
    InputError
        If ``run_dir`` is not a directory holding a session's ``run.json``, or a file of the
        run cannot be read.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError("is not a directory (expected an aligned run directory)", path)
    run_json = path / "run.json"
    if not run_json.is_file():
        raise InputError("is not an aligned run directory (no run.json)", path)
    run = _read_json(run_json)
    if not isinstance(run, dict) or "status" not in run:
        raise InputError("is not a session's run.json (no status)", run_json)
    metrics = _read_json(path / "metrics.json") if (path / "metrics.json").is_file() else []
    evaluation_path = path / EVALUATION_NAME
    revised, revised_label = _latest(path / "kb" / "revised.tsv", path / "kb")
    gate, gate_label = _latest(path / "gate.tsv", path / "gates")
    return RunFiles(
        path=path,
        run=run,
        config_text=_read_text(path / "config.toml"),
        metrics=sorted(metrics, key=lambda entry: entry["iteration"]),
        changes=read_changes(path / "changes.tsv"),
        original=_read_kb(path / "kb" / "original.tsv"),
        revised=_read_kb(revised) if revised else None,
        revised_label=revised_label,
        gate=_read_table(gate, {"gene": str}) if gate else None,
        gate_label=gate_label,
        evaluation=_read_json(evaluation_path) if evaluation_path.is_file() else None,
    )


def _latest(final: Path, folder: Path) -> tuple[Path | None, str]:
    """The final file if it exists, else the one of the last completed iteration.

    The label is ``final`` or ``after iteration N``.
    """
    if final.is_file():
        return final, "final"
    numbered = []
    for candidate in folder.glob("iteration-*.tsv"):
        number = candidate.stem.removeprefix("iteration-")
        if number.isdigit():
            numbered.append((int(number), candidate))
    if not numbered:
        return None, ""
    number, latest = max(numbered)
    return latest, f"after iteration {number}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot be read as JSON ({error})", path) from None


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _read_kb(path: Path) -> KnowledgeBase | None:
    return KnowledgeBase.read(path) if path.is_file() else None


def _read_table(path: Path, dtype: dict) -> pd.DataFrame:
    # keep_default_na=False: a gene called "NA" or "null" stays a gene
    return pd.read_csv(path, sep="\t", dtype=dtype, keep_default_na=False, na_values=[""])


def read_changes(path: Path) -> pd.DataFrame:
    """The session's ``changes.tsv`` with numeric iteration, signs and objective change.

    Adds ``n_supporting`` and ``n_contradicting``: counted from the ``supporting`` and
    ``contradicting`` id columns when present, else read from the ``evidence`` summary.
    """
    columns = ["iteration", "op", "source", "target", "old_sign", "new_sign", "evidence"]
    if not path.is_file():
        table = pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
        table["objective_change"] = pd.Series(dtype=float)
    else:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        missing = [
            column for column in ("iteration", "op", "source", "target") if column not in table
        ]
        if missing:
            raise InputError(f"has no column {', '.join(missing)}", path)
    try:
        table["iteration"] = pd.to_numeric(table["iteration"]).astype(int)
    except ValueError as error:
        raise InputError(f"column iteration: {error}", path) from None
    for column in ("old_sign", "new_sign"):
        signs = [_sign(value) for value in table.get(column, [""] * len(table))]
        # object dtype: an absent sign stays None instead of becoming a float NaN
        table[column] = pd.Series(signs, index=table.index, dtype=object)
    objective = table.get("objective_change", pd.Series([""] * len(table), index=table.index))
    table["objective_change"] = pd.to_numeric(objective.replace("", np.nan), errors="coerce")
    for column in ("evidence", "supporting", "contradicting"):
        if column not in table:
            table[column] = ""
    counted = [_evidence_counts(row) for row in table.itertuples(index=False)]
    table["n_supporting"] = [support for support, _ in counted]
    table["n_contradicting"] = [against for _, against in counted]
    return table


def _sign(value: object) -> int | None:
    text = str(value).strip()
    if text in SIGN_TOKENS:
        return SIGN_TOKENS[text]
    try:
        return int(float(text))  # a sign written by pandas as 1.0 / -1.0
    except ValueError:
        return None


_EVIDENCE = re.compile(r"^(\d+) supporting(?::.*?)?(?:; (\d+) contradicting:.*)?$", re.DOTALL)


def _evidence_counts(row: Any) -> tuple[int, int]:
    """Supporting and contradicting condition counts of one edit."""
    if row.supporting or row.contradicting:
        return _count_ids(row.supporting), _count_ids(row.contradicting)
    match = _EVIDENCE.match(row.evidence or "")
    if match is None:
        return 0, 0
    return int(match.group(1)), int(match.group(2) or 0)


def _count_ids(ids: str) -> int:
    return len(ids.split(";")) if ids else 0


# ---- the report ----------------------------------------------------------------------------


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the HTML report of a run directory and return its path.

    Parameters
    ----------
    run_dir : path
        A session's run directory, finished or not.
    out : path, optional
        The HTML file to write; default ``RUN/report.html``.

    Returns
    -------
    pathlib.Path
        The file written (atomically).

    Raises
    ------
    InputError
        If ``run_dir`` is not a run directory, one of its files cannot be read, or ``out`` is
        a directory.

    Notes
    -----
    Self-contained: figures are embedded PNG images, the style sheet is inline and nothing
    is loaded from the network.  Matplotlib draws through its Agg canvas directly, without
    pyplot, so writing a report never changes the backend of the calling program.  Cost:
    reading the run's tables (linear in edges and genes), four figures and one spring layout
    of at most ``MAX_DRAWN_GENES`` genes; about 1.4 s of CPU for a 200-gene, 1000-edge run.
    """
    run = read_run(run_dir)
    target = Path(out) if out is not None else run.path / REPORT_NAME
    if target.is_dir():
        raise InputError("is a directory; give the report's file name", target)
    sections = [
        summary_section(run),
        metrics_section(run),
        edits_per_iteration_section(run),
        neighbourhood_section(run),
        gate_section(run),
        top_edits_section(run),
        evaluation_section(run),
    ]
    atomic_write_text(target, _page(run, sections))
    return target


def _page(run: RunFiles, sections: list[str]) -> str:
    title = f"aligned run report: {run.path.resolve().name}"
    status = ""
    if not run.finished:
        status = (
            '<p class="unfinished"><strong>Unfinished run</strong> (status '
            f"{_e(run.run.get('status'))}): the session is still running or was stopped. This "
            "report shows what exists so far; resume the session with the same "
            "<code>aligned refine</code> command.</p>"
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        f'<h1>{_e(title)}</h1>\n<p class="path">{_e(run.path.resolve())}</p>\n{status}\n'
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )


# ---- 1. summary ----------------------------------------------------------------------------


def summary_section(run: RunFiles) -> str:
    """The run's summary table beside its configuration file."""
    rows = [[name, value] for name, value in run_summary(run).items()]
    left = _html_table(["", "value"], rows)
    right = ""
    if run.config_text is not None:
        right = f"<h3>Configuration (config.toml)</h3>\n<pre>{_e(run.config_text.strip())}</pre>"
    return _section("Summary", f'<div class="columns"><div>{left}</div><div>{right}</div></div>')


def run_summary(run: RunFiles) -> dict[str, str]:
    """Status, versions, inputs, and what the session changed, as plain text."""
    config = run.run.get("config") or {}
    versions = {"aligned": run.run.get("aligned", "?"), **(run.run.get("versions") or {})}
    summary = {
        "status": str(run.run.get("status")),
        "iterations completed": str(len(run.iterations)),
        "seed": str(run.run.get("seed")),
        "versions": ", ".join(f"{name} {version}" for name, version in versions.items()),
        "data": str(_get(config, "data", "path")),
        "knowledge base": str(_get(config, "knowledge", "path")),
        "deduction bound k": str(_get(config, "knowledge", "k")),
        "predictor": f"{_get(config, 'predictor', 'preset')} on "
        f"{_get(config, 'predictor', 'device')}",
    }
    if run.original is not None and run.revised is not None:
        summary["edges"] = (
            f"{len(run.original)} original \u2192 {len(run.revised)} {run.revised_label}"
        )
        net = run.original.diff(run.revised)["change"].value_counts()
        summary["net change"] = ", ".join(
            f"{net.get(change, 0)} {change}" for change in ("added", "removed", "flipped")
        )
    elif run.original is not None:
        summary["edges"] = f"{len(run.original)} original; no revision yet"
    accepted = run.changes["op"].value_counts()
    summary["edits accepted"] = (
        f"{len(run.changes)} over all iterations ("
        + ", ".join(f"{accepted.get(op, 0)} {OP_NAMES[op]}" for op in OPS)
        + ")"
    )
    if run.gate is not None:
        trusted = int((run.gate["source"] == "kb").sum())
        summary["gate"] = f"{trusted} of {len(run.gate)} genes trust the KB ({run.gate_label})"
    return summary


def _get(mapping: dict, section: str, key: str) -> object:
    value = mapping.get(section, {})
    return value.get(key, "?") if isinstance(value, dict) else "?"


# ---- 2. metrics per iteration --------------------------------------------------------------


def metrics_section(run: RunFiles) -> str:
    """Validation F1 and balanced consistency per iteration, and the KB against the truth."""
    if not run.metrics:
        return _section("Metrics per iteration", _note("No iteration has been recorded yet."))
    intro = _note(
        "Validation split. Data F1: macro-F1 against the held-out labels; KB F1: against the "
        "deduction of the original, frozen KB; balanced: their ALIGNED combination. "
        "Iteration 0 is the pre-trained network with the original KB."
    )
    predictors = [p for p in PREDICTOR_NAMES if p in run.metrics[0]["validation"]]
    rows = []
    for entry in run.metrics:
        validation = entry["validation"]
        cells = [entry["iteration"]]
        for predictor in predictors:
            scores = validation[predictor]
            cells += [scores.get("data_f1"), scores.get("kb_f1"), scores.get("balanced")]
        rows.append([_fmt(cell) for cell in cells])
    headers = ["iteration"] + [
        f"{PREDICTOR_NAMES[p]} {measure}"
        for p in predictors
        for measure in ("data F1", "KB F1", "balanced")
    ]
    prediction_table = _html_table(headers, rows)
    body = intro + _img(metrics_figure(run.metrics), "validation metrics per iteration")
    body += "<h3>Prediction (validation split)</h3>\n" + prediction_table
    body += "<h3>Knowledge base</h3>\n" + _kb_metrics_table(run.metrics)
    return _section("Metrics per iteration", body)


def _kb_metrics_table(metrics: list[dict]) -> str:
    has_truth = any("truth" in entry for entry in metrics)
    headers = ["iteration", "edges", "genes trusting KB", "edits", "objective", "abduction s"]
    if has_truth:
        headers += ["precision", "recall", "signed-edge F1", "pair macro-F1"]
    rows = []
    for entry in metrics:
        abduction = entry.get("abduction", {})
        objective = ""
        if abduction:
            objective = (
                f"{_fmt(abduction.get('objective_before'))} \u2192 "
                f"{_fmt(abduction.get('objective_after'))}"
            )
        row = [
            entry["iteration"],
            entry.get("edges", {}).get("total"),
            entry.get("gate_kb_genes"),
            abduction.get("edits"),
            objective,
            abduction.get("seconds"),
        ]
        if has_truth:
            truth = entry.get("truth", {})
            row += [truth.get(key) for key in ("precision", "recall", "f1", "pair_macro_f1")]
        rows.append([_fmt(cell) for cell in row])
    note = ""
    if has_truth:
        note = _note("Signed edges against the ground-truth KB the data were simulated from.")
    return note + _html_table(headers, rows)


def metrics_figure(metrics: list[dict]) -> bytes:
    """Line plots per iteration: data F1, balanced consistency, and the KB's edge scores."""
    iterations = [entry["iteration"] for entry in metrics]
    has_truth = any("truth" in entry for entry in metrics)
    figure, axes = _figure(1, 3, (13, 3.8))
    for ax, measure, title in (
        (axes[0], "data_f1", "Data F1 (validation)"),
        (axes[1], "balanced", "Balanced consistency (validation)"),
    ):
        for predictor, name in PREDICTOR_NAMES.items():
            values = [entry["validation"].get(predictor, {}).get(measure) for entry in metrics]
            ax.plot(
                iterations,
                _floats(values),
                marker="o",
                color=PREDICTOR_COLOURS[predictor],
                label=name,
            )
        ax.set_title(title)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right", fontsize=8)
    ax = axes[2]
    if has_truth:
        for key, name, colour in (
            ("precision", "precision", "#56B4E9"),
            ("recall", "recall", "#CC79A7"),
            ("f1", "signed-edge F1", "#000000"),
            ("pair_macro_f1", "pair macro-F1", "#009E73"),
        ):
            values = [entry.get("truth", {}).get(key) for entry in metrics]
            ax.plot(iterations, _floats(values), marker="o", color=colour, label=name)
        # no fixed 0-1 range here: the differences between iterations are a few points
        ax.set_title("Knowledge base vs ground truth")
        ax.legend(loc="lower right", fontsize=8)
    else:
        totals = [entry.get("edges", {}).get("total") for entry in metrics]
        ax.plot(iterations, _floats(totals), marker="o", color="#333333")
        ax.set_title("Edges in the knowledge base")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_xticks(iterations)
        ax.grid(alpha=0.3)
    return _png(figure)


def _floats(values: Iterable[object]) -> list[float]:
    return [float("nan") if value is None else float(value) for value in values]


# ---- 3. edits per iteration ----------------------------------------------------------------


def edits_per_iteration_section(run: RunFiles) -> str:
    """How many edges each iteration added, removed and flipped."""
    title = "Edits per iteration"
    iterations = run.iterations
    if not iterations:
        return _section(title, _note("No refinement iteration has completed yet."))
    counts = edit_counts(run.changes, iterations)
    rows = [
        [iteration, *(counts.at[iteration, op] for op in OPS), counts.loc[iteration].sum()]
        for iteration in iterations
    ]
    table = _html_table(["iteration", "added", "removed", "flipped", "total"], rows)
    if len(run.changes) == 0:
        return _section(
            title, _note("No edit was accepted: the knowledge base is unchanged.") + table
        )
    intro = _note(
        "Edits accepted by the abduction of each iteration (changes.tsv). A later iteration "
        "may undo an earlier edit, so these counts can exceed the net change in the summary."
    )
    return _section(title, intro + _img(edit_counts_figure(counts), "edits per iteration") + table)


def edit_counts(changes: pd.DataFrame, iterations: list[int]) -> pd.DataFrame:
    """Iterations x (add, remove, flip) counts, zero where an iteration made no such edit."""
    counts = pd.crosstab(changes["iteration"], changes["op"]) if len(changes) else None
    table = pd.DataFrame(0, index=iterations, columns=list(OPS))
    if counts is not None:
        for op in OPS:
            if op in counts:
                table[op] = counts[op].reindex(iterations, fill_value=0)
    return table.astype(int)


def edit_counts_figure(counts: pd.DataFrame) -> bytes:
    """Grouped bars: added, removed and flipped edges per iteration."""
    figure, (ax,) = _figure(1, 1, (max(5.0, 1.2 * len(counts) + 3), 3.4))
    x = np.arange(len(counts))
    width = 0.26
    for offset, op in zip((-width, 0.0, width), OPS):
        bars = ax.bar(x + offset, counts[op], width, color=OP_COLOURS[op], label=OP_NAMES[op])
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x, [str(i) for i in counts.index])
    ax.set_xlabel("iteration")
    ax.set_ylabel("edges")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.15)
    return _png(figure)


# ---- 4. neighbourhood of the best-supported edits ------------------------------------------


def neighbourhood_section(run: RunFiles) -> str:
    """Before/after drawing of the genes around the best-supported edits."""
    title = "Neighbourhood of the best-supported edits"
    if run.original is None or run.revised is None:
        return _section(title, _note("No revised knowledge base yet."))
    focus = top_edits(run.changes, DRAWN_EDITS)
    if len(focus) == 0:
        return _section(title, _note("No edit to draw."))
    genes = neighbourhood(run.original, run.revised, focus, MAX_DRAWN_GENES)
    shown = ", ".join(f"{row.source} \u2192 {row.target}" for row in focus.itertuples(index=False))
    intro = _note(
        f"The {len(focus)} edits with the most supporting conditions ({shown}), their genes "
        f"(outlined) and up to {MAX_DRAWN_GENES} genes linked to them. Dashed: an edge the "
        "revision removed (or whose sign it changed); bold: an edge the revision added (or "
        "its new sign). Arrow heads: activation; bar heads: repression."
    )
    figure = neighbourhood_figure(run.original, run.revised, genes, focus, run.revised_label)
    return _section(title, intro + _img(figure, "original and revised neighbourhood"))


def top_edits(changes: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` edits with the most supporting conditions (ties: the larger objective fall).

    An edge edited in several iterations counts once, with its latest edit.
    """
    if len(changes) == 0:
        return changes
    latest = changes.drop_duplicates(["source", "target"], keep="last")
    ranked = latest.assign(_gain=-latest["objective_change"].fillna(0.0)).sort_values(
        ["n_supporting", "_gain"], ascending=False, kind="stable"
    )
    return ranked.drop(columns="_gain").head(n)


def neighbourhood(
    original: KnowledgeBase, revised: KnowledgeBase, focus: pd.DataFrame, limit: int
) -> list[str]:
    """The edited genes, then the genes linked to most of them in either KB, ``limit`` in all."""
    core = list(dict.fromkeys([*focus["source"], *focus["target"]]))
    links: dict[str, int] = {}
    core_set = set(core)
    for source, target, _ in [*original.edge_tuples(), *revised.edge_tuples()]:
        if source in core_set and target not in core_set:
            links[target] = links.get(target, 0) + 1
        elif target in core_set and source not in core_set:
            links[source] = links.get(source, 0) + 1
    # most links to the edited genes first; the gene name breaks ties so the drawing is stable
    neighbours = sorted(links, key=lambda gene: (-links[gene], gene))
    return (core + neighbours)[: max(limit, len(core))]


def neighbourhood_figure(
    original: KnowledgeBase,
    revised: KnowledgeBase,
    genes: list[str],
    focus: pd.DataFrame,
    revised_label: str,
) -> bytes:
    """Two panels on one layout: the original edges and the revised edges among ``genes``."""
    import networkx as nx

    chosen = set(genes)
    before = {e for e in original.edge_tuples() if e[0] in chosen and e[1] in chosen}
    after = {e for e in revised.edge_tuples() if e[0] in chosen and e[1] in chosen}
    graph = nx.Graph()
    graph.add_nodes_from(genes)
    graph.add_edges_from((s, t) for s, t, _ in before | after if s != t)
    position = nx.spring_layout(graph, seed=LAYOUT_SEED, k=1.6 / math.sqrt(len(genes)))
    edited = set(focus["source"]) | set(focus["target"])
    # a fixed layout: the constrained one would compute every clipped arrow a second time
    figure, axes = _figure(1, 2, (13, 6.6), layout=None)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.07, top=0.94, wspace=0.03)
    for ax, edges, changed, style, title in (
        (axes[0], before, before - after, "dashed", "original KB"),
        (axes[1], after, after - before, "bold", _revised_title(revised_label)),
    ):
        for edge in sorted(edges, key=lambda e: (e in changed, e)):
            _draw_edge(ax, position, edge, style if edge in changed else "plain")
        _draw_genes(ax, position, genes, edited)
        ax.set_title(title)
        ax.set_axis_off()
        ax.set_aspect("equal")
        ax.margins(0.08)
    figure.legend(handles=_edge_legend(), loc="lower center", ncols=5, fontsize=9, frameon=False)
    return _png(figure)


def _revised_title(label: str) -> str:
    return "revised KB" if label == "final" else f"revised KB ({label})"


def _draw_edge(ax: Any, position: dict, edge: tuple[str, str, int], style: str) -> None:
    from matplotlib.patches import ArrowStyle, FancyArrowPatch
    from matplotlib.path import Path as CurvePath

    source, target, sign = edge
    head = (
        ArrowStyle("-[", widthB=4.0, lengthB=0.0)
        if sign == -1
        else ArrowStyle("-|>", head_length=3.2, head_width=1.6)
    )
    width = {"plain": 1.0, "bold": 2.8, "dashed": 1.6}[style]
    options = {
        "arrowstyle": head,
        "color": SIGN_COLOURS[sign],
        "linewidth": width,
        "linestyle": "--" if style == "dashed" else "-",
        "alpha": 0.55 if style == "plain" else 1.0,
        "mutation_scale": 2.5,
        "zorder": 1 if style == "plain" else 2,
        # the genes set the axes' extent; leaving the curved arrows out of the layout and the
        # data limits halves the drawing time (each arrow is clipped to the node circles)
        "in_layout": False,
    }
    if source == target:
        # a self-loop: a small teardrop above the gene
        x, y = position[source]
        loop = CurvePath(
            [
                (x - 0.02, y + 0.03),
                (x - 0.09, y + 0.16),
                (x + 0.09, y + 0.16),
                (x + 0.02, y + 0.03),
            ],
            [CurvePath.MOVETO, CurvePath.CURVE4, CurvePath.CURVE4, CurvePath.CURVE4],
        )
        ax.add_artist(FancyArrowPatch(path=loop, **options))
        return
    # parallel edges (both directions, or both signs) bend apart instead of overlapping
    bend = {1: 0.12, -1: 0.24, 0: 0.18}[sign]
    ax.add_artist(
        FancyArrowPatch(
            position[source],
            position[target],
            connectionstyle=f"arc3,rad={bend}",
            shrinkA=9,
            shrinkB=9,
            **options,
        )
    )


def _draw_genes(ax: Any, position: dict, genes: list[str], edited: set[str]) -> None:
    xy = np.array([position[gene] for gene in genes])
    is_edited = np.array([gene in edited for gene in genes])
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=np.where(is_edited, 190, 110),
        c=np.where(is_edited, "#fde9c9", "#eeeeee"),
        edgecolors=np.where(is_edited, "#b35900", "#777777"),
        linewidths=np.where(is_edited, 2.0, 0.8),
        zorder=3,
    )
    for gene, (x, y) in zip(genes, xy):
        # parse_math=False: a gene name holding "$" must not turn into mathtext
        ax.annotate(
            gene,
            (x, y),
            xytext=(0, -11),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
            fontweight="bold" if gene in edited else "normal",
            parse_math=False,
            zorder=4,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
        )


def _edge_legend() -> list:
    from matplotlib.lines import Line2D

    return [
        Line2D([], [], color=ACTIVATION, lw=1.5, label="activation (\u2192)"),
        Line2D([], [], color=REPRESSION, lw=1.5, label="repression (\u22a3)"),
        Line2D([], [], color=UNKNOWN_SIGN, lw=1.5, label="unknown sign"),
        Line2D([], [], color="#333333", lw=1.6, ls="--", label="removed / old sign"),
        Line2D([], [], color="#333333", lw=2.8, label="added / new sign"),
    ]


# ---- 5. the adaptor's gate -----------------------------------------------------------------


def gate_section(run: RunFiles) -> str:
    """How many genes trust the KB or the network, and the per-gene scores behind it."""
    title = "Adaptor gate: knowledge base or network, per gene"
    gate = run.gate
    if gate is None or len(gate) == 0:
        return _section(title, _note("No gate has been fitted yet."))
    which = "The final gate" if run.gate_label == "final" else f"The gate {run.gate_label}"
    text = (
        f"{which}, fitted on the validation split. Every gene follows the source that wins "
        "over all genes, unless its own validation evidence shows the other source clearly "
        "ahead (by the margin in macro-F1, and in a sign test)."
    )
    unscored = int((gate["kb_score"].isna() | gate["network_score"].isna()).sum())
    if unscored:
        text += f" {unscored} genes without a score on one side are left out of the scatter plot."
    rows = []
    for source, name in GATE_SOURCES:
        mine = gate["source"] == source
        own = int((mine & (gate["decided_by"] == "gene")).sum())
        rows.append([name, own, int(mine.sum()) - own, int(mine.sum())])
    table = _html_table(
        ["trusted source", "own validation evidence", "followed the overall winner", "genes"], rows
    )
    return _section(title, _note(text) + _img(gate_figure(gate), "adaptor gate") + table)


def gate_figure(gate: pd.DataFrame) -> bytes:
    """Bars of genes per trusted source (split by what decided), and KB vs network scores."""
    figure, axes = _figure(1, 2, (12, 4.4), width_ratios=(1, 1.4))
    ax = axes[0]
    sources = GATE_SOURCES
    bottom = np.zeros(len(sources))
    for by, hatch, name in (
        ("gene", "", "its own validation evidence"),
        ("all genes", "//", "the overall winner"),
    ):
        heights = np.array(
            [
                ((gate["source"] == source) & (gate["decided_by"] == by)).sum()
                for source, _ in sources
            ]
        )
        bars = ax.bar(
            [name for _, name in sources],
            heights,
            bottom=bottom,
            color=[PREDICTOR_COLOURS[source] for source, _ in sources],
            hatch=hatch,
            edgecolor="white",
            label=f"decided by {name}",
        )
        ax.bar_label(
            bars,
            labels=[str(h) if h else "" for h in heights],
            label_type="center",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none"},
        )
        bottom += heights
    ax.set_ylabel("genes")
    ax.set_title("Genes per trusted source")
    ax.legend(fontsize=8, loc="upper right")
    ax.margins(y=0.2)
    ax = axes[1]
    for source, name in sources:
        mine = gate[gate["source"] == source]
        ax.scatter(
            mine["network_score"],
            mine["kb_score"],
            s=22,
            alpha=0.55,
            color=PREDICTOR_COLOURS[source],
            edgecolors="none",
            label=f"trusts {name} ({len(mine)})",
        )
    ax.plot([0, 1], [0, 1], color="#555555", lw=0.8, ls="--", label="equal scores")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_aspect("equal")
    ax.set_xlabel("network macro-F1 (validation)")
    ax.set_ylabel("KB macro-F1 (validation)")
    ax.set_title("Per-gene scores")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _png(figure)


# ---- 6. top edits --------------------------------------------------------------------------


def top_edits_section(run: RunFiles) -> str:
    """The best-supported edits with their supporting and contradicting conditions."""
    title = "Top edits and the conditions behind them"
    if len(run.changes) == 0:
        return _section(title, _note("No edit was accepted."))
    ranked = run.changes.assign(_gain=-run.changes["objective_change"].fillna(0.0)).sort_values(
        ["n_supporting", "_gain"], ascending=False, kind="stable"
    )
    shown = ranked.head(TOP_EDITS)
    intro = _note(
        f"The {len(shown)} of {len(run.changes)} edits with the most supporting conditions (all "
        "are in changes.tsv). A condition supports an edit when taking the edit back would "
        "raise that condition's mismatch, and contradicts it when that would lower it. "
        "Objective change: what the edit contributes to the abduction objective, negative "
        "when it helps."
    )
    rows = []
    for rank, row in enumerate(shown.itertuples(index=False), start=1):
        rows.append(
            [
                _e(rank),
                _e(row.iteration),
                _e(OP_NAMES.get(row.op, row.op)),
                f"{_e(row.source)} \u2192 {_e(row.target)}",
                _e(_sign_change(row.old_sign, row.new_sign)),
                _conditions(row.n_supporting, row.supporting, row.evidence, "supporting"),
                _conditions(row.n_contradicting, row.contradicting, row.evidence, "contradicting"),
                _e(_fmt(row.objective_change)),
            ]
        )
    headers = [
        "#",
        "iteration",
        "edit",
        "regulator \u2192 target",
        "sign",
        "supporting conditions",
        "contradicting conditions",
        "objective change",
    ]
    return _section(title, intro + _html_table(headers, rows, raw=True))


def _sign_change(old: int | None, new: int | None) -> str:
    old_text = "" if old is None else SIGN_TEXT.get(old, "?")
    new_text = "" if new is None else SIGN_TEXT.get(new, "?")
    if old_text and new_text:
        return f"{old_text} \u2192 {new_text}"
    return old_text or new_text


def _conditions(count: int, ids: str, evidence: str, kind: str) -> str:
    """``count`` and the condition ids: from the id column, else from the evidence summary."""
    if count == 0:
        return "0"
    if ids:
        listed = ids.split(";")
        text = ", ".join(listed[:LISTED_CONDITIONS])
        if len(listed) > LISTED_CONDITIONS:
            text += f" and {len(listed) - LISTED_CONDITIONS} more"
    else:
        # older runs keep the ids only inside the (already shortened) evidence summary
        part = next((p for p in evidence.split("; ") if f" {kind}" in p), "")
        text = part.partition(": ")[2]
    return f"<strong>{count}</strong>" + (f': <span class="ids">{_e(text)}</span>' if text else "")


# ---- 7. evaluation -------------------------------------------------------------------------


def evaluation_section(run: RunFiles) -> str:
    """The sealed test-split evaluation, when ``evaluation.json`` was saved in the run."""
    title = "Evaluation on the sealed test split"
    result = run.evaluation
    if not result:
        return _section(
            title,
            _note(
                "Not evaluated in this run directory. <code>aligned evaluate RUN --json</code> "
                f"scores the run; saved as {EVALUATION_NAME} in the run directory, it appears "
                "here.",
                escape=False,
            ),
        )
    keys = ("data_f1", "kb_f1", "balanced", "pearson", "pearson_top20", "direction_accuracy")
    rows = [
        [method, *(_fmt(scores.get(key)) for key in keys)]
        for method, scores in (result.get("test") or {}).items()
    ]
    body = _note(f"{_e(result.get('conditions', '?'))} test conditions.", escape=False)
    body += _html_table(
        [
            "method",
            "data F1",
            "KB F1 (original)",
            "balanced",
            "Pearson",
            "Pearson top-20",
            "direction accuracy",
        ],
        rows,
    )
    if "edges" in result:
        keys = ("precision", "recall", "f1", "pair_macro_f1", "added", "removed", "flipped")
        rows = [
            [name, *(_fmt(scores.get(key)) for key in keys)]
            for name, scores in result["edges"].items()
        ]
        body += "<h3>Knowledge base against the ground truth (signed edges)</h3>\n"
        body += _html_table(
            ["KB", "precision", "recall", "F1", "pair macro-F1", "added", "removed", "flipped"],
            rows,
        )
    return _section(title, body)


# ---- HTML and figure helpers ---------------------------------------------------------------


def _e(value: object) -> str:
    """HTML-escape any value read from a file (quotes included)."""
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}"
    return str(value)


def _section(title: str, body: str) -> str:
    return f"<section>\n<h2>{_e(title)}</h2>\n{body}\n</section>"


def _note(text: str, escape: bool = True) -> str:
    return f'<p class="note">{_e(text) if escape else text}</p>\n'


def _html_table(headers: list[str], rows: list[list[object]], raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{cell if raw else _e(cell)}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">\n'


def _figure(
    rows: int,
    columns: int,
    size: tuple[float, float],
    layout: str | None = "constrained",
    **grid: Any,
) -> tuple[Any, list]:
    """A figure drawn by the Agg canvas directly: no pyplot, no global backend change."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout=layout)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, gridspec_kw=grid or None)
    return figure, list(axes.ravel())


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # no metadata: the same run gives the same bytes
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


STYLE = """
body { margin: 0; background: #fafafa; color: #222;
  font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1400px; margin: 0 auto; padding: 1.5em 2em 3em; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.25em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.02em; margin: 1.2em 0 0.4em; }
.path { color: #666; font-family: monospace; margin-top: 0; word-break: break-all; }
.note { color: #444; max-width: 75em; }
.unfinished { background: #fff4e0; border-left: 5px solid #e69f00; padding: 0.7em 1em; }
section { background: #fff; border: 1px solid #e5e5e5; border-radius: 6px;
  padding: 0.2em 1.4em 1.2em; margin-top: 1.4em; }
section > h2 { margin-top: 0.8em; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.86em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td { white-space: nowrap; }
td .ids { white-space: normal; }
.columns { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
.columns > div { flex: 1 1 30em; min-width: 0; }
.columns pre { margin-top: 0; }
th { background: #f2f2f2; }
tbody tr:nth-child(even) { background: #fafafa; }
td .ids { color: #555; font-family: monospace; font-size: 0.95em; }
pre { background: #f6f6f6; border: 1px solid #e5e5e5; padding: 0.8em; overflow-x: auto; }
code { background: #f2f2f2; padding: 0 0.2em; }
"""
