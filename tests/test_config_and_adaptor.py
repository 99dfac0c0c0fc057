"""Session configuration validation, and the adaptor's per-gene gate."""

from __future__ import annotations

import numpy as np
import pytest

from aligned.adaptor import Gate, fit_gate, per_gene_macro_f1
from aligned.config import dump_config, load_config
from aligned.errors import InputError


def write_config(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


MINIMAL = '[data]\npath = "."\n[knowledge]\npath = "knowledge/toy.tsv"\n'


def test_minimal_config_gets_defaults_and_absolute_paths(tmp_path):
    config = load_config(write_config(tmp_path, MINIMAL))
    assert config["knowledge"]["k"] == 3
    assert config["predictor"] == {"preset": "gnn", "device": "auto"}
    assert config["session"]["iterations"] == 5
    assert config["knowledge"]["path"].endswith("toy.tsv")
    assert config["data"]["path"] == str(tmp_path.resolve())


def test_resolved_config_round_trips_through_toml(tmp_path):
    config = load_config(write_config(tmp_path, MINIMAL + "[session]\nseed = 4\n"))
    again = load_config(write_config(tmp_path, dump_config(config)))
    assert again == config


@pytest.mark.parametrize(
    "extra, problem",
    [
        ("[sesion]\nseed = 1\n", "unknown section [sesion]"),
        ("[session]\nseeds = 1\n", "unknown key session.seeds"),
        ('[session]\nseed = "1"\n', "session.seed must be int, got str '1'"),
        ("[session]\nseed = true\n", "session.seed must be int, got bool True"),
        ("[adaptor]\nmargin = 2\n", "adaptor.margin must lie in [0, 1], got 2"),
        ('[predictor]\ndevice = "gpu"\n', "predictor.device must be auto, cpu, cuda or cuda:N"),
        ("[session]\niterations = -1\n", "session.iterations must be at least 0, got -1"),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_key(tmp_path, extra, problem):
    path = write_config(tmp_path, MINIMAL.replace("[knowledge]", extra + "[knowledge]", 1))
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_and_missing_required_key(tmp_path):
    with pytest.raises(InputError, match="no such file or directory"):
        load_config(write_config(tmp_path, MINIMAL.replace("toy.tsv", "absent.tsv")))
    with pytest.raises(InputError, match="missing required key knowledge.path"):
        load_config(write_config(tmp_path, '[data]\npath = "."\n'))
    with pytest.raises(InputError, match="invalid TOML"):
        load_config(write_config(tmp_path, "[data\n"))


def test_per_gene_macro_f1_ignores_absent_classes_and_masked_entries():
    truth = np.array([[1, 0], [0, 0], [-1, 0]])
    pred = np.array([[1, 0], [0, 1], [1, 0]])
    mask = np.array([[True, True], [True, True], [True, False]])
    scores = per_gene_macro_f1(truth, pred, mask)
    # gene 0: classes +1 (F1 2/3), 0 (F1 1), -1 (F1 0) -> 5/9
    assert scores[0] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # gene 1: class 0 (F1 2/3), class +1 (F1 0) -> 1/3
    assert scores[1] == pytest.approx(1 / 3)


def test_gate_trusts_the_kb_only_where_it_wins_with_support(tmp_path):
    few = np.array([[1, 1, 0], [-1, 1, 0], [1, -1, 0], [0, 1, 0]])
    labels = np.vstack([few, few])
    scored = np.ones_like(labels, dtype=bool)
    kb = labels.copy()
    kb[:, 2] = 1  # the KB is wrong about gene c
    network = np.zeros_like(labels)
    gate = fit_gate(["a", "b", "c"], labels, scored, kb, network, margin=0.05, min_support=3)
    assert gate.table["source"].tolist() == ["kb", "kb", "network"]
    assert gate.table["decided_by"].tolist() == ["all genes", "all genes", "gene"]
    # four conditions are too few for c's lead to pass the sign test (1/16 > 0.05)
    short = fit_gate(["a", "b", "c"], few, scored[:4], kb[:4], network[:4], min_support=3)
    assert short.table["source"].tolist() == ["kb"] * 3
    # without enough evidence per gene, every gene follows the overall winner
    sparse = fit_gate(["a", "b", "c"], labels, scored, kb, network, min_support=9)
    assert sparse.table["decided_by"].tolist() == ["all genes"] * 3
    assert sparse.table["source"].tolist() == ["kb"] * 3
    losing = fit_gate(["a", "b", "c"], labels, scored, -kb, network, min_support=9)
    assert losing.table["source"].tolist() == ["network"] * 3
    combined = gate.combine(kb, network)
    assert (combined[:, :2] == labels[:, :2]).all() and (combined[:, 2] == 0).all()
    gate.write(tmp_path / "gate.tsv")
    back = Gate.read(tmp_path / "gate.tsv")
    assert back.table["source"].tolist() == gate.table["source"].tolist()


def test_a_gene_leaves_the_overall_winner_only_on_a_clear_lead():
    # the KB is right everywhere except one entry of gene b and all of c
    labels = np.array(
        [[1, 1, 0, -1], [-1, 1, 1, 1], [1, -1, 0, 1], [0, 1, -1, -1], [1, 0, 0, 1], [-1, -1, 1, 0]]
    )
    labels = np.hstack([labels, labels[:, [0, 3]], labels[:, [0, 3]]])  # genes a-d, then 4 more
    labels = np.vstack([labels, labels])  # 12 conditions: enough for the sign test
    genes = ["a", "b", "c", "d", "e", "f", "g", "h"]
    scored = np.ones_like(labels, dtype=bool)
    kb = labels.copy()
    kb[0, 1] = 0  # one slip on gene b
    kb[:, 2] = 1  # wrong about gene c
    network = np.zeros_like(labels)  # useless on every gene but b and c,
    network[:, 1:3] = labels[:, 1:3]  # where it is perfect
    gate = fit_gate(genes, labels, scored, kb, network, margin=0.3, min_support=3)
    # the KB wins overall (0.88 against 0.36); on b the network leads by 0.18, less than the
    # margin, so b stays with the KB; on c it leads by 0.83
    assert gate.table["source"].tolist() == ["kb", "kb", "network"] + ["kb"] * 5
    assert gate.table["decided_by"].tolist() == ["all genes"] * 2 + ["gene"] + ["all genes"] * 5
