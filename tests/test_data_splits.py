"""Grouped, seeded, sealed splits."""

from __future__ import annotations

import numpy as np
import pytest

from aligned.data import PerturbationData, SealedSplitError, assign_splits, open_sealed_test
from aligned.errors import AlignedError, InputError


def grouped_data(n_groups: int = 40) -> PerturbationData:
    """Conditions in groups of 1-3 that perturb the same genes (several media, or A+B / B+A)."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(n_groups + 1)]
    perturbations, ids = [], []
    for group in range(n_groups):
        for copy in range(1 + group % 3):
            pair = {genes[group]: -1, genes[group + 1]: 1} if group % 5 == 0 else {genes[group]: -1}
            perturbations.append(pair)
            ids.append(f"c{group}_{copy}")
    lfc = rng.normal(size=(len(ids), len(genes)))
    labels = np.sign(np.round(lfc))
    return PerturbationData.from_perturbations(genes, perturbations, lfc, labels, ids=ids)


def test_no_group_straddles_splits_and_fractions_are_near_target():
    data = assign_splits(grouped_data(), seed=3)
    table = data.conditions
    assert (table.groupby("group")["split"].nunique() == 1).all()
    sizes = data.split_sizes()
    assert sizes["unassigned"] == 0
    share = sizes["train"] / len(data)
    assert 0.6 < share < 0.8 and sizes["validation"] > 0 and sizes["test"] > 0
    assert data.meta["splits"]["seed"] == 3


def test_splits_are_seeded():
    data = grouped_data()
    first = assign_splits(data, seed=1).conditions["split"]
    assert first.equals(assign_splits(data, seed=1).conditions["split"])
    assert not first.equals(assign_splits(data, seed=2).conditions["split"])


def test_splits_do_not_depend_on_row_order():
    data = grouped_data()
    reordered = data.subset(np.arange(len(data))[::-1])
    forward = assign_splits(data, seed=5).conditions.set_index("id")["split"]
    backward = assign_splits(reordered, seed=5).conditions.set_index("id")["split"]
    assert forward.sort_index().equals(backward.sort_index())


def test_training_views_hold_no_test_row():
    data = assign_splits(grouped_data(), seed=0)
    test_ids = set(data.test_inputs().ids)
    for view in (data.train, data.validation):
        assert test_ids.isdisjoint(view.ids)
        assert (view.conditions["split"] != "test").all()
        assert view.labels.shape == (len(view), len(data.genes))  # readable: nothing sealed
    assert len(data.train) + len(data.validation) + len(test_ids) == len(data)
    fitted = data.without_test()
    assert test_ids.isdisjoint(fitted.ids)
    assert sorted(fitted.ids) == sorted(data.train.ids + data.validation.ids)
    assert fitted.labels.shape == (len(fitted), len(data.genes))  # readable: nothing sealed


def test_sealed_split_cannot_be_read_by_accident():
    data = assign_splits(grouped_data(), seed=0)
    for name in ("lfc", "labels", "scored"):
        with pytest.raises(SealedSplitError, match="open_sealed_test"):
            getattr(data, name)
    with pytest.raises(SealedSplitError):
        data.split_view("test")
    with pytest.raises(SealedSplitError):
        _ = data.subset(data.conditions["split"].to_numpy() == "test").labels
    # editing the returned table does not unseal anything
    table = data.conditions
    table["split"] = "train"
    with pytest.raises(SealedSplitError):
        _ = data.labels
    inputs = data.test_inputs()
    assert not hasattr(inputs, "labels") and not hasattr(inputs, "lfc")
    assert inputs.perturbation_matrix().shape == (len(inputs), len(data.genes))


def test_evaluation_opens_the_test_split_and_nothing_else():
    data = assign_splits(grouped_data(), seed=0)
    opened = open_sealed_test(data, purpose="evaluation")
    assert opened.ids == data.test_inputs().ids
    assert opened.labels.shape == (len(opened), len(data.genes))
    with pytest.raises(SealedSplitError, match="evaluation"):
        open_sealed_test(data, purpose="training")


def test_reassigning_needs_overwrite():
    data = assign_splits(grouped_data(), seed=0)
    with pytest.raises(AlignedError, match="overwrite=True"):
        assign_splits(data, seed=1)
    assert assign_splits(data, seed=1, overwrite=True).split_sizes()["unassigned"] == 0


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, -0.1), (0.7, 0.2, 0.2), "abc"])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(InputError, match="fractions"):
        assign_splits(grouped_data(), fractions=fractions)


def test_unknown_split_name_is_refused():
    with pytest.raises(InputError, match="unknown split 'holdout'"):
        grouped_data().split_view("holdout")
