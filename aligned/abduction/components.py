"""Splitting the abduction problem into independent components.

A *group* is the set of decisions about the in-edges of one target gene ``g``: keep, remove or
flip each original in-edge, keep or drop each in-edge the search added, add each candidate.
Changing them changes the reach of ``g`` and, within ``k - 1`` further steps, of everything
downstream: the group's *region*.  Two groups interact when one's region meets the other's
region or the sources of its edges.  Groups that do not interact, with every other edge of the
KB held fixed, are independent: their best choices can be found separately and applied
together, and each is a small exact problem for clingo (``rules/abduce.lp``).

A :class:`Component` is plain arrays (picklable), so components can be solved in separate
processes or on separate machines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from aligned.abduction.state import DeductionState


@dataclass
class Component:
    """One independent part of the problem, ready to be written as ASP facts.

    Attributes
    ----------
    targets : numpy.ndarray of int64
        Genes whose in-edges are decided here.
    region : numpy.ndarray of int64
        Genes whose reach (and labels) the decisions can change.
    conditions : numpy.ndarray of int64
        Conditions in which they can change.
    original, candidates, current, fixed : numpy.ndarray of int64, shape (m, 3)
        Edges ``(source, target, sign)``: the editable edges of the original KB, the possible
        additions (edges the search added included), the component's edges in the current
        solution, and the edges into the region that stay as they are.
    seeds : numpy.ndarray of int64, shape (r, 4)
        ``(condition, gene, sign, distance)``: genes outside the region, reached from outside
        within ``k - 1`` steps, whose edges lead into it.
    perturbed : numpy.ndarray of int64, shape (p, 3)
        ``(condition, gene, sign)`` for perturbed genes inside the region.
    ground_size : int
        Estimated ground rule instances: conditions x k x 2 x edges.
    """

    targets: np.ndarray
    region: np.ndarray
    conditions: np.ndarray
    original: np.ndarray
    candidates: np.ndarray
    current: np.ndarray
    fixed: np.ndarray
    seeds: np.ndarray
    perturbed: np.ndarray
    ground_size: int = 0
    notes: dict = field(default_factory=dict)


def _downstream(adjacency: sp.csr_matrix, genes: np.ndarray, steps: int) -> np.ndarray:
    """Genes reachable from ``genes`` in 0..``steps`` steps (gene level, any sign)."""
    seen = np.zeros(adjacency.shape[0], dtype=bool)
    seen[genes] = True
    frontier = seen.copy()
    for _ in range(steps):
        following = np.asarray(adjacency.T @ frontier.astype(np.float32)).ravel() > 0
        frontier = following & ~seen
        if not frontier.any():
            break
        seen |= frontier
    return np.flatnonzero(seen)


class _UnionFind:
    def __init__(self, size: int):
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def build_components(
    state: DeductionState, targets: np.ndarray, candidates: np.ndarray
) -> list[Component]:
    """Independent components of the decisions about the in-edges of ``targets``.

    Parameters
    ----------
    state : DeductionState
        The current solution; every edge into a gene outside ``targets`` stays fixed.
    targets : array of int
        Genes whose in-edges are open to revision.
    candidates : array of int, shape (m, 3)
        Candidate additions; those into other genes are ignored.

    Returns
    -------
    list of Component
        Sorted by their smallest target gene.

    Notes
    -----
    Regions come from a breadth-first search over the current edges plus the candidates,
    ``k - 1`` steps from each target; interacting groups merge with a union-find.  Cost
    O(targets x (k x edges)) for the regions in the worst case, O(conditions x region x
    sources) for the facts.
    """
    problem = state.problem
    n, k = state.n, state.k
    targets = np.unique(np.asarray(targets, dtype=np.int64))
    original = problem.edges
    current = state.edges.array()
    candidates = np.asarray(candidates, dtype=np.int64).reshape(-1, 3)
    is_target = np.zeros(n, dtype=bool)
    is_target[targets] = True
    candidates = candidates[is_target[candidates[:, 1]]]
    everything = np.concatenate([current, candidates])
    adjacency = sp.csr_matrix(
        (np.ones(len(everything), dtype=np.float32), (everything[:, 0], everything[:, 1])),
        shape=(n, n),
    )
    editable = np.concatenate(
        [original[is_target[original[:, 1]]], current[is_target[current[:, 1]]], candidates]
    )
    editable = np.unique(editable, axis=0) if len(editable) else editable.reshape(0, 3)

    # groups: one per target; region and sources of each
    regions = [_downstream(adjacency, np.array([g]), k - 1) for g in targets.tolist()]
    sources = [editable[editable[:, 1] == g, 0] for g in targets.tolist()]
    union = _UnionFind(len(targets))
    owner_of_region: dict[int, int] = {}
    for i, region in enumerate(regions):
        for gene in region.tolist():
            j = owner_of_region.setdefault(gene, i)
            if j != i:
                union.union(i, j)
    for i, group_sources in enumerate(sources):
        for gene in np.unique(group_sources).tolist():
            if gene in owner_of_region:
                union.union(i, owner_of_region[gene])

    members: dict[int, list[int]] = {}
    for i in range(len(targets)):
        members.setdefault(union.find(i), []).append(i)
    table = state.source_conditions()
    distances = state.distances()
    perturbations = problem.perturbations.tocoo()
    components = []
    for group in members.values():
        comp_targets = targets[group]
        region = np.unique(np.concatenate([regions[i] for i in group]))
        in_region = np.zeros(n, dtype=bool)
        in_region[region] = True
        in_targets = np.zeros(n, dtype=bool)
        in_targets[comp_targets] = True
        comp_editable = editable[in_targets[editable[:, 1]]]
        comp_original = original[in_targets[original[:, 1]]]
        comp_current = current[in_targets[current[:, 1]]]
        original_keys = {tuple(edge) for edge in comp_original.tolist()}
        comp_candidates = np.array(
            [edge for edge in comp_editable.tolist() if tuple(edge) not in original_keys],
            dtype=np.int64,
        ).reshape(-1, 3)
        fixed = current[in_region[current[:, 1]] & ~in_targets[current[:, 1]]]
        edit_sources = np.unique(comp_editable[:, 0])
        conditions = np.unique(
            np.concatenate(
                [table.indices[table.indptr[u] : table.indptr[u + 1]] for u in edit_sources]
                + [np.zeros(0, dtype=np.int32)]
            )
        ).astype(np.int64)
        inside = in_region[perturbations.col] & np.isin(perturbations.row, conditions)
        perturbed = np.column_stack(
            [
                perturbations.row[inside],
                perturbations.col[inside],
                np.sign(perturbations.data[inside]).astype(np.int64),
            ]
        ).astype(np.int64)
        outside_sources = np.unique(np.concatenate([comp_editable[:, 0], fixed[:, 0]]))
        outside_sources = outside_sources[~in_region[outside_sources]]
        seeds = []
        for block, sign in ((0, 1), (1, -1)):
            states = outside_sources + block * n
            sub = distances[np.ix_(conditions, states)]
            rows, cols = np.nonzero(sub < k)
            seeds.append(
                np.column_stack(
                    [
                        conditions[rows],
                        outside_sources[cols],
                        np.full(len(rows), sign),
                        sub[rows, cols].astype(np.int64),
                    ]
                )
            )
        seeds = np.concatenate(seeds).astype(np.int64).reshape(-1, 4)
        n_edges = len(fixed) + len(comp_original) + len(comp_candidates)
        components.append(
            Component(
                targets=comp_targets,
                region=region,
                conditions=conditions,
                original=comp_original,
                candidates=comp_candidates,
                current=comp_current,
                fixed=fixed,
                seeds=seeds,
                perturbed=perturbed,
                ground_size=int(len(conditions) * k * 2 * max(n_edges, 1)),
            )
        )
    components.sort(key=lambda component: int(component.targets.min()))
    return components
