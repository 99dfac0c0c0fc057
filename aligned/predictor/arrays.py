"""What a fit trains on, as plain arrays, and the adapters from PerturbationData to them.

The models never see a :class:`~aligned.data.PerturbationData`: this module turns one (or a
list of perturbation maps, or a matrix) into a signed CSR perturbation matrix over the
predictor's input genes and per-entry targets and weights over its output genes.  Keeping
the core array-level lets the refinement loop train on anything it can build (observed labels,
abduced pseudo-labels for perturbations nobody measured, soft targets) without a dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from aligned.errors import InputError


@dataclass
class TrainingSet:
    """Arrays for one fit: inputs, targets and how much each entry counts.

    Parameters
    ----------
    x : scipy.sparse.csr_matrix, shape (conditions, input genes)
        Signed perturbation matrix (-1 loss, +1 gain, 0 untouched).
    targets : numpy.ndarray
        Either hard labels, int8 in {-1, 0, +1}, shape (conditions, genes), or soft targets,
        float32 class probabilities over (-1, 0, +1), shape (conditions, genes, 3).
    weight : numpy.ndarray, shape (conditions, genes)
        float32 weight of each entry in the loss; 0 leaves the entry out entirely.
    lfc : numpy.ndarray, optional, shape (conditions, genes)
        Observed log fold changes for the continuous head; NaN where unknown.  ``None`` when
        nothing is known (e.g. pseudo-labels for unmeasured perturbations).
    """

    x: sp.csr_matrix
    targets: np.ndarray
    weight: np.ndarray
    lfc: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.x = sp.csr_matrix(self.x, dtype=np.float32)
        self.targets = np.asarray(self.targets)
        self.weight = np.asarray(self.weight, dtype=np.float32)
        shape = (self.x.shape[0], self.targets.shape[1] if self.targets.ndim > 1 else -1)
        if self.targets.ndim == 3 and self.targets.shape[2] == 3:
            self.targets = self.targets.astype(np.float32, copy=False)
        elif self.targets.ndim == 2:
            self.targets = _check_labels(self.targets)
        else:
            raise InputError(
                f"targets must be labels (conditions, genes) or class probabilities "
                f"(conditions, genes, 3), got shape {self.targets.shape}"
            )
        for name, array in (("targets", self.targets), ("weight", self.weight)):
            if array.shape[:2] != shape:
                raise InputError(f"{name} has shape {array.shape[:2]}, expected {shape}")
        if np.any(~np.isfinite(self.weight)) or np.any(self.weight < 0):
            raise InputError("sample weights must be finite and non-negative")
        if self.lfc is not None:
            self.lfc = np.asarray(self.lfc, dtype=np.float32)
            if self.lfc.shape != shape:
                raise InputError(f"lfc has shape {self.lfc.shape}, expected {shape}")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def soft(self) -> bool:
        """Whether the targets are class probabilities rather than labels."""
        return self.targets.ndim == 3

    def hard_labels(self) -> np.ndarray:
        """The targets as int8 labels (the most probable class for soft targets)."""
        if self.soft:
            return (self.targets.argmax(axis=2) - 1).astype(np.int8)
        return self.targets

    def lfc_weight(self) -> np.ndarray:
        """Entries the continuous head trains on: known LFC and a positive weight."""
        if self.lfc is None:
            return np.zeros(self.weight.shape, dtype=np.float32)
        return (np.isfinite(self.lfc) & (self.weight > 0)).astype(np.float32)

    @classmethod
    def concat(cls, sets: Sequence[TrainingSet]) -> TrainingSet:
        """Stack training sets over conditions (e.g. observed data and abduced pseudo-labels).

        Hard and soft targets mix (labels become one-hot); a set without LFC contributes NaN.
        """
        if not sets:
            raise InputError("concat needs at least one training set")
        soft = any(part.soft for part in sets)
        targets = [
            part.targets if part.soft or not soft else one_hot(part.targets) for part in sets
        ]
        lfcs = [
            part.lfc if part.lfc is not None else np.full(part.weight.shape, np.nan, np.float32)
            for part in sets
        ]
        has_lfc = any(part.lfc is not None for part in sets)
        return cls(
            x=sp.vstack([part.x for part in sets], format="csr"),
            targets=np.concatenate(targets),
            weight=np.concatenate([part.weight for part in sets]),
            lfc=np.concatenate(lfcs) if has_lfc else None,
        )


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Labels in {-1, 0, +1} as float32 class probabilities, last axis (-1, 0, +1)."""
    return np.eye(3, dtype=np.float32)[np.asarray(labels, dtype=np.int64) + 1]


def _check_labels(labels: np.ndarray) -> np.ndarray:
    if labels.size and (labels.min() < -1 or labels.max() > 1):
        raise InputError("labels must lie in {-1, 0, +1}")
    return labels.astype(np.int8, copy=False)


def perturbation_matrix(
    perturbations: Sequence[Mapping[str, int]], index: Mapping[str, int]
) -> sp.csr_matrix:
    """Signed CSR matrix (conditions, len(index)) of perturbation maps ``gene -> -1/+1``.

    Raises
    ------
    InputError
        If a perturbed gene is not in ``index``: dropping it would silently change the
        question asked of the model.
    """
    rows, cols, values, unknown = [], [], [], set()
    for row, perturbation in enumerate(perturbations):
        for gene, sign in perturbation.items():
            column = index.get(gene)
            if column is None:
                unknown.add(gene)
                continue
            rows.append(row)
            cols.append(column)
            values.append(float(sign))
    if unknown:
        shown = ", ".join(repr(gene) for gene in sorted(unknown)[:10])
        raise InputError(
            f"{len(unknown)} perturbed genes are not input genes of the predictor: {shown} "
            "(list them in make_predictor(..., input_genes=...))"
        )
    shape = (len(perturbations), len(index))
    return sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)


def as_inputs(X: object, index: Mapping[str, int]) -> sp.csr_matrix:
    """Any accepted form of X as a CSR perturbation matrix over the input genes.

    X is a PerturbationData (anything with ``perturbations``), a list of perturbation maps,
    a scipy sparse matrix or a numpy array of shape (conditions, input genes).
    """
    if hasattr(X, "perturbations"):
        return perturbation_matrix(X.perturbations, index)
    if isinstance(X, Sequence) and not isinstance(X, np.ndarray):
        if all(isinstance(item, Mapping) for item in X):
            return perturbation_matrix(X, index)
    matrix = sp.csr_matrix(X, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != len(index):
        raise InputError(
            f"the perturbation matrix has shape {matrix.shape}; the predictor has "
            f"{len(index)} input genes"
        )
    return matrix


def as_training_set(
    data: object,
    input_index: Mapping[str, int],
    genes: Sequence[str],
    sample_weight: np.ndarray | None = None,
    targets: np.ndarray | None = None,
) -> TrainingSet:
    """Adapt a PerturbationData (or a TrainingSet) to a TrainingSet over the predictor's genes.

    Parameters
    ----------
    data : PerturbationData or TrainingSet
        For a PerturbationData, the targets are its ``labels``, the weights its ``scored``
        mask, and its columns are reordered to ``genes``.
    input_index : mapping
        Input gene -> column of the perturbation matrix.
    genes : sequence of str
        The predictor's output genes.
    sample_weight : numpy.ndarray, optional
        Per condition (conditions,) or per entry (conditions, data genes); multiplies the
        scored mask, so unscored entries never train.
    targets : numpy.ndarray, optional
        Replaces the data's labels: labels (conditions, data genes) or class probabilities
        (conditions, data genes, 3), in the data's gene order.
    """
    if isinstance(data, TrainingSet):
        if data.weight.shape[1] != len(genes) or data.x.shape[1] != len(input_index):
            raise InputError(
                f"the training set is {data.x.shape[1]} input x {data.weight.shape[1]} output "
                f"genes; the predictor has {len(input_index)} x {len(genes)}"
            )
        columns, full_shape, base = slice(None), data.weight.shape, data
    else:
        columns = _output_columns(list(data.genes), genes)
        full_shape = np.shape(data.labels)
        base = TrainingSet(
            x=as_inputs(data, input_index),
            targets=np.asarray(data.labels)[:, columns],
            weight=np.asarray(data.scored, dtype=np.float32)[:, columns],
            lfc=np.asarray(data.lfc, dtype=np.float32)[:, columns],
        )
    weight = base.weight
    if sample_weight is not None:
        weight = weight * _entry_weights(sample_weight, full_shape)[:, columns]
    chosen = base.targets
    if targets is not None:
        targets = np.asarray(targets)
        if targets.shape[:2] != full_shape:
            raise InputError(f"targets have shape {targets.shape[:2]}, expected {full_shape}")
        chosen = targets[:, columns]
    return TrainingSet(x=base.x, targets=chosen, weight=weight, lfc=base.lfc)


def _output_columns(data_genes: list[str], genes: Sequence[str]) -> np.ndarray | slice:
    if data_genes == list(genes):
        return slice(None)
    position = {gene: column for column, gene in enumerate(data_genes)}
    missing = [gene for gene in genes if gene not in position]
    if missing:
        shown = ", ".join(repr(gene) for gene in missing[:10])
        raise InputError(f"{len(missing)} output genes of the predictor are not measured: {shown}")
    return np.array([position[gene] for gene in genes], dtype=np.int64)


def _entry_weights(sample_weight: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sample weights as a (conditions, genes) array; per-condition weights broadcast."""
    weight = np.asarray(sample_weight, dtype=np.float32)
    if weight.ndim == 1 and weight.shape[0] == shape[0]:
        return np.broadcast_to(weight[:, None], shape)
    if weight.shape == tuple(shape):
        return weight
    raise InputError(
        f"sample_weight has shape {weight.shape}; expected ({shape[0]},) per condition "
        f"or {tuple(shape)} per entry"
    )
