"""The MLP predictor: perturbation vector -> per-gene 3-class logits and an LFC."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aligned.predictor.base import Predictor
from aligned.predictor.training import SparseBatch


@dataclass(frozen=True)
class MLPSettings:
    """Architecture of the MLP (the ``[model]`` table of a preset).

    Attributes
    ----------
    hidden : int
        Width of every hidden layer.
    layers : int
        Number of hidden layers (>= 1).
    dropout : float
        Dropout after every hidden layer, in [0, 1).
    """

    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1:
            raise ValueError("hidden and layers must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


class MLPNetwork(nn.Module):
    """x -> hidden layers -> (logits per gene and class, standardised LFC per gene).

    The first layer is an EmbeddingBag over the perturbed genes weighted by their signs,
    i.e. a linear layer applied to the sparse perturbation vector without densifying it.
    """

    def __init__(self, n_inputs: int, n_outputs: int, settings: MLPSettings):
        super().__init__()
        self.n_outputs = n_outputs
        self.input = nn.EmbeddingBag(n_inputs, settings.hidden, mode="sum")
        self.input_bias = nn.Parameter(torch.zeros(settings.hidden))
        # the init a dense nn.Linear(n_inputs, hidden) would get, so an input never perturbed
        # in training stays near zero instead of N(0, 1) noise
        bound = 1.0 / math.sqrt(n_inputs)
        nn.init.uniform_(self.input.weight, -bound, bound)
        blocks: list[nn.Module] = [nn.GELU(), nn.Dropout(settings.dropout)]
        for _ in range(settings.layers - 1):
            blocks += [nn.Linear(settings.hidden, settings.hidden), nn.GELU()]
            blocks.append(nn.Dropout(settings.dropout))
        self.trunk = nn.Sequential(*blocks)
        self.logits = nn.Linear(settings.hidden, n_outputs * 3)
        self.lfc = nn.Linear(settings.hidden, n_outputs)

    def forward(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.input(batch.indices, batch.offsets, per_sample_weights=batch.values)
        hidden = self.trunk(hidden + self.input_bias)
        logits = self.logits(hidden).view(batch.size, self.n_outputs, 3)
        return logits, self.lfc(hidden)


class MLPPredictor(Predictor):
    """A multilayer perceptron over the signed perturbation vector (see :class:`Predictor`).

    It sees each input gene as an independent feature, so it can combine perturbations it
    was trained on but knows nothing about a gene never perturbed in training.
    """

    kind = "mlp"
    settings_type = MLPSettings

    def _new_network(self) -> nn.Module:
        return MLPNetwork(len(self.input_genes), len(self.genes), self.model)
