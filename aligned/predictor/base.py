"""The predictor interface the refinement loop uses, shared by every model.

A predictor owns a gene index (input genes it can perturb, output genes it predicts), model
and training settings, a device, and a torch network.  Subclasses say how to build the
network; fitting, predicting and checkpoints live here once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from aligned.errors import AlignedError, InputError
from aligned.io import atomic_open
from aligned.predictor.arrays import TrainingSet, as_inputs, as_training_set
from aligned.predictor.device import resolve_device
from aligned.predictor.training import FitHistory, TrainingSettings, fit_network, run_network

CHECKPOINT_FORMAT = "aligned.predictor/1"
CLASS_ORDER = (-1, 0, 1)  # the last axis of predict_proba

_KINDS: dict[str, type[Predictor]] = {}


class NotFittedError(AlignedError, RuntimeError):
    """The predictor was asked to predict before it was fitted or loaded."""


class Predictor:
    """Base class: maps perturbations to 3-class probabilities and LFCs per output gene.

    Parameters
    ----------
    genes : sequence of str
        Output genes, in the order of the prediction's gene axis (the data's measured genes).
    model : dataclass, optional
        The model's settings (``MLPSettings``, ``GNNSettings``); defaults when omitted.
    training : TrainingSettings, optional
        Training settings; defaults when omitted.
    input_genes : sequence of str, optional
        Genes that can be perturbed, the columns of a perturbation matrix.  Defaults to
        ``genes``.
    device : str or torch.device
        ``auto | cpu | cuda | cuda:N`` (see :func:`resolve_device`).
    seed : int
        Seeds initialisation, dropout and batch order: CPU fits are reproducible.
    quiet : bool
        No progress bar.

    Notes
    -----
    Every ``X`` argument is a PerturbationData, a list of ``{gene: -1/+1}`` maps, or a
    (conditions, input genes) signed matrix, scipy sparse or numpy.
    """

    kind: ClassVar[str] = ""
    settings_type: ClassVar[type] = object

    def __init__(
        self,
        genes: Sequence[str],
        model: Any = None,
        training: TrainingSettings | None = None,
        *,
        input_genes: Sequence[str] | None = None,
        device: str | torch.device = "auto",
        seed: int = 0,
        quiet: bool = False,
    ):
        self.genes = _gene_list(genes, "genes")
        self.input_genes = _gene_list(genes if input_genes is None else input_genes, "input_genes")
        self.model = self.settings_type() if model is None else model
        self.training = TrainingSettings() if training is None else training
        self.device = resolve_device(device)
        self.seed = int(seed)
        self.quiet = quiet
        self.network: torch.nn.Module | None = None
        self.history_: FitHistory | None = None
        self.lfc_scale = 1.0
        self._input_index = {gene: column for column, gene in enumerate(self.input_genes)}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls

    def __repr__(self) -> str:
        state = "fitted" if self.network is not None else "not fitted"
        return (
            f"{type(self).__name__}({len(self.input_genes)} input genes, {len(self.genes)} "
            f"output genes, device={self.device}, {state})"
        )

    # ---- for subclasses ----------------------------------------------------------------

    def _new_network(self) -> torch.nn.Module:
        """Build a freshly initialised network (called under the predictor's seed)."""
        raise NotImplementedError

    def _before_fit(self) -> None:
        """Check that the predictor can be fitted (e.g. the GNN has a graph)."""

    def _extra_state(self) -> dict[str, Any]:
        """Extra checkpoint content (e.g. the GNN's graph): tensors, lists, str, numbers."""
        return {}

    def _restore_extra_state(self, payload: dict[str, Any]) -> None:
        """Read back what :meth:`_extra_state` wrote."""

    # ---- training ----------------------------------------------------------------------

    def fit(
        self,
        train: object,
        validation: object | None = None,
        sample_weight: np.ndarray | None = None,
        *,
        targets: np.ndarray | None = None,
    ) -> Predictor:
        """Train on ``train``, stopping early on the validation macro-F1.

        Parameters
        ----------
        train : PerturbationData or TrainingSet
            A PerturbationData trains on its ``labels`` where ``scored`` is true, and the LFC
            head on its ``lfc``.  A :class:`TrainingSet` gives every array explicitly (use it
            for pseudo-labels of perturbations that were never measured).
        validation : PerturbationData or TrainingSet, optional
            Scored by macro-F1 after every epoch; the best epoch's weights are kept.  Without
            it, training runs the preset's number of epochs.
        sample_weight : numpy.ndarray, optional
            Per condition (conditions,) or per entry (conditions, genes of ``train``); it
            multiplies the scored mask (weight 0 leaves an entry out).
        targets : numpy.ndarray, optional
            Replace ``train``'s labels: labels (conditions, genes) or class probabilities
            (conditions, genes, 3) over (-1, 0, +1), in ``train``'s gene order.

        Returns
        -------
        Predictor
            ``self``; ``self.history_`` holds the per-epoch loss and validation F1.
        """
        self._before_fit()
        train_set = self.training_set(train, sample_weight, targets)
        validation_set = None if validation is None else self.training_set(validation)
        if validation_set is not None and not (validation_set.weight > 0).any():
            validation_set = None  # nothing scored: early stopping would watch a constant
        if not (train_set.weight > 0).any():
            raise InputError("the training set has no entry with a positive weight")
        with _seeded(self.seed, self.device):
            warm = self.network is not None and self.training.warm_start
            if not warm:
                self.network = self._new_network().to(self.device)
                self.lfc_scale = _lfc_scale(train_set)
            self.history_ = fit_network(
                self.network,
                train_set,
                validation_set,
                self.training,
                self.device,
                self.seed,
                lfc_scale=self.lfc_scale,
                quiet=self.quiet,
                description=f"{self.kind} fit",
                warm=warm,
            )
        return self

    def training_set(
        self,
        data: object,
        sample_weight: np.ndarray | None = None,
        targets: np.ndarray | None = None,
    ) -> TrainingSet:
        """The :class:`TrainingSet` that :meth:`fit` would train on (arguments as for fit).

        Use it to stack observed data with pseudo-labels (:meth:`TrainingSet.concat`).
        """
        return as_training_set(data, self._input_index, self.genes, sample_weight, targets)

    def encode(self, X: object) -> sp.csr_matrix:
        """X (PerturbationData, perturbation maps or a matrix) as a CSR matrix over input genes."""
        return X.x if isinstance(X, TrainingSet) else as_inputs(X, self._input_index)

    # ---- prediction --------------------------------------------------------------------

    def predict_proba(self, X: object) -> np.ndarray:
        """Class probabilities, float32 (conditions, genes, 3), classes ordered (-1, 0, +1)."""
        return self._run(X)[0]

    def predict(self, X: object) -> np.ndarray:
        """The most probable label per entry, int8 (conditions, genes) in {-1, 0, +1}."""
        return (self.predict_proba(X).argmax(axis=2) - 1).astype(np.int8)

    def predict_lfc(self, X: object) -> np.ndarray:
        """Predicted log fold changes, float32 (conditions, genes), from the continuous head."""
        return self._run(X)[1]

    def _run(self, X: object) -> tuple[np.ndarray, np.ndarray]:
        if self.network is None:
            raise NotFittedError(f"{type(self).__name__} must be fitted or loaded first")
        probabilities, lfc = run_network(
            self.network,
            self.encode(X),
            self.training.batch_size,
            self.device,
            self.training.mixed_precision,
        )
        return probabilities.astype(np.float32), (lfc * self.lfc_scale).astype(np.float32)

    # ---- checkpoints -------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write weights, settings, gene index (and graph) to one file, atomically.

        The file loads with ``torch.load(..., weights_only=True)``: it holds tensors, strings
        and numbers only, so loading it never runs code.
        """
        if self.network is None:
            raise NotFittedError(f"{type(self).__name__} must be fitted before it is saved")
        payload = {
            "format": CHECKPOINT_FORMAT,
            "kind": self.kind,
            "genes": list(self.genes),
            "input_genes": list(self.input_genes),
            "model": dataclasses.asdict(self.model),
            "training": dataclasses.asdict(self.training),
            "seed": self.seed,
            "lfc_scale": float(self.lfc_scale),
            "state": {
                name: value.detach().cpu() for name, value in self.network.state_dict().items()
            },
            **self._extra_state(),
        }
        with atomic_open(path, "wb") as handle:
            torch.save(payload, handle)

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device = "auto", quiet: bool = True
    ) -> Predictor:
        """Read a checkpoint written by :meth:`save`; it predicts exactly as the saved model.

        Called on :class:`Predictor` it returns whichever model the file holds; called on a
        subclass it insists on that model.

        Raises
        ------
        InputError
            If the file is missing, is not a predictor checkpoint, or holds another model.
        """
        payload = _read_checkpoint(path)
        kind = payload.get("kind")
        if kind not in _KINDS or (cls.kind and kind != cls.kind):
            expected = cls.kind or " or ".join(sorted(_KINDS))
            raise InputError(f"the checkpoint holds a {kind!r} model, not {expected}", path)
        model_type = _KINDS[kind]
        predictor = model_type(
            payload["genes"],
            model=model_type.settings_type(**payload["model"]),
            training=TrainingSettings(**payload["training"]),
            input_genes=payload["input_genes"],
            device=device,
            seed=payload["seed"],
            quiet=quiet,
        )
        predictor._restore_extra_state(payload)
        predictor.network = predictor._new_network()
        predictor.network.load_state_dict(payload["state"])
        predictor.network.to(predictor.device)
        predictor.lfc_scale = float(payload["lfc_scale"])
        return predictor


def load_predictor(
    path: str | os.PathLike, device: str | torch.device = "auto", quiet: bool = True
) -> Predictor:
    """Load any predictor checkpoint (see :meth:`Predictor.load`)."""
    return Predictor.load(path, device=device, quiet=quiet)


def _read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("no such checkpoint file", path) from None
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise InputError(f"not a predictor checkpoint ({type(error).__name__})", path) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"not a predictor checkpoint (format {CHECKPOINT_FORMAT!r})", path)
    return payload


def _gene_list(genes: Sequence[str], name: str) -> list[str]:
    listed = [str(gene) for gene in genes]
    if not listed:
        raise InputError(f"{name} is empty")
    if len(set(listed)) != len(listed):
        seen: set[str] = set()
        twice = sorted({gene for gene in listed if gene in seen or seen.add(gene)})
        raise InputError(f"{name} lists genes more than once: {', '.join(map(repr, twice[:10]))}")
    return listed


def _lfc_scale(train: TrainingSet) -> float:
    """Root mean square of the observed training LFC (1.0 when none is observed)."""
    mask = train.lfc_weight() > 0
    if train.lfc is None or not mask.any():
        return 1.0
    rms = float(np.sqrt(np.mean(np.square(train.lfc[mask], dtype=np.float64))))
    return rms if rms > 0 else 1.0


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch for the block without disturbing the caller's random state."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
