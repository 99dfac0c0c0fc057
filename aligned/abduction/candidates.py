"""Candidate edits, generated vectorised from the current deduction and the observations.

Three kinds (DESIGN.md section 2, step 5):

* **remove / flip** every signed edge whose source some condition reaches within ``k - 1``
  steps (or perturbs): only those edges can change a label.  Edges the search added are
  always candidates for removal (taking one back refunds its cost), and every original edge
  the search removed is a candidate for restoring.
* **add** ``u -> v`` with sign ``e``: it carries ``(v, s e)`` into every condition in which
  ``u`` is reached with sign ``s`` within ``k - 1`` steps, and from there along the KB.  Its
  first-order score for all pairs at once comes from sparse products of the source-distance
  indicators with the per-state gains summed over balls (:func:`addition_scores`).
* **compound**: an addition together with the removal of the target's in-edges that carry a
  contrary sign where the addition applies (a false edge standing in for a missing one).

Sources of additions follow the problem's source policy (:func:`allowed_sources`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from aligned.abduction.edits import Moves
from aligned.abduction.state import _HALF, DeductionState


def _pairs_matrix(state: DeductionState) -> sp.csr_matrix:
    """Genes x genes (bool, sparse): the pairs that carry a signed edge now."""
    n = state.n
    pairs = np.array(list(state.edges.pairs), dtype=np.int64).reshape(-1, 2)
    return sp.csr_matrix(
        (np.ones(len(pairs), dtype=bool), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    )


def edge_moves(
    state: DeductionState, original_edges: np.ndarray, added_by_search: np.ndarray
) -> Moves:
    """Remove and flip every visible edge; restore every visible original edge now absent.

    Parameters
    ----------
    state : DeductionState
    original_edges : array of int, shape (m, 3)
        The KB's signed edges.
    added_by_search : array of bool
        Per current edge (``state.edges.array()`` order): not in the original KB.

    Notes
    -----
    An edge is visible when some condition reaches its source within ``k - 1`` steps; edges
    the search added stay removable even when invisible (removing them refunds their cost).
    Vectorised: O(edges log edges).
    """
    n = state.n
    visible = np.diff(state.source_conditions().indptr) > 0
    edges = state.edges.array()
    u, v, e = edges[:, 0], edges[:, 1], edges[:, 2]
    removable = visible[u] | added_by_search
    pair = u * n + v
    unique_pairs, counts = np.unique(pair, return_counts=True)
    single = counts[np.searchsorted(unique_pairs, pair)] == 1
    flippable = visible[u] & single
    # original edges absent now, on a visible source, that are not a flipped single edge
    current_keys = (pair * 2 + (e > 0)) if len(edges) else np.zeros(0, dtype=np.int64)
    ou, ov, oe = original_edges[:, 0], original_edges[:, 1], original_edges[:, 2]
    original_pair = ou * n + ov
    absent = ~np.isin(original_pair * 2 + (oe > 0), current_keys)
    original_unique, original_counts = np.unique(original_pair, return_counts=True)
    original_single = original_counts[np.searchsorted(original_unique, original_pair)] == 1
    flipped = (
        original_single
        & np.isin(original_pair * 2 + (oe < 0), current_keys)
        & np.isin(original_pair, unique_pairs[counts == 1])
    )
    restorable = absent & ~flipped & visible[ou]
    rows = [
        np.column_stack([u, v, e, -np.ones_like(e)])[removable],
        np.column_stack([u, v, e, -np.ones_like(e)])[flippable],
        np.column_stack([ou, ov, oe, np.ones_like(oe)])[restorable],
    ]
    n_remove, n_flip, n_restore = (len(part) for part in rows)
    flip_back = rows[1].copy()
    flip_back[:, 2] *= -1
    flip_back[:, 3] = 1
    first = np.concatenate(rows)
    move_ids = np.arange(len(first))
    # a flip is two changes of one move: removal of the edge, addition of the other sign
    flip_ids = np.arange(n_remove, n_remove + n_flip)
    changes = np.concatenate([first, flip_back])
    owners = np.concatenate([move_ids, flip_ids])
    order = np.argsort(owners, kind="stable")
    changes, owners = changes[order], owners[order]
    kinds = ["remove"] * n_remove + ["flip"] * n_flip + ["add"] * n_restore
    return Moves(owners, changes[:, 0], changes[:, 1], changes[:, 2], changes[:, 3], kinds)


def allowed_sources(state: DeductionState, supported: np.ndarray | None = None) -> np.ndarray:
    """Genes that may gain an out-edge: the problem's sources, plus (policy ``regulators``)
    the genes whose out-edges the data confirm (``supported``)."""
    allowed = state.problem.sources.copy()
    if supported is not None and state.problem.source_policy == "regulators":
        allowed |= supported
    return allowed


def entry_gains(state: DeductionState) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry objective change when a gene also becomes reached with +1, or with -1.

    Returns
    -------
    gain_plus, gain_minus : numpy.ndarray of float32, conditions x genes
        Zero where that sign already reaches the gene.
    """
    problem = state.problem
    plus, minus = state.reached()
    now = problem.reach_cost(plus, minus)

    def gain(new_plus: np.ndarray, new_minus: np.ndarray) -> np.ndarray:
        return problem.reach_cost(new_plus, new_minus) - now

    return gain(np.ones_like(plus), minus), gain(plus, np.ones_like(minus))


def addition_scores(
    state: DeductionState, supported: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First-order objective change of every allowed addition ``u -> v`` (both signs).

    Parameters
    ----------
    state : DeductionState
    supported : array of bool, optional
        Genes the ``regulators`` source policy adds to the allowed sources.

    Returns
    -------
    sources, targets : numpy.ndarray of int64
        The allowed sources (reached in some condition) and every gene as a target.
    scores : numpy.ndarray of float32, shape (2, sources, targets)
        ``scores[0]`` for sign +1, ``scores[1]`` for -1; ``inf`` where the pair already
        carries an edge or is a self-loop.

    Notes
    -----
    Let ``gain(c, x)`` be the change of the objective when state ``x`` becomes reached in
    condition ``c`` (0 if it already is), and ``ball_r(y)`` the states within ``r`` steps of
    ``y``.  The edge brings ``(v, s e)`` at distance ``a + 1`` into each condition in which
    ``u`` is first reached with sign ``s`` at distance ``a``, and from there
    ``ball_{k-1-a}(v, s e)``, so

    ``score(u, v, e) = sum_c sum_{s, a} [dist_c(u, s) = a]
    sum_{x in ball_{k-1-a}(v, s e)} gain(c, x)``.

    Gains add state by state (both states of one gene, overlapping balls), which the exact
    evaluation then corrects.  Cost: k products ``ball_r @ gain``, O(ball entries x
    conditions), and 2k products of the sparse distance indicators with them, O(reached
    (source, condition) pairs x states).
    """
    problem = state.problem
    n, k, S = state.n, state.k, state.n_states
    gain_plus, gain_minus = entry_gains(state)
    gain = np.concatenate([gain_plus, gain_minus], axis=1).astype(np.float32)
    plus, minus = state.reached_within()
    sources = np.flatnonzero(allowed_sources(state, supported) & (plus | minus).any(axis=0))
    targets = np.arange(n)
    if len(targets) == 0 or len(sources) == 0:
        return sources, targets, np.zeros((2, len(sources), len(targets)), dtype=np.float32)
    columns = np.concatenate([sources, sources + n])
    seen = np.zeros((problem.n_conditions, len(columns)), dtype=bool)
    totals = np.zeros((len(columns), S), dtype=np.float32)
    for a in range(k):
        now = state.layers[a][:, columns] > _HALF
        first_here = sp.csr_matrix((now & ~seen).T.astype(np.float32))
        seen |= now
        if first_here.nnz == 0:
            continue
        radius = k - 1 - a
        ball = state.q_stack[radius * S : (radius + 1) * S]
        ball = sp.csr_matrix(
            (np.ones(ball.nnz, dtype=np.float32), ball.indices, ball.indptr), shape=ball.shape
        )
        ball_gain = np.asarray(ball @ gain.T).T  # conditions x states
        totals += np.asarray(first_here @ ball_gain)
    from_plus, from_minus = totals[: len(sources)], totals[len(sources) :]
    scores = np.stack(
        [
            from_plus[:, targets] + from_minus[:, n + targets],
            from_plus[:, n + targets] + from_minus[:, targets],
        ]
    )
    taken = _pairs_matrix(state)[sources][:, targets].toarray()
    taken |= sources[:, None] == targets[None, :]
    scores[:, taken] = np.inf
    return sources, targets, scores


def best_additions(
    scores: np.ndarray, per_target: int, limit: int | None, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``per_target`` best sources of each (sign, target) column scoring below
    ``threshold``, at most ``limit`` in all, best first: (sign index, source index, target
    index)."""
    if scores.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    depth = min(per_target, scores.shape[1])
    if depth < scores.shape[1]:
        part = np.argpartition(scores, depth - 1, axis=1)[:, :depth, :]
        part_scores = np.take_along_axis(scores, part, axis=1)
        within = np.argsort(part_scores, axis=1, kind="stable")
        order = np.take_along_axis(part, within, axis=1)
    else:
        order = np.argsort(scores, axis=1, kind="stable")
    best = np.take_along_axis(scores, order, axis=1)
    sign_index, rank, target_index = np.nonzero(best < threshold)
    keep = np.argsort(best[sign_index, rank, target_index], kind="stable")[:limit]
    source_index = order[sign_index[keep], rank[keep], target_index[keep]]
    return sign_index[keep], source_index, target_index[keep]


def addition_moves(
    state: DeductionState,
    limit: int,
    per_target: int = 3,
    supported: np.ndarray | None = None,
) -> Moves:
    """The most promising additions: at most ``per_target`` sources per (target, sign), and
    ``limit`` in all, among those whose first-order score beats the cost of adding."""
    sources, targets, scores = addition_scores(state, supported)
    sign_index, source_index, target_index = best_additions(
        scores, per_target, limit, -state.problem.edit_costs.add
    )
    signs = np.where(sign_index == 0, 1, -1)
    moves = [
        [(int(sources[s]), int(targets[t]), int(e), 1)]
        for s, t, e in zip(source_index, target_index, signs)
    ]
    return Moves.build(moves, ["add"] * len(moves))


def compound_moves(state: DeductionState, additions: Moves) -> Moves:
    """Each addition plus the removal of the target's in-edges that contradict it.

    An in-edge ``x -> v`` of sign ``f`` contradicts the addition ``u -> v`` when, in a
    condition that reaches ``u`` within ``k - 1`` steps, it carries to ``v`` a sign that
    disagrees with the observed label there.  Additions without such in-edges are dropped.
    """
    problem = state.problem
    table = state.source_conditions()
    plus, minus = state.reached_within()
    incoming: dict[int, list[tuple[int, int]]] = {}
    for (x, v), signs in state.edges.pairs.items():
        for f in signs:
            incoming.setdefault(v, []).append((x, f))
    moves, kinds = [], []
    for changes in additions.grouped():
        (u, v, _, _), *_ = changes
        conditions = table.indices[table.indptr[u] : table.indptr[u + 1]]
        if len(conditions) == 0 or v not in incoming:
            continue
        observed = problem.observed[conditions, v]
        scored = problem.scored[conditions, v]
        removals = []
        for x, f in incoming[v]:
            carried_plus = (plus[conditions, x] & (f > 0)) | (minus[conditions, x] & (f < 0))
            carried_minus = (minus[conditions, x] & (f > 0)) | (plus[conditions, x] & (f < 0))
            wrong = scored & ((carried_plus & (observed != 1)) | (carried_minus & (observed != -1)))
            if wrong.any():
                removals.append((x, v, f, -1))
        if removals:
            moves.append(changes + removals)
            kinds.append("compound")
    return Moves.build(moves, kinds)
