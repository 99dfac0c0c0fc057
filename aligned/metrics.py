"""Scores of DESIGN.md section 3: label macro-F1, balanced consistency and edge recovery.

Label figures compare ternary responses in {-1, 0, +1}.  Refinement figures compare a
knowledge base with a ground truth, always two ways: signed-edge precision / recall / F1
(an edge counts only with the right sign) and the ALIGNED paper's pair macro-F1 (every
ordered gene pair is a sample).  Everything is computed from counts: nothing genes x genes
is ever built.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from aligned.knowledge_base import KnowledgeBase

CLASSES = (-1, 0, 1)

__all__ = [
    "CLASSES",
    "balanced_consistency",
    "confusion",
    "edge_changes",
    "macro_f1",
    "pair_macro_f1",
    "refinement_scores",
    "signed_edge_scores",
]


def confusion(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The 3 x 3 confusion matrix over classes (-1, 0, +1); rows truth, columns prediction.

    Parameters
    ----------
    y_true, y_pred : array of int
        Labels in {-1, 0, +1}, same shape.
    mask : array of bool, optional
        Entries to count; all entries when omitted.

    Returns
    -------
    numpy.ndarray of int64, shape (3, 3)

    Raises
    ------
    ValueError
        If the shapes differ or a label lies outside {-1, 0, +1}.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != y_true.shape:
            raise ValueError(f"mask has shape {mask.shape} but the labels have {y_true.shape}")
        y_true, y_pred = y_true[mask], y_pred[mask]
    y_true = y_true.astype(np.int64).ravel()
    y_pred = y_pred.astype(np.int64).ravel()
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.size and (values.min() < -1 or values.max() > 1):
            raise ValueError(f"{name} holds labels outside {{-1, 0, +1}}")
    return np.bincount((y_true + 1) * 3 + (y_pred + 1), minlength=9).reshape(3, 3)


def _macro_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Mean F1 over the classes that occur in truth or prediction (0.0 when none does)."""
    denominator = 2 * tp + fp + fn
    present = denominator > 0
    if not present.any():
        return 0.0
    return float(np.mean(2.0 * tp[present] / denominator[present]))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Macro-averaged F1 over the classes -1, 0, +1.

    Parameters
    ----------
    y_true, y_pred : array of int
        Labels in {-1, 0, +1}, same shape (any number of dimensions).
    mask : array of bool, optional
        Entries to score (e.g. ``data.scored``); all entries when omitted.

    Returns
    -------
    float
        The mean F1 of the classes that occur in ``y_true`` or ``y_pred`` among the masked
        entries; 0.0 when no entry is scored.

    Notes
    -----
    A class absent from both truth and prediction is left out of the mean (scikit-learn's
    behaviour when ``labels`` is not given), so a perfect prediction scores 1.0 even when a
    class never occurs.  Cost O(entries).

    Examples
    --------
    >>> macro_f1(np.array([1, 0, -1, 0]), np.array([1, 0, 0, 0]))
    0.6
    """
    table = confusion(y_true, y_pred, mask)
    hits = np.diag(table)
    return _macro_from_counts(hits, table.sum(axis=0) - hits, table.sum(axis=1) - hits)


def balanced_consistency(f_data: float, f_kb: float, w: float = 0.5) -> float:
    """ALIGNED's balanced consistency, a weighted power mean (exponent -2) of two F1 scores.

    Parameters
    ----------
    f_data : float
        Data consistency: macro-F1 of predictions against held-out labels.
    f_kb : float
        Knowledge consistency: macro-F1 of predictions against the original KB's deduction.
    w : float, default 0.5
        Weight of ``f_data``, in [0, 1].

    Returns
    -------
    float
        ``(w * f_data**-2 + (1 - w) * f_kb**-2) ** -0.5``; 0.0 when a score with positive
        weight is 0.

    Notes
    -----
    The exponent -2 punishes imbalance: the result never exceeds the weighted mean and drops
    to 0 as either score does.  ``w = 1`` gives ``f_data``, ``w = 0`` gives ``f_kb``.

    Examples
    --------
    >>> round(balanced_consistency(0.8, 0.8), 6)
    0.8
    >>> round(balanced_consistency(0.9, 0.5), 4)
    0.6181
    """
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"the weight w must lie in [0, 1], got {w!r}")
    for name, value in (("f_data", f_data), ("f_kb", f_kb)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    total = 0.0
    for weight, value in ((w, f_data), (1.0 - w, f_kb)):
        if weight == 0.0:
            continue
        if value == 0.0:
            return 0.0
        total += weight / value**2
    return float(total**-0.5)


def _signed_edges(kb: KnowledgeBase, genes: set[str] | None = None) -> set[tuple[str, str, int]]:
    """The set of +1/-1 edges of ``kb`` (``?`` edges left out), optionally within ``genes``."""
    edges = {(s, t, sign) for s, t, sign in kb.edge_tuples() if sign != 0}
    if genes is not None:
        edges = {edge for edge in edges if edge[0] in genes and edge[1] in genes}
    return edges


def signed_edge_scores(kb: KnowledgeBase, truth: KnowledgeBase) -> dict[str, float]:
    """Precision, recall and F1 of ``kb``'s signed edges against a ground-truth KB.

    Parameters
    ----------
    kb : KnowledgeBase
        The KB under evaluation (e.g. a revised one).
    truth : KnowledgeBase
        The ground truth.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (floats) and ``tp``, ``fp``, ``fn`` (ints).  An empty
        side gives precision (or recall) 0.0, except that two empty KBs score 1.0 throughout.

    Notes
    -----
    An edge is a true positive only when ``(source, target, sign)`` is in both KBs, so an
    edge with the wrong sign is one false positive and one false negative.  A dual pair is
    two edges and is scored as two.  ``?`` edges are left out of both sides.  Cost
    O(edges) with hashing.

    Examples
    --------
    >>> truth = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", -1)])
    >>> kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", 1)])
    >>> signed_edge_scores(kb, truth)["f1"]
    0.5
    """
    found = _signed_edges(kb)
    true = _signed_edges(truth)
    tp = len(found & true)
    fp = len(found - true)
    fn = len(true - found)
    if not found and not true:
        precision = recall = f1 = 1.0
    else:
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def pair_macro_f1(
    kb: KnowledgeBase, truth: KnowledgeBase, genes: Iterable[str] | None = None
) -> float:
    """The ALIGNED paper's refinement figure: macro-F1 over all ordered gene pairs.

    Parameters
    ----------
    kb : KnowledgeBase
        The KB under evaluation.
    truth : KnowledgeBase
        The ground truth.
    genes : iterable of str, optional
        The gene universe; ``n**2`` ordered pairs, self pairs included, are the samples.
        Defaults to the union of both KBs' genes.  Edges with an endpoint outside the
        universe are ignored.

    Returns
    -------
    float
        Macro-F1 over the classes -1, 0 and +1.

    Notes
    -----
    Each pair's class is the set of signs of its ``+``/``-`` edges (``?`` edges are left
    out, as in :func:`signed_edge_scores`); no signed edge is class 0.  Per signed class
    ``s``: a pair holding ``s`` on both sides is a true positive, only in ``kb`` a false
    positive, only in the truth a false negative, so a dual pair counts in both signed
    classes' confusion.  Class 0: a pair empty on both sides is a true positive, empty only
    in ``kb`` a false positive, empty only in the truth a false negative.  The number of
    pairs empty on both sides is ``n**2`` minus the pairs with an edge on either side, so
    the cost is O(edges), never O(n**2).  Classes absent from both sides are left out of
    the mean, as in :func:`macro_f1`.

    Examples
    --------
    >>> truth = KnowledgeBase.from_edges([("a", "b", 1)])
    >>> round(pair_macro_f1(truth, truth), 6)
    1.0
    """
    universe = set(genes) if genes is not None else set(kb.genes) | set(truth.genes)
    n = len(universe)
    found = _signed_edges(kb, universe)
    true = _signed_edges(truth, universe)
    tp, fp, fn = np.zeros(3), np.zeros(3), np.zeros(3)
    for position, sign in ((0, -1), (2, 1)):
        found_sign = {(s, t) for s, t, e in found if e == sign}
        true_sign = {(s, t) for s, t, e in true if e == sign}
        tp[position] = len(found_sign & true_sign)
        fp[position] = len(found_sign - true_sign)
        fn[position] = len(true_sign - found_sign)
    found_pairs = {(s, t) for s, t, _ in found}
    true_pairs = {(s, t) for s, t, _ in true}
    fp[1] = len(true_pairs - found_pairs)  # predicted 0, truly an edge
    fn[1] = len(found_pairs - true_pairs)  # truly 0, predicted an edge
    tp[1] = n * n - len(found_pairs | true_pairs)
    return _macro_from_counts(tp, fp, fn)


def edge_changes(before: KnowledgeBase, after: KnowledgeBase) -> dict[str, int]:
    """Counts of edges ``added``, ``removed`` and ``flipped`` from ``before`` to ``after``.

    Notes
    -----
    The counting rule is :meth:`KnowledgeBase.diff`'s (a pair whose single sign changed is one
    flip).
    """
    changes = before.diff(after)["change"].value_counts()
    return {name: int(changes.get(name, 0)) for name in ("added", "removed", "flipped")}


def refinement_scores(
    kb: KnowledgeBase,
    truth: KnowledgeBase,
    start: KnowledgeBase | None = None,
    genes: Sequence[str] | None = None,
) -> dict[str, float]:
    """Every refinement figure of DESIGN.md section 3 in one dict.

    Parameters
    ----------
    kb : KnowledgeBase
        The KB under evaluation.
    truth : KnowledgeBase
        The ground truth.
    start : KnowledgeBase, optional
        The KB the refinement started from; when given, the edit counts ``added``,
        ``removed`` and ``flipped`` from ``start`` to ``kb`` are included.
    genes : sequence of str, optional
        The gene universe of :func:`pair_macro_f1`.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, ``pair_macro_f1`` and,
        with ``start``, the edit counts.
    """
    scores: dict[str, float] = dict(signed_edge_scores(kb, truth))
    scores["pair_macro_f1"] = pair_macro_f1(kb, truth, genes)
    if start is not None:
        scores.update(edge_changes(start, kb))
    return scores
