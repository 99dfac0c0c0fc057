"""The GNN predictor: signed message passing over the knowledge base's regulatory graph.

A perturbation enters as a learned signal vector, times its sign (-1 loss, +1 gain), at each
perturbed gene.  ``layers`` rounds of message passing carry the signal along the KB's edges,
with separate weights for activation, repression and unknown-sign edges.  A per-gene readout
combines each output gene's learned embedding with the signal that reached it into three
logits and an LFC.  The signal and the propagation weights are shared by all genes, so the
network predicts the effect of perturbing a gene it never saw perturbed: the graph carries it.

Why the propagation is linear: only the per-condition signal is carried through the graph,
in a few channels, while everything gene-specific sits in the readout.  That keeps a layer
at O(edges * batch * signal) sparse work, several times cheaper than propagating full
nonlinear node states, and it gives the prior of linear response theory: a double
perturbation's signal is the sum of the singles', a gain is the mirror of a loss, and an
unperturbed condition carries no signal at all.  The nonlinearity (thresholds, saturation,
gene-specific sensitivity) is in the readout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aligned.errors import InputError
from aligned.predictor.base import Predictor
from aligned.predictor.training import SparseBatch

RELATIONS = (1, -1, 0)  # activation, repression, unknown sign
ADJACENCY = ("adjacency_activation", "adjacency_repression", "adjacency_unknown")
AGGREGATIONS = ("mean", "sum", "sqrt")


@dataclass(frozen=True)
class GNNSettings:
    """Architecture of the GNN (the ``[model]`` table of a preset).

    Attributes
    ----------
    hidden : int
        Width of the gene embeddings and of the readout's hidden layer.
    signal : int
        Channels of the perturbation signal carried through the graph.
    layers : int
        Rounds of message passing: how many edges a perturbation's effect can travel
        (match the deduction bound ``k``).
    dropout : float
        Dropout in the readout, in [0, 1).
    aggregation : str
        How a gene combines its regulators' messages: ``"mean"`` (divide by the in-degree),
        ``"sqrt"`` (divide by its square root) or ``"sum"``.
    """

    hidden: int = 32
    signal: int = 8
    layers: int = 3
    dropout: float = 0.0
    aggregation: str = "mean"

    def __post_init__(self) -> None:
        if min(self.hidden, self.signal, self.layers) < 1:
            raise ValueError("hidden, signal and layers must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}")


@dataclass
class SignedGraph:
    """The KB as integer edge arrays over a node index.

    Attributes
    ----------
    genes : list of str
        The nodes: the predictor's fixed genes (outputs, then other inputs) first, then KB
        genes that are neither (hidden nodes).
    source, target : numpy.ndarray of int64
        Node index of each edge's ends.
    sign : numpy.ndarray of int8
        +1, -1, or 0 for unknown.
    """

    genes: list[str]
    source: np.ndarray
    target: np.ndarray
    sign: np.ndarray

    @classmethod
    def from_kb(cls, kb: Any, fixed_genes: Sequence[str]) -> SignedGraph:
        """Index a KnowledgeBase (anything with ``genes`` and an ``edges`` table)."""
        fixed = list(fixed_genes)
        known = set(fixed)
        genes = fixed + [gene for gene in kb.genes if gene not in known]
        index = {gene: node for node, gene in enumerate(genes)}
        edges = kb.edges
        try:
            source = np.array([index[gene] for gene in edges["source"]], dtype=np.int64)
            target = np.array([index[gene] for gene in edges["target"]], dtype=np.int64)
        except KeyError as error:
            raise InputError(f"edge endpoint {error.args[0]!r} is not a gene of the KB") from None
        sign = np.sign(edges["sign"].to_numpy(dtype=np.int64)).astype(np.int8)
        return cls(genes, source, target, sign)

    def adjacency(self, aggregation: str) -> list[torch.Tensor]:
        """One normalised sparse adjacency per relation of ``RELATIONS``, each (nodes, nodes).

        Row ``t`` of relation ``r`` holds the incoming edges of node ``t`` that have sign
        ``r``.  Entries are ``1 / in_degree(t)`` (``"mean"``, the degree counted over all
        relations), ``1 / sqrt(in_degree(t))`` (``"sqrt"``) or 1 (``"sum"``).  Sparse COO,
        memory O(edges).
        """
        nodes = len(self.genes)
        in_degree = np.bincount(self.target, minlength=nodes).astype(np.float64)
        degree = np.maximum(in_degree[self.target], 1.0)
        values = {"mean": 1.0 / degree, "sqrt": 1.0 / np.sqrt(degree), "sum": np.ones_like(degree)}
        weight = values[aggregation]
        matrices = []
        for sign in RELATIONS:
            chosen = self.sign == sign
            matrix = torch.sparse_coo_tensor(
                torch.as_tensor(np.stack([self.target[chosen], self.source[chosen]])),
                torch.as_tensor(weight[chosen], dtype=torch.float32),
                size=(nodes, nodes),
                check_invariants=True,
            )
            matrices.append(matrix.coalesce())
        return matrices

    def to_payload(self) -> dict[str, Any]:
        """The graph as checkpoint content (lists and tensors only)."""
        return {
            "genes": list(self.genes),
            "source": torch.as_tensor(self.source),
            "target": torch.as_tensor(self.target),
            "sign": torch.as_tensor(self.sign),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SignedGraph:
        return cls(
            list(payload["genes"]),
            payload["source"].numpy().astype(np.int64),
            payload["target"].numpy().astype(np.int64),
            payload["sign"].numpy().astype(np.int8),
        )


class SignedPropagation(nn.Module):
    """One round: ``s <- s W0 + (A+ s) W+ + (A- s) W- + (A? s) W?``, linear and bias-free.

    ``A+``, ``A-`` and ``A?`` are the normalised activation, repression and unknown-sign
    adjacencies; a weight for each lets the network learn that repression flips the
    signal and an unknown edge only says "something changes".  ``W0`` keeps what a gene
    already carries, so after ``L`` rounds the signal holds every walk of length <= ``L``.
    """

    def __init__(self, channels: int):
        super().__init__()
        # [W0 | W+ | W- | W?] side by side, stored (out, in) as nn.Linear stores its weight
        self.weight = nn.Parameter(torch.empty(channels, (1 + len(RELATIONS)) * channels))
        bound = 1.0 / math.sqrt(channels)  # nn.Linear's default range
        nn.init.uniform_(self.weight, -bound, bound)
        with torch.no_grad():  # start close to "keep the signal" so early layers pass it on
            self.weight[:, :channels] += torch.eye(channels)

    def forward(self, signal: torch.Tensor, adjacency: Sequence[torch.Tensor]) -> torch.Tensor:
        nodes, batch, channels = signal.shape
        flat = signal.reshape(nodes, batch * channels)
        parts = [flat] + [torch.sparse.mm(matrix, flat) for matrix in adjacency]
        # one product over [s, A+ s, A- s, A? s]: with few channels a single wide product
        # is faster than four thin ones (measured on CPU)
        stacked = torch.stack([part.view(-1, channels) for part in parts], dim=1)
        update = F.linear(stacked.view(-1, len(parts) * channels), self.weight)
        return update.view(nodes, batch, channels)


class GNNNetwork(nn.Module):
    """Signed injection -> ``layers`` x :class:`SignedPropagation` -> per-gene readout.

    The signal is held as (nodes, batch, channels): every condition of a mini-batch runs
    through the same sparse products at once.  Memory O(nodes * batch * signal + edges +
    outputs * batch * hidden); time per batch O(layers * edges * batch * signal + outputs
    * batch * hidden * signal).
    """

    def __init__(
        self, n_outputs: int, input_nodes: np.ndarray, graph: SignedGraph, settings: GNNSettings
    ):
        super().__init__()
        self.n_outputs = n_outputs
        self.aggregation = settings.aggregation
        self.injection = nn.Parameter(torch.randn(settings.signal) / math.sqrt(settings.signal))
        props = [SignedPropagation(settings.signal) for _ in range(settings.layers)]
        self.propagation = nn.ModuleList(props)
        self.embedding = nn.Parameter(torch.randn(n_outputs, settings.hidden) * 0.1)
        self.signal_in = nn.Linear(settings.signal, settings.hidden, bias=False)
        self.readout = nn.Sequential(
            nn.GELU(), nn.Dropout(settings.dropout), nn.Linear(settings.hidden, 4)
        )
        self.output_bias = nn.Parameter(torch.zeros(n_outputs, 4))
        self.register_buffer("input_nodes", torch.as_tensor(input_nodes), persistent=False)
        for name in ADJACENCY:
            self.register_buffer(name, torch.empty(0), persistent=False)
        self.set_graph(graph)

    def set_graph(self, graph: SignedGraph) -> None:
        """Propagate over ``graph`` from now on; its first nodes are the outputs, then inputs."""
        device = self.injection.device
        for name, matrix in zip(ADJACENCY, graph.adjacency(self.aggregation)):
            setattr(self, name, matrix.to(device))

    def adjacency(self) -> list[torch.Tensor]:
        """The sparse adjacencies of activation, repression and unknown-sign edges."""
        return [getattr(self, name) for name in ADJACENCY]

    def forward(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        adjacency = self.adjacency()
        nodes = adjacency[0].shape[0]
        where = (self.input_nodes[batch.indices], batch.row_of_entry())
        # sparse products lack reduced-precision kernels on some devices: propagate in float32
        with torch.autocast(batch.values.device.type, enabled=False):
            signs = torch.zeros(nodes, batch.size, device=batch.values.device)
            signs.index_put_(where, batch.values.float(), accumulate=True)
            signal = signs[:, :, None] * self.injection.float()
            for layer in self.propagation:
                signal = layer(signal, adjacency)
        reached = self.signal_in(signal[: self.n_outputs])  # (genes, batch, hidden)
        out = self.readout(reached + self.embedding[:, None, :]) + self.output_bias[:, None, :]
        out = out.permute(1, 0, 2)
        return out[..., :3], out[..., 3]


class GNNPredictor(Predictor):
    """A GNN whose message passing runs on a knowledge base's graph (see :class:`Predictor`).

    Parameters
    ----------
    genes, model, training, device, seed, quiet
        As for :class:`Predictor`.
    kb : KnowledgeBase, optional
        The graph; may be given later with :meth:`set_graph`, before :meth:`fit`.
    input_genes : sequence of str, optional
        Genes that can be perturbed; defaults to ``genes`` followed by the KB's other genes
        (a regulator that is not measured can still be perturbed).

    Notes
    -----
    The node index is the output genes, then the other input genes, then the KB's genes
    that are neither (hidden nodes: they pass the signal on but are not predicted).  Only
    the sparse adjacencies grow with the graph: nothing genes x genes is ever dense.
    """

    kind = "gnn"
    settings_type = GNNSettings

    def __init__(
        self,
        genes: Sequence[str],
        model: GNNSettings | None = None,
        training: Any = None,
        *,
        kb: Any = None,
        input_genes: Sequence[str] | None = None,
        **options: Any,
    ):
        if input_genes is None and kb is not None:
            input_genes = list(dict.fromkeys([*genes, *kb.genes]))
        super().__init__(genes, model, training, input_genes=input_genes, **options)
        self.graph: SignedGraph | None = None
        if kb is not None:
            self.set_graph(kb)

    def fixed_genes(self) -> list[str]:
        """The nodes every graph starts with: output genes, then the other input genes."""
        return list(dict.fromkeys([*self.genes, *self.input_genes]))

    def set_graph(self, kb: Any) -> None:
        """Run message passing over ``kb`` from now on (e.g. a revised KB between fits).

        The learned weights stay and apply to the new graph at once; fit again to adapt them
        (a refinement loop retrains after every revision).
        """
        self.graph = SignedGraph.from_kb(kb, self.fixed_genes())
        if self.network is not None:
            self.network.set_graph(self.graph)

    def _before_fit(self) -> None:
        if self.graph is None:
            raise InputError("the GNN has no graph: pass kb= or call set_graph(kb) before fit")

    def _new_network(self) -> nn.Module:
        fixed = self.fixed_genes()
        position = {gene: node for node, gene in enumerate(fixed)}
        input_nodes = np.array([position[gene] for gene in self.input_genes], dtype=np.int64)
        return GNNNetwork(len(self.genes), input_nodes, self.graph, self.model)

    def _extra_state(self) -> dict[str, Any]:
        return {"graph": self.graph.to_payload()}

    def _restore_extra_state(self, payload: dict[str, Any]) -> None:
        self.graph = SignedGraph.from_payload(payload["graph"])
