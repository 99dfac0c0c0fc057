"""The one entry point for perturbation data: a saved dataset directory or a ``.h5ad`` file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from aligned.data.dataset import DATASET_FILE, PerturbationData
from aligned.data.splits import assign_splits
from aligned.errors import InputError


def load_data(
    path: str | os.PathLike,
    perturbation: str = "loss",
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    tau: float = 1.0,
) -> PerturbationData:
    """Load perturbation data, splits assigned, from whatever ``--data`` names.

    Parameters
    ----------
    path : path
        One of: a saved dataset directory (holding ``dataset.json``); the output directory
        of ``aligned simulate`` or ``aligned data ecoli`` (whose ``data/`` is the dataset);
        or a GEARS-style ``.h5ad`` file.
    perturbation : {"loss", "gain"}
        ``.h5ad`` only: the direction of every perturbation.  A saved dataset stores its own
        signs, so there it is only checked for spelling.
    seed, fractions
        Split seed and shares, for data that have no splits yet (a ``.h5ad`` file, or a
        dataset saved before splitting).  Saved splits are never redrawn.
    tau : float
        ``.h5ad`` only: label threshold on ``|LFC|``.

    Returns
    -------
    PerturbationData

    Raises
    ------
    InputError
        When the path does not exist or is neither kind, or ``perturbation`` is misspelt.
    """
    if perturbation not in ("loss", "gain"):
        raise InputError(f"perturbation must be 'loss' or 'gain', got {perturbation!r}")
    path = Path(path)
    if not path.exists():
        raise InputError("not found (expected a saved dataset directory or a .h5ad file)", path)
    if path.is_dir():
        directory = path
        if not (path / DATASET_FILE).is_file() and (path / "data" / DATASET_FILE).is_file():
            directory = path / "data"
        data = PerturbationData.load(directory)
    elif path.suffix.lower() == ".h5ad":
        from aligned.data.h5ad import read_gears_h5ad

        data = read_gears_h5ad(path, perturbation, tau=tau)
    else:
        raise InputError("expected a saved dataset directory or a .h5ad file", path)
    if (data.conditions["split"] == "unassigned").all():
        data = assign_splits(data, fractions, seed=seed)
    return data
