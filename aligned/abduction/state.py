"""Walk-count deduction state and the exact, batched evaluation of edits.

The solvers see a KB as signed edges over *signed states* (gene ``g`` reached with +1 is state
``g``, with -1 state ``n + g``, as in :mod:`aligned.reasoning.tensor`).  Instead of booleans
this module keeps **walk counts**: ``N_L(c, x)`` is the number of walks of length exactly ``L``
from condition ``c``'s perturbed states to state ``x``, so ``N_L = N_{L-1} T`` and ``x`` is
reached at bound k exactly when ``sum_{L=1..k} N_L(c, x) > 0`` (DESIGN.md section 1; ``?``
edges never change a label, so they are left out).

Counts turn an edit into a sparse update.  With ``T' = T + D`` (``D`` holds the +1/-1 entries
of the edges added or removed), the change of the walk counts obeys

``dN_0 = 0``,   ``dN_L = dN_{L-1} T + (N_{L-1} + dN_{L-1}) D``,

which is exact for any edit, short cycles and several gene pairs included, and whose support
is only what the edit changes.  A batch of edits is one matrix of rows (edit, condition): each
step is one sparse product for the whole batch plus a gather of the counts at the edited edges'
sources.  Only conditions in which some edited edge's source is reached within ``k - 1`` steps
(or perturbed) can change, so only those rows exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from aligned.abduction.edits import EdgeSet, Moves
from aligned.abduction.problem import Problem, concatenated_ranges

_HALF = 0.5  # counts are integers held as floats: "> 0" is "> 0.5"


def state_index(genes: np.ndarray, signs: np.ndarray, n: int) -> np.ndarray:
    """Signed-state index of ``(gene, sign)``: ``gene`` for +1, ``n + gene`` for -1."""
    return np.asarray(genes) + np.where(np.asarray(signs) > 0, 0, n)


@dataclass
class Evaluation:
    """Exact effect of each move of a :class:`Moves` batch, applied alone.

    Attributes
    ----------
    delta : numpy.ndarray of float64
        Change of the data (and network) part of the objective, per move.
    row_move, row_condition : numpy.ndarray of int64
        One row per (move, affected condition).
    row_delta : numpy.ndarray of float64
        The objective change within each row's condition.
    touched : scipy.sparse.coo_matrix
        Rows x states, non-zero where a move changes some walk count (at any length).
    """

    delta: np.ndarray
    row_move: np.ndarray
    row_condition: np.ndarray
    row_delta: np.ndarray
    touched: sp.coo_matrix
    n_moves: int

    def footprints(self, moves: np.ndarray, n_genes: int, n_conditions: int) -> list[np.ndarray]:
        """For each of ``moves``, the entries ``condition * genes + gene`` at which it changes
        some walk count (of either of the gene's states, at any length <= k).

        Two moves whose footprints are disjoint, and neither of which changes a count at the
        other's source genes, change the objective by the sum of their own changes.
        """
        moves = np.asarray(moves, dtype=np.int64)
        position = np.full(self.n_moves, -1, dtype=np.int64)
        position[moves] = np.arange(len(moves))
        owner = position[self.row_move[self.touched.row]]
        keep = owner >= 0
        block = n_conditions * n_genes
        keys = np.unique(
            owner[keep] * block
            + self.row_condition[self.touched.row[keep]] * n_genes
            + self.touched.col[keep].astype(np.int64) % n_genes
        )
        bounds = np.searchsorted(keys // block, np.arange(len(moves) + 1))
        values = keys % block
        return [values[bounds[i] : bounds[i + 1]] for i in range(len(moves))]


class DeductionState:
    """The current KB's walk counts and labels for every condition of a :class:`Problem`.

    Parameters
    ----------
    problem : Problem
    edges : EdgeSet
        The current signed edges (copied).

    Notes
    -----
    Memory: ``k`` float32 layers ``N_0 .. N_{k-1}`` and one float64 total, each conditions x
    2 genes, plus int8 labels, and the ``Q_r`` ball matrices of the candidate scoring (walks
    of length < k from every state, sparse).  :meth:`refresh` costs k sparse products over
    the conditions.
    """

    def __init__(self, problem: Problem, edges: EdgeSet):
        self.problem = problem
        self.k = problem.k
        self.n = problem.n_genes
        self.n_states = 2 * self.n
        self.edges = edges.copy()
        X = problem.perturbations.tocoo()
        self.start = sp.csr_matrix(
            (np.ones(X.nnz), (X.row, state_index(X.col, X.data, self.n))),
            shape=(problem.n_conditions, self.n_states),
        )
        C = problem.n_conditions
        self.layers = np.zeros((self.k, C, self.n_states), dtype=np.float32)
        self.total = np.zeros((C, self.n_states), dtype=np.float64)
        self.labels = np.zeros((C, self.n), dtype=np.int8)
        self._rebuild_graph()
        self.refresh()

    # ---- the KB side ------------------------------------------------------------------

    def _rebuild_graph(self) -> None:
        self.transition = self.edges.transition()
        self._q_stack = None

    @property
    def q_stack(self) -> sp.csr_matrix:
        """``[Q_0; Q_1; ...; Q_{k-1}]`` with ``Q_r = I + T + ... + T^r`` (walk counts)."""
        if self._q_stack is None:
            identity = sp.identity(self.n_states, format="csr", dtype=np.float64)
            cumulative, power = [identity], identity
            for _ in range(1, self.k):
                power = power @ self.transition
                cumulative.append((cumulative[-1] + power).tocsr())
            self._q_stack = sp.vstack(cumulative, format="csr")
        return self._q_stack

    def refresh(self, rows: np.ndarray | None = None) -> None:
        """Recompute walk counts and labels of ``rows`` (default: every condition)."""
        if rows is None:
            rows = np.arange(self.problem.n_conditions)
        if len(rows) == 0:
            return
        frontier = self.start[rows]
        self.layers[0, rows] = frontier.toarray()
        total = np.zeros((len(rows), self.n_states))
        for length in range(1, self.k + 1):
            frontier = frontier @ self.transition
            dense = frontier.toarray()
            if length < self.k:
                self.layers[length, rows] = dense
            total += dense
        self.total[rows] = total
        n = self.n
        self.labels[rows] = (total[:, :n] > _HALF).astype(np.int8) - (total[:, n:] > _HALF)
        self._source_conditions = None

    def apply(self, changes: list[tuple[int, int, int, int]]) -> None:
        """Apply edge changes and recompute every condition."""
        self.edges.apply(changes)
        self._rebuild_graph()
        self.refresh()

    def data_objective(self) -> float:
        """The data (and network) part of the objective for the current labels, plus what
        the held edges cost under the ``graded`` label model."""
        edges = self.edges.array()
        held = self.problem.held_costs(edges[:, 0], edges[:, 1]).sum()
        plus, minus = self.reached()
        return self.problem.objective_of_reach(plus, minus) + float(held)

    def reached(self) -> tuple[np.ndarray, np.ndarray]:
        """Conditions x genes (bool): reached with +1, with -1, within k steps."""
        return self.total[:, : self.n] > _HALF, self.total[:, self.n :] > _HALF

    def source_conditions(self) -> sp.csc_matrix:
        """Conditions x genes (CSC, bool): gene reached within k - 1 steps or perturbed."""
        if self._source_conditions is None:
            within = self.layers.sum(axis=0) > _HALF
            n = self.n
            self._source_conditions = sp.csc_matrix(within[:, :n] | within[:, n:])
        return self._source_conditions

    def reached_within(self) -> tuple[np.ndarray, np.ndarray]:
        """Conditions x genes (bool): reached with +1, with -1 within k - 1 steps (or
        perturbed)."""
        within = self.layers.sum(axis=0) > _HALF
        return within[:, : self.n], within[:, self.n :]

    def distances(self) -> np.ndarray:
        """Conditions x states (int8): the shortest walk to each state, up to ``k - 1``;
        ``k`` stands for "not within ``k - 1`` steps"."""
        distance = np.full(self.total.shape, self.k, dtype=np.int8)
        for length in range(self.k - 1, -1, -1):
            distance[self.layers[length] > _HALF] = length
        return distance

    # ---- evaluation ---------------------------------------------------------------------

    def _add_held(
        self, moves: Moves, row_move: np.ndarray, row_condition: np.ndarray, row_delta: np.ndarray
    ) -> None:
        """Add each change's held-edge cost (``graded`` model) to its (move, condition) row.

        The condition perturbs the edge's source, so that row always exists.
        """
        change, condition, cost = self.problem.held_entries(moves.u, moves.v)
        if len(change) == 0:
            return
        C = self.problem.n_conditions
        keys = row_move * C + row_condition
        rows = np.searchsorted(keys, moves.move[change] * C + condition)
        np.add.at(row_delta, rows, cost * moves.delta[change])

    def _rows(self, moves: Moves) -> tuple[np.ndarray, np.ndarray]:
        """(move, condition) rows: conditions reaching any edited edge's source in k - 1."""
        table = self.source_conditions()
        C = self.problem.n_conditions
        first = np.searchsorted(moves.move, np.arange(len(moves)))
        one_source = np.ones(len(moves), dtype=bool)
        np.logical_and.at(one_source, moves.move, moves.u == moves.u[first][moves.move])
        several = ~one_source[moves.move]
        pairs = np.unique(moves.move[several] * self.n + moves.u[several])
        move = np.concatenate([np.flatnonzero(one_source), pairs // self.n])
        source = np.concatenate([moves.u[first[one_source]], pairs % self.n])
        owner, position = concatenated_ranges(table.indptr[source], table.indptr[source + 1])
        keys = move[owner] * C + table.indices[position].astype(np.int64)
        if len(pairs):
            keys = np.unique(keys)
        else:
            keys = keys[np.argsort(keys, kind="stable")]
        return keys // C, keys % C

    def walk_changes(
        self, moves: Moves
    ) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
        """The change of every walk count under each move, by (move, condition) row.

        Returns
        -------
        total : scipy.sparse.csr_matrix
            Rows x states: change of ``sum_{L=1..k} N_L``.
        touched : scipy.sparse.csr_matrix
            Rows x states: ``sum_L |dN_L|``, whose support is every count that changes.
        row_move, row_condition : numpy.ndarray of int64

        Notes
        -----
        k steps of ``dN_L = dN_{L-1} T + (N_{L-1} + dN_{L-1}) D`` (module docstring).  Cost
        O(k x (changed entries x out-degree + rows x changes per move)).
        """
        n, S = self.n, self.n_states
        row_move, row_condition = self._rows(moves)
        n_rows = len(row_move)
        # every (row, change of the row's move) pair
        order = np.argsort(moves.move, kind="stable")
        first = np.searchsorted(moves.move[order], np.arange(len(moves) + 1))
        pair_row, position = concatenated_ranges(first[row_move], first[row_move + 1])
        change = order[position]
        condition = row_condition[pair_row]
        weight = moves.delta[change].astype(np.float64)
        moved = []  # (source state, target state) per sign of the source
        for s in (1, -1):
            moved.append(
                (
                    state_index(moves.u[change], np.full(len(change), s), n),
                    state_index(moves.v[change], s * moves.sign[change], n),
                )
            )
        delta = sp.csr_matrix((n_rows, S))
        total = sp.csr_matrix((n_rows, S))
        touched = sp.csr_matrix((n_rows, S))
        for length in range(1, self.k + 1):
            rows, cols, vals = [], [], []
            for source, target in moved:
                count = self.layers[length - 1][condition, source].astype(np.float64)
                if delta.nnz:
                    count = count + np.asarray(delta[pair_row, source]).ravel()
                keep = count != 0
                rows.append(pair_row[keep])
                cols.append(target[keep])
                vals.append(weight[keep] * count[keep])
            correction = sp.csr_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(n_rows, S),
            )
            delta = (delta @ self.transition + correction) if delta.nnz else correction
            delta.eliminate_zeros()
            total = total + delta
            touched = touched + abs(delta)
        total.eliminate_zeros()
        return total.tocsr(), touched.tocsr(), row_move, row_condition

    def evaluate(self, moves: Moves) -> Evaluation:
        """The exact change of the objective's data (and network) part under each move.

        Notes
        -----
        Cost of :meth:`walk_changes` plus O(changed entries) for the labels.
        """
        empty = np.zeros(0, dtype=np.int64)
        if len(moves) == 0:
            return Evaluation(np.zeros(0), empty, empty, np.zeros(0), sp.coo_matrix((0, 0)), 0)
        n = self.n
        change, touched, row_move, row_condition = self.walk_changes(moves)
        change = change.tocoo()
        old = self.total[row_condition[change.row], change.col]
        flipped = (old > _HALF) != (old + change.data > _HALF)
        c_row = change.row[flipped].astype(np.int64)
        c_state = change.col[flipped].astype(np.int64)
        key, inverse = np.unique(c_row * n + c_state % n, return_inverse=True)
        flip_plus = np.zeros(len(key), dtype=bool)
        flip_minus = np.zeros(len(key), dtype=bool)
        flip_plus[inverse[c_state < n]] = True
        flip_minus[inverse[c_state >= n]] = True
        k_row, k_gene = key // n, key % n
        k_condition = row_condition[k_row]
        plus = (self.total[k_condition, k_gene] > _HALF) ^ flip_plus
        minus = (self.total[k_condition, n + k_gene] > _HALF) ^ flip_minus
        old_plus = self.total[k_condition, k_gene] > _HALF
        old_minus = self.total[k_condition, n + k_gene] > _HALF
        entry = self.problem.entry_cost(plus, minus, k_condition, k_gene)
        entry -= self.problem.entry_cost(old_plus, old_minus, k_condition, k_gene)
        row_delta = np.bincount(k_row, weights=entry, minlength=len(row_move))
        self._add_held(moves, row_move, row_condition, row_delta)
        return Evaluation(
            delta=np.bincount(row_move, weights=row_delta, minlength=len(moves)),
            row_move=row_move,
            row_condition=row_condition,
            row_delta=row_delta,
            touched=touched.tocoo(),
            n_moves=len(moves),
        )
