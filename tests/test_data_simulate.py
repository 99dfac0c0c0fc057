"""The synthetic benchmark: GRN, corruption counts, both protocols, files on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aligned.data import (
    PerturbationData,
    corrupt,
    label_responses,
    load_simulation,
    open_sealed_test,
    simulate,
    write_simulation,
)
from aligned.errors import AlignedError, InputError
from aligned.knowledge_base import KnowledgeBase


def _edge_set(kb: KnowledgeBase) -> set[tuple[str, str, int]]:
    return set(kb.edge_tuples())


@pytest.mark.parametrize("p", [0.0, 0.05, 0.1, 0.3, 0.5, 0.9, 1.0])
def test_corruption_counts_are_exact(p):
    sim = simulate(n_genes=120, corruption=p, seed=4)
    true, corrupted = _edge_set(sim.kb_true), _edge_set(sim.kb_corrupted)
    n_edges = len(true)
    n_remove = int(np.floor(p / 2 * n_edges + 0.5))
    n_add = int(np.floor(p / 4 * n_edges + 0.5))
    true_pairs = {(s, t) for s, t, _ in true}
    added = corrupted - true
    assert len(true - corrupted) == n_remove
    assert sum(sign == 1 for *_, sign in added) == n_add
    assert sum(sign == -1 for *_, sign in added) == n_add
    assert all((s, t) not in true_pairs for s, t, _ in added)  # drawn over non-edges only
    assert len({(s, t) for s, t, _ in added}) == 2 * n_add
    assert sim.params["counts"]["removed"] == n_remove
    assert sim.kb_corrupted.genes == sim.kb_true.genes


def test_corrupt_adds_self_pairs_when_they_are_the_free_pairs():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "a", -1)])
    corrupted, counts = corrupt(kb, 1.0, 0)  # E = 2: remove 1, add 1 + 1
    assert counts == {"removed": 1, "added_activations": 1, "added_repressions": 1}
    added = {(s, t) for s, t, _ in corrupted.edge_tuples()} - {("a", "b"), ("b", "a")}
    assert added == {("a", "a"), ("b", "b")}


def test_corrupt_draws_uniformly_over_free_pairs():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", 1), ("c", "a", -1), ("a", "c", 1)])
    free = {("a", "a"), ("b", "b"), ("c", "c"), ("b", "a"), ("c", "b")}
    counts = dict.fromkeys(free, 0)
    for seed in range(500):
        corrupted, _ = corrupt(kb, 1.0, seed)  # E = 4: add one activation, one repression
        for source, target, _ in corrupted.edge_tuples():
            if (source, target) in free:
                counts[(source, target)] += 1
    # each free pair is drawn with probability 2/5: 200 expected, SD about 11
    assert all(150 < count < 250 for count in counts.values()), counts


def test_corrupt_refuses_when_no_room_for_false_edges():
    full = KnowledgeBase.from_edges([(s, t, 1) for s in "ab" for t in "ab"])
    with pytest.raises(InputError, match="only 0 gene pairs are free"):
        corrupt(full, 1.0, 0)


def test_default_simulation_is_realistic_and_fast():
    sim = simulate()
    counts = sim.params["counts"]
    assert counts["genes"] == 300 and 1000 <= counts["true_edges"] <= 2000
    assert counts["regulators"] == 60
    assert 0.5 < counts["true_activations"] / counts["true_edges"] < 0.7
    out_degree = sim.kb_true.edges["source"].value_counts()
    assert out_degree.max() > 4 * out_degree.median()  # heavy-tailed: a few hubs
    assert set(sim.data.split_sizes()) >= {"train", "validation", "test"}
    assert sim.data.split_sizes()["test"] > 0 and sim.data.split_sizes()["unassigned"] == 0


def test_same_seed_same_simulation_and_a_sweep_shares_truth_and_data():
    first = simulate(n_genes=80, corruption=0.2, seed=7)
    again = simulate(n_genes=80, corruption=0.2, seed=7)
    other_level = simulate(n_genes=80, corruption=0.5, seed=7)
    assert first.kb_true == again.kb_true and first.kb_corrupted == again.kb_corrupted
    assert first.data == again.data
    assert first.kb_true == other_level.kb_true
    assert first.data == other_level.data
    assert first.kb_corrupted != other_level.kb_corrupted
    assert simulate(n_genes=80, seed=8).kb_true != first.kb_true


def test_deduction_protocol_labels_are_the_true_kb_deduction():
    sim = simulate(n_genes=100, protocol="deduction", k=2, seed=1)
    data = sim.data
    regulators = sorted({s for s, _, _ in sim.kb_true.edge_tuples()})
    assert len(data) == len(regulators)
    for view in (data.train, data.validation, open_sealed_test(data)):
        expected, _ = sim.kb_true.deduce_matrix(view.perturbation_matrix(), 2, genes=view.genes)
        np.testing.assert_array_equal(view.labels, expected)
        np.testing.assert_array_equal(view.lfc, expected.astype(np.float32))
        assert all(len(p) == 1 and set(p.values()) == {-1} for p in view.perturbations)
    assert data.label_rule["rule"] == "deduction" and data.label_rule["k"] == 2


def test_linear_protocol_labels_follow_the_recorded_rule():
    sim = simulate(n_genes=100, seed=2, doubles=10, tau=0.8)
    data = sim.data
    assert data.label_rule == label_responses(np.zeros((1, 1)), 0.8)[1]
    assert sum(len(p) == 2 for p in data.perturbations) == 10
    views = [data.train, data.validation, open_sealed_test(data)]
    for view in views:
        labels, _ = label_responses(view.lfc, tau=0.8)
        np.testing.assert_array_equal(view.labels, labels)
    lfc = np.vstack([view.lfc for view in views])
    scored = np.vstack([view.scored for view in views])
    assert 0.01 < (np.abs(lfc[scored]) >= 0.8).mean() < 0.5  # a realistic share of changes
    # a knocked-out gene is held at its imposed change (plus replicate noise)
    knocked = ~scored
    assert np.all(lfc[knocked] < -3)


def test_linear_responses_agree_with_direct_edges_more_than_with_random_ones():
    sim = simulate(n_genes=150, seed=3)
    view = sim.data.train
    deduced, _ = sim.kb_true.deduce_matrix(view.perturbation_matrix(), 1, genes=view.genes)
    hit = (view.labels != 0) & view.scored
    precision = (deduced[hit] == view.labels[hit]).mean()
    assert precision > 0.4


def test_welch_option_records_its_rule():
    sim = simulate(n_genes=60, seed=0, welch=True, alpha=0.01)
    assert sim.data.label_rule["rule"] == "abs_lfc_and_q"
    assert sim.data.label_rule["alpha"] == 0.01


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(corruption=1.5), "corruption must be in"),
        (dict(protocol="nonlinear"), "protocol must be linear or deduction"),
        (dict(k=0), "k must be an integer >= 1"),
        (dict(welch=True, replicates=1), "welch=True needs replicates >= 2"),
        (dict(n_genes=10, doubles=100), "double knockouts"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        simulate(**{"n_genes": 50, **kwargs})


def test_write_simulation_round_trips_and_finds_its_ground_truth(tmp_path):
    sim = simulate(n_genes=60, corruption=0.3, seed=5)
    out = write_simulation(sim, tmp_path / "sim")
    assert sorted(p.name for p in out.iterdir()) == [
        "data",
        "kb_corrupted.tsv",
        "kb_true.tsv",
        "simulation.json",
    ]
    record = json.loads((out / "simulation.json").read_text())
    assert record["params"]["seed"] == 5 and record["params"]["corruption"] == 0.3
    loaded = load_simulation(out)
    assert loaded.data == sim.data
    assert loaded.kb_true == sim.kb_true and loaded.kb_corrupted == sim.kb_corrupted
    data = PerturbationData.load(out / "data")
    assert data.ground_truth_path() == (out / "kb_true.tsv").resolve()
    assert KnowledgeBase.read(data.ground_truth_path()).edge_tuples() == sim.kb_true.edge_tuples()


def test_write_simulation_never_overwrites(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("keep me")
    with pytest.raises(AlignedError, match="already holds files"):
        write_simulation(simulate(n_genes=30), tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "keep me"


def test_in_memory_ground_truth_path_needs_a_saved_directory():
    with pytest.raises(AlignedError, match="relative to the saved dataset directory"):
        simulate(n_genes=30).data.ground_truth_path()
