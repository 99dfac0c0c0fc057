"""``abduce``: revise a KB against perturbation data, the verb of DESIGN.md section 2, step 5."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np

from aligned.abduction.edits import EdgeSet
from aligned.abduction.problem import EditCosts, build_problem
from aligned.abduction.revision import Revision, edit_evidence, revised_kb
from aligned.abduction.solve import SOLVERS, solve_problem
from aligned.abduction.state import DeductionState
from aligned.errors import InputError
from aligned.knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)


def abduce(
    kb: KnowledgeBase,
    data,
    k: int = 3,
    *,
    network_proba: np.ndarray | None = None,
    network_weight: float = 0.5,
    solver: str = "auto",
    time_limit: float = 300.0,
    edit_costs: EditCosts | Mapping[str, float] | None = None,
    confidence: str | np.ndarray = "auto",
    sources: str = "regulators",
    label_model: str = "auto",
    ground_limit: int = 600_000,
    component_time: float = 10.0,
    **solver_options,
) -> Revision:
    """Find a minimal revision of ``kb`` after which its deduction agrees with ``data``.

    Parameters
    ----------
    kb : KnowledgeBase
        The KB to revise.
    data : PerturbationData
        The conditions to fit, e.g. ``data.train`` or the train and validation conditions
        together.  Only these conditions are read; a data set still holding the sealed test
        split is refused by the data set itself.
    k : int
        Deduction bound (DESIGN.md section 1).
    network_proba : array (conditions, data genes, 3), optional
        A network's class probabilities over (-1, 0, +1) for the conditions of ``data``;
        disagreeing with them costs ``network_weight * (1 - p)``.
    network_weight : float
        Weight of the network-disagreement term.
    solver : {"auto", "asp", "greedy"}
        See :mod:`aligned.abduction.solve`.
    time_limit : float
        Seconds for the solve.
    edit_costs : EditCosts or mapping, optional
        Costs of ``remove``, ``flip`` and ``add`` (defaults: :class:`EditCosts`, or
        :meth:`EditCosts.graded` under the graded label model).
    confidence : {"auto", "uniform", "lfc"} or array
        Weight of each observed label (:func:`~aligned.abduction.problem.label_confidence`).
    sources : {"regulators", "perturbed", "all"}
        Which genes may gain out-edges (:func:`~aligned.abduction.problem.build_problem`).
    label_model : {"auto", "exact", "graded"}
        How the labels relate to the deduction (:mod:`aligned.abduction.label_model`):
        ``"exact"`` when they are a KB's deduction, ``"graded"`` when they threshold measured
        LFCs that shrink with every step (a direct target must respond, a gene 2..k steps
        away may).  ``"auto"`` picks by the data's label rule.
    ground_limit : int
        Largest estimated ground size handed to clingo.
    component_time : float
        Seconds per clingo call.
    **solver_options
        Passed to :func:`~aligned.abduction.solve.solve_problem` (``passes``, ``scale``,
        ``per_target``, ``schedule``, ``search_options``).

    Returns
    -------
    Revision
        ``counts`` holds: ``conditions``; ``edges_judged`` and ``edges_out_of_reach`` (signed
        edges of the original KB whose source some condition reaches within ``k - 1`` steps or
        perturbs, and those no condition does: the latter cannot change any label, so they are
        never touched); ``regulators_confirmed`` (unperturbed genes that may gain out-edges);
        ``unknown_sign_edges_left_alone``.

    Raises
    ------
    InputError
        For k < 1, an empty data set, a KB and data sharing no gene, an unknown solver or
        option, or ``solver="asp"`` on a problem too large to ground.

    Notes
    -----
    Objective: label mismatch weighted by confidence, plus network disagreement, plus edit
    cost; the deduction inside it is exactly DESIGN.md section 1 at bound ``k``, so the revised
    KB deduces what the objective assumed.  Cost: see the solvers; on the 300-gene deduction
    benchmark a few seconds, on 5,000 genes a few minutes on two cores.

    Examples
    --------
    >>> from aligned.data import simulate
    >>> sim = simulate(60, corruption=0.3, protocol="deduction", seed=0)
    >>> revision = abduce(sim.kb_corrupted, sim.data.train, k=3, time_limit=30)
    >>> revision.objective_after <= revision.objective_before
    True
    """
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if not time_limit > 0:
        raise InputError(f"time_limit must be > 0 seconds, got {time_limit!r}")
    started = time.perf_counter()
    problem = build_problem(
        kb,
        data,
        k,
        network_proba=network_proba,
        network_weight=network_weight,
        confidence=confidence,
        edit_costs=edit_costs,
        sources=sources,
        label_model=label_model,
    )
    solution = solve_problem(
        problem,
        solver,
        time_limit=time_limit,
        ground_limit=ground_limit,
        component_time=component_time,
        **solver_options,
    )
    revised_state = DeductionState(problem, solution.edges)
    changes = edit_evidence(revised_state, solution.found_by, max_ids=10)
    revised = revised_kb(kb, problem.genes, solution.edges)
    counts, confirmed = _counts(revised_state)
    entries = [*solution.log, {"step": "total", "seconds": round(time.perf_counter() - started, 3)}]
    for entry in entries:
        log.info("abduction: %s", entry)
    return Revision(
        original=kb,
        revised=revised,
        changes=changes,
        objective_before=solution.objective_before,
        objective_after=solution.objective_after,
        k=problem.k,
        solver=solution.solver,
        log=entries,
        counts=counts,
        regulators_confirmed=confirmed,
    )


def _counts(revised: DeductionState) -> tuple[dict, list[str]]:
    """The revision's counts, and the unperturbed genes whose out-edges the data confirm."""
    problem = revised.problem
    original = EdgeSet(problem.n_genes, problem.edges)
    state = DeductionState(problem, original)
    visible = np.diff(state.source_conditions().indptr) > 0
    judged = int(visible[problem.edges[:, 0]].sum()) if len(problem.edges) else 0
    from aligned.abduction.local_search import confirmed_regulators

    confirmed = confirmed_regulators(revised, 2) & ~problem.sources
    counts = {
        **problem.notes,
        "edges_judged": judged,
        "edges_out_of_reach": len(problem.edges) - judged,
        "regulators_confirmed": int(confirmed.sum()),
    }
    return counts, [problem.genes[i] for i in np.flatnonzero(confirmed)]
