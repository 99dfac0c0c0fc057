"""Ternary labels from log fold changes, optionally gated by a Welch t-test with BH correction.

The default rule (DESIGN.md section 1): a gene is ``+1`` (up) or ``-1`` (down) in a condition
when ``|LFC| >= tau``, else ``0``.  Where replicates exist on both sides, a per-gene Welch
t-test with Benjamini-Hochberg correction over the genes of each condition can be required as
well (``q < alpha``).  Every labelling returns the rule it applied, as a dict that the data set
records.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from aligned.errors import InputError


def label_responses(
    lfc: np.ndarray,
    tau: float = 1.0,
    *,
    qvalues: np.ndarray | None = None,
    alpha: float = 0.05,
) -> tuple[np.ndarray, dict]:
    """Label each response up (+1), down (-1) or unchanged (0).

    Parameters
    ----------
    lfc : array, conditions x genes
        Log fold changes.
    tau : float
        Threshold: ``|lfc| >= tau`` is a change.
    qvalues : array, conditions x genes, optional
        BH-adjusted p-values (see :func:`welch_qvalues`).  When given, a change also needs
        ``q < alpha``.  A row that is all NaN (a condition without replicates on both sides)
        is labelled by the threshold alone, and the rule counts such rows.
    alpha : float
        False discovery rate for ``qvalues``.

    Returns
    -------
    labels : numpy.ndarray of int8
        In {-1, 0, +1}, same shape as ``lfc``.
    rule : dict
        The rule applied: ``rule``, ``tau`` and, with q-values, ``alpha``, ``test``,
        ``correction`` and ``untested_conditions``.

    Examples
    --------
    >>> labels, rule = label_responses([[2.0, -0.5, -1.0]], tau=1.0)
    >>> labels.tolist(), rule["rule"]
    ([[1, 0, -1]], 'abs_lfc')
    """
    lfc = np.asarray(lfc, dtype=np.float64)
    if not tau > 0:
        raise InputError(f"the label threshold tau must be > 0, got {tau!r}")
    changed = np.abs(lfc) >= tau
    rule = {
        "rule": "abs_lfc",
        "tau": float(tau),
        "description": f"+1 / -1 where |LFC| >= {tau:g} (by the sign of LFC), else 0",
    }
    if qvalues is not None:
        qvalues = np.asarray(qvalues, dtype=np.float64)
        if qvalues.shape != lfc.shape:
            raise InputError(f"qvalues have shape {qvalues.shape}, lfc has {lfc.shape}")
        if not 0 < alpha < 1:
            raise InputError(f"alpha must lie in (0, 1), got {alpha!r}")
        untested = np.isnan(qvalues).all(axis=1)
        significant = (qvalues < alpha) | untested[:, None]
        changed &= significant
        rule = {
            "rule": "abs_lfc_and_q",
            "tau": float(tau),
            "alpha": float(alpha),
            "test": "welch_t",
            "correction": "benjamini_hochberg, per condition over genes",
            "untested_conditions": int(untested.sum()),
            "description": (
                f"+1 / -1 where |LFC| >= {tau:g} and Welch-test BH q < {alpha:g}, else 0; "
                "conditions without replicates on both sides use |LFC| alone"
            ),
        }
    labels = (np.sign(lfc) * changed).astype(np.int8)
    return labels, rule


def welch_qvalues(
    mean_a: np.ndarray,
    var_a: np.ndarray,
    n_a: np.ndarray,
    mean_b: np.ndarray,
    var_b: np.ndarray,
    n_b: np.ndarray,
) -> np.ndarray:
    """Welch t-test of group a against group b per (condition, gene), BH-adjusted per condition.

    Parameters
    ----------
    mean_a, var_a, mean_b, var_b : array, conditions x genes
        Group means and unbiased (ddof = 1) variances.
    n_a, n_b : array of int, conditions
        Replicates in each group.

    Returns
    -------
    numpy.ndarray
        q-values, conditions x genes; a row is NaN where either group has fewer than two
        replicates (no test is possible).

    Notes
    -----
    Where both variances are zero the statistic is undefined: the p-value is taken as 1 when
    the means are equal and 0 when they differ.  O(conditions x genes x log genes).
    """
    n_a = np.asarray(n_a, dtype=np.float64)[:, None]
    n_b = np.asarray(n_b, dtype=np.float64)[:, None]
    se_a = np.asarray(var_a, dtype=np.float64) / n_a
    se_b = np.asarray(var_b, dtype=np.float64) / n_b
    se2 = se_a + se_b
    diff = np.asarray(mean_a, dtype=np.float64) - np.asarray(mean_b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / np.sqrt(se2)
        df = se2**2 / (se_a**2 / (n_a - 1) + se_b**2 / (n_b - 1))
        pvalues = 2 * stats.t.sf(np.abs(t), df)
    degenerate = se2 == 0
    pvalues[degenerate] = np.where(diff[degenerate] == 0, 1.0, 0.0)
    testable = ((n_a >= 2) & (n_b >= 2)).ravel()
    qvalues = np.full(pvalues.shape, np.nan)
    qvalues[testable] = benjamini_hochberg(pvalues[testable])
    return qvalues


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values along the last axis (each row its own family).

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03])).round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    pvalues = np.asarray(pvalues, dtype=np.float64)
    m = pvalues.shape[-1]
    if m == 0:
        return pvalues.copy()
    order = np.argsort(pvalues, axis=-1)
    ranked = np.take_along_axis(pvalues, order, axis=-1) * m / np.arange(1, m + 1)
    # q_i = min over j >= i of p_(j) m / j: a running minimum from the largest p down
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    adjusted = np.empty_like(ranked)
    np.put_along_axis(adjusted, order, np.minimum(ranked, 1.0), axis=-1)
    return adjusted
