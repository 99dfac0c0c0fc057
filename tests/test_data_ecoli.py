"""E. coli PRECISE: TRN mapping, knockout LFCs, BW25113 masking, the build; all offline on a
small zip cut from the real pymodulon wheel (tests/fixtures/make_ecoli_fixture.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aligned.data import DataWarning, ecoli, load_data
from aligned.errors import AlignedError, InputError
from aligned.knowledge_base import KnowledgeBase

FIXTURE = Path(__file__).parent / "fixtures" / "pymodulon_ecoli_small.zip"
KNOCKOUTS = ["fur__delfur_dpd", "acid__delgade_ph5", "ompr__bw_delompr_nacl", "pgi__glu4_delpgi"]
B = {  # b-numbers of the genes the tests name
    "fur": "b0683",
    "gadE": "b3512",
    "rcsB": "b2217",
    "ompR": "b3405",
    "hns": "b1237",
    "ybiH": "b0796",
    "pgi": "b4025",
    "araB": "b0063",
    "lacZ": "b0344",
}


@pytest.fixture(scope="module")
def tables():
    return ecoli.read_precise(FIXTURE)


@pytest.fixture
def knockout_table(tmp_path):
    table = ecoli.read_knockouts()
    path = tmp_path / "knockouts.csv"
    table[table["ko"].isin(KNOCKOUTS)].to_csv(path, index=False)
    return path


def test_shipped_knockout_table_has_40_conditions():
    table = ecoli.read_knockouts()
    assert len(table) == 40
    assert table["tier"].value_counts().to_dict() == {"A": 23, "B": 9, "C": 8}


def test_complex_maps_to_each_subunit(tables):
    kb, mapping = ecoli.map_trn(tables.trn, tables.genes)
    edges = set(kb.edge_tuples())
    for subunit in ("gadE", "rcsB"):
        assert (B[subunit], "b3491", 1) in edges
    assert mapping.complexes == {"gadE;rcsB": ["gadE", "rcsB"]}
    edges = kb.edges
    row = edges[(edges["source"] == B["rcsB"]) & (edges["target"] == "b3491")]
    assert row["regulator"].tolist() == ["gadE;rcsB"]


def test_dual_effect_is_two_edges_and_unknown_is_sign_zero(tables):
    kb, _ = ecoli.map_trn(tables.trn, tables.genes)
    edges = set(kb.edge_tuples())
    assert {(B["fur"], "b0116", 1), (B["fur"], "b0116", -1)} <= edges
    assert (B["ybiH"], "b0014", 0) in edges
    assert len(kb) == 6 + 6 + 5 + 2 + 2  # fur (one +-), complex, ompR (one +-), h-NS, ybiH


def test_unmapped_regulators_are_reported_and_aliases_resolve(tables):
    kb, mapping = ecoli.map_trn(tables.trn, tables.genes)
    assert mapping.unmapped == {"FMN": 1, "gatR": 2}
    assert mapping.aliases == {"h-NS": "hns"}
    assert (B["hns"], "b0019", -1) in set(kb.edge_tuples())
    assert mapping.rows == 19 and mapping.mapped_rows == 16
    _, strict = ecoli.map_trn(tables.trn, tables.genes, aliases=False)
    assert strict.unmapped == {"FMN": 1, "gatR": 2, "h-NS": 2}


def test_unknown_effect_names_the_trn_line(tables):
    trn = tables.trn.copy()
    trn.loc[3, "effect"] = "activator"
    with pytest.raises(InputError, match=r"trn.csv:5: unknown effect 'activator'"):
        ecoli.map_trn(trn, tables.genes)


def test_knockout_lfc_is_mean_knockout_minus_mean_control(tables, knockout_table):
    data = ecoli.knockout_data(tables, ecoli.read_knockouts(knockout_table))
    assert data.ids == KNOCKOUTS
    row = data.ids.index("fur__delfur_dpd")
    log_tpm = tables.log_tpm
    expected = log_tpm[["fur__delfur_dpd__1", "fur__delfur_dpd__2"]].mean(axis=1) - log_tpm[
        ["fur__wt_dpd__1", "fur__wt_dpd__2"]
    ].mean(axis=1)
    np.testing.assert_allclose(data.lfc[row], expected.to_numpy(), rtol=1e-6)
    assert data.perturbations[row] == {B["fur"]: -1}
    assert (
        data.labels[row].tolist() == np.where(np.abs(expected) >= 1, np.sign(expected), 0).tolist()
    )
    table = data.conditions.set_index("id")
    assert table.loc["fur__delfur_dpd", "tier"] == "A"
    assert table.loc["fur__delfur_dpd", "control"] == "fur__wt_dpd"
    assert table.loc["pgi__glu4_delpgi", "n_ko"] == 1


def test_bw25113_knockouts_do_not_score_the_genes_bw25113_lacks(tables, knockout_table):
    data = ecoli.knockout_data(tables, ecoli.read_knockouts(knockout_table))
    genes = data.genes
    absent = [genes.index(B["araB"]), genes.index(B["lacZ"])]
    ompr = data.ids.index("ompr__bw_delompr_nacl")
    fur = data.ids.index("fur__delfur_dpd")
    assert not data.scored[ompr, absent].any()
    assert data.scored[fur, absent].all()
    assert "not scored (absent from BW25113)" in data.conditions["notes"][ompr]
    assert len(data.meta["bw25113_masked_genes"]) == 7
    assert not data.scored[ompr, genes.index(B["ompR"])]  # the deleted gene itself
    assert data.scored[ompr].sum() == len(genes) - 8


def test_unmeasured_knockout_gene_is_excluded_with_a_warning(tables, tmp_path):
    table = ecoli.read_knockouts()
    table = table[table["ko"].isin(["fur__delfur_dpd", "ytf__delyafC"])]
    with pytest.warns(DataWarning, match=r"ytf__delyafC \(deleted gene yafC \(b0208\) is not"):
        data = ecoli.knockout_data(tables, table)
    assert data.ids == ["fur__delfur_dpd"]
    assert "ytf__delyafC" in data.meta["excluded"]


def test_knockout_name_disagreeing_with_gene_table_is_an_error(tables):
    table = ecoli.read_knockouts()
    table = table[table["ko"] == "fur__delfur_dpd"].assign(deleted="fuR")
    with pytest.raises(InputError, match="deleted gene 'fuR' but b0683 is 'fur'"):
        ecoli.knockout_data(tables, table)


def test_build_writes_a_dataset_that_loads_back(tmp_path, knockout_table):
    out = tmp_path / "ecoli"
    build = ecoli.build_ecoli(out, source=FIXTURE, knockouts=knockout_table, tau=0.5)
    assert sorted(p.name for p in out.iterdir()) == [
        "data",
        "ecoli.json",
        "gene_names.tsv",
        "kb.tsv",
    ]
    data = load_data(out)
    assert len(data) == 4 and data.split_sizes()["unassigned"] == 0
    assert data.label_rule["tau"] == 0.5
    assert KnowledgeBase.read(out / "kb.tsv").edge_tuples() == build.kb.edge_tuples()
    report = build.report
    assert report["conditions"] == 4 and report["kb_edges"] == len(build.kb)
    assert report["kb_calls_k1"]["knockouts"] == 3  # pgi regulates nothing
    names = pd.read_csv(out / "gene_names.tsv", sep="\t")
    assert names.set_index("gene").loc[B["fur"], "name"] == "fur"


def test_build_refuses_a_directory_that_holds_files(tmp_path, knockout_table):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(AlignedError, match="already holds files"):
        ecoli.build_ecoli(tmp_path, source=FIXTURE, knockouts=knockout_table)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_not_a_wheel_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.whl"
    bad.write_text("not a zip")
    with pytest.raises(InputError, match="not a zip file"):
        ecoli.read_precise(bad)


def test_failed_download_says_how_to_supply_the_wheel(tmp_path, monkeypatch):
    def no_network(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(ecoli.subprocess, "run", no_network)
    with pytest.raises(AlignedError, match="--source PATH") as caught:
        ecoli.fetch_wheel(tmp_path)
    assert "\n" not in str(caught.value) and "No matching distribution" in str(caught.value)


def test_cached_wheel_with_wrong_checksum_is_refused(tmp_path):
    (tmp_path / ecoli.WHEEL_NAME).write_bytes(FIXTURE.read_bytes())
    with pytest.raises(AlignedError, match="does not match the published"):
        ecoli.fetch_wheel(tmp_path)


def test_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNED_CACHE", str(tmp_path))
    assert ecoli.default_cache() == tmp_path
    monkeypatch.delenv("ALIGNED_CACHE")
    assert ecoli.default_cache() == Path.home() / ".cache" / "aligned"
