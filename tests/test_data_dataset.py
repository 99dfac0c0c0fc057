"""PerturbationData: construction checks, perturbation text, save/load round trip, bad files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aligned.data import PerturbationData, SealedSplitError, open_sealed_test
from aligned.data.perturbation import format_perturbation, gene_set_key, parse_perturbation
from aligned.errors import InputError

GENES = ["a", "b", "HLA-A", "5'UTR", "x;y=z%"]


def make_data(split=("train", "validation", "test", "train")) -> PerturbationData:
    perturbations = [{"a": -1}, {"b": 1}, {"a": -1, "b": -1}, {"x;y=z%": -1}]
    rng = np.random.default_rng(0)
    lfc = rng.normal(size=(4, len(GENES))).astype(np.float32)
    labels = np.sign(np.round(lfc)).astype(np.int8)
    return PerturbationData.from_perturbations(
        GENES,
        perturbations,
        lfc,
        labels,
        ids=["c1", "c2", "c3", "c4"],
        columns={
            "split": list(split),
            "tier": ["A", "B", "", "C"],
            "notes": ["", "a\ttab", 'quote "here"', "line\nbreak"],
            "n_replicates": [2, 3, 1, 4],
            "weight": [0.5, 1.25, 1e-9, 2.0],
            "flag": [True, False, True, False],
        },
        label_rule={"rule": "abs_lfc", "tau": 1.0},
        meta={"source": "test", "fractions": (0.7, 0.15, 0.15)},
    )


def test_perturbation_text_round_trips_any_gene_name():
    perturbation = {"x;y=z%": -1, "HLA-A": 1, "\tgene\n": -1}
    text = format_perturbation(perturbation)
    assert parse_perturbation(text) == perturbation
    assert format_perturbation({"lexA": 1, "crp": -1}) == "crp=-1;lexA=+1"
    assert gene_set_key({"b": 1, "a": -1}) == gene_set_key({"a": 1, "b": 1}) == "a;b"


@pytest.mark.parametrize("text", ["a", "a=2", "=-1", "a=-1;a=+1", "a%zz=-1", "a=-1;"])
def test_unreadable_perturbation_text_is_refused(text):
    with pytest.raises(ValueError):
        parse_perturbation(text)


def test_defaults_fill_group_split_and_scored_mask():
    data = PerturbationData.from_perturbations(
        ["a", "b", "c"], [{"b": -1, "a": 1}], [[1.0, -2.0, 0.5]], [[1, -1, 0]]
    )
    table = data.conditions
    assert table.loc[0, "perturbation"] == "a=+1;b=-1"
    assert table.loc[0, "group"] == "a;b"
    assert table.loc[0, "split"] == "unassigned"
    assert data.scored.tolist() == [[False, False, True]]
    assert data.perturbations == [{"a": 1, "b": -1}]
    assert data.lfc.dtype == np.float32 and data.labels.dtype == np.int8


def test_perturbation_matrix_uses_any_gene_index_and_drops_absent_genes():
    data = make_data()
    matrix = data.perturbation_matrix(["b", "a", "not-measured"])
    assert matrix.dtype == np.float32 and matrix.shape == (4, 3)
    assert matrix.toarray().tolist() == [[0, -1, 0], [1, 0, 0], [-1, -1, 0], [0, 0, 0]]
    assert data.perturbation_matrix().shape == (4, len(GENES))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(lfc=np.zeros((2, 2))), "lfc has shape"),
        (dict(labels=np.full((1, 2), 2)), r"labels must be -1, 0 or \+1, found 2$"),
        (dict(lfc=np.array([[np.nan, 0.0]])), "non-finite"),
        (dict(scored=np.ones((1, 2), dtype=int)), "scored must be boolean"),
        (dict(genes=["a", "a"]), "duplicate gene 'a'"),
    ],
)
def test_construction_checks_shapes_values_and_genes(change, message):
    arguments = dict(genes=["a", "b"], lfc=np.zeros((1, 2)), labels=np.zeros((1, 2)))
    arguments.update(change)
    with pytest.raises(InputError, match=message):
        PerturbationData.from_perturbations(
            arguments.pop("genes"), [{"a": -1}], arguments.pop("lfc"), arguments.pop("labels"),
            **arguments,
        )  # fmt: skip


def test_duplicate_condition_ids_are_refused():
    with pytest.raises(InputError, match="duplicate condition id 'same'"):
        PerturbationData.from_perturbations(
            ["a"], [{"a": -1}, {"a": 1}], np.zeros((2, 1)), np.zeros((2, 1)), ids=["same"] * 2
        )


def test_save_load_round_trip_is_equal(tmp_path):
    data = make_data()
    data.save(tmp_path / "ds")
    loaded = PerturbationData.load(tmp_path / "ds")
    assert loaded == data
    assert loaded.genes == GENES
    assert loaded.conditions.dtypes.to_dict() == data.conditions.dtypes.to_dict()
    assert loaded.meta["fractions"] == [0.7, 0.15, 0.15]
    # the sealed test row survives the trip, still sealed
    with pytest.raises(SealedSplitError):
        _ = loaded.labels
    assert open_sealed_test(loaded) == open_sealed_test(data)


def test_save_writes_only_its_own_files(tmp_path):
    make_data().save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "arrays.npz",
        "conditions.tsv",
        "dataset.json",
        "genes.tsv",
    ]


def _saved(tmp_path):
    directory = tmp_path / "ds"
    make_data().save(directory)
    return directory


def _one_line_error(directory) -> str:
    with pytest.raises(InputError) as caught:
        PerturbationData.load(directory)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["dataset.json", "arrays.npz", "conditions.tsv", "genes.tsv"])
def test_missing_file_is_named(tmp_path, name):
    directory = _saved(tmp_path)
    (directory / name).unlink()
    message = _one_line_error(directory)
    assert name in message and "missing" in message


def test_missing_directory_is_named(tmp_path):
    assert "not a directory" in _one_line_error(tmp_path / "nowhere")


def test_duplicate_id_names_the_line(tmp_path):
    directory = _saved(tmp_path)
    table = pd.read_csv(directory / "conditions.tsv", sep="\t", dtype=str, keep_default_na=False)
    table.loc[2, "id"] = "c1"
    table.to_csv(directory / "conditions.tsv", sep="\t", index=False)
    message = _one_line_error(directory)
    assert "conditions.tsv:4" in message
    assert "duplicate condition id 'c1' (first on line 2)" in message


def test_duplicate_gene_names_the_line(tmp_path):
    directory = _saved(tmp_path)
    (directory / "genes.tsv").write_text("gene\na\nb\nHLA-A\na\nq\n")
    message = _one_line_error(directory)
    assert "genes.tsv:5" in message and "duplicate gene 'a'" in message


def test_wrong_array_shape_is_reported(tmp_path):
    directory = _saved(tmp_path)
    with np.load(directory / "arrays.npz") as archive:
        arrays = dict(archive)
    arrays["lfc"] = arrays["lfc"][:, :3]
    np.savez(directory / "arrays.npz", **arrays)
    message = _one_line_error(directory)
    assert "arrays.npz" in message and "lfc has shape (4, 3), expected (4, 5)" in message


def test_ids_out_of_order_are_reported(tmp_path):
    directory = _saved(tmp_path)
    with np.load(directory / "arrays.npz") as archive:
        arrays = dict(archive)
    arrays["ids"] = arrays["ids"][::-1]
    np.savez(directory / "arrays.npz", **arrays)
    assert "ids[0] is 'c4' but conditions.tsv has 'c1'" in _one_line_error(directory)


def test_table_and_header_disagreeing_is_reported(tmp_path):
    directory = _saved(tmp_path)
    header = json.loads((directory / "dataset.json").read_text())
    header["n_genes"] = 7
    (directory / "dataset.json").write_text(json.dumps(header))
    assert "dataset.json says 7 genes but the table holds 5" in _one_line_error(directory)


def test_malformed_json_and_unknown_split_are_reported(tmp_path):
    directory = _saved(tmp_path)
    text = (directory / "conditions.tsv").read_text().replace("\tvalidation\t", "\tholdout\t")
    (directory / "conditions.tsv").write_text(text)
    assert "conditions.tsv:3: unknown split 'holdout'" in _one_line_error(directory)
    (directory / "dataset.json").write_text('{"format": ')
    assert "dataset.json:1: malformed JSON" in _one_line_error(directory)


def test_meta_must_be_json_serialisable():
    with pytest.raises(InputError, match="meta must be JSON-serialisable"):
        PerturbationData.from_perturbations(
            ["a"], [{"a": -1}], [[0.0]], [[0]], meta={"bad": object()}
        )
