"""The result of abduction: the revised KB, each edit with its evidence, and its files.

Evidence is computed on the final revision, leave-one-out: for each edit, the objective is
re-evaluated with that edit alone taken back.  A condition *supports* the edit when taking it
back would raise that condition's cost, and *contradicts* it when taking it back would lower it;
``objective_change`` is what the edit contributes to the objective given all the others
(negative: it helps), edit cost included.  The same definition holds whichever solver found the
edit, so edits from clingo and from the local search read alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aligned.abduction.edits import EdgeSet, Moves, move_edit_costs, pair_masks
from aligned.abduction.state import DeductionState
from aligned.errors import AlignedError
from aligned.io import atomic_write_text
from aligned.knowledge_base import CORE_COLUMNS, SIGN_TEXT, KnowledgeBase

CHANGE_COLUMNS = [
    "op",
    "source",
    "target",
    "old_sign",
    "new_sign",
    "evidence",
    "supporting",
    "contradicting",
    "objective_change",
    "solver",
]
RUN_FILE = "abduction.json"
_OPS = {"added": "add", "removed": "remove", "flipped": "flip"}


@dataclass
class Revision:
    """A KB revised against perturbation data.

    Attributes
    ----------
    original, revised : KnowledgeBase
        Before and after.  Untouched edges keep their extra columns; a flipped edge keeps
        them too; an added edge has them empty.
    changes : pandas.DataFrame
        One row per edit (:data:`CHANGE_COLUMNS`): ``op`` (``add``, ``remove``, ``flip``),
        ``source``, ``target``, ``old_sign``, ``new_sign`` (Int8, ``<NA>`` where absent),
        ``evidence`` (a readable summary), ``supporting`` and ``contradicting`` (condition
        ids joined by ``;``), ``objective_change`` (float, negative helps), ``solver``
        (``asp`` or ``greedy``).
    objective_before, objective_after : float
        The objective (module :mod:`aligned.abduction.problem`) of the original and revised KB.
    k : int
        Deduction bound.
    solver : str
        The path that ran: ``asp``, ``greedy`` or ``greedy+asp``.
    log : list of dict
        One entry per solver step: which path, why, sizes, times, optimality.
    counts : dict
        Conditions, edges judged and out of reach, and the like (see :func:`abduce`).
    regulators_confirmed : list of str
        Genes no fitted condition perturbs whose out-edges in the revised KB the data confirm
        (at least two edges whose removal would worsen the fit; source policy ``regulators``
        only).  Sessions give pseudo-labels to their perturbations and to no other gene's.
    """

    original: KnowledgeBase
    revised: KnowledgeBase
    changes: pd.DataFrame
    objective_before: float
    objective_after: float
    k: int
    solver: str
    log: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    regulators_confirmed: list = field(default_factory=list)

    def summary(self) -> dict:
        """A JSON-able summary: objectives, edit counts, solver, counts and the log."""
        ops = self.changes["op"].value_counts()
        return {
            "k": self.k,
            "solver": self.solver,
            "objective_before": self.objective_before,
            "objective_after": self.objective_after,
            "edits": {op: int(ops.get(op, 0)) for op in ("add", "remove", "flip")},
            "original_edges": len(self.original),
            "revised_edges": len(self.revised),
            "counts": self.counts,
            "log": self.log,
        }

    def __repr__(self) -> str:
        edits = self.summary()["edits"]
        return (
            f"Revision({edits['add']} added, {edits['remove']} removed, {edits['flip']} flipped; "
            f"objective {self.objective_before:.3f} -> {self.objective_after:.3f}; {self.solver})"
        )


def revised_kb(original: KnowledgeBase, genes: list[str], edges: EdgeSet) -> KnowledgeBase:
    """The KB with ``edges`` as its signed edges, keeping every other column and ``?`` edge.

    Parameters
    ----------
    original : KnowledgeBase
    genes : list of str
        The problem's joint gene index (``edges`` refer to it).
    edges : EdgeSet
        The revised signed edges.
    """
    table = original.edges
    final = {(genes[u], genes[v], e) for u, v, e in edges.array().tolist()}
    signed = table["sign"] != 0
    keys = list(zip(table["source"], table["target"], table["sign"].astype(int)))
    kept = np.array([not s or key in final for key, s in zip(keys, signed)], dtype=bool)
    row_of = {key: i for i, key in enumerate(keys)}
    extras = [column for column in table.columns if column not in CORE_COLUMNS]
    rows = []
    for source, target, sign in sorted(final - set(keys)):
        row = {"source": source, "target": target, "sign": sign}
        old = row_of.get((source, target, -sign))
        flipped = old is not None and (source, target, -sign) not in final
        for column in extras:  # a flipped edge keeps its annotations
            row[column] = table[column].iat[old] if flipped else ""
        rows.append(row)
    added = pd.DataFrame(rows, columns=list(table.columns))
    frame = pd.concat([table[kept], added], ignore_index=True) if rows else table[kept]
    frame = frame.reset_index(drop=True)
    revised_genes = list(dict.fromkeys([*original.genes, *frame["source"], *frame["target"]]))
    return KnowledgeBase(frame, genes=revised_genes)


def edit_evidence(
    state: DeductionState, found_by: dict, max_ids: int | None = None
) -> pd.DataFrame:
    """The table of edits from the problem's KB to the state's edges, with leave-one-out
    evidence.

    Parameters
    ----------
    state : DeductionState
        The revised signed edges and their deduction (only read).
    found_by : dict
        ``(source, target)`` index pair -> the solver that made its last change.
    max_ids : int, optional
        Keep at most this many condition ids in ``evidence`` (all are in the id columns).

    Notes
    -----
    One batched exact evaluation of every edit taken back (O(edits x affected conditions x
    changed entries)).
    """
    problem, edges = state.problem, state.edges
    genes = problem.genes
    original = EdgeSet(problem.n_genes, problem.edges)
    changes, reverts = [], []
    for pair in sorted(set(original.pairs) | set(edges.pairs)):
        before, after = original.signs(*pair), edges.signs(*pair)
        if before == after:
            continue
        u, v = pair
        if len(before) == 1 and len(after) == 1:
            (old,), (new,) = tuple(before), tuple(after)
            changes.append(("flip", u, v, old, new))
            reverts.append([(u, v, new, -1), (u, v, old, 1)])
            continue
        for sign in sorted(before - after):
            changes.append(("remove", u, v, sign, None))
            reverts.append([(u, v, sign, 1)])
        for sign in sorted(after - before):
            changes.append(("add", u, v, None, sign))
            reverts.append([(u, v, sign, -1)])
    if not changes:
        return pd.DataFrame({column: [] for column in CHANGE_COLUMNS}).astype(
            {"old_sign": "Int8", "new_sign": "Int8", "objective_change": float}
        )
    moves = Moves.build(reverts, ["compound"] * len(reverts))
    evaluation = state.evaluate(moves)
    edit = move_edit_costs(
        problem.edit_costs, pair_masks(problem.edges, problem.n_genes), edges, moves
    )
    ids = np.asarray(problem.condition_ids, dtype=object)
    rows = []
    for index, (op, u, v, old, new) in enumerate(changes):
        mine = evaluation.row_move == index
        deltas = evaluation.row_delta[mine]
        conditions = evaluation.row_condition[mine]
        order = np.argsort(-np.abs(deltas), kind="stable")
        support = [ids[c] for c, d in zip(conditions[order], deltas[order]) if d > 1e-9]
        against = [ids[c] for c, d in zip(conditions[order], deltas[order]) if d < -1e-9]
        rows.append(
            {
                "op": op,
                "source": genes[u],
                "target": genes[v],
                "old_sign": old,
                "new_sign": new,
                "evidence": _evidence_text(support, against, max_ids),
                "supporting": ";".join(support),
                "contradicting": ";".join(against),
                "objective_change": -float(evaluation.delta[index] + edit[index]),
                "solver": found_by.get((u, v), "greedy"),
            }
        )
    frame = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    frame["old_sign"] = frame["old_sign"].astype("Int8")
    frame["new_sign"] = frame["new_sign"].astype("Int8")
    return frame.sort_values(["source", "target", "op"], ignore_index=True)


def _evidence_text(support: list[str], against: list[str], max_ids: int | None) -> str:
    def listed(values: list[str]) -> str:
        shown = values if max_ids is None else values[:max_ids]
        more = len(values) - len(shown)
        return ", ".join(shown) + (f" and {more} more" if more else "")

    parts = [f"{len(support)} supporting" + (f": {listed(support)}" if support else "")]
    if against:
        parts.append(f"{len(against)} contradicting: {listed(against)}")
    return "; ".join(parts)


def changes_text(changes: pd.DataFrame) -> str:
    """``changes.tsv``: the change table with signs written ``+ - ?`` (empty where absent)."""
    frame = changes.copy()
    for column in ("old_sign", "new_sign"):
        frame[column] = ["" if pd.isna(value) else SIGN_TEXT[int(value)] for value in frame[column]]
    frame["objective_change"] = [f"{value:.6g}" for value in frame["objective_change"]]
    return frame.to_csv(sep="\t", index=False, lineterminator="\n")


def check_output_dir(out_dir: str | os.PathLike) -> Path:
    """Refuse an output directory that exists and is not empty (it holds another run).

    Raises
    ------
    AlignedError
        When ``out_dir`` is a file, or a directory with anything in it.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a directory that already holds files"
        raise AlignedError(f"{out}: the output path is {what} (another run?); choose a new one")
    return out


def write_revision(revision: Revision, out_dir: str | os.PathLike) -> Path:
    """Write a revision's files into a new directory, all or nothing.

    Files: ``kb/original.tsv``, ``kb/revised.tsv``, ``changes.tsv``, ``rules/revised.pl``
    (loads in plain ``swipl``), ``rules/revised.lp`` (grounds in plain ``clingo``) and
    ``abduction.json`` (the summary and solver log).

    Raises
    ------
    AlignedError
        When ``out_dir`` exists and is not empty; nothing is written then.

    Notes
    -----
    Everything is written into a temporary directory beside ``out_dir``, which is renamed
    into place at the end, so a failure leaves the disk as it was.
    """
    out = check_output_dir(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "kb").mkdir()
        (staging / "rules").mkdir()
        revision.original.write(staging / "kb" / "original.tsv")
        revision.revised.write(staging / "kb" / "revised.tsv")
        atomic_write_text(staging / "changes.tsv", changes_text(revision.changes))
        revision.revised.to_prolog(staging / "rules" / "revised.pl")
        revision.revised.to_asp(staging / "rules" / "revised.lp")
        summary = json.dumps(revision.summary(), indent=2, default=_json_default) + "\n"
        atomic_write_text(staging / RUN_FILE, summary)
        check_output_dir(out)  # still free?
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
    return out


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
