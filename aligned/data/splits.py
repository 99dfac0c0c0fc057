"""Grouped, seeded train / validation / test splits, and the one door to the sealed test split.

Conditions that perturb the same gene set (the ``group`` column: ``crp`` knocked out in
three media, or ``A+B`` and ``B+A``) always land in the same split, so a model never meets a
test perturbation's gene set in training.  Test labels leave a data set only through
:func:`open_sealed_test`, which evaluation calls once the model is fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from aligned.data.dataset import SPLITS, PerturbationData, SealedSplitError
from aligned.errors import AlignedError, InputError

__all__ = ["assign_splits", "open_sealed_test", "SealedSplitError"]

log = logging.getLogger(__name__)
# this module and dataset.py share the seal: only they read PerturbationData's private arrays
ASSIGNED = SPLITS[:3]  # train, validation, test


def assign_splits(
    data: PerturbationData,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    *,
    overwrite: bool = False,
) -> PerturbationData:
    """Return a copy of ``data`` with every condition in train, validation or test.

    Parameters
    ----------
    data : PerturbationData
        Its ``group`` column decides what moves together.
    fractions : three floats
        Target shares of *conditions* for train, validation and test; non-negative, summing
        to 1.
    seed : int
        Seeds the order in which groups are dealt out.
    overwrite : bool
        Splits that are already assigned are kept unless this is True: a model trained on the
        old train split must never be scored on a new test split that overlaps it.

    Returns
    -------
    PerturbationData
        A new object; ``meta["splits"]`` records the seed, the fractions and the sizes.

    Raises
    ------
    InputError
        For fractions that are not three non-negative numbers summing to 1.
    AlignedError
        When splits are assigned already and ``overwrite`` is False.

    Notes
    -----
    Groups are sorted by name, shuffled with the seed, then dealt one by one to the split
    whose target count is furthest from being met.  With few groups the shares are
    approximate (a split may even stay empty); whole groups never straddle splits.
    O(conditions + groups log groups).
    """
    shares = _check_fractions(fractions)
    table = data.conditions
    if not overwrite and (table["split"] != "unassigned").any():
        raise AlignedError(
            "this data set already has splits; pass overwrite=True to draw new ones (never "
            "score a model on a test split that overlaps the split it was trained on)"
        )
    sizes = table.groupby("group", sort=True).size()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sizes))
    targets = shares * len(table)
    assigned = np.zeros(3)
    split_of_group = {}
    for position in order:
        split = int(np.argmax(targets - assigned))  # ties go to the earlier split
        split_of_group[sizes.index[position]] = ASSIGNED[split]
        assigned[split] += sizes.iloc[position]
    table["split"] = table["group"].map(split_of_group)
    meta = dict(data.meta)
    meta["splits"] = {
        "by": "group (perturbed gene set)",
        "seed": int(seed),
        "fractions": [float(share) for share in shares],
        "sizes": {split: int((table["split"] == split).sum()) for split in ASSIGNED},
    }
    split = PerturbationData(
        data.genes,
        table,
        data._lfc,
        data._labels,
        data._scored,
        label_rule=data.label_rule,
        meta=meta,
    )
    split.source = data.source
    return split


def open_sealed_test(data: PerturbationData, purpose: str = "evaluation") -> PerturbationData:
    """The test conditions with their responses and labels: for final evaluation only.

    Parameters
    ----------
    data : PerturbationData
        A data set holding a test split.
    purpose : str
        Must be ``"evaluation"``: the call states why it breaks the seal, and is logged.

    Returns
    -------
    PerturbationData
        The test rows only, with ``lfc``, ``labels`` and ``scored`` readable.

    Raises
    ------
    SealedSplitError
        For any other purpose.
    """
    if purpose != "evaluation":
        raise SealedSplitError(
            f"the test split opens for purpose 'evaluation' only, not {purpose!r}"
        )
    rows = data.conditions["split"].to_numpy() == "test"
    log.info("opening the sealed test split (%d conditions) for evaluation", int(rows.sum()))
    opened = _OpenedTest(
        data.genes,
        data.conditions[rows],
        data._lfc[rows],
        data._labels[rows],
        data._scored[rows],
        label_rule=data.label_rule,
        meta=data.meta,
    )
    opened.source = data.source
    return opened


class _OpenedTest(PerturbationData):
    """Test rows whose arrays evaluation may read (made only by :func:`open_sealed_test`)."""

    _seals_test = False


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    try:
        shares = np.asarray([float(value) for value in fractions])
    except (TypeError, ValueError):
        raise InputError(f"split fractions must be three numbers, got {fractions!r}") from None
    if shares.shape != (3,) or (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise InputError(
            "split fractions must be three non-negative numbers (train, validation, test) "
            f"summing to 1, got {list(fractions)!r}"
        )
    return shares
