"""How observed labels relate to the KB's deduction: the costs of the abduction's data term.

Two models, chosen per data set (:func:`choose_label_model`):

``exact``
    The labels are what a true KB deduces at bound k (the ``deduction`` protocol): every
    mismatch costs the label's confidence, whatever the class.

``graded``
    The labels threshold measured log fold changes (``|LFC| >= tau``), and a change shrinks at
    every step it travels.  A direct target of a perturbed gene then mostly crosses the
    threshold, a gene two or three steps away mostly does not, and a response that no walk
    explains is rare.  So:

    * an observed response the deduction does not predict costs ``miss``, one it predicts with
      the opposite sign costs ``wrong``;
    * a predicted response where the gene did not change costs nothing in the deduction's term
      (at 2..k steps silence is what the data usually show), but every edge out of a perturbed
      gene whose target did not change costs ``direct(c, target)`` on its own: the *direct*
      prediction is the one the data can test.

    The deduction inside the objective is unchanged (DESIGN.md section 1 at bound k); only the
    weight of a silent gene depends on whether an edge from the perturbed gene points at it.

The graded costs are log-likelihood ratios estimated from the fitted conditions and the KB as
given (:func:`graded_costs`); the edit costs of :class:`~aligned.abduction.problem.EditCosts`
are then log prior odds, in the same natural units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from aligned.errors import InputError
from aligned.reasoning import tensor

LABEL_MODELS = ("auto", "exact", "graded")
# |LFC| / tau bins of the direct-prediction likelihood ratio (silent genes only: |LFC| < tau)
_BINS = np.linspace(0.0, 1.0, 11)
_FLOOR = 1e-3  # no estimated rate is taken as exactly 0 or 1


def choose_label_model(data, label_model: str = "auto") -> str:
    """``"graded"`` for labels thresholded from measured LFCs, ``"exact"`` otherwise.

    ``"auto"`` looks at ``data.label_rule``: a rule that records a threshold ``tau`` made the
    labels from measurements (graded); the deduction protocol's rule records none (exact).
    """
    if label_model not in LABEL_MODELS:
        raise InputError(f"unknown label model {label_model!r}; use {', '.join(LABEL_MODELS)}")
    if label_model != "auto":
        return label_model
    rule = data.label_rule if isinstance(data.label_rule, Mapping) else {}
    return "graded" if rule.get("tau") else "exact"


@dataclass(frozen=True)
class GradedRates:
    """What the KB as given and the fitted data say about each kind of prediction.

    Attributes
    ----------
    hit : float
        Share of the deduced responses (at bound k) observed with the deduced sign.
    wrong_sign : float
        Share of the deduced responses observed with the opposite sign.
    unexplained : float
        Share of the genes no walk reaches that respond anyway.
    direct_silent, other_silent : float
        Share of silent genes among direct targets of a perturbed gene, and among the rest.
    miss, wrong : float
        The costs, in nats: ``log(hit / (unexplained / 2))`` and ``log(hit / wrong_sign)``.
    direct : list of float
        Cost of a direct prediction at a silent gene, per ``|LFC| / tau`` bin (ten bins).
    """

    hit: float
    wrong_sign: float
    unexplained: float
    direct_silent: float
    other_silent: float
    miss: float
    wrong: float
    direct: list[float]

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def direct_targets(perturbations: sp.csr_matrix, edges: np.ndarray, n: int) -> np.ndarray:
    """Conditions x genes (bool): the gene is the target of a signed edge out of a gene that
    the condition perturbs.  O(conditions x out-degree) via one sparse product."""
    adjacency = sp.csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    hits = abs(perturbations).astype(np.float64) @ adjacency
    return np.asarray(hits.toarray() > 0)


def graded_costs(
    perturbations: sp.csr_matrix,
    edges: np.ndarray,
    k: int,
    observed: np.ndarray,
    scored: np.ndarray,
    magnitude: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, GradedRates]:
    """The graded model's data costs for one problem (module docstring).

    Parameters
    ----------
    perturbations : scipy.sparse.csr_matrix
        Conditions x genes, entries -1 / +1.
    edges : numpy.ndarray of int64, shape (m, 3)
        The KB's signed edges ``(source, target, sign)``.
    k : int
        Deduction bound.
    observed : numpy.ndarray of int8
        Conditions x genes, observed labels.
    scored : numpy.ndarray of bool
        Conditions x genes, the entries that count (perturbed genes excluded).
    magnitude : numpy.ndarray of float
        Conditions x genes, ``|LFC| / tau``.

    Returns
    -------
    cost : numpy.ndarray of float32, shape (3, conditions, genes)
        ``cost[l + 1]``: what deducing class ``l`` costs at each entry (0 at silent genes).
    direct : numpy.ndarray of float32, conditions x genes
        What each edge out of a gene perturbed in the condition costs at its target there.
    rates : GradedRates

    Notes
    -----
    Rates come from the KB as given (before any edit) against the fitted conditions, so a
    corrupted KB makes ``hit`` and the direct silence rate a little worse than the truth's; the
    direct cost of a silent gene is the log ratio of how often silent genes show that
    ``|LFC|`` when no edge from the perturbed gene points at them and when one does (ten bins
    of ``|LFC| / tau``, one pseudo-count each, never below 0).  One deduction at bound k and
    one sparse product: O(k x conditions x reached states x out-degree).
    """
    n = observed.shape[1]
    transition = tensor.transition_matrix(edges[:, 0], edges[:, 1], edges[:, 2], n)
    deduced, _ = tensor.deduce_matrix(perturbations, transition, k)
    direct_mask = direct_targets(perturbations, edges, n)

    def share(numerator: np.ndarray, denominator: np.ndarray) -> float:
        total = int(denominator.sum())
        value = float((numerator & denominator).sum()) / total if total else 0.5
        return min(max(value, _FLOOR), 1.0 - _FLOOR)

    predicted = scored & (deduced != 0)
    hit = share(observed == deduced, predicted)
    wrong_sign = share(observed == -deduced, predicted)
    unexplained = share(observed != 0, scored & (deduced == 0) & ~direct_mask)
    silent = scored & (observed == 0)
    direct_silent = share(silent, scored & direct_mask)
    other_silent = share(silent, scored & ~direct_mask)
    miss = max(float(np.log(hit / (unexplained / 2))), 0.0)
    wrong = max(float(np.log(hit / wrong_sign)), miss)

    bins = np.clip(np.digitize(magnitude, _BINS[1:-1]), 0, len(_BINS) - 2)
    with_edge = np.bincount(bins[silent & direct_mask], minlength=len(_BINS) - 1) + 1.0
    without = np.bincount(bins[silent & ~direct_mask], minlength=len(_BINS) - 1) + 1.0
    ratio = np.log(without / without.sum()) - np.log(with_edge / with_edge.sum())
    # the bins measure which |LFC| a silent direct target shows; the silence itself is
    # evidence in proportion to how much rarer it is at direct targets than elsewhere
    silence = np.log(other_silent / direct_silent)
    per_bin = np.maximum(ratio + silence, 0.0)

    cost = np.zeros((3,) + observed.shape, dtype=np.float32)
    for position, cls in enumerate((-1, 0, 1)):
        value = np.where(cls == 0, miss, np.where(observed == cls, 0.0, wrong))
        cost[position] = np.where(scored & (observed != 0), value, 0.0)
    direct = np.where(silent, per_bin[bins], 0.0).astype(np.float32)
    rates = GradedRates(
        hit=hit,
        wrong_sign=wrong_sign,
        unexplained=unexplained,
        direct_silent=direct_silent,
        other_silent=other_silent,
        miss=miss,
        wrong=wrong,
        direct=[round(float(value), 4) for value in per_bin],
    )
    return cost, direct, rates
