"""Session configuration: a TOML file, validated at the door, resolved, and saved with the run.

Every key has a type and a default; an unknown section or key, a wrong type, a value out of
range or a missing file is one :class:`~aligned.errors.InputError` naming the file and the
key.  Relative paths are looked up beside the configuration file first, then in the working
directory, then among the files shipped with the package (so ``knowledge/toy.tsv`` works from
anywhere); the resolved configuration holds absolute paths.
"""

from __future__ import annotations

import copy
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligned.errors import InputError
from aligned.io import atomic_write_text
from aligned.resources import resource_dir


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default, and an optional check of its value."""

    kind: type | tuple[type, ...]
    default: Any
    check: Callable[[Any], str | None] | None = None
    help: str = ""


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda value: None if value >= low else f"must be at least {low}"


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must lie in [{low}, {high}]"


def _device(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda"):
        return None
    prefix, _, index = value.partition(":")
    if prefix == "cuda" and index.isdigit():
        return None
    return "must be auto, cpu, cuda or cuda:N"


def _fractions(value: list) -> str | None:
    if len(value) != 3 or not all(isinstance(x, (int, float)) and x >= 0 for x in value):
        return "must be three non-negative numbers (train, validation, test)"
    if not math.isclose(sum(value), 1.0, abs_tol=1e-6) or value[2] <= 0 or value[1] <= 0:
        return "must sum to 1 with positive validation and test fractions"
    return None


SCHEMA: dict[str, dict[str, Key]] = {
    "data": {
        "path": Key(str, None, help="a saved dataset directory or a GEARS-style .h5ad file"),
        "perturbation": Key(str, "loss", _one_of("loss", "gain"), ".h5ad only: loss or gain"),
        "split": Key(list, [0.7, 0.15, 0.15], _fractions, "shares; saved splits are kept"),
    },
    "knowledge": {
        "path": Key(str, None, help="the starting knowledge base (TSV/CSV or .pl facts)"),
        "k": Key(int, 3, _at_least(1), "deduction bound"),
    },
    "predictor": {
        "preset": Key(str, "gnn", help='a preset in neural/ ("mlp", "gnn") or a TOML path'),
        "device": Key(str, "auto", _device, "auto | cpu | cuda | cuda:N"),
    },
    "adaptor": {
        "margin": Key((int, float), 0.05, _between(0, 1), "KB must beat the network by this"),
        "min_support": Key(int, 3, _at_least(1), "validation entries a gene needs"),
        "alpha": Key((int, float), 0.05, _between(0, 1), "sign-test level to leave the winner"),
    },
    "abduction": {
        "solver": Key(str, "auto", _one_of("auto", "asp", "greedy")),
        "time_limit": Key((int, float), 60.0, _at_least(0.1), "seconds per solve"),
        "network_weight": Key((int, float), 0.3, _between(0, 10), "weight of disagreement"),
        "label_model": Key(
            str, "auto", _one_of("auto", "exact", "graded"), "graded for thresholded LFCs"
        ),
    },
    "session": {
        "iterations": Key(int, 5, _at_least(0)),
        "seed": Key(int, 0, _at_least(0)),
        "pseudo_label_weight": Key((int, float), 0.3, _between(0, 1)),
    },
}

REQUIRED = {("data", "path"), ("knowledge", "path")}
PATH_KEYS = {("data", "path"), ("knowledge", "path")}


def load_config(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read, validate and resolve a session configuration file.

    Returns
    -------
    dict
        Every section of :data:`SCHEMA` with every key, defaults filled in and paths made
        absolute.

    Raises
    ------
    InputError
        For a missing or unparsable file, an unknown section or key, a wrong type, a value out
        of range, a missing required key, or a path that does not exist.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("configuration file not found", path) from None
    except UnicodeDecodeError:
        raise InputError("configuration file is not UTF-8", path) from None
    except tomllib.TOMLDecodeError as error:
        line = getattr(error, "lineno", None)
        message = str(error).split(" (at line")[0]
        raise InputError(f"invalid TOML: {message}", path, line) from None
    return resolve_config(raw, origin=path)


def resolve_config(
    raw: Mapping[str, Any], origin: str | os.PathLike | None = None
) -> dict[str, dict[str, Any]]:
    """Validate a configuration mapping (as read from TOML) and fill in defaults and paths.

    ``origin`` is the configuration file, used in messages and to resolve relative paths.
    """
    where = Path(origin) if origin is not None else Path("<config>")
    base = where.parent if origin is not None else Path.cwd()
    resolved: dict[str, dict[str, Any]] = {}
    for section in raw:
        if section not in SCHEMA:
            raise InputError(f"unknown section [{section}] (known: {', '.join(SCHEMA)})", where)
        if not isinstance(raw[section], Mapping):
            raise InputError(f"[{section}] must be a table", where)
    for section, keys in SCHEMA.items():
        given = dict(raw.get(section, {}))
        for name in given:
            if name not in keys:
                raise InputError(f"unknown key {section}.{name} (known: {', '.join(keys)})", where)
        values = {}
        for name, key in keys.items():
            if name not in given:
                if (section, name) in REQUIRED:
                    raise InputError(f"missing required key {section}.{name}", where)
                values[name] = copy.deepcopy(key.default)
                continue
            value = given[name]
            if isinstance(value, bool) or not isinstance(value, key.kind):
                expected = (
                    " or ".join(t.__name__ for t in key.kind)
                    if isinstance(key.kind, tuple)
                    else key.kind.__name__
                )
                raise InputError(
                    f"{section}.{name} must be {expected}, got {type(value).__name__} {value!r}",
                    where,
                )
            problem = key.check(value) if key.check else None
            if problem:
                raise InputError(f"{section}.{name} {problem}, got {value!r}", where)
            if (section, name) in PATH_KEYS:
                value = str(_find_path(value, base, where, f"{section}.{name}"))
            values[name] = value
        resolved[section] = values
    return resolved


def _find_path(value: str, base: Path, where: Path, key: str) -> Path:
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        options = [candidate]
    else:
        options = [base / candidate, Path.cwd() / candidate]
        top = candidate.parts[0] if candidate.parts else ""
        if top in ("knowledge", "neural", "rules"):
            options.append(resource_dir(top) / Path(*candidate.parts[1:]))
    for option in options:
        if option.exists():
            return option.resolve()
    raise InputError(f"{key} = {value!r}: no such file or directory", where)


def dump_config(config: Mapping[str, Mapping[str, Any]]) -> str:
    """The configuration as TOML text (sections of scalars and lists of numbers)."""
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {_toml_value(value)}" for name, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def write_config(config: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> None:
    """Write the resolved configuration atomically (it lands in every run directory)."""
    atomic_write_text(path, dump_config(config))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
