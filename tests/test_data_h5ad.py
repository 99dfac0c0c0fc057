"""GEARS-style .h5ad reader, on tiny files each test writes itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from aligned.data import DataWarning, load_data, read_gears_h5ad, simulate, write_simulation
from aligned.errors import InputError

anndata = pytest.importorskip("anndata")

GENES = ["A", "B", "C", "D"]


def write_h5ad(path, conditions, X, genes=GENES, categories=None, gene_column=True):
    obs = pd.DataFrame(
        {"condition": pd.Categorical(conditions, categories=categories)},
        index=[f"cell{i}" for i in range(len(conditions))],
    )
    var = pd.DataFrame(index=[f"ENSG{i}" for i in range(len(genes))])
    if gene_column:
        var["gene_name"] = genes
    anndata.AnnData(X=X, obs=obs, var=var).write_h5ad(path)
    return path


def standard_file(tmp_path, sparse=False):
    conditions = ["ctrl"] * 3 + ["A+ctrl"] * 2 + ["ctrl+B"] * 2 + ["A+B"] * 2
    X = np.array(
        [
            [1.0, 1.0, 1.0, 0.0],
            [1.0, 1.0, 1.0, 0.0],
            [1.0, 1.0, 1.0, 0.0],  # control mean 1, 1, 1, 0
            [0.0, 3.0, 1.0, 0.0],
            [0.0, 2.0, 1.0, 1.0],  # A: 0, 2.5, 1, 0.5
            [1.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 1.0, 0.0],  # B: 1, 0, 0.5, 0
            [0.0, 0.0, 4.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],  # A+B: 0, 0, 3, 0
        ]
    )
    return write_h5ad(tmp_path / "tiny.h5ad", conditions, sp.csr_matrix(X) if sparse else X)


@pytest.mark.parametrize("sparse", [False, True])
def test_pseudobulk_minus_control_mean(tmp_path, sparse):
    data = read_gears_h5ad(standard_file(tmp_path, sparse), "loss", tau=1.0)
    assert data.genes == GENES
    assert data.ids == ["A+B", "A+ctrl", "ctrl+B"]
    np.testing.assert_allclose(
        data.lfc,
        [[-1, -1, 2, 0], [-1, 1.5, 0, 0.5], [0, -1, -0.5, 0]],
    )
    assert data.labels.tolist() == [[-1, -1, 1, 0], [-1, 1, 0, 0], [0, -1, 0, 0]]
    assert data.perturbations == [{"A": -1, "B": -1}, {"A": -1}, {"B": -1}]
    assert data.conditions["n_cells"].tolist() == [2, 2, 2]
    assert data.scored.tolist()[0] == [False, False, True, True]  # perturbed genes not scored
    assert data.meta["control_cells"] == 3 and data.meta["perturbation"] == "loss"


def test_gain_direction_gives_plus_one(tmp_path):
    data = read_gears_h5ad(standard_file(tmp_path), "gain")
    assert data.perturbations == [{"A": 1, "B": 1}, {"A": 1}, {"B": 1}]
    assert data.perturbation_matrix().toarray()[1].tolist() == [1, 0, 0, 0]


def test_unknown_direction_is_refused(tmp_path):
    with pytest.raises(InputError, match="'loss' or 'gain'"):
        read_gears_h5ad(standard_file(tmp_path), "knockdown")


def test_missing_control_is_an_error(tmp_path):
    path = write_h5ad(tmp_path / "f.h5ad", ["A+ctrl", "B+ctrl"], np.ones((2, 4)))
    with pytest.raises(InputError, match="no control cells") as caught:
        read_gears_h5ad(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_expression_is_an_error(tmp_path, bad):
    X = np.ones((3, 4))
    X[1, 2] = bad
    path = write_h5ad(tmp_path / "f.h5ad", ["ctrl", "A+ctrl", "A+ctrl"], sp.csr_matrix(X))
    with pytest.raises(InputError, match="NaN or infinite values in 1 cell.*'cell1'"):
        read_gears_h5ad(path)


def test_duplicate_gene_names_are_an_error(tmp_path):
    path = write_h5ad(
        tmp_path / "f.h5ad", ["ctrl", "A+ctrl"], np.ones((2, 4)), genes=["A", "B", "A", "C"]
    )
    with pytest.raises(InputError, match="duplicate gene names in var\\['gene_name'\\]: 'A' x2"):
        read_gears_h5ad(path)


@pytest.mark.parametrize("condition", ["A+", "+A", "A+A", " "])
def test_unparsable_condition_is_an_error(tmp_path, condition):
    path = write_h5ad(tmp_path / "f.h5ad", ["ctrl", condition], np.ones((2, 4)))
    with pytest.raises(InputError, match="condition"):
        read_gears_h5ad(path)


def test_unmeasured_perturbed_gene_is_kept_and_reported(tmp_path):
    path = write_h5ad(tmp_path / "f.h5ad", ["ctrl", "ctrl", "Z+ctrl", "A+Z"], np.ones((4, 4)))
    with pytest.warns(DataWarning, match="not measured"):
        data = read_gears_h5ad(path)
    assert data.ids == ["A+Z", "Z+ctrl"]
    assert data.perturbations == [{"A": -1, "Z": -1}, {"Z": -1}]
    assert data.meta["unmeasured_perturbed_genes"] == {"A+Z": ["Z"], "Z+ctrl": ["Z"]}
    assert "not measured: Z" in data.conditions["notes"].iloc[1]
    assert data.perturbation_matrix().toarray()[1].tolist() == [0, 0, 0, 0]
    assert data.perturbation_matrix(["Z"]).toarray().ravel().tolist() == [-1, -1]


def test_condition_without_cells_is_excluded_with_a_warning(tmp_path):
    path = write_h5ad(
        tmp_path / "f.h5ad",
        ["ctrl", "A+ctrl"],
        np.ones((2, 4)),
        categories=["ctrl", "A+ctrl", "B+ctrl"],
    )
    with pytest.warns(DataWarning, match="no cells and are excluded: B\\+ctrl"):
        data = read_gears_h5ad(path)
    assert data.ids == ["A+ctrl"]
    assert data.meta["excluded_conditions"] == {"B+ctrl": "no cells"}


def test_var_names_serve_when_gene_name_is_absent(tmp_path):
    path = write_h5ad(
        tmp_path / "f.h5ad", ["ctrl", "ENSG1+ctrl"], np.ones((2, 4)), gene_column=False
    )
    data = read_gears_h5ad(path)
    assert data.genes[1] == "ENSG1" and data.meta["gene_names_from"] == "var_names"


def test_welch_option_uses_cells_as_replicates(tmp_path):
    data = read_gears_h5ad(standard_file(tmp_path), welch=True, alpha=0.05)
    assert data.label_rule["rule"] == "abs_lfc_and_q"


def test_not_an_h5ad_file_is_one_line(tmp_path):
    path = tmp_path / "broken.h5ad"
    path.write_text("not hdf5")
    with pytest.raises(InputError, match="cannot read as .h5ad") as caught:
        read_gears_h5ad(path)
    assert "\n" not in str(caught.value)


def test_load_data_reads_h5ad_with_splits(tmp_path):
    data = load_data(standard_file(tmp_path), perturbation="gain", seed=0)
    assert data.split_sizes()["unassigned"] == 0
    assert data.perturbations[0] == {"A": 1, "B": 1}


def test_load_data_reads_saved_and_simulation_directories(tmp_path):
    sim = simulate(n_genes=40, seed=1)
    out = write_simulation(sim, tmp_path / "sim")
    assert load_data(out) == sim.data
    assert load_data(out / "data") == sim.data


@pytest.mark.parametrize("name", ["missing", "file.csv"])
def test_load_data_refuses_what_it_cannot_read(tmp_path, name):
    if name == "file.csv":
        (tmp_path / name).write_text("a,b\n")
    with pytest.raises(InputError, match="saved dataset directory or a .h5ad file"):
        load_data(tmp_path / name)


def test_abduce_reads_an_h5ad_with_the_graded_label_model(tmp_path):
    """Labels from pseudobulk LFCs record their threshold, so abduction reads them graded."""
    import json

    from typer.testing import CliRunner

    from aligned.cli import app
    from aligned.knowledge_base import KnowledgeBase

    kb = tmp_path / "kb.tsv"
    KnowledgeBase.from_edges([("A", "B", 1), ("B", "C", -1), ("A", "D", 1)]).write(kb)
    out = tmp_path / "abduced"
    arguments = ["abduce", "--kb", str(kb), "--data", str(standard_file(tmp_path))]
    result = CliRunner().invoke(app, [*arguments, "--out", str(out), "--k", "2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "abduction.json").read_text())
    assert summary["counts"]["label_model"] == "graded"
    assert set(summary["counts"]["label_rates"]) >= {"miss", "wrong", "direct"}
    assert (out / "kb" / "revised.tsv").exists() and (out / "rules" / "revised.lp").exists()
