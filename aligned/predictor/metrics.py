"""Macro-F1 over the three response classes, the figure early stopping watches."""

from __future__ import annotations

import numpy as np

CLASSES = (-1, 0, 1)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The 3 x 3 confusion matrix over classes (-1, 0, +1); rows are truth, columns prediction.

    Parameters
    ----------
    y_true, y_pred : array of int
        Labels in {-1, 0, +1}, same shape.
    mask : array of bool, optional
        Entries to count; all entries when omitted.

    Returns
    -------
    numpy.ndarray of int64, shape (3, 3)
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        y_true, y_pred = y_true[mask], y_pred[mask]
    index = (y_true.astype(np.int64).ravel() + 1) * 3 + (y_pred.astype(np.int64).ravel() + 1)
    return np.bincount(index, minlength=9).reshape(3, 3)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Macro-averaged F1 over the classes -1, 0, +1.

    Parameters
    ----------
    y_true, y_pred : array of int
        Labels in {-1, 0, +1}, same shape.
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
    behaviour when ``labels`` is not given), so a perfect prediction scores 1.0 even when
    one class never occurs.  Cost O(entries).

    Examples
    --------
    >>> macro_f1(np.array([1, 0, -1, 0]), np.array([1, 0, 0, 0]))
    0.6
    """
    table = confusion(y_true, y_pred, mask)
    true_count, pred_count, hits = table.sum(axis=1), table.sum(axis=0), np.diag(table)
    present = (true_count + pred_count) > 0
    if not present.any():
        return 0.0
    f1 = 2.0 * hits[present] / (true_count[present] + pred_count[present])
    return float(f1.mean())
