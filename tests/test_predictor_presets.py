"""Presets in neural/: shipped ones load, and every bad key is named with its file."""

import pytest

from aligned.errors import InputError
from aligned.predictor import (
    GNNPredictor,
    GNNSettings,
    MLPPredictor,
    TrainingSettings,
    make_predictor,
    read_preset,
)
from aligned.resources import resource_path


@pytest.mark.parametrize("name", ["mlp", "gnn"])
def test_shipped_presets_load_by_name(name):
    preset = read_preset(name)
    assert preset.kind == name
    assert preset.source == str(resource_path("neural", f"{name}.toml"))


def test_make_predictor_builds_the_model_the_preset_names():
    genes = ["a", "b", "c"]
    assert isinstance(make_predictor("mlp", genes, device="cpu"), MLPPredictor)
    gnn = make_predictor("gnn", genes, device="cpu", seed=3, quiet=True)
    assert isinstance(gnn, GNNPredictor)
    assert (gnn.seed, gnn.quiet, str(gnn.device)) == (3, True, "cpu")


def test_a_preset_file_path_is_read(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text('[model]\nkind = "gnn"\nhidden = 8\n[training]\nepochs = 5\n')
    preset = read_preset(path)
    assert preset.model == GNNSettings(hidden=8)
    assert preset.training == TrainingSettings(epochs=5)


def test_an_unknown_key_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('[model]\nkind = "mlp"\nhiden = 8\n')
    with pytest.raises(InputError, match=r"typo\.toml.*unknown key model\.'hiden'"):
        read_preset(path)


def test_an_unknown_table_is_an_error(tmp_path):
    path = tmp_path / "table.toml"
    path.write_text('[model]\nkind = "mlp"\n[optimiser]\nlr = 1\n')
    with pytest.raises(InputError, match=r"table\.toml.*unknown key 'optimiser'"):
        read_preset(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[model]\nkind = "mlp"\nhidden = "wide"\n', "model.hidden must be int"),
        ('[model]\nkind = "mlp"\nhidden = true\n', "model.hidden must be int"),
        ('[model]\nkind = "mlp"\n[training]\nepochs = 0\n', "epochs must be positive"),
        ('[model]\nkind = "gnn"\naggregation = "max"\n', "aggregation must be one of"),
        ('[model]\nkind = "transformer"\n', "model.kind must be one of mlp, gnn"),
        ("[training]\nepochs = 3\n", "missing \\[model\\] table"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_invalid_presets_are_input_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_preset(path)


def test_an_unknown_preset_name_lists_the_shipped_ones():
    with pytest.raises(InputError, match="shipped presets: gnn, mlp"):
        read_preset("transformer")


def test_a_missing_preset_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such preset file"):
        read_preset(tmp_path / "absent.toml")


def test_a_parsed_mapping_is_validated_too():
    preset = read_preset({"model": {"kind": "mlp", "hidden": 16}, "training": {"epochs": 2}})
    assert (preset.model.hidden, preset.training.epochs) == (16, 2)
    with pytest.raises(InputError, match="unknown key training.'epoch'"):
        read_preset({"model": {"kind": "mlp"}, "training": {"epoch": 2}})
