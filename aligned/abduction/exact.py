"""The exact path: one component solved to optimality by clingo with ``rules/abduce.lp``.

Python writes facts (genes as integer indices into the problem's gene list: a component never
needs names, so quoting cannot go wrong) and reads the chosen edges back; the logic lives in the
encoding.  Weights become integers (``scale`` units per unit of cost).  Optimisation is
core-guided (``--opt-strategy=usc``) under a time budget; the best model found is kept when the
budget ends, and the result says whether optimality was proved.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from aligned.abduction.components import Component
from aligned.abduction.problem import CLASSES, Problem
from aligned.errors import BackendUnavailable
from aligned.resources import resource_path

try:
    import clingo
except ImportError:  # clingo is a hard dependency; report a broken install clearly
    clingo = None

log = logging.getLogger(__name__)

ENCODING = "abduce.lp"
# Core-guided optimisation; stratification by weight yields a model after each stratum, so a
# call cut short by its budget still returns the best model found.
OPTIMISATION = ("--opt-strategy=usc,stratify", "--opt-usc-shrink=inv")


@dataclass
class ExactResult:
    """What one clingo call found.

    Attributes
    ----------
    edges : numpy.ndarray of int64, shape (m, 3) or None
        The component's edges in the best model (None when no model was found in time).
    cost : int or None
        Its cost in scaled units.
    optimal : bool
        Whether clingo proved optimality.
    ground_atoms : int
    ground_seconds, solve_seconds : float
    """

    edges: np.ndarray | None
    cost: int | None
    optimal: bool
    ground_atoms: int
    ground_seconds: float
    solve_seconds: float


def component_facts(problem: Problem, component: Component, scale: int) -> str:
    """The ASP facts of one component (see ``rules/abduce.lp`` for their meaning).

    Notes
    -----
    Costs are written for every (condition, region gene) pair whose three class costs are not
    all zero, rounded to ``scale`` units.  O(conditions x region + edges + seeds).
    """
    lines = [f"cond({c})." for c in component.conditions.tolist()]
    lines += [f"pert({c},{g},{d})." for c, g, d in component.perturbed.tolist()]
    lines += [f"seed({c},{g},{s},{d})." for c, g, s, d in component.seeds.tolist()]
    lines += [f"fixed({u},{v},{e})." for u, v, e in component.fixed.tolist()]
    lines += [f"orig({u},{v},{e})." for u, v, e in component.original.tolist()]
    lines += [f"cand({u},{v},{e})." for u, v, e in component.candidates.tolist()]
    lines += [f"now({u},{v},{e})." for u, v, e in component.current.tolist()]
    editable = np.concatenate([component.original, component.candidates]).reshape(-1, 3)
    held = np.rint(problem.held_costs(editable[:, 0], editable[:, 1]) * scale).astype(np.int64)
    lines += [
        f"held({u},{v},{e},{w})." for (u, v, e), w in zip(editable.tolist(), held.tolist()) if w > 0
    ]
    conditions, region = component.conditions, component.region
    if len(conditions) and len(region):
        block = problem.cost[:, conditions][:, :, region]  # 3 x conditions x region
        weights = np.rint(block * scale).astype(np.int64)
        both = problem.conflict_cost()[conditions][:, region]
        conflict = np.rint(both * scale).astype(np.int64)
        perturbed = problem.perturbations[conditions][:, region].toarray() != 0
        at_stake = ((weights.max(axis=0) > 0) | (conflict > 0)) & ~perturbed
        rows, cols = np.nonzero(at_stake)
        for r, c_ in zip(rows.tolist(), cols.tolist()):
            condition, gene = int(conditions[r]), int(region[c_])
            lines.append(f"target({condition},{gene}).")
            for position, label in enumerate(CLASSES):
                weight = int(weights[position, r, c_])
                if weight:
                    lines.append(f"cost({condition},{gene},{label},{weight}).")
            if conflict[r, c_]:
                lines.append(f"conflict_cost({condition},{gene},{int(conflict[r, c_])}).")
    return "\n".join(lines) + "\n"


def solve_component(
    problem: Problem,
    component: Component,
    *,
    time_limit: float = 10.0,
    scale: int = 100,
    threads: int = 1,
) -> ExactResult:
    """Solve one component to optimality (or as far as ``time_limit`` allows).

    Parameters
    ----------
    problem : Problem
    component : Component
    time_limit : float
        Seconds for grounding plus solving.
    scale : int
        Integer units per unit of cost (weights and edit costs are rounded to them).
    threads : int
        clingo solver threads.

    Returns
    -------
    ExactResult

    Raises
    ------
    BackendUnavailable
        When the clingo Python package is missing.

    Notes
    -----
    Ground size is about conditions x k x 2 x edges of the component (see
    :attr:`Component.ground_size`).  Grounding cannot be interrupted; the budget cancels the
    solve, keeping the best model so far.
    """
    if clingo is None:
        raise BackendUnavailable("the exact abduction path needs the clingo Python package")
    costs = problem.edit_costs
    arguments = [
        *OPTIMISATION,
        f"--parallel-mode={threads}",
        "-c",
        f"k={problem.k}",
        "-c",
        f"remove_cost={round(costs.remove * scale)}",
        "-c",
        f"flip_cost={round(costs.flip * scale)}",
        "-c",
        f"add_cost={round(costs.add * scale)}",
    ]
    control = clingo.Control(arguments, logger=_log_message)
    control.add("base", [], resource_path("rules", ENCODING).read_text(encoding="utf-8"))
    control.add("base", [], component_facts(problem, component, scale))
    started = time.perf_counter()
    control.ground([("base", [])])
    ground_seconds = time.perf_counter() - started
    best: dict = {}

    def on_model(model: clingo.Model) -> None:
        best["edges"] = [
            tuple(argument.number for argument in symbol.arguments)
            for symbol in model.symbols(shown=True)
            if symbol.name == "use"
        ]
        best["cost"] = sum(model.cost)
        best["optimal"] = model.optimality_proven

    started = time.perf_counter()
    remaining = max(0.0, time_limit - ground_seconds)
    with control.solve(on_model=on_model, async_=True) as handle:
        finished = handle.wait(remaining)
        if not finished:
            handle.cancel()
        result = handle.get()
    solve_seconds = time.perf_counter() - started
    optimal = bool(finished and result.satisfiable and not result.interrupted) and bool(best)
    if best and not optimal:
        optimal = bool(best.get("optimal"))
    edges = None
    if best:
        edges = np.array(sorted(best["edges"]), dtype=np.int64).reshape(-1, 3)
    return ExactResult(
        edges=edges,
        cost=best.get("cost"),
        optimal=optimal,
        ground_atoms=len(control.symbolic_atoms),
        ground_seconds=ground_seconds,
        solve_seconds=solve_seconds,
    )


def _log_message(code, message: str) -> None:
    log.debug("clingo %s: %s", code.name, message.strip())
