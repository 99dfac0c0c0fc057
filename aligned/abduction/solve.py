"""Choosing and running the solvers on a :class:`~aligned.abduction.problem.Problem`.

Three paths:

``"asp"``
    The whole problem, split into its independent parts (every gene's in-edges open to
    revision), each solved exactly by clingo (``rules/abduce.lp``).  Refused when the
    largest part's estimated ground size passes ``ground_limit``.
``"greedy"``
    The vectorised local search (:mod:`aligned.abduction.local_search`) alone.
``"auto"`` (default)
    The exact path when every independent part fits ``whole_limit`` (the local search runs
    too, and the better result is kept).  Otherwise the local search, then
    passes of block-exact refinement: with the rest of the KB held fixed, the in-edges of the
    genes without out-edges form independent components (each target alone), each solved
    exactly by clingo; the in-edges of the genes with out-edges form one coupled component,
    solved exactly when it fits ``ground_limit`` and left to the local search otherwise; then
    the local search again.  Passes stop when one improves nothing.

Every step is logged (which path, why, how big, how long, whether optimal) in
:attr:`Solution.log`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from aligned.abduction.candidates import addition_scores, best_additions
from aligned.abduction.components import Component, build_components
from aligned.abduction.edits import EdgeSet, Moves, edit_cost, move_edit_costs, pair_masks
from aligned.abduction.exact import solve_component
from aligned.abduction.local_search import annealed_search, confirmed_regulators, local_search
from aligned.abduction.problem import Problem
from aligned.abduction.state import DeductionState
from aligned.errors import InputError

log = logging.getLogger(__name__)

SOLVERS = ("auto", "asp", "greedy")
_EPS = 1e-9


@dataclass
class Solution:
    """The revised edges of a problem and how they were found.

    Attributes
    ----------
    edges : EdgeSet
    objective_before, objective_after : float
    solver : str
        ``asp``, ``greedy`` or ``greedy+asp`` (local search with exact components).
    found_by : dict
        ``(source, target, sign)`` of each edge change -> the step that made it last.
    log : list of dict
        One entry per step.
    """

    edges: EdgeSet
    objective_before: float
    objective_after: float
    solver: str
    found_by: dict = field(default_factory=dict)
    log: list = field(default_factory=list)


def objective(problem: Problem, edges: EdgeSet) -> float:
    """The full objective of ``edges``: data (and network) term plus edit cost."""
    state = DeductionState(problem, edges)
    return state.data_objective() + edit_cost(problem.edit_costs, problem.original_pairs(), edges)


def candidate_additions(
    state: DeductionState, per_target: int, supported: np.ndarray | None = None
) -> np.ndarray:
    """Additions worth offering the exact solver: the ``per_target`` best-scoring sources of
    each (target, sign) with a negative first-order score, as ``(source, target, sign)``."""
    sources, targets, scores = addition_scores(state, supported)
    sign_index, source_index, target_index = best_additions(scores, per_target, None, 0.0)
    return (
        np.column_stack(
            [sources[source_index], targets[target_index], np.where(sign_index == 0, 1, -1)]
        )
        .astype(np.int64)
        .reshape(-1, 3)
    )


def all_additions(state: DeductionState, supported: np.ndarray | None = None) -> np.ndarray:
    """Every allowed addition (both signs) to a pair without an edge, as an array."""
    sources, targets, scores = addition_scores(state, supported)
    sign_index, source_index, target_index = np.nonzero(np.isfinite(scores))
    return (
        np.column_stack(
            [sources[source_index], targets[target_index], np.where(sign_index == 0, 1, -1)]
        )
        .astype(np.int64)
        .reshape(-1, 3)
    )


def whole_components(
    state: DeductionState, max_candidates: int, per_target: int
) -> list[Component]:
    """The whole problem's independent components: every gene's in-edges open to revision.

    Every possible addition is offered when there are at most ``max_candidates``; otherwise
    the ``per_target`` best-scoring sources of each (target, sign).
    """
    additions = all_additions(state)
    if len(additions) > max_candidates:
        additions = candidate_additions(state, per_target)
    return build_components(state, np.arange(state.n), additions)


def _apply_component(
    state: DeductionState, component: Component, chosen: np.ndarray
) -> list[tuple[int, int, int, int]]:
    now = {tuple(edge) for edge in component.current.tolist()}
    new = {tuple(edge) for edge in chosen.tolist()}
    return [(u, v, e, -1) for u, v, e in sorted(now - new)] + [
        (u, v, e, 1) for u, v, e in sorted(new - now)
    ]


def _exact_step(
    state: DeductionState,
    components: list[Component],
    *,
    ground_limit: int,
    deadline: float,
    component_time: float,
    scale: int,
    step: str,
    log_entries: list,
) -> list[list[tuple[int, int, int, int]]]:
    """Solve the components that fit, and return the improving edits (independent).

    A component whose labels already cost the least they can, in every condition and gene it
    can change, and which holds no edit yet, is settled without a call: any edit there only
    adds its cost.
    """
    problem = state.problem
    proposals, sizes, proved, skipped, settled = [], [], 0, 0, 0
    started = time.perf_counter()
    regret = _label_regret(state)
    for component in components:
        if _settled(component, regret, problem):
            settled += 1
            continue
        if component.ground_size > ground_limit:
            skipped += 1
            log_entries.append(
                {
                    "step": step,
                    "path": "greedy",
                    "why": f"component of {len(component.targets)} target(s) too large to ground "
                    f"(estimate {component.ground_size:,} > limit {ground_limit:,})",
                }
            )
            continue
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            skipped += 1
            continue
        result = solve_component(
            problem, component, time_limit=min(component_time, remaining), scale=scale
        )
        proved += int(result.optimal)
        sizes.append(result.ground_atoms)
        if result.edges is None:
            continue
        changes = _apply_component(state, component, result.edges)
        if changes:
            proposals.append(changes)
    if not proposals:
        accepted = []
    else:
        moves = Moves.build(proposals, ["compound"] * len(proposals))
        total = state.evaluate(moves).delta + move_edit_costs(
            problem.edit_costs, pair_masks(problem.edges, problem.n_genes), state.edges, moves
        )
        accepted = [proposals[i] for i in np.flatnonzero(total < -_EPS)]
    log_entries.append(
        {
            "step": step,
            "path": "asp",
            "components": len(components),
            "settled": settled,
            "solved": len(sizes),
            "proved_optimal": proved,
            "skipped": skipped,
            "largest_ground_atoms": max(sizes, default=0),
            "improving": len(accepted),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    return accepted


def solve_problem(
    problem: Problem,
    solver: str = "auto",
    *,
    time_limit: float = 300.0,
    ground_limit: int = 600_000,
    whole_limit: int = 50_000,
    component_time: float = 10.0,
    passes: int = 3,
    min_gain: float = 0.005,
    scale: int = 100,
    max_candidates: int = 2_000,
    per_target: int = 8,
    schedule: tuple[float, ...] = (8.0, 3.0, 1.0),
    search_options: dict | None = None,
) -> Solution:
    """Minimise the objective of ``problem`` with the chosen solver (module docstring).

    Parameters
    ----------
    problem : Problem
    solver : {"auto", "asp", "greedy"}
    time_limit : float
        Seconds for the whole solve (each step gets what is left; grounding cannot be
        interrupted, so a step may overrun by its grounding time).
    ground_limit : int
        Largest estimated ground size (conditions x k x 2 x edges) handed to clingo.
    whole_limit : int
        ``auto`` solves the whole problem exactly (part by part) only when its largest
        independent part stays under this (and ``ground_limit``): whole-network instances
        are much harder for clingo than the block components of the same size.
    component_time : float
        Seconds per clingo call.
    passes : int
        Block-exact passes of ``auto`` on problems too large for one exact call.
    min_gain : float
        Another pass runs only while the last one lowered the objective by this share.
    scale : int
        Integer units per unit of cost in the exact path.
    max_candidates : int
        The whole-problem exact path offers every possible addition up to this many, else
        the ``per_target`` best per (target, sign).
    per_target : int
        Candidate additions per (target, sign) offered to clingo.
    schedule : tuple of float
        Add-cost multipliers of the first local search's stages
        (:func:`~aligned.abduction.local_search.annealed_search`); ``(1.0,)`` for one stage.
    search_options : dict, optional
        Keyword arguments of :func:`~aligned.abduction.local_search.local_search`.

    Returns
    -------
    Solution

    Raises
    ------
    InputError
        For an unknown solver, or ``"asp"`` on a problem too large to ground.
    """
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    options = dict(search_options or {})
    started = time.perf_counter()
    deadline = started + time_limit
    original = EdgeSet(problem.n_genes, problem.edges)
    before = objective(problem, original)
    entries: list[dict] = []

    limit = ground_limit if solver == "asp" else min(ground_limit, whole_limit)
    # auto: a problem whose whole ground size is far beyond the limit is not split to check
    rough = problem.n_conditions * problem.k * 2 * max(len(problem.edges), 1)
    if solver == "auto" and rough > 100 * limit:
        entries.append(
            {
                "step": "whole problem",
                "path": "greedy",
                "why": f"far too large for exact calls (rough estimate {rough:,} > 100 x "
                f"{limit:,}): local search, then exact components",
            }
        )
    elif solver in ("asp", "auto"):
        state = DeductionState(problem, original)
        whole = whole_components(state, max_candidates, per_target)
        largest = max((component.ground_size for component in whole), default=0)
        if solver == "asp" and largest > limit:
            raise InputError(
                f"the problem is too large for the exact path (its largest independent part "
                f"has an estimated ground size of {largest:,} > limit {limit:,}); use solver "
                "'auto' or 'greedy', or raise the ground limit"
            )
        if largest <= limit:
            return _solve_whole(
                problem, solver, whole, before, deadline, scale, options, entries, schedule
            )
        entries.append(
            {
                "step": "whole problem",
                "path": "greedy",
                "why": f"{len(whole)} independent part(s), the largest too large for one exact "
                f"call (estimate {largest:,} > {limit:,}): local search, then exact components",
            }
        )

    search = annealed_search(
        problem,
        schedule=schedule,
        time_limit=max(0.0, deadline - time.perf_counter()),
        **options,
    )
    edges = search.edges
    best = search.objective_after
    found_by: dict[tuple[int, int], str] = {}
    _mark(found_by, original, edges, "greedy")
    entries.append(_search_entry("local search", search))
    if solver == "greedy":
        return Solution(edges, before, best, "greedy", found_by, entries)

    for number in range(1, passes + 1):
        if time.perf_counter() >= deadline:
            entries.append({"step": f"pass {number}", "path": "stopped", "why": "time limit"})
            break
        pass_start = best
        state = DeductionState(problem, edges)
        supported = confirmed_regulators(state, options.get("min_support", 2))
        candidates = candidate_additions(state, per_target, supported)
        sources = np.zeros(problem.n_genes, dtype=bool)
        sources[state.edges.sources()] = True
        for step, targets in (
            (
                f"pass {number}: genes without out-edges",
                np.flatnonzero(~sources & problem.at_stake),
            ),
            (f"pass {number}: genes with out-edges", np.flatnonzero(sources)),
        ):
            components = build_components(state, targets, candidates)
            accepted = _exact_step(
                state,
                components,
                ground_limit=ground_limit,
                deadline=deadline,
                component_time=component_time,
                scale=scale,
                step=step,
                log_entries=entries,
            )
            if accepted:
                applied = [change for changes in accepted for change in changes]
                state.apply(applied)
                for u, v, _, _ in applied:
                    found_by[(u, v)] = "asp"
                candidates = candidate_additions(state, per_target, supported)
        edges = state.edges
        search = local_search(
            problem,
            start=edges,
            time_limit=max(0.0, deadline - time.perf_counter()),
            **options,
        )
        _mark(found_by, edges, search.edges, "greedy")
        edges, best = search.edges, search.objective_after
        entries.append(_search_entry(f"pass {number}: local search", search))
        if best > pass_start - min_gain * abs(pass_start) - _EPS:
            break
    return Solution(edges, before, best, "greedy+asp", found_by, entries)


def _label_regret(state: DeductionState) -> np.ndarray:
    """Conditions x genes: what each current label costs above the cheapest label there."""
    problem = state.problem
    return problem.reach_cost(*state.reached()) - problem.cheapest_entry_cost()


def _settled(component: Component, regret: np.ndarray, problem: Problem) -> bool:
    """True when no edit inside ``component`` can lower the objective (see ``_exact_step``).

    Under the ``graded`` label model a removal also refunds what the edge costs to hold, so
    an edge that costs more to hold than to remove unsettles its component.
    """
    unedited = {tuple(edge) for edge in component.current.tolist()} == {
        tuple(edge) for edge in component.original.tolist()
    }
    if not unedited:
        return False
    held = problem.held_costs(component.original[:, 0], component.original[:, 1])
    if (held > problem.edit_costs.remove - _EPS).any():
        return False
    return float(regret[np.ix_(component.conditions, component.region)].sum()) <= _EPS


def _mark(found_by: dict, before: EdgeSet, after: EdgeSet, label: str) -> None:
    """Record ``label`` for every gene pair whose signs differ between two edge sets."""
    for pair in set(before.pairs) | set(after.pairs):
        if before.signs(*pair) != after.signs(*pair):
            found_by[pair] = label


def _solve_whole(problem, solver, whole, before, deadline, scale, options, entries, schedule):
    """Every independent part exactly; with ``auto`` the local search as a fallback."""
    original = EdgeSet(problem.n_genes, problem.edges)
    candidates = []
    if solver == "auto":
        search = annealed_search(
            problem,
            schedule=schedule,
            time_limit=max(0.0, deadline - time.perf_counter()),
            **options,
        )
        entries.append(_search_entry("local search (fallback)", search))
        candidates.append(("greedy", search.edges, search.objective_after))
    state = DeductionState(problem, original)
    edges = original.copy()
    proved, missing, atoms, started = 0, 0, 0, time.perf_counter()
    for component in whole:
        result = solve_component(
            problem, component, time_limit=max(1.0, deadline - time.perf_counter()), scale=scale
        )
        proved += int(result.optimal)
        atoms = max(atoms, result.ground_atoms)
        if result.edges is None:
            missing += 1
            continue
        edges.apply(_apply_component(state, component, result.edges))
    entries.append(
        {
            "step": "whole problem",
            "path": "asp",
            "why": f"{len(whole)} independent part(s), each small enough for one exact call",
            "components": len(whole),
            "proved_optimal": proved,
            "without_model": missing,
            "largest_ground_atoms": atoms,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    candidates.append(("asp", edges, objective(problem, edges)))
    name, edges, value = min(candidates, key=lambda item: item[2])
    found_by: dict[tuple[int, int], str] = {}
    _mark(found_by, original, edges, name)
    return Solution(edges, before, value, name, found_by, entries)


def _search_entry(step: str, search) -> dict:
    return {
        "step": step,
        "path": "greedy",
        "rounds": search.rounds,
        "accepted": dict(search.accepted),
        "stopped": search.stopped,
        "objective": round(search.objective_after, 6),
        "seconds": round(search.history[-1]["seconds"], 3) if search.history else 0.0,
    }
