"""The abduction problem: a KB, observations and their per-entry costs in one gene index.

:func:`build_problem` turns a :class:`~aligned.knowledge_base.KnowledgeBase` and a
:class:`~aligned.data.PerturbationData` (or a view of it) into a :class:`Problem`: plain arrays
that every solver shares and that pickle cheaply (DESIGN.md section 7: components must be
separable tasks).

The objective (DESIGN.md section 2, step 5) is

``J(KB') = sum_{c, g} cost[label_{KB'}(c, g), c, g] + sum_{edits} edit_cost(edit)``

where ``label_{KB'}`` is the KB's deduction at bound k (DESIGN.md section 1), and
``cost[l, c, g]`` is what predicting class ``l`` at condition ``c``, gene ``g`` costs:

* data mismatch: ``confidence(c, g)`` when ``l`` differs from the observed label of a scored
  entry, 0 otherwise;
* network disagreement (optional): ``network_weight * (1 - p(c, g, l))`` with ``p`` the
  network's class probabilities, on every entry but the perturbed genes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from aligned.errors import InputError
from aligned.knowledge_base import KnowledgeBase

CLASSES = (-1, 0, 1)  # class l sits at cost[l + 1]
SOURCE_POLICIES = ("perturbed", "regulators", "all")


@dataclass(frozen=True)
class EditCosts:
    """What each kind of edit adds to the objective.

    Attributes
    ----------
    remove, flip, add : float
        Cost of removing an edge, flipping its sign, adding a new one, in units of one fully
        confident label.  By default a removal or flip needs the evidence of one label and an
        addition that of two: a new edge that explains a single label is as likely to paper
        over another error as to be real.  All must be > 0, so that the revision of a KB that
        already agrees with the data is empty.
    """

    remove: float = 0.3
    flip: float = 1.2
    add: float = 1.2

    def __post_init__(self):
        for name in ("remove", "flip", "add"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise InputError(f"the edit cost {name!r} must be a number > 0, got {value!r}")

    @classmethod
    def from_value(cls, value: EditCosts | Mapping[str, float] | None) -> EditCosts:
        """Accept an :class:`EditCosts`, a mapping of some of its fields, or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, EditCosts):
            return value
        unknown = set(value) - {"remove", "flip", "add"}
        if unknown:
            raise InputError(
                f"unknown edit cost(s) {', '.join(sorted(unknown))}; use remove, flip, add"
            )
        return cls(**{name: float(cost) for name, cost in value.items()})

    def of_pair(self, original: frozenset[int], current: frozenset[int]) -> float:
        """The edit cost of turning one gene pair's signs ``original`` into ``current``.

        Notes
        -----
        The counting of :meth:`KnowledgeBase.diff`: one sign replaced by the other is a flip,
        otherwise each sign dropped is a removal and each sign gained an addition.
        """
        if original == current:
            return 0.0
        if len(original) == 1 and len(current) == 1:
            return self.flip
        return self.remove * len(original - current) + self.add * len(current - original)


@dataclass
class Problem:
    """Everything a solver needs, as arrays over one joint gene index.

    Attributes
    ----------
    genes : list of str
        The joint index: the KB's genes, then measured genes outside the KB, then perturbed
        genes that are neither.
    kb_genes : int
        How many leading entries of ``genes`` are the KB's.
    k : int
        Deduction bound.
    perturbations : scipy.sparse.csr_matrix
        Conditions x genes, entries -1 / +1 at the perturbed genes.
    cost : numpy.ndarray of float32, shape (3, conditions, genes)
        ``cost[l + 1, c, g]``: what predicting class ``l`` costs (module docstring).
    observed : numpy.ndarray of int8
        Conditions x genes, the observed labels (0 where not measured).
    scored : numpy.ndarray of bool
        Conditions x genes, the entries whose label counts.
    condition_ids : list of str
        One per condition.
    edges : numpy.ndarray of int64, shape (edges, 3)
        The KB's signed (+1/-1) edges as ``(source, target, sign)`` rows in the joint index;
        ``?`` edges never change a label, so solvers leave them out (and untouched).
    edit_costs : EditCosts
    sources : numpy.ndarray of bool
        Genes always allowed as the source of an added edge.
    source_policy : str
        ``"regulators"`` also allows, at any moment of the search, every gene that has an
        out-edge in the KB as revised so far (see :func:`build_problem`).
    at_stake : numpy.ndarray of bool
        Genes whose label costs something in some condition (any gene may still gain an
        in-edge: its targets' labels may be at stake).
    notes : dict
        What was left out while building, for the log.
    """

    genes: list[str]
    kb_genes: int
    k: int
    perturbations: sp.csr_matrix
    cost: np.ndarray
    observed: np.ndarray
    scored: np.ndarray
    condition_ids: list[str]
    edges: np.ndarray
    edit_costs: EditCosts
    sources: np.ndarray
    at_stake: np.ndarray
    source_policy: str = "perturbed"
    notes: dict = field(default_factory=dict)

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def n_conditions(self) -> int:
        return self.perturbations.shape[0]

    def original_pairs(self) -> dict[tuple[int, int], frozenset[int]]:
        """The KB's signs per gene pair ``(source, target)``."""
        pairs: dict[tuple[int, int], set[int]] = {}
        for u, v, e in self.edges.tolist():
            pairs.setdefault((u, v), set()).add(e)
        return {pair: frozenset(signs) for pair, signs in pairs.items()}

    def objective_of_labels(self, labels: np.ndarray) -> float:
        """The data (and network) part of the objective for deduced labels (C x genes)."""
        rows, cols = np.indices(labels.shape)
        return float(self.cost[labels.astype(np.int64) + 1, rows, cols].sum(dtype=np.float64))


def label_confidence(data, confidence: str | np.ndarray = "auto") -> np.ndarray:
    """Per-entry confidence of the observed labels, in (0, 1].

    Parameters
    ----------
    data : PerturbationData
        An unsealed data set (train / validation view).
    confidence : {"auto", "uniform", "lfc"} or array
        ``"uniform"``: 1 everywhere.  ``"lfc"``: the margin of ``|LFC|`` from the label
        threshold ``tau`` of ``data.label_rule``, ``0.5 + 0.5 * min(1, | |LFC| - tau | / tau)``:
        a call at the threshold weighs 0.5, one a full ``tau`` away (or more) weighs 1.
        ``"auto"``: ``"lfc"`` when the label rule records ``tau``, else ``"uniform"`` (the
        deduction protocol's labels are exact).  An array (conditions x genes) is used as
        given.

    Returns
    -------
    numpy.ndarray of float32, conditions x data genes
    """
    shape = (len(data), len(data.genes))
    if isinstance(confidence, np.ndarray):
        if confidence.shape != shape:
            raise InputError(f"confidence has shape {confidence.shape}, expected {shape}")
        if not (np.isfinite(confidence).all() and (confidence >= 0).all()):
            raise InputError("confidence weights must be finite and >= 0")
        return confidence.astype(np.float32)
    tau = data.label_rule.get("tau") if isinstance(data.label_rule, Mapping) else None
    if confidence == "auto":
        confidence = "lfc" if tau else "uniform"
    if confidence == "uniform":
        return np.ones(shape, dtype=np.float32)
    if confidence == "lfc":
        if not tau:
            raise InputError("confidence 'lfc' needs a label rule with a threshold tau")
        margin = np.abs(np.abs(data.lfc.astype(np.float64)) - tau) / tau
        return (0.5 + 0.5 * np.minimum(1.0, margin)).astype(np.float32)
    raise InputError(f"unknown confidence {confidence!r}; use auto, uniform, lfc or an array")


def build_problem(
    kb: KnowledgeBase,
    data,
    k: int = 3,
    *,
    network_proba: np.ndarray | None = None,
    network_weight: float = 0.5,
    confidence: str | np.ndarray = "auto",
    edit_costs: EditCosts | Mapping[str, float] | None = None,
    sources: str = "regulators",
) -> Problem:
    """Arrays of the abduction problem for ``kb`` against the conditions of ``data``.

    Parameters
    ----------
    kb : KnowledgeBase
        The KB to revise.
    data : PerturbationData
        The conditions to fit: an unsealed view (train, validation, or both).
    k : int
        Deduction bound, ``k >= 1``.
    network_proba : array, shape (conditions, data genes, 3), optional
        A network's class probabilities over (-1, 0, +1) for every condition of ``data``.
    network_weight : float
        Weight of the network-disagreement term.
    confidence : str or array
        Label confidence, see :func:`label_confidence`.
    edit_costs : EditCosts or mapping, optional
        Cost of each kind of edit.
    sources : {"regulators", "perturbed", "all"}
        Which genes may gain an out-edge.  ``"perturbed"``: genes perturbed in some
        condition (their own effect is what the data show).  ``"regulators"`` (default):
        those, plus genes with at least ``min_support`` out-edges that the data confirm
        (removing any of them would worsen the fit), so that a regulator whose knockout is
        not among the conditions, seen through the conditions that reach it, can gain its
        missing targets, while a gene with a false out-edge or two does not become a hub.
        ``"all"``: any gene.

    Raises
    ------
    InputError
        For k < 1, data without conditions, a KB and data sharing no gene, or a malformed
        argument.

    Notes
    -----
    Cost O(conditions x genes) time and memory (three float32 cost slices).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"the deduction bound k must be an integer >= 1, got {k!r}")
    if len(data) == 0:
        raise InputError("the data set holds no condition to fit")
    if sources not in SOURCE_POLICIES:
        raise InputError(f"unknown source policy {sources!r}; use {', '.join(SOURCE_POLICIES)}")
    costs = EditCosts.from_value(edit_costs)
    data_genes = list(data.genes)
    kb_genes = kb.genes
    perturbations = data.perturbations
    perturbed_genes = {gene for p in perturbations for gene in p}
    shared = set(kb_genes) & (set(data_genes) | perturbed_genes)
    if not shared:
        raise InputError(
            f"the KB ({len(kb_genes)} genes) and the data ({len(data_genes)} genes) share no gene"
        )
    genes = list(dict.fromkeys([*kb_genes, *data_genes, *sorted(perturbed_genes)]))
    index = {gene: i for i, gene in enumerate(genes)}
    n, n_conditions = len(genes), len(data)
    columns = np.array([index[gene] for gene in data_genes], dtype=np.int64)

    X = data.perturbation_matrix(genes)
    labels = np.asarray(data.labels, dtype=np.int8)
    scored = np.asarray(data.scored, dtype=bool)
    weights = label_confidence(data, confidence)

    observed = np.zeros((n_conditions, n), dtype=np.int8)
    observed[:, columns] = labels
    scored_joint = np.zeros((n_conditions, n), dtype=bool)
    scored_joint[:, columns] = scored & (weights > 0)
    cost = np.zeros((3, n_conditions, n), dtype=np.float32)
    for position, cls in enumerate(CLASSES):
        cost[position][:, columns] = np.where(scored & (labels != cls), weights, 0.0)
    if network_proba is not None:
        proba = np.asarray(network_proba, dtype=np.float32)
        if proba.shape != (n_conditions, len(data_genes), 3):
            raise InputError(
                f"network_proba has shape {proba.shape}, expected "
                f"({n_conditions}, {len(data_genes)}, 3) (conditions, genes, classes -1 0 +1)"
            )
        if not (np.isfinite(proba).all() and (proba >= 0).all()):
            raise InputError("network_proba must hold finite probabilities >= 0")
        if not np.isfinite(network_weight) or network_weight < 0:
            raise InputError(f"network_weight must be >= 0, got {network_weight!r}")
        for position in range(3):
            cost[position][:, columns] += network_weight * (1.0 - proba[:, :, position])
    perturbed = X.tocoo()
    cost[:, perturbed.row, perturbed.col] = 0.0  # a perturbed gene's own label is given

    edge_table = kb.edges
    signed = edge_table[edge_table["sign"] != 0]
    edges = np.column_stack(
        [
            signed["source"].map(index).to_numpy(dtype=np.int64),
            signed["target"].map(index).to_numpy(dtype=np.int64),
            signed["sign"].to_numpy(dtype=np.int64),
        ]
    ).reshape(-1, 3)

    allowed_sources = np.zeros(n, dtype=bool)
    allowed_sources[np.unique(perturbed.col)] = True
    if sources == "all":
        allowed_sources[:] = True
    at_stake = (cost.max(axis=0) - cost.min(axis=0)).max(axis=0) > 0

    notes = {
        "conditions": n_conditions,
        "kb_genes": len(kb_genes),
        "data_genes": len(data_genes),
        "shared_genes": len(set(kb_genes) & set(data_genes)),
        "unknown_sign_edges_left_alone": int((edge_table["sign"] == 0).sum()),
        "perturbed_genes_outside_kb": len(perturbed_genes - set(kb_genes)),
    }
    return Problem(
        genes=genes,
        kb_genes=len(kb_genes),
        k=int(k),
        perturbations=X,
        cost=cost,
        observed=observed,
        scored=scored_joint,
        condition_ids=list(data.ids),
        edges=edges,
        edit_costs=costs,
        sources=allowed_sources,
        at_stake=at_stake,
        source_policy=sources,
        notes=notes,
    )
