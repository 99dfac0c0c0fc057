"""The training loop shared by every model: weighted cross-entropy, AdamW, early stopping.

A network here is any ``torch.nn.Module`` that maps a :class:`SparseBatch` of perturbations to
``(logits, lfc)`` with shapes ``(batch, genes, 3)`` and ``(batch, genes)``.  The loop knows
nothing else about it, so the MLP and the GNN (and whatever comes next) share one tested path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aligned.metrics import macro_f1
from aligned.predictor.arrays import TrainingSet
from aligned.predictor.device import amp_dtype, autocast

CLASS_WEIGHTING = ("balanced", "sqrt", "none")


@dataclass(frozen=True)
class TrainingSettings:
    """How a network is trained (the ``[training]`` table of a preset).

    Attributes
    ----------
    epochs : int
        Most passes over the training conditions.
    batch_size : int
        Conditions per mini-batch (training and prediction).
    learning_rate, weight_decay : float
        AdamW settings.
    patience : int
        Epochs without a better validation macro-F1 before training stops; the weights of the
        best epoch are kept.
    class_weighting : str
        ``"balanced"``: class weights inversely proportional to the (weighted) training class
        frequencies; ``"sqrt"``: their square root, a milder correction; ``"none"``.
    lfc_loss_weight : float
        Weight of the masked mean squared error of the LFC head beside the cross-entropy.
    mixed_precision : bool
        Autocast (bf16, else fp16) on CUDA; ignored on the CPU.
    warm_start : bool
        Start each fit from the current weights instead of a fresh initialisation.
    warm_patience : int or None
        Patience of a warm-started fit.  Such a fit starts at an optimum: the starting weights
        are its epoch 0, kept unless a later epoch beats them, so it needs less patience to
        find out whether the new training set moves the optimum.  None: ``patience``.
    """

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    class_weighting: str = "balanced"
    lfc_loss_weight: float = 1.0
    mixed_precision: bool = True
    warm_start: bool = False
    warm_patience: int | None = None

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "patience": self.patience}
        if self.warm_patience is not None:
            positive["warm_patience"] = self.warm_patience
        for name, value in {**positive, "learning_rate": self.learning_rate}.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        for name in ("weight_decay", "lfc_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.class_weighting not in CLASS_WEIGHTING:
            raise ValueError(f"class_weighting must be one of {', '.join(CLASS_WEIGHTING)}")


@dataclass
class SparseBatch:
    """A mini-batch of perturbations in EmbeddingBag form (CSR rows on the device).

    ``indices[offsets[i]:offsets[i+1]]`` are the input genes perturbed in condition ``i``
    and ``values`` their signs.
    """

    indices: torch.Tensor
    offsets: torch.Tensor
    values: torch.Tensor
    size: int

    @classmethod
    def from_csr(cls, rows: sp.csr_matrix, device: torch.device) -> SparseBatch:
        rows = rows.tocsr()
        rows.sort_indices()
        return cls(
            indices=torch.as_tensor(rows.indices, dtype=torch.int64, device=device),
            offsets=torch.as_tensor(rows.indptr[:-1], dtype=torch.int64, device=device),
            values=torch.as_tensor(rows.data, dtype=torch.float32, device=device),
            size=rows.shape[0],
        )

    def row_of_entry(self) -> torch.Tensor:
        """The condition each entry of ``indices`` belongs to."""
        counts = torch.diff(self.offsets, append=self.offsets.new_tensor([len(self.indices)]))
        rows = torch.arange(self.size, device=self.indices.device)
        return torch.repeat_interleave(rows, counts)


@dataclass
class FitHistory:
    """What one fit did: per-epoch training loss and validation macro-F1, and the kept epoch."""

    loss: list[float] = field(default_factory=list)
    validation_f1: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_f1: float | None = None
    seconds: float = 0.0
    stopped_early: bool = False


def class_weights(train: TrainingSet, scheme: str) -> np.ndarray:
    """Per-class loss weights over (-1, 0, +1) from the weighted training targets.

    ``"balanced"`` gives ``total / (3 * count_c)``, so every class contributes equally to the
    loss; a class absent from the targets gets weight 0 (nothing to balance).  The weights
    are rescaled to average 1 over the present classes, which keeps the learning rate's
    meaning independent of the imbalance.
    """
    if scheme == "none":
        return np.ones(3, dtype=np.float32)
    if train.soft:
        counts = np.einsum("cgk,cg->k", train.targets, train.weight, dtype=np.float64)
    else:
        index = train.targets.astype(np.int64).ravel() + 1
        counts = np.bincount(index, weights=train.weight.ravel(), minlength=3)
    present = counts > 0
    weights = np.zeros(3)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    if scheme == "sqrt":
        weights = np.sqrt(weights)
    if present.any():
        weights[present] /= weights[present].mean()
    return weights.astype(np.float32)


def batch_loss(
    logits: torch.Tensor,
    lfc: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    lfc_target: torch.Tensor,
    lfc_weight: torch.Tensor,
    class_weight: torch.Tensor,
    lfc_loss_weight: float,
) -> torch.Tensor:
    """Weighted cross-entropy on logits plus the masked MSE of the LFC head.

    ``targets`` are class probabilities (one-hot for hard labels), shape (B, G, 3).  The
    cross-entropy of an entry is ``-sum_c class_weight[c] * t_c * log p_c``; entries are
    averaged with weights ``weight * (t . class_weight)``, as torch's weighted mean does for
    hard labels, so soft and hard targets are on one scale.
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    entry = -(targets * class_weight * log_p).sum(dim=-1)
    scale = weight * (targets * class_weight).sum(dim=-1)
    loss = (entry * weight).sum() / scale.sum().clamp_min(1e-8)
    if lfc_loss_weight > 0:
        squared = (lfc.float() - lfc_target) ** 2 * lfc_weight
        loss = loss + lfc_loss_weight * squared.sum() / lfc_weight.sum().clamp_min(1.0)
    return loss


def batches(n: int, size: int, generator: torch.Generator | None) -> Iterator[np.ndarray]:
    """Row indices of mini-batches: shuffled with ``generator``, in order when it is None."""
    order = np.arange(n) if generator is None else torch.randperm(n, generator=generator).numpy()
    for start in range(0, n, size):
        yield order[start : start + size]


@torch.no_grad()
def run_network(
    network: torch.nn.Module,
    x: sp.csr_matrix,
    batch_size: int,
    device: torch.device,
    mixed_precision: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (conditions, genes, 3) and raw LFC outputs (conditions, genes)."""
    network.eval()
    dtype = amp_dtype(device) if mixed_precision else None
    probabilities, lfcs = [], []
    for rows in batches(x.shape[0], batch_size, None):
        with autocast(device, dtype):
            logits, lfc = network(SparseBatch.from_csr(x[rows], device))
        probabilities.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        lfcs.append(lfc.float().cpu().numpy())
    if not probabilities:
        genes = network.n_outputs
        return np.zeros((0, genes, 3), np.float32), np.zeros((0, genes), np.float32)
    return np.concatenate(probabilities), np.concatenate(lfcs)


def validation_f1(
    network: torch.nn.Module, validation: TrainingSet, settings: TrainingSettings, device
) -> float:
    """Macro-F1 of the network's argmax labels on the validation entries with weight > 0."""
    probabilities, _ = run_network(
        network, validation.x, settings.batch_size, device, settings.mixed_precision
    )
    predicted = probabilities.argmax(axis=2) - 1
    return macro_f1(validation.hard_labels(), predicted, validation.weight > 0)


def fit_network(
    network: torch.nn.Module,
    train: TrainingSet,
    validation: TrainingSet | None,
    settings: TrainingSettings,
    device: torch.device,
    seed: int,
    lfc_scale: float = 1.0,
    quiet: bool = False,
    description: str = "training",
    warm: bool = False,
) -> FitHistory:
    """Train ``network`` in place; keep the weights of the best validation epoch.

    Parameters
    ----------
    network : torch.nn.Module
        Already on ``device``.
    train, validation : TrainingSet
        Training entries with their weights; validation labels and mask (weight > 0).  With
        no validation set the loop runs ``settings.epochs`` and keeps the last weights.
    settings : TrainingSettings
    device : torch.device
    seed : int
        Seeds the batch order (the caller seeds initialisation and dropout).
    lfc_scale : float
        The LFC head learns ``lfc / lfc_scale``, so the MSE is on the scale of the CE.
    quiet : bool
        No progress bar.
    description : str
        The progress bar's label.
    warm : bool
        ``network`` holds trained weights to continue from: they are scored as epoch 0 and
        kept unless an epoch beats them, and ``settings.warm_patience`` applies.

    Returns
    -------
    FitHistory

    Notes
    -----
    Cost per epoch: one forward and backward pass per mini-batch, plus one forward pass over
    the validation conditions.  Memory: one batch of (batch, genes, 3) targets at a time.
    """
    started = time.perf_counter()
    history = FitHistory()
    weight_of_class = torch.as_tensor(class_weights(train, settings.class_weighting), device=device)
    # the fused kernel is several times faster than the per-tensor loop, on CPU and GPU alike
    optimiser = torch.optim.AdamW(
        network.parameters(),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        fused=True,
    )
    dtype = amp_dtype(device) if settings.mixed_precision else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    generator = torch.Generator().manual_seed(seed)
    lfc_weight = train.lfc_weight()
    best_state, best_f1, waited = None, -1.0, 0
    patience = settings.patience
    if warm:
        patience = settings.warm_patience or settings.patience
        if validation is not None and len(validation):
            best_f1 = validation_f1(network, validation, settings, device)
            best_state = _snapshot(network)
            history.best_epoch, history.best_f1 = 0, best_f1
    with _progress(quiet, description, settings.epochs) as progress:
        for epoch in range(1, settings.epochs + 1):
            network.train()
            losses = []
            for rows in batches(len(train), settings.batch_size, generator):
                inputs = SparseBatch.from_csr(train.x[rows], device)
                targets = _batch_targets(train, rows, device)
                weight = torch.as_tensor(train.weight[rows], device=device)
                lfc_w = torch.as_tensor(lfc_weight[rows], device=device)
                lfc_t = _batch_lfc(train, rows, lfc_scale, device)
                with autocast(device, dtype):
                    logits, lfc = network(inputs)
                loss = batch_loss(
                    logits,
                    lfc,
                    targets,
                    weight,
                    lfc_t,
                    lfc_w,
                    weight_of_class,
                    settings.lfc_loss_weight,
                )
                optimiser.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimiser.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimiser)
                    scaler.update()
                losses.append(float(loss.detach()))
            history.loss.append(float(np.mean(losses)) if losses else 0.0)
            f1 = None
            if validation is not None and len(validation):
                f1 = validation_f1(network, validation, settings, device)
                history.validation_f1.append(f1)
                if f1 > best_f1:
                    best_state, best_f1, waited = _snapshot(network), f1, 0
                    history.best_epoch, history.best_f1 = epoch, f1
                else:
                    waited += 1
            else:
                history.best_epoch = epoch
            progress(epoch, history.loss[-1], f1)
            if waited >= patience:
                history.stopped_early = True
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    history.seconds = time.perf_counter() - started
    return history


def _batch_targets(train: TrainingSet, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    if train.soft:
        return torch.as_tensor(train.targets[rows], device=device)
    labels = torch.as_tensor(train.targets[rows].astype(np.int64) + 1, device=device)
    return F.one_hot(labels, 3).float()


def _batch_lfc(
    train: TrainingSet, rows: np.ndarray, scale: float, device: torch.device
) -> torch.Tensor:
    if train.lfc is None:
        return torch.zeros(train.weight[rows].shape, device=device)
    values = np.nan_to_num(train.lfc[rows], nan=0.0, posinf=0.0, neginf=0.0) / scale
    return torch.as_tensor(values, device=device)


def _snapshot(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in network.state_dict().items()}


@contextlib.contextmanager
def _progress(
    quiet: bool, description: str, epochs: int
) -> Iterator[Callable[[int, float, float | None], None]]:
    """Yield ``update(epoch, loss, f1)`` for a rich bar over epochs; a no-op when ``quiet``."""
    if quiet:
        yield lambda epoch, loss, f1: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val F1 {task.fields[f1]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task(description, total=epochs, loss="-", f1="-")

        def update(epoch: int, loss: float, f1: float | None) -> None:
            shown = "-" if f1 is None else f"{f1:.4f}"
            bar.update(task, completed=epoch, loss=f"{loss:.4f}", f1=shown)

        yield update
