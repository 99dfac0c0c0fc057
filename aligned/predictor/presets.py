"""Presets: a model and its training settings in a small TOML file, and the factory over them.

A preset has two tables::

    [model]
    kind = "gnn"        # "mlp" or "gnn"; the other keys are the model's settings
    hidden = 32

    [training]          # optional; see TrainingSettings
    epochs = 100

Shipped presets live in ``neural/`` and are chosen by name (``"mlp"``, ``"gnn"``); anything
else is read as a path.  Every key is checked when the file is read: an unknown or mistyped
key is an InputError naming the file and the key, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from aligned.errors import InputError
from aligned.predictor.base import Predictor
from aligned.predictor.gnn import GNNPredictor
from aligned.predictor.mlp import MLPPredictor
from aligned.predictor.training import TrainingSettings
from aligned.resources import resource_dir

MODELS: dict[str, type[Predictor]] = {"mlp": MLPPredictor, "gnn": GNNPredictor}
_TYPES = {
    "int": (int,),
    "int | None": (int,),  # TOML has no null: a key that is present holds an int
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A validated preset: which model, its settings, and the training settings."""

    kind: str
    model: Any
    training: TrainingSettings
    source: str


def preset_path(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped preset name (``"gnn"``) or of an explicit path.

    Raises
    ------
    InputError
        If neither a shipped preset nor an existing file goes by that name.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and os.sep not in text and not text.endswith(".toml"):
        shipped = resource_dir("neural") / f"{text}.toml"
        if shipped.is_file():
            return shipped
        names = sorted(path.stem for path in resource_dir("neural").glob("*.toml"))
        raise InputError(f"no preset named {text!r}; shipped presets: {', '.join(names)}")
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError("no such preset file", path)
    return path


def read_preset(source: str | os.PathLike | Mapping[str, Any]) -> Preset:
    """Read and validate a preset from a name, a path, or an already parsed mapping.

    Raises
    ------
    InputError
        Naming the file and the key: unreadable TOML, unknown table or key, a value of the
        wrong type, or a value out of range.
    """
    if isinstance(source, Mapping):
        return parse_preset(source, "<preset>")
    path = preset_path(source)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"not valid TOML: {error}", path) from None
    return parse_preset(document, str(path))


def parse_preset(document: Mapping[str, Any], where: str) -> Preset:
    """Validate a parsed preset document; ``where`` names it in error messages."""
    _reject_unknown(document, ("model", "training"), where, "")
    model = document.get("model")
    if not isinstance(model, Mapping) or "kind" not in model:
        raise InputError("missing [model] table with a 'kind' key (mlp or gnn)", where)
    kind = model["kind"]
    if kind not in MODELS:
        raise InputError(f"model.kind must be one of {', '.join(MODELS)}, got {kind!r}", where)
    settings_type = MODELS[kind].settings_type
    options = {key: value for key, value in model.items() if key != "kind"}
    model_settings = _settings(settings_type, options, where, "model")
    training = document.get("training", {})
    if not isinstance(training, Mapping):
        raise InputError("'training' must be a table", where)
    training_settings = _settings(TrainingSettings, training, where, "training")
    return Preset(kind, model_settings, training_settings, where)


def make_predictor(
    preset: str | os.PathLike | Mapping[str, Any],
    genes: Sequence[str],
    kb: Any = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    quiet: bool = False,
    *,
    input_genes: Sequence[str] | None = None,
) -> Predictor:
    """Build an unfitted predictor from a preset.

    Parameters
    ----------
    preset : str, path or mapping
        A shipped preset name (``"mlp"``, ``"gnn"``), a path to a TOML file, or a parsed
        preset document.
    genes : sequence of str
        Output genes (the data's measured genes).
    kb : KnowledgeBase, optional
        The graph of a GNN (it may also be set later with ``set_graph``); ignored by the MLP.
    device : str or torch.device
        ``auto | cpu | cuda | cuda:N``.
    seed : int
        Seeds initialisation, dropout and batch order.
    quiet : bool
        No progress bars.
    input_genes : sequence of str, optional
        Genes that can be perturbed (see :class:`Predictor`).

    Returns
    -------
    Predictor

    Examples
    --------
    >>> predictor = make_predictor("mlp", ["a", "b", "c"], device="cpu", quiet=True)
    >>> predictor.kind
    'mlp'
    """
    chosen = read_preset(preset)
    options: dict[str, Any] = {"input_genes": input_genes, "device": device, "seed": seed}
    if chosen.kind == "gnn":
        options["kb"] = kb
    return MODELS[chosen.kind](genes, chosen.model, chosen.training, quiet=quiet, **options)


def _settings(settings_type: type, values: Mapping[str, Any], where: str, table: str) -> Any:
    fields = {field.name: field for field in dataclasses.fields(settings_type)}
    _reject_unknown(values, tuple(fields), where, f"{table}.")
    for key, value in values.items():
        expected = _TYPES[str(fields[key].type)]
        if isinstance(value, bool) and bool not in expected or not isinstance(value, expected):
            type_name = str(fields[key].type)
            raise InputError(f"{table}.{key} must be {type_name}, got {value!r}", where)
    try:
        return settings_type(**values)
    except ValueError as error:
        raise InputError(f"[{table}] {error}", where) from None


def _reject_unknown(values: Mapping[str, Any], known: Sequence[str], where: str, prefix: str):
    for key in values:
        if key not in known:
            raise InputError(
                f"unknown key {prefix}{key!r}; allowed: {', '.join(sorted(known))}", where
            )
