"""The abduction engine's parts: objective, exact edit evaluation, local search, components,
and the agreement of the exact (clingo) and vectorised paths."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aligned.abduction.candidates import addition_scores, edge_moves
from aligned.abduction.components import build_components
from aligned.abduction.edits import EdgeSet, Moves, edit_cost, move_edit_costs, pair_masks
from aligned.abduction.exact import solve_component
from aligned.abduction.local_search import local_search
from aligned.abduction.problem import EditCosts, build_problem
from aligned.abduction.solve import objective, solve_problem
from aligned.abduction.state import DeductionState
from aligned.data import PerturbationData, simulate
from aligned.knowledge_base import KnowledgeBase


def make_data(genes, perturbations, labels, lfc=None, scored=None):
    labels = np.asarray(labels, dtype=np.int8)
    lfc = labels.astype(np.float32) if lfc is None else np.asarray(lfc, dtype=np.float32)
    return PerturbationData.from_perturbations(genes, perturbations, lfc, labels, scored)


def random_instance(seed, n=10, n_edges=20, n_conditions=6):
    """A random signed KB (cycles, self-loops, duals) and random labels over it."""
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(n)]
    edges = [
        (genes[rng.integers(n)], genes[rng.integers(n)], int(rng.choice([1, -1])))
        for _ in range(n_edges)
    ]
    kb = KnowledgeBase.from_edges(edges, genes=genes)
    chosen = rng.choice(n, size=n_conditions, replace=False)
    perturbations = [{genes[i]: int(rng.choice([-1, 1]))} for i in chosen]
    perturbations.append({genes[chosen[0]]: -1, genes[chosen[1]]: 1})  # a double
    labels = rng.integers(-1, 2, size=(len(perturbations), n))
    return kb, make_data(genes, perturbations, labels)


def brute_objective(problem, edges: EdgeSet) -> float:
    """Oracle: deduce with the KnowledgeBase tensor path, score entry by entry."""
    genes = problem.genes
    kb = KnowledgeBase.from_edges(
        [(genes[u], genes[v], e) for u, v, e in edges.array().tolist()], genes=genes
    )
    labels, _ = kb.deduce_matrix(problem.perturbations, problem.k)
    rows, cols = np.indices(labels.shape)
    data = float(problem.cost[labels.astype(int) + 1, rows, cols].sum())
    return data + edit_cost(problem.edit_costs, problem.original_pairs(), edges)


def all_single_moves(state, rng, n_additions=25):
    moves, kinds = [], []
    for u, v, e in state.edges.array().tolist():
        moves.append([(u, v, e, -1)])
        kinds.append("remove")
        if len(state.edges.signs(u, v)) == 1:
            moves.append([(u, v, e, -1), (u, v, -e, 1)])
            kinds.append("flip")
    n = state.n
    for _ in range(n_additions):
        u, v = (int(x) for x in rng.integers(n, size=2))
        e = int(rng.choice([1, -1]))
        if e not in state.edges.signs(u, v):
            moves.append([(u, v, e, 1)])
            kinds.append("add")
    return moves, kinds


# ---- the deduction state and the exact evaluation of edits ----------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_walk_count_labels_equal_the_tensor_deduction(k):
    kb, data = random_instance(seed=k)
    problem = build_problem(kb, data, k=k, sources="all")
    state = DeductionState(problem, EdgeSet(problem.n_genes, problem.edges))
    expected, _ = kb.deduce_matrix(problem.perturbations, k)
    perturbed = problem.perturbations.toarray() != 0
    assert np.array_equal(state.labels[~perturbed], expected[~perturbed])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_every_edit_is_evaluated_exactly(seed, k):
    """Removals, flips, additions and compound edits, on graphs with cycles and self-loops:
    the batched walk-count update equals re-deducing from scratch."""
    kb, data = random_instance(seed)
    problem = build_problem(kb, data, k=k, sources="all")
    state = DeductionState(problem, EdgeSet(problem.n_genes, problem.edges))
    rng = np.random.default_rng(seed)
    moves, kinds = all_single_moves(state, rng)
    for _ in range(4):  # compound moves over several gene pairs
        a, b = rng.integers(len(moves), size=2)
        pairs = {c[:2] for c in moves[a]} & {c[:2] for c in moves[b]}
        if not pairs:
            moves.append(moves[a] + moves[b])
            kinds.append("compound")
    batch = Moves.build(moves, kinds)
    data_delta = state.evaluate(batch).delta
    edit_delta = move_edit_costs(
        problem.edit_costs, pair_masks(problem.edges, problem.n_genes), state.edges, batch
    )
    base = brute_objective(problem, state.edges)
    for index, changes in enumerate(moves):
        edges = state.edges.copy()
        edges.apply(changes)
        expected = brute_objective(problem, edges) - base
        assert data_delta[index] + edit_delta[index] == pytest.approx(expected), (
            f"{kinds[index]} {changes}"
        )


def test_edit_costs_count_like_diff():
    costs = EditCosts(remove=0.3, flip=0.5, add=1.2)
    assert costs.of_pair(frozenset({1}), frozenset({-1})) == 0.5
    assert costs.of_pair(frozenset({1}), frozenset()) == 0.3
    assert costs.of_pair(frozenset(), frozenset({1, -1})) == pytest.approx(2.4)
    assert costs.of_pair(frozenset({1}), frozenset({1, -1})) == 1.2  # single becomes dual
    with pytest.raises(ValueError):
        EditCosts(add=0)


# ---- local search -------------------------------------------------------------------------


def deduction_instance(n=120, corruption=0.3, seed=0):
    sim = simulate(n, corruption, protocol="deduction", seed=seed)
    return sim, sim.data.without_test()


def test_local_search_accepts_only_moves_whose_effects_add_up():
    """The objective tracked round by round (sum of accepted changes) is the true one."""
    sim, fitted = deduction_instance()
    problem = build_problem(sim.kb_corrupted, fitted, k=3)
    result = local_search(problem)
    assert result.history, "the corrupted KB should be revised"
    tracked = result.history[-1]["objective"]
    assert tracked == pytest.approx(result.objective_after)
    assert result.objective_after == pytest.approx(brute_objective(problem, result.edges))
    values = [entry["objective"] for entry in result.history]
    assert all(b < a for a, b in zip([result.objective_before, *values], values))


def test_local_search_is_deterministic():
    sim, fitted = deduction_instance(n=80, seed=3)
    problem = build_problem(sim.kb_corrupted, fitted, k=3)
    first = local_search(problem).edges.array()
    second = local_search(problem).edges.array()
    assert np.array_equal(first, second)


def test_a_consistent_kb_is_left_alone():
    sim, fitted = deduction_instance(n=120, corruption=0.0)
    problem = build_problem(sim.kb_true, fitted, k=3)
    result = local_search(problem)
    assert result.objective_before == 0.0
    assert result.accepted == {"remove": 0, "flip": 0, "add": 0, "compound": 0}


def test_local_search_recovers_a_removed_edge_and_drops_a_false_one():
    genes = ["r", "a", "b", "c", "x"]
    truth = KnowledgeBase.from_edges([("r", "a", 1), ("r", "b", -1), ("a", "c", 1)], genes=genes)
    wrong = KnowledgeBase.from_edges([("r", "a", 1), ("a", "c", 1), ("a", "x", -1)], genes=genes)
    perturbations = [{"r": -1}, {"a": -1}, {"r": 1}, {"a": 1}]
    X = make_data(genes, perturbations, np.zeros((4, 5))).perturbation_matrix(genes)
    labels, _ = truth.deduce_matrix(X, 2)
    problem = build_problem(wrong, make_data(genes, perturbations, labels), k=2)
    result = local_search(problem)
    found = {(genes[u], genes[v], e) for u, v, e in result.edges.array().tolist()}
    assert found == set(truth.edge_tuples())


def test_edges_out_of_reach_are_never_judged():
    """An edge whose source no condition reaches changes no label: not even a candidate."""
    genes = ["r", "a", "z", "y"]
    kb = KnowledgeBase.from_edges([("r", "a", 1), ("z", "y", 1)], genes=genes)
    data = make_data(genes, [{"r": -1}], [[-1, 0, 0, 0]])
    problem = build_problem(kb, data, k=3)
    state = DeductionState(problem, EdgeSet(problem.n_genes, problem.edges))
    moves = edge_moves(state, problem.edges, np.zeros(len(problem.edges), dtype=bool))
    touched = {(int(u), int(v)) for u, v in zip(moves.u, moves.v)}
    assert (genes.index("z"), genes.index("y")) not in touched


def test_addition_scores_see_downstream_effects():
    """Adding r -> hub explains the hub's targets, which the hub's own label does not show."""
    genes = ["r", "hub", "t1", "t2", "t3"]
    truth = KnowledgeBase.from_edges(
        [("r", "hub", 1), ("hub", "t1", 1), ("hub", "t2", 1), ("hub", "t3", -1)], genes=genes
    )
    kb = KnowledgeBase.from_edges([("hub", "t1", 1), ("hub", "t2", 1), ("hub", "t3", -1)])
    X = make_data(genes, [{"r": -1}], np.zeros((1, 5))).perturbation_matrix(genes)
    labels, _ = truth.deduce_matrix(X, 3)
    scored = np.array([[False, False, True, True, True]])  # the hub's own label is unknown
    problem = build_problem(kb, make_data(genes, [{"r": -1}], labels, scored=scored), k=3)
    state = DeductionState(problem, EdgeSet(problem.n_genes, problem.edges))
    sources, targets, scores = addition_scores(state)
    index = problem.genes.index
    s = int(np.flatnonzero(sources == index("r"))[0])
    t = int(np.flatnonzero(targets == index("hub"))[0])
    assert scores[0, s, t] == pytest.approx(-3.0)  # + sign explains t1, t2, t3


# ---- components and the exact path -------------------------------------------------------


def test_components_of_targets_without_out_edges_are_independent():
    sim, fitted = deduction_instance(n=80, seed=1)
    problem = build_problem(sim.kb_corrupted, fitted, k=3)
    state = DeductionState(problem, EdgeSet(problem.n_genes, problem.edges))
    sinks = np.setdiff1d(np.flatnonzero(problem.at_stake), state.edges.sources())
    components = build_components(state, sinks, np.zeros((0, 3), dtype=np.int64))
    assert len(components) == len(sinks)
    regions = [set(component.region.tolist()) for component in components]
    assert all(len(region) == 1 for region in regions)


def test_exact_solutions_of_independent_components_add_up():
    sim, fitted = deduction_instance(n=80, seed=2)
    problem = build_problem(sim.kb_corrupted, fitted, k=3)
    state = DeductionState(problem, EdgeSet(problem.n_genes, problem.edges))
    sinks = np.setdiff1d(np.flatnonzero(problem.at_stake), state.edges.sources())
    components = build_components(state, sinks, np.zeros((0, 3), dtype=np.int64))
    before = brute_objective(problem, state.edges)
    edges = state.edges.copy()
    gains = 0.0
    for component in components:
        result = solve_component(problem, component, time_limit=10)
        assert result.optimal
        now = {tuple(e) for e in component.current.tolist()}
        new = {tuple(e) for e in result.edges.tolist()}
        changes = [(*e, -1) for e in now - new] + [(*e, 1) for e in new - now]
        single = state.edges.copy()
        single.apply(changes)
        gain = brute_objective(problem, single) - before
        assert gain <= 1e-9, "an exact component solution never worsens the objective"
        gains += gain
        edges.apply(changes)
    assert brute_objective(problem, edges) == pytest.approx(before + gains)


def exhaustive_optimum(problem):
    """Oracle: every sign set (none, +, -) on every ordered pair of distinct genes."""
    n = problem.n_genes
    pairs = [(u, v) for u, v in itertools.product(range(n), repeat=2) if u != v]
    best = np.inf
    for choice in itertools.product((0, 1, -1), repeat=len(pairs)):
        edges = np.array([(u, v, e) for (u, v), e in zip(pairs, choice) if e], dtype=np.int64)
        best = min(best, brute_objective(problem, EdgeSet(n, edges.reshape(-1, 3))))
    return best


@pytest.mark.parametrize("seed", range(4))
def test_exact_path_finds_the_exhaustive_optimum_on_tiny_instances(seed):
    rng = np.random.default_rng(seed)
    genes = ["a", "b", "c"]
    kb = KnowledgeBase.from_edges(
        [(genes[u], genes[v], int(rng.choice([1, -1]))) for u, v in [(0, 1), (1, 2), (2, 0)]][
            : 1 + seed % 3
        ],
        genes=genes,
    )
    perturbations = [{"a": -1}, {"b": 1}, {"c": -1}]
    labels = rng.integers(-1, 2, size=(3, 3))
    problem = build_problem(kb, make_data(genes, perturbations, labels), k=2, sources="all")
    solution = solve_problem(problem, "asp", time_limit=30)
    assert solution.solver == "asp"
    # self-loops are not candidates of the solvers; the oracle leaves them out too
    assert solution.objective_after == pytest.approx(exhaustive_optimum(problem))


def corrupted_instance(seed, n=10, n_true=14, n_conditions=5, k=3):
    """A random true KB, a copy missing three of its edges and holding four false ones, and
    the true KB's deduction of some single knockouts as the data."""
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(n)]
    pairs = [(u, v) for u in range(n) for v in range(n) if u != v]
    pick = rng.choice(len(pairs), size=n_true + 4, replace=False)
    edges = [(genes[pairs[i][0]], genes[pairs[i][1]], int(rng.choice([1, -1]))) for i in pick]
    truth = KnowledgeBase.from_edges(edges[:n_true], genes=genes)
    corrupted = KnowledgeBase.from_edges(edges[3:], genes=genes)
    perturbations = [{genes[i]: -1} for i in rng.choice(n, n_conditions, replace=False)]
    X = make_data(genes, perturbations, np.zeros((n_conditions, n))).perturbation_matrix(genes)
    labels, _ = truth.deduce_matrix(X, k)
    return build_problem(corrupted, make_data(genes, perturbations, labels), k=k)


@pytest.mark.parametrize("seed", range(8))
def test_exact_and_greedy_paths_reach_the_same_cost_or_report_the_gap(seed, capsys):
    """On instances small enough for both, clingo proves its optimum; the local search
    reaches the same cost or a worse one, and the gap is reported."""
    problem = corrupted_instance(seed)
    exact = solve_problem(problem, "asp", time_limit=60, ground_limit=10**7)
    greedy = solve_problem(problem, "greedy", time_limit=60)
    (entry,) = [entry for entry in exact.log if entry["path"] == "asp"]
    assert entry["proved_optimal"] == entry["components"], "clingo should prove optimality"
    assert exact.objective_after == pytest.approx(objective(problem, exact.edges))
    assert exact.objective_after <= greedy.objective_after + 1e-9
    with capsys.disabled():
        gap = greedy.objective_after - exact.objective_after
        print(
            f"\n  seed {seed}: exact {exact.objective_after:.2f} (proved), greedy "
            f"{greedy.objective_after:.2f}, gap {gap:.2f}",
            end="",
        )


def test_asp_refuses_a_problem_too_large_to_ground():
    sim, fitted = deduction_instance(n=80)
    problem = build_problem(sim.kb_corrupted, fitted, k=3)
    with pytest.raises(ValueError, match="too large for the exact path"):
        solve_problem(problem, "asp", ground_limit=1000)


def test_auto_logs_which_path_ran_and_why():
    sim, fitted = deduction_instance(n=120)
    problem = build_problem(sim.kb_corrupted, fitted, k=3)
    solution = solve_problem(problem, "auto", time_limit=60)
    paths = {entry["path"] for entry in solution.log}
    assert "greedy" in paths and "asp" in paths
    assert any("too large" in entry.get("why", "") for entry in solution.log)
    assert solution.objective_after == pytest.approx(objective(problem, solution.edges))
