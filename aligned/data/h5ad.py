"""GEARS-style AnnData (``.h5ad``): single-cell Perturb-seq to pseudobulk perturbation data.

The layout GEARS uses for Norman, Adamson and Replogle: one row per cell,
``obs["condition"]`` naming the perturbation (``ctrl``, ``A+ctrl``, ``ctrl+A``, ``A+B``),
``var["gene_name"]`` the gene symbols, and ``X`` log-normalised expression, dense or sparse.
Each condition becomes one pseudobulk response: the mean of its cells minus the mean of the
control cells.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aligned.data.dataset import PerturbationData
from aligned.data.labels import label_responses, welch_qvalues
from aligned.errors import AlignedError, InputError

CONTROL = "ctrl"
DIRECTIONS = {"loss": -1, "gain": 1}


class DataWarning(UserWarning):
    """Something in the input was excluded or could not be used as asked; it is also
    recorded in the data set's ``meta``."""


def parse_gears_condition(text: str) -> tuple[str, ...]:
    """The perturbed genes of a GEARS condition; ``()`` for the control.

    Examples
    --------
    >>> parse_gears_condition("ctrl+KLF1")
    ('KLF1',)
    >>> parse_gears_condition("A+B"), parse_gears_condition("ctrl")
    (('A', 'B'), ())

    Raises
    ------
    ValueError
        For an empty condition or part (``"A+"``, ``"+A"``, ``""``) or a gene named twice.
    """
    if not isinstance(text, str) or text.strip() == "":
        raise ValueError(f"empty condition {text!r}")
    parts = [part.strip() for part in text.split("+")]
    if any(part == "" for part in parts):
        raise ValueError(f"condition {text!r} has an empty part (expected A+ctrl, ctrl+A or A+B)")
    genes = [part for part in parts if part != CONTROL]
    if len(set(genes)) != len(genes):
        raise ValueError(f"condition {text!r} names a gene twice")
    return tuple(genes)


def read_gears_h5ad(
    path: str | os.PathLike,
    perturbation: str = "loss",
    *,
    tau: float = 1.0,
    welch: bool = False,
    alpha: float = 0.05,
) -> PerturbationData:
    """Read a GEARS-style ``.h5ad`` file into pseudobulk perturbation data (splits unassigned).

    Parameters
    ----------
    path : path
        The ``.h5ad`` file.
    perturbation : {"loss", "gain"}
        Direction of every perturbation: ``loss`` (knockout, CRISPRi) is -1, ``gain``
        (CRISPRa, overexpression) is +1.
    tau : float
        Label threshold on ``|LFC|``.
    welch : bool
        Also require a per-gene Welch t-test over cells, BH-corrected, ``q < alpha``.
    alpha : float
        FDR for ``welch``.

    Returns
    -------
    PerturbationData
        One condition per non-control condition (id: the condition text as in the file),
        column ``n_cells``; ``meta`` records the file, the direction, the gene-name column,
        the control cell count, and whatever was excluded or not measured.

    Raises
    ------
    InputError
        An unreadable file; no ``condition`` column; an unparsable condition; no control
        cells; NaN or infinite expression; duplicate gene names.

    Warns
    -----
    DataWarning
        Conditions with no cells (unused categories) are excluded; conditions whose perturbed
        genes are not measured are kept as inputs.  Both are listed in ``meta`` and in the
        condition's notes.

    Notes
    -----
    ``lfc`` is a difference of mean log-normalised expression (natural log if the file holds
    ``log1p`` values), not a log2 fold change: choose ``tau`` accordingly.  Cost
    O(nnz(X) + conditions x genes); cells are never densified as a whole.
    """
    if perturbation not in DIRECTIONS:
        raise InputError(f"perturbation must be 'loss' or 'gain', got {perturbation!r}")
    path = Path(path)
    adata = _read(path)
    genes, gene_source = _gene_names(adata, path)
    X = _expression(adata, path)
    conditions = _conditions(adata, path)
    excluded = _unused_categories(adata.obs["condition"])
    is_control = conditions == CONTROL
    parsed = {text: parse for text, parse in _parse_all(conditions, path).items() if parse}
    if not is_control.any():
        raise InputError(
            "no control cells: obs['condition'] has no 'ctrl' entry to compare against", path
        )
    names = sorted(parsed)
    membership = _membership(conditions, names)
    counts = np.asarray(membership.sum(axis=1)).ravel()
    means = _group_means(membership, X, counts)
    control = X[is_control]
    control_mean = np.asarray(control.mean(axis=0)).ravel()
    lfc = means - control_mean
    qvalues = None
    if welch:
        qvalues = welch_qvalues(
            means,
            _group_variances(membership, X, counts, means),
            counts,
            np.broadcast_to(control_mean, lfc.shape),
            np.broadcast_to(_variance(control, control_mean), lfc.shape),
            np.full(len(names), int(is_control.sum())),
        )
    labels, rule = label_responses(lfc, tau, qvalues=qvalues, alpha=alpha)
    sign = DIRECTIONS[perturbation]
    measured = set(genes)
    unmeasured = {name: [g for g in parsed[name] if g not in measured] for name in names}
    unmeasured = {name: missing for name, missing in unmeasured.items() if missing}
    notes = [
        f"perturbed gene(s) not measured: {', '.join(unmeasured[name])}"
        if name in unmeasured
        else ""
        for name in names
    ]
    _warn_exclusions(path, excluded, unmeasured)
    return PerturbationData.from_perturbations(
        genes,
        [dict.fromkeys(parsed[name], sign) for name in names],
        lfc,
        labels,
        ids=names,
        columns={"control": [CONTROL] * len(names), "notes": notes, "n_cells": counts.tolist()},
        label_rule=rule,
        meta={
            "source": "h5ad",
            "file": str(path),
            "perturbation": perturbation,
            "gene_names_from": gene_source,
            "control_cells": int(is_control.sum()),
            "lfc": "mean of X (log-normalised, as stored) minus the control mean",
            "excluded_conditions": {name: "no cells" for name in excluded},
            "unmeasured_perturbed_genes": unmeasured,
        },
    )


# ---- reading and checking, one boundary each --------------------------------------------------


def _read(path: Path):
    try:
        import anndata
    except ImportError:
        raise AlignedError(
            "reading .h5ad files needs anndata: pip install 'aligned[h5ad]'"
        ) from None
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        return anndata.read_h5ad(path)
    except Exception as error:  # h5py and anndata raise many types for a damaged file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"cannot read as .h5ad: {reason}", path) from None


def _gene_names(adata, path: Path) -> tuple[list[str], str]:
    if "gene_name" in adata.var.columns:
        names, source = adata.var["gene_name"].astype(str).tolist(), "var['gene_name']"
    else:
        names, source = [str(name) for name in adata.var_names], "var_names"
    counts = pd.Series(names).value_counts()
    repeated = counts[counts > 1]
    if len(repeated):
        shown = ", ".join(f"{gene!r} x{count}" for gene, count in repeated.head(5).items())
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise InputError(f"duplicate gene names in {source}: {shown}{more}", path)
    return names, source


def _expression(adata, path: Path):
    X = adata.X
    if X is None:
        raise InputError("X is empty", path)
    X = sp.csr_matrix(X, dtype=np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    values = X.data if sp.issparse(X) else X
    if not np.isfinite(values).all():
        rows = _nonfinite_rows(X)
        cells = ", ".join(repr(str(adata.obs_names[row])) for row in rows[:3])
        raise InputError(
            f"X holds NaN or infinite values in {len(rows)} cell(s), e.g. {cells}", path
        )
    return X


def _nonfinite_rows(X) -> np.ndarray:
    if sp.issparse(X):
        bad = X.copy()
        bad.data = (~np.isfinite(bad.data)).astype(np.float64)
        return np.flatnonzero(np.asarray(bad.sum(axis=1)).ravel())
    return np.flatnonzero(~np.isfinite(X).all(axis=1))


def _conditions(adata, path: Path) -> np.ndarray:
    if "condition" not in adata.obs.columns:
        raise InputError("obs has no 'condition' column (GEARS layout expected)", path)
    column = adata.obs["condition"]
    if column.isna().any():
        cell = adata.obs_names[np.flatnonzero(column.isna().to_numpy())[0]]
        raise InputError(f"cell {str(cell)!r} has no condition (NaN)", path)
    return column.astype(str).str.strip().to_numpy()


def _parse_all(conditions: np.ndarray, path: Path) -> dict[str, tuple[str, ...]]:
    parsed = {}
    for text in pd.unique(conditions):
        try:
            parsed[text] = parse_gears_condition(text)
        except ValueError as error:
            raise InputError(f"unparsable condition: {error}", path) from None
    return parsed


def _unused_categories(column: pd.Series) -> list[str]:
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return []
    used = set(column.astype(str))
    return sorted(str(c) for c in column.cat.categories if str(c) not in used)


def _warn_exclusions(path: Path, excluded: list[str], unmeasured: dict[str, list[str]]) -> None:
    if excluded:
        warnings.warn(
            f"{path}: {len(excluded)} condition(s) have no cells and are excluded: "
            + ", ".join(excluded[:10]),
            DataWarning,
            stacklevel=3,
        )
    if unmeasured:
        warnings.warn(
            f"{path}: {len(unmeasured)} condition(s) perturb genes that are not measured; kept "
            "as inputs: " + ", ".join(list(unmeasured)[:10]),
            DataWarning,
            stacklevel=3,
        )


# ---- pseudobulk ---------------------------------------------------------------------------


def _membership(conditions: np.ndarray, names: list[str]) -> sp.csr_matrix:
    """Conditions x cells indicator matrix (control and excluded cells in no row)."""
    index = {name: row for row, name in enumerate(names)}
    rows = np.array([index.get(text, -1) for text in conditions])
    cells = np.flatnonzero(rows >= 0)
    return sp.csr_matrix(
        (np.ones(len(cells)), (rows[cells], cells)), shape=(len(names), len(conditions))
    )


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def _group_means(membership: sp.csr_matrix, X, counts: np.ndarray) -> np.ndarray:
    return _dense(membership @ X) / counts[:, None]


def _group_variances(membership: sp.csr_matrix, X, counts: np.ndarray, means) -> np.ndarray:
    squares = X.multiply(X) if sp.issparse(X) else X**2
    second = _dense(membership @ squares) / counts[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = (second - means**2) * counts[:, None] / (counts[:, None] - 1)
    return np.maximum(variance, 0.0)


def _variance(X, mean: np.ndarray) -> np.ndarray:
    n = X.shape[0]
    squares = X.multiply(X) if sp.issparse(X) else X**2
    second = np.asarray(squares.mean(axis=0)).ravel()
    if n < 2:
        return np.full_like(mean, np.nan)
    return np.maximum(second - mean**2, 0.0) * n / (n - 1)
