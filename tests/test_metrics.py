"""Label and refinement metrics (aligned/metrics.py, DESIGN.md section 3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligned.knowledge_base import KnowledgeBase
from aligned.metrics import (
    balanced_consistency,
    confusion,
    edge_changes,
    macro_f1,
    pair_macro_f1,
    refinement_scores,
    signed_edge_scores,
)


def f1_of_class(truth_sets, pred_sets, cls):
    """Per-class F1 where each sample is a set of classes (a dual pair holds two)."""
    tp = sum(cls in t and cls in p for t, p in zip(truth_sets, pred_sets))
    fp = sum(cls not in t and cls in p for t, p in zip(truth_sets, pred_sets))
    fn = sum(cls in t and cls not in p for t, p in zip(truth_sets, pred_sets))
    return None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def dense_pair_macro_f1(kb, truth, genes):
    """Oracle: enumerate all n^2 ordered pairs explicitly."""

    def classes(kb_, pair):
        signs = {e for s, t, e in kb_.edge_tuples() if (s, t) == pair and e != 0}
        return signs or {0}

    pairs = list(itertools.product(genes, genes))
    truth_sets = [classes(truth, p) for p in pairs]
    pred_sets = [classes(kb, p) for p in pairs]
    scores = [f1_of_class(truth_sets, pred_sets, c) for c in (-1, 0, 1)]
    return float(np.mean([s for s in scores if s is not None]))


def test_macro_f1_matches_hand_computation():
    # class +1: F1 1; class 0: tp 2, fp 1, fn 0 -> 0.8; class -1: F1 0
    assert macro_f1(np.array([1, 0, -1, 0]), np.array([1, 0, 0, 0])) == pytest.approx(0.6)


def test_macro_f1_mask_and_absent_classes():
    y_true = np.array([[1, 0], [0, -1]])
    y_pred = np.array([[1, 1], [0, 1]])
    mask = np.array([[True, False], [True, False]])
    assert macro_f1(y_true, y_pred, mask) == 1.0  # only classes +1 and 0 occur, both right
    assert macro_f1(y_true, y_pred, np.zeros_like(mask)) == 0.0


def test_confusion_rejects_bad_labels_and_shapes():
    with pytest.raises(ValueError, match="outside"):
        confusion(np.array([2]), np.array([0]))
    with pytest.raises(ValueError, match="shape"):
        confusion(np.array([1, 0]), np.array([0]))


def test_balanced_consistency_is_a_power_mean():
    assert balanced_consistency(0.7, 0.7) == pytest.approx(0.7)
    assert balanced_consistency(0.9, 0.5) == pytest.approx((0.5 / 0.81 + 0.5 / 0.25) ** -0.5)
    assert balanced_consistency(0.9, 0.0) == 0.0
    assert balanced_consistency(0.9, 0.0, w=1.0) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        balanced_consistency(1.2, 0.5)


def test_signed_edge_scores_count_a_wrong_sign_twice_and_ignore_unknown_edges():
    truth = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", -1), ("c", "a", 0)])
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", 1), ("a", "c", 0)])
    scores = signed_edge_scores(kb, truth)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 1)
    assert scores["precision"] == scores["recall"] == scores["f1"] == 0.5


def test_signed_edge_scores_of_identical_kbs_are_perfect():
    truth = KnowledgeBase.from_edges([("a", "b", 1), ("a", "b", -1)])
    assert signed_edge_scores(truth, truth)["f1"] == 1.0
    empty = KnowledgeBase.from_edges([])
    assert signed_edge_scores(empty, empty)["f1"] == 1.0
    assert signed_edge_scores(empty, truth)["recall"] == 0.0


def test_pair_macro_f1_counts_a_dual_pair_in_both_signed_classes():
    genes = ["a", "b", "c"]
    truth = KnowledgeBase.from_edges([("a", "b", 1), ("a", "b", -1), ("b", "c", 1)])
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("c", "c", -1)], genes=genes)
    assert pair_macro_f1(kb, truth, genes) == pytest.approx(dense_pair_macro_f1(kb, truth, genes))


edge_lists = st.lists(
    st.tuples(st.sampled_from("abcde"), st.sampled_from("abcde"), st.sampled_from([-1, 0, 1])),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(edge_lists, edge_lists)
def test_pair_macro_f1_equals_the_dense_enumeration(kb_edges, truth_edges):
    genes = list("abcde")
    kb = KnowledgeBase.from_edges(kb_edges, genes=genes)
    truth = KnowledgeBase.from_edges(truth_edges, genes=genes)
    assert pair_macro_f1(kb, truth, genes) == pytest.approx(dense_pair_macro_f1(kb, truth, genes))


def test_pair_macro_f1_ignores_edges_outside_the_universe():
    truth = KnowledgeBase.from_edges([("a", "b", 1)])
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("x", "y", -1)])
    assert pair_macro_f1(kb, truth, ["a", "b"]) == 1.0


def test_refinement_scores_include_edit_counts():
    start = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", 1)])
    truth = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", -1), ("c", "a", 1)])
    scores = refinement_scores(truth, truth, start=start)
    assert scores["f1"] == 1.0 and scores["pair_macro_f1"] == 1.0
    assert (scores["added"], scores["removed"], scores["flipped"]) == (1, 0, 1)
    assert edge_changes(start, start) == {"added": 0, "removed": 0, "flipped": 0}
