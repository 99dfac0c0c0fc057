"""The adaptor: per output gene, trust the knowledge base's deduction or the network.

Gradient-free and decided on validation conditions only.  First the overall winner: the source
with the better macro-F1 over all genes together (the KB must lead by ``margin``).  Each gene
follows it unless its own evidence (``min_support`` validation entries or more) shows the other
source clearly ahead: by ``margin`` in per-gene macro-F1 and in a one-sided sign test at level
``alpha`` (:func:`fit_gate`).  Test labels never reach this module."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aligned.io import atomic_write_text

CLASSES = (-1, 0, 1)


def per_gene_macro_f1(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Macro-F1 over {-1, 0, +1} for every column (gene), counting only masked entries.

    A class absent from both the truth and the prediction of a gene is left out of that gene's
    average (it is neither right nor wrong); a gene with no masked entry scores NaN.

    Notes
    -----
    Vectorised over genes: O(conditions * genes) time and memory for three boolean arrays.
    """
    scores = np.zeros(y_true.shape[1], dtype=np.float64)
    present = np.zeros(y_true.shape[1], dtype=np.int64)
    for cls in CLASSES:
        truth = (y_true == cls) & mask
        called = (y_pred == cls) & mask
        tp = (truth & called).sum(axis=0)
        denominator = truth.sum(axis=0) + called.sum(axis=0)
        seen = denominator > 0
        scores[seen] += 2 * tp[seen] / denominator[seen]
        present += seen
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present > 0, scores / np.maximum(present, 1), np.nan)


@dataclass
class Gate:
    """Which source each output gene trusts, with the evidence that decided it.

    ``table`` has one row per gene: ``gene``, ``source`` (``kb`` or ``network``),
    ``kb_score``, ``network_score`` (validation macro-F1), ``support`` and ``decided_by``
    (``gene`` when its own evidence overrode the overall winner, ``all genes`` when it
    followed the overall winner).
    """

    table: pd.DataFrame

    @property
    def trust_kb(self) -> np.ndarray:
        """Boolean mask over genes: True where the KB is trusted."""
        return (self.table["source"] == "kb").to_numpy()

    def combine(self, kb_labels: np.ndarray, network_labels: np.ndarray) -> np.ndarray:
        """Integrated prediction: the KB's labels where trusted, the network's elsewhere."""
        return np.where(self.trust_kb[None, :], kb_labels, network_labels).astype(np.int8)

    def write(self, path: str | os.PathLike) -> None:
        """Save the gate as TSV (atomically)."""
        atomic_write_text(path, self.table.to_csv(sep="\t", index=False, float_format="%.4f"))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Gate:
        table = pd.read_csv(
            path, sep="\t", dtype={"gene": str}, keep_default_na=False, na_values=[""]
        )
        return cls(table)


def fit_gate(
    genes: list[str],
    labels: np.ndarray,
    scored: np.ndarray,
    kb_labels: np.ndarray,
    network_labels: np.ndarray,
    margin: float = 0.05,
    min_support: int = 3,
    alpha: float = 0.05,
) -> Gate:
    """Choose, per gene, between the KB's deduction and the network from validation evidence.

    Parameters
    ----------
    genes : list of str
        Output genes (columns of every array).
    labels, scored : numpy.ndarray
        Validation labels in {-1, 0, +1} and the mask of entries that count.
    kb_labels, network_labels : numpy.ndarray
        The KB's deduced labels and the network's predicted labels for the same conditions.
    margin : float
        A source must beat the other by more than this (in macro-F1) to be preferred.
    min_support : int
        Validation entries (label or KB call non-zero) a gene needs for its own decision.
    alpha : float
        Significance a gene's lead must reach in the sign test (below) to override the overall
        winner; 1 switches the test off.

    Returns
    -------
    Gate

    Notes
    -----
    First the overall winner: the KB when its macro-F1 over every scored validation entry beats
    the network's by more than ``margin``, else the network (ties go to the network, which has
    seen the training data for every gene).  Each gene follows the overall winner unless its own
    evidence (``min_support`` entries or more) shows the other source clearly ahead: by more
    than ``margin`` in macro-F1, and in a one-sided exact sign test over the entries where
    exactly one source is right (the other source right in ``m`` of ``n`` such entries:
    ``P(Binomial(n, 1/2) >= m) <= alpha``).  A per-gene score from a handful of validation
    conditions is noisy; leaving the better source needs more than a chance win.
    O(conditions * genes).
    """
    from aligned.metrics import macro_f1

    kb_score = per_gene_macro_f1(labels, kb_labels, scored)
    network_score = per_gene_macro_f1(labels, network_labels, scored)
    support = (((labels != 0) | (kb_labels != 0)) & scored).sum(axis=0)
    own_evidence = (support >= min_support) & ~np.isnan(kb_score)
    kb_wins_overall = (
        macro_f1(labels, kb_labels, scored) > macro_f1(labels, network_labels, scored) + margin
    )
    kb = np.nan_to_num(kb_score, nan=0.0)
    network = np.nan_to_num(network_score, nan=0.0)
    kb_right = (kb_labels == labels) & scored
    network_right = (network_labels == labels) & scored
    only_kb = (kb_right & ~network_right).sum(axis=0)
    only_network = (network_right & ~kb_right).sum(axis=0)
    if kb_wins_overall:
        leads = (network > kb + margin) & (_sign_test(only_network, only_kb) <= alpha)
        trust_kb = ~(own_evidence & leads)
    else:
        leads = (kb > network + margin) & (_sign_test(only_kb, only_network) <= alpha)
        trust_kb = own_evidence & leads
    clear_lead = own_evidence & leads
    table = pd.DataFrame(
        {
            "gene": genes,
            "source": np.where(trust_kb, "kb", "network"),
            "kb_score": kb_score,
            "network_score": network_score,
            "support": support.astype(int),
            "decided_by": np.where(clear_lead, "gene", "all genes"),
        }
    )
    return Gate(table)


def _sign_test(wins: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """One-sided exact sign test per gene: P(Binomial(wins + losses, 1/2) >= wins); 1 if none."""
    from scipy.stats import binom

    n = wins + losses
    return np.where(n > 0, binom.sf(wins - 1, np.maximum(n, 1), 0.5), 1.0)
