"""The label rule: |LFC| >= tau, optionally gated by Welch t-test q-values (BH)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aligned.data import benjamini_hochberg, label_responses, welch_qvalues
from aligned.errors import InputError


def test_threshold_is_inclusive_and_signed():
    labels, rule = label_responses([[1.0, -1.0, 0.999, -0.5, 3.0]], tau=1.0)
    assert labels.tolist() == [[1, -1, 0, 0, 1]]
    assert labels.dtype == np.int8
    assert rule["rule"] == "abs_lfc" and rule["tau"] == 1.0


def test_tau_changes_the_threshold():
    labels, rule = label_responses([[0.6, -0.4]], tau=0.5)
    assert labels.tolist() == [[1, 0]] and rule["tau"] == 0.5


def test_non_positive_tau_is_refused():
    with pytest.raises(InputError, match="tau must be > 0"):
        label_responses([[1.0]], tau=0)


def test_qvalues_gate_changes_and_untested_rows_fall_back_to_threshold():
    lfc = np.array([[2.0, 2.0, -2.0], [2.0, 0.1, -3.0]])
    q = np.array([[0.01, 0.2, 0.04], [np.nan, np.nan, np.nan]])
    labels, rule = label_responses(lfc, tau=1.0, qvalues=q, alpha=0.05)
    assert labels.tolist() == [[1, 0, -1], [1, 0, -1]]
    assert rule["rule"] == "abs_lfc_and_q"
    assert rule["alpha"] == 0.05 and rule["untested_conditions"] == 1


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(0).uniform(size=(3, 50)) ** 3
    expected = np.vstack([stats.false_discovery_control(row) for row in p])
    np.testing.assert_allclose(benjamini_hochberg(p), expected)


def test_welch_matches_scipy_and_needs_two_replicates_per_side():
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 1.0, size=(4, 20))
    b = rng.normal(0.0, 2.0, size=(3, 20))
    q = welch_qvalues(
        a.mean(0)[None], a.var(0, ddof=1)[None], [4], b.mean(0)[None], b.var(0, ddof=1)[None], [3]
    )
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    np.testing.assert_allclose(q[0], stats.false_discovery_control(p))
    single = welch_qvalues(
        a.mean(0)[None], np.zeros((1, 20)), [1], b.mean(0)[None], b.var(0, ddof=1)[None], [3]
    )
    assert np.isnan(single).all()


def test_welch_with_zero_variance_is_decided_by_the_means():
    q = welch_qvalues([[1.0, 2.0]], [[0.0, 0.0]], [3], [[1.0, 1.0]], [[0.0, 0.0]], [3])
    assert q.tolist() == [[1.0, 0.0]]
