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

That is the ``exact`` label model.  Under the ``graded`` one (labels thresholded from measured
LFCs, :mod:`aligned.abduction.label_model`) the data costs are log-likelihood ratios, silent
genes cost nothing in the deduction's term, and every edge ``u -> v`` held by the revised KB
adds ``sum over conditions c perturbing u of direct[c, v]`` (:meth:`Problem.held_costs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from aligned.abduction.label_model import choose_label_model, graded_costs
from aligned.errors import InputError
from aligned.knowledge_base import KnowledgeBase

CLASSES = (-1, 0, 1)  # class l sits at cost[l + 1]
GRADED_EDIT_COSTS = (3.0, 3.0, 3.0)  # remove, flip, add, in nats (see EditCosts.graded)
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

    @classmethod
    def graded(cls) -> EditCosts:
        """Defaults under the ``graded`` label model, whose data costs are log-likelihood
        ratios: edit costs are then log prior odds (nats), 3 for every kind.  An edit needs
        evidence of about 20 : 1 for it: a single silent direct target (at most about 2.6
        nats on the linear benchmark) does not remove a curated edge, nor does a single
        response nothing explains add one unless its call is firm."""
        return cls(remove=GRADED_EDIT_COSTS[0], flip=GRADED_EDIT_COSTS[1], add=GRADED_EDIT_COSTS[2])

    def __post_init__(self):
        for name in ("remove", "flip", "add"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise InputError(f"the edit cost {name!r} must be a number > 0, got {value!r}")

    @classmethod
    def from_value(
        cls, value: EditCosts | Mapping[str, float] | None, label_model: str = "exact"
    ) -> EditCosts:
        """Accept an :class:`EditCosts`, a mapping of some of its fields, or None (the
        defaults of ``label_model``; a mapping's missing fields too)."""
        defaults = cls.graded() if label_model == "graded" else cls()
        if value is None:
            return defaults
        if isinstance(value, EditCosts):
            return value
        unknown = set(value) - {"remove", "flip", "add"}
        if unknown:
            raise InputError(
                f"unknown edit cost(s) {', '.join(sorted(unknown))}; use remove, flip, add"
            )
        given = {name: float(cost) for name, cost in value.items()}
        return replace(defaults, **given)

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
    conflict : numpy.ndarray of float32 or None
        Conditions x genes, ``graded`` label model only: what an entry reached with both signs
        costs (under ``exact`` it costs ``cost`` at label 0, the label such an entry gets).
    direct : numpy.ndarray of float32 or None
        Conditions x genes, ``graded`` label model only: what an edge out of a gene the
        condition perturbs costs at its target there (None under the ``exact`` model).
    label_model : str
        ``"exact"`` or ``"graded"``.
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
    conflict: np.ndarray | None = None
    direct: np.ndarray | None = None
    label_model: str = "exact"

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

    def entry_cost(
        self, plus: np.ndarray, minus: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        """What the entries ``(rows[i], cols[i])`` cost when reached with +1 (``plus``) and
        with -1 (``minus``): ``cost`` at their label, ``conflict`` where both signs reach
        them (``cost`` at label 0 under the exact model).  Arrays of one shape."""
        label = plus.astype(np.int64) - minus
        value = self.cost[label + 1, rows, cols].astype(np.float64)
        if self.conflict is not None:
            both = plus & minus
            value[both] = self.conflict[rows[both], cols[both]]
        return value

    def reach_cost(self, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
        """:meth:`entry_cost` of every entry at once (plus, minus: conditions x genes),
        float32, without index arrays."""
        neither = self.cost[1]
        value = np.where(plus, np.where(minus, self.conflict_cost(), self.cost[2]), neither)
        return np.where(minus & ~plus, self.cost[0], value)

    def cheapest_entry_cost(self) -> np.ndarray:
        """Conditions x genes: the least any deduction can cost at each entry."""
        least = self.cost.min(axis=0)
        return least if self.conflict is None else np.minimum(least, self.conflict)

    def conflict_cost(self) -> np.ndarray:
        """Conditions x genes: what an entry reached with both signs costs."""
        return self.cost[1] if self.conflict is None else self.conflict

    def objective_of_reach(self, plus: np.ndarray, minus: np.ndarray) -> float:
        """The data (and network) part of the objective for the reach of every entry
        (conditions x genes, bool)."""
        return float(self.reach_cost(plus, minus).sum(dtype=np.float64))

    def held_entries(
        self, u: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What holding each edge ``u[i] -> v[i]`` costs, condition by condition.

        Returns ``(i, condition, cost)`` triples, one per condition that perturbs ``u[i]``
        (none under the ``exact`` model).  O(edges x conditions per perturbed gene).
        """
        u = np.asarray(u, dtype=np.int64)
        v = np.asarray(v, dtype=np.int64)
        empty = np.zeros(0, dtype=np.int64)
        if self.direct is None or len(u) == 0:
            return empty, empty, np.zeros(0)
        columns = self._perturbed_by_gene()
        edge, position = concatenated_ranges(columns.indptr[u], columns.indptr[u + 1])
        condition = columns.indices[position].astype(np.int64)
        return edge, condition, self.direct[condition, v[edge]].astype(np.float64)

    def held_costs(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """What holding each edge ``u[i] -> v[i]`` costs in all (0 under ``exact``)."""
        edge, _, cost = self.held_entries(u, v)
        return np.bincount(edge, weights=cost, minlength=len(np.asarray(u)))

    def _perturbed_by_gene(self) -> sp.csc_matrix:
        if getattr(self, "_columns", None) is None:
            self._columns = sp.csc_matrix(self.perturbations)
            self._columns.sort_indices()
        return self._columns


def concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ranges ``starts[i]:ends[i]`` laid end to end: for each element, the range ``i`` it
    belongs to and its position.  Vectorised, O(total length); e.g. the entries of some rows
    of a CSR matrix, with ``indptr[rows]`` and ``indptr[rows + 1]``."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(ends, dtype=np.int64) - starts
    owner = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, starts[owner] + offsets


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
    label_model: str = "auto",
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
    label_model : {"auto", "exact", "graded"}
        How labels relate to the deduction (:mod:`aligned.abduction.label_model`).
        ``"auto"``: ``"graded"`` for labels thresholded from LFCs, ``"exact"`` otherwise.
        It also picks the default ``edit_costs``.

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
    model = choose_label_model(data, label_model)
    costs = EditCosts.from_value(edit_costs, model)
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
    direct = conflict = None
    if model == "graded":
        tau = float(data.label_rule.get("tau") or 0.0)
        if not tau > 0:
            raise InputError("the graded label model needs a label rule with a threshold tau")
        magnitude = np.zeros((n_conditions, n))
        magnitude[:, columns] = np.abs(np.nan_to_num(np.asarray(data.lfc, dtype=np.float64))) / tau
        confidence_joint = np.zeros((n_conditions, n), dtype=np.float32)
        confidence_joint[:, columns] = weights
        graded, direct, rates = graded_costs(
            X, _signed_edges(kb, index), k, observed, scored_joint, magnitude
        )
        cost = graded * confidence_joint[None]
        conflict = np.zeros((n_conditions, n), dtype=np.float32)  # some walk explains it
    else:
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
        if conflict is not None:  # such an entry's label is 0
            conflict[:, columns] += network_weight * (1.0 - proba[:, :, 1])
    perturbed = X.tocoo()
    cost[:, perturbed.row, perturbed.col] = 0.0  # a perturbed gene's own label is given
    if direct is not None:
        direct[perturbed.row, perturbed.col] = 0.0
        conflict[perturbed.row, perturbed.col] = 0.0

    edge_table = kb.edges
    edges = _signed_edges(kb, index)

    allowed_sources = np.zeros(n, dtype=bool)
    allowed_sources[np.unique(perturbed.col)] = True
    if sources == "all":
        allowed_sources[:] = True
    at_stake = (cost.max(axis=0) - cost.min(axis=0)).max(axis=0) > 0
    if direct is not None:
        at_stake |= (direct.max(axis=0) > 0) | (np.abs(conflict - cost[1]).max(axis=0) > 0)

    notes = {
        "conditions": n_conditions,
        "kb_genes": len(kb_genes),
        "data_genes": len(data_genes),
        "shared_genes": len(set(kb_genes) & set(data_genes)),
        "unknown_sign_edges_left_alone": int((edge_table["sign"] == 0).sum()),
        "perturbed_genes_outside_kb": len(perturbed_genes - set(kb_genes)),
        "label_model": model,
    }
    if model == "graded":
        notes["label_rates"] = rates.as_dict()
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
        conflict=conflict,
        direct=direct,
        label_model=model,
    )


def _signed_edges(kb: KnowledgeBase, index: dict[str, int]) -> np.ndarray:
    """The KB's +1/-1 edges as ``(source, target, sign)`` rows in the joint gene index."""
    signed = kb.edges[kb.edges["sign"] != 0]
    return np.column_stack(
        [
            signed["source"].map(index).to_numpy(dtype=np.int64),
            signed["target"].map(index).to_numpy(dtype=np.int64),
            signed["sign"].to_numpy(dtype=np.int64),
        ]
    ).reshape(-1, 3)
