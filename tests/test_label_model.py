"""The graded label model: its costs, the exactness of every solver under it, and what it does
on thresholded (``linear`` protocol) data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_abduction import random_instance  # the same random KBs, conditions and doubles

from aligned.abduction import abduce
from aligned.abduction.edits import EdgeSet, Moves, edit_cost, move_edit_costs, pair_masks
from aligned.abduction.label_model import choose_label_model
from aligned.abduction.problem import EditCosts, build_problem
from aligned.abduction.solve import objective, solve_problem
from aligned.abduction.state import DeductionState
from aligned.data import PerturbationData, simulate
from aligned.errors import InputError
from aligned.knowledge_base import KnowledgeBase
from aligned.reasoning import status as st_codes

TAU = 1.0


def graded_instance(seed):
    """The random KBs and conditions of the exact model's tests, with labels thresholded at
    TAU from random LFCs."""
    kb, exact = random_instance(seed)
    lfc = np.random.default_rng(seed).normal(0.0, 1.0, size=exact.labels.shape).astype(np.float32)
    labels = (np.sign(lfc) * (np.abs(lfc) >= TAU)).astype(np.int8)
    data = PerturbationData.from_perturbations(
        exact.genes, exact.perturbations, lfc, labels, label_rule={"rule": "lfc", "tau": TAU}
    )
    return kb, data


def brute_objective(problem, edges: EdgeSet) -> float:
    """Oracle: deduce with the KnowledgeBase tensor path (status codes), then score entry by
    entry and edge by edge with plain loops."""
    genes = problem.genes
    kb = KnowledgeBase.from_edges(
        [(genes[u], genes[v], e) for u, v, e in edges.array().tolist()], genes=genes
    )
    labels, status = kb.deduce_matrix(problem.perturbations, problem.k)
    total = 0.0
    X = problem.perturbations.toarray()
    conflict = problem.conflict_cost()
    for c, g in itertools.product(range(labels.shape[0]), range(labels.shape[1])):
        if status[c, g] == st_codes.CONFLICT:
            total += float(conflict[c, g])
        elif status[c, g] != st_codes.PERTURBED:
            total += float(problem.cost[labels[c, g] + 1, c, g])
    if problem.direct is not None:
        for u, v, _ in edges.array().tolist():
            for c in range(X.shape[0]):
                if X[c, u] != 0:
                    total += float(problem.direct[c, v])
    return total + edit_cost(problem.edit_costs, problem.original_pairs(), edges)


def test_auto_picks_graded_for_thresholded_labels_and_exact_otherwise():
    _, thresholded = graded_instance(0)
    exact = simulate(30, 0.0, protocol="deduction", seed=0).data.train
    assert choose_label_model(thresholded) == "graded"
    assert choose_label_model(exact) == "exact"
    assert choose_label_model(exact, "graded") == "graded"
    with pytest.raises(InputError, match="label model"):
        choose_label_model(exact, "fuzzy")


def test_graded_needs_a_threshold():
    data = simulate(30, 0.0, protocol="deduction", seed=0).data.train
    kb = simulate(30, 0.0, protocol="deduction", seed=0).kb_true
    with pytest.raises(InputError, match="tau"):
        build_problem(kb, data, k=2, label_model="graded")


def test_graded_costs_silence_only_at_direct_targets():
    """A silent gene costs nothing in the deduction's term; an edge out of a perturbed gene
    into a silent gene costs the direct term; a conflict explains a response."""
    kb, data = graded_instance(1)
    problem = build_problem(kb, data, k=2)
    assert problem.label_model == "graded"
    silent = problem.scored & (problem.observed == 0)
    assert np.all(problem.cost[:, silent] == 0)
    responding = problem.scored & (problem.observed != 0)
    rows, cols = np.nonzero(responding)
    observed = problem.observed[rows, cols].astype(int)
    assert np.all(problem.cost[observed + 1, rows, cols] == 0)  # explained: free
    rates = problem.notes["label_rates"]
    assert rates["wrong"] >= rates["miss"] >= 0
    assert np.all(problem.cost[1][responding] <= rates["miss"] + 1e-6)  # miss x confidence
    assert np.all(problem.conflict[responding] == 0)
    assert np.all(problem.direct[~silent] == 0) and np.all(problem.direct >= 0)
    assert EditCosts.from_value(None, "graded") == EditCosts.graded()
    assert EditCosts.from_value({"add": 9.0}, "graded").remove == EditCosts.graded().remove


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 3))
def test_every_edit_is_evaluated_exactly_under_the_graded_model(seed, k):
    kb, data = graded_instance(seed)
    problem = build_problem(kb, data, k=k, sources="all")
    state = DeductionState(problem, EdgeSet(problem.n_genes, problem.edges))
    assert state.data_objective() + 0.0 == pytest.approx(brute_objective(problem, state.edges))
    rng = np.random.default_rng(seed)
    moves, kinds = [], []
    for u, v, e in state.edges.array().tolist():
        moves.append([(u, v, e, -1)])
        kinds.append("remove")
    for _ in range(15):
        u, v = (int(x) for x in rng.integers(problem.n_genes, size=2))
        e = int(rng.choice([1, -1]))
        if e not in state.edges.signs(u, v):
            moves.append([(u, v, e, 1)])
            kinds.append("add")
    batch = Moves.build(moves, kinds)
    delta = state.evaluate(batch).delta + move_edit_costs(
        problem.edit_costs, pair_masks(problem.edges, problem.n_genes), state.edges, batch
    )
    base = brute_objective(problem, state.edges)
    for index, changes in enumerate(moves):
        edges = state.edges.copy()
        edges.apply(changes)
        assert delta[index] == pytest.approx(brute_objective(problem, edges) - base), changes


@pytest.mark.parametrize("seed", range(4))
def test_exact_path_finds_the_exhaustive_optimum_under_the_graded_model(seed):
    rng = np.random.default_rng(seed)
    genes = ["a", "b", "c"]
    pairs = [(0, 1), (1, 2), (2, 0), (0, 2)]
    kb = KnowledgeBase.from_edges(
        [(genes[u], genes[v], int(rng.choice([1, -1]))) for u, v in pairs[: 1 + seed % 3]],
        genes=genes,
    )
    perturbations = [{"a": -1}, {"b": 1}, {"c": -1}, {"a": 1}]
    lfc = rng.normal(0.0, 1.2, size=(4, 3)).astype(np.float32)
    labels = (np.sign(lfc) * (np.abs(lfc) >= TAU)).astype(np.int8)
    data = PerturbationData.from_perturbations(
        genes, perturbations, lfc, labels, label_rule={"rule": "lfc", "tau": TAU}
    )
    costs = {"remove": 0.4, "flip": 0.6, "add": 0.5}  # cheap, so that edits happen
    problem = build_problem(kb, data, k=2, sources="all", edit_costs=costs)
    solution = solve_problem(problem, "asp", time_limit=30)
    best = np.inf
    candidates = [(u, v) for u in range(3) for v in range(3) if u != v]
    for choice in itertools.product((0, 1, -1), repeat=len(candidates)):
        edges = np.array([(u, v, e) for (u, v), e in zip(candidates, choice) if e], dtype=np.int64)
        best = min(best, brute_objective(problem, EdgeSet(3, edges.reshape(-1, 3))))
    assert solution.objective_after == pytest.approx(best, abs=0.02)  # clingo's integer units
    assert objective(problem, solution.edges) == pytest.approx(solution.objective_after)


def test_a_true_kb_survives_thresholded_data():
    """The linear protocol at corruption 0: the graded model leaves the true KB as it is,
    where the exact model (every silent gene a mismatch) tears it apart."""
    sim = simulate(150, 0.0, protocol="linear", seed=0)
    fitted = sim.data.without_test()
    graded = abduce(sim.kb_true, fitted, k=3, time_limit=30)
    assert graded.counts["label_model"] == "graded"
    assert len(graded.changes) == 0
    exact = abduce(sim.kb_true, fitted, k=3, time_limit=5, label_model="exact", passes=0)
    assert len(exact.changes) > 20
