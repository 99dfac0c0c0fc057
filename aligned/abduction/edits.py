"""Edge sets and edits: what the solvers change, and what each change costs.

An :class:`EdgeSet` holds the signed edges of a KB under revision, by ordered gene pair (a
dual pair holds both signs).  A :class:`Moves` batch lists candidate edits, each a list of
edge changes ``(u, v, sign, delta)``: ``delta`` +1 adds the edge, -1 removes it, so a flip is
a removal plus an addition on one pair.  Edit costs always count from the original KB, the way
:meth:`~aligned.knowledge_base.KnowledgeBase.diff` counts changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from aligned.abduction.problem import EditCosts
from aligned.reasoning import tensor

Change = tuple[int, int, int, int]
SIGN_BIT = {1: 1, -1: 2}  # a pair's signs as a 2-bit mask: 1 activation, 2 repression, 3 dual


def _mask(signs: frozenset[int]) -> int:
    return sum(SIGN_BIT[sign] for sign in signs)


class EdgeSet:
    """The solver's mutable set of signed edges, by ordered gene pair.

    Parameters
    ----------
    n : int
        Number of genes.
    edges : array of int, shape (m, 3)
        ``(source, target, sign)`` rows, sign +1 or -1.
    """

    def __init__(self, n: int, edges: np.ndarray):
        self.n = n
        self.pairs: dict[tuple[int, int], frozenset[int]] = {}
        for u, v, e in np.asarray(edges, dtype=np.int64).reshape(-1, 3).tolist():
            self.pairs[(u, v)] = self.pairs.get((u, v), frozenset()) | {e}
        self._array: np.ndarray | None = None

    def copy(self) -> EdgeSet:
        clone = EdgeSet(self.n, np.empty((0, 3), dtype=np.int64))
        clone.pairs = dict(self.pairs)
        return clone

    def signs(self, u: int, v: int) -> frozenset[int]:
        return self.pairs.get((u, v), frozenset())

    def apply(self, changes: list[Change]) -> None:
        """Apply ``(u, v, sign, delta)`` changes: delta +1 adds the edge, -1 removes it."""
        for u, v, e, delta in changes:
            signs = self.pairs.get((u, v), frozenset())
            signs = signs | {e} if delta > 0 else signs - {e}
            if signs:
                self.pairs[(u, v)] = signs
            else:
                self.pairs.pop((u, v), None)
        self._array = None

    def array(self) -> np.ndarray:
        """The edges as a ``(m, 3)`` int64 array sorted by source, target, sign."""
        if self._array is None:
            rows = [(u, v, e) for (u, v), signs in self.pairs.items() for e in signs]
            array = np.array(rows, dtype=np.int64).reshape(-1, 3)
            self._array = array[np.lexsort((array[:, 2], array[:, 1], array[:, 0]))]
        return self._array

    def transition(self) -> sp.csr_matrix:
        """The ``2n x 2n`` signed-state transition matrix (see ``tensor.transition_matrix``)."""
        edges = self.array()
        matrix = tensor.transition_matrix(edges[:, 0], edges[:, 1], edges[:, 2], self.n)
        return matrix.astype(np.float64)

    def sources(self) -> np.ndarray:
        """Genes with at least one out-edge."""
        return np.unique(self.array()[:, 0])

    def __len__(self) -> int:
        return len(self.array())


@dataclass
class Moves:
    """A batch of candidate edits, each a list of edge changes, as flat arrays.

    Attributes
    ----------
    move, u, v, sign, delta : numpy.ndarray of int64
        One entry per edge change: the move it belongs to, the edge ``u -> v`` of ``sign``,
        and ``delta`` +1 (add) or -1 (remove).  Changes are grouped by move, in move order.
    kind : list of str
        One per move: ``remove``, ``flip``, ``add`` or ``compound``.
    """

    move: np.ndarray
    u: np.ndarray
    v: np.ndarray
    sign: np.ndarray
    delta: np.ndarray
    kind: list[str]

    @classmethod
    def build(cls, moves: list[list[Change]], kinds: list[str]) -> Moves:
        """From one list of ``(u, v, sign, delta)`` changes per move."""
        if len(moves) != len(kinds):
            raise ValueError(f"{len(moves)} moves but {len(kinds)} kinds")
        flat = [(i, *change) for i, changes in enumerate(moves) for change in changes]
        array = np.array(flat, dtype=np.int64).reshape(-1, 5)
        return cls(*(array[:, j].copy() for j in range(5)), kind=list(kinds))

    @classmethod
    def concat(cls, parts: list[Moves]) -> Moves:
        offsets = np.cumsum([0] + [len(part) for part in parts[:-1]])
        return cls(
            np.concatenate([part.move + offset for part, offset in zip(parts, offsets)]),
            np.concatenate([part.u for part in parts]),
            np.concatenate([part.v for part in parts]),
            np.concatenate([part.sign for part in parts]),
            np.concatenate([part.delta for part in parts]),
            [kind for part in parts for kind in part.kind],
        )

    def __len__(self) -> int:
        return len(self.kind)

    def select(self, indices: np.ndarray) -> Moves:
        """The moves at ``indices``, renumbered from 0 in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        position = np.full(len(self), -1, dtype=np.int64)
        position[indices] = np.arange(len(indices))
        keep = position[self.move] >= 0
        order = np.argsort(position[self.move[keep]], kind="stable")
        pick = np.flatnonzero(keep)[order]
        return Moves(
            position[self.move[pick]],
            self.u[pick],
            self.v[pick],
            self.sign[pick],
            self.delta[pick],
            [self.kind[i] for i in indices.tolist()],
        )

    def grouped(self) -> list[list[Change]]:
        """All moves' changes, one list per move."""
        out: list[list[Change]] = [[] for _ in self.kind]
        for m, u, v, e, d in zip(
            self.move.tolist(),
            self.u.tolist(),
            self.v.tolist(),
            self.sign.tolist(),
            self.delta.tolist(),
        ):
            out[m].append((u, v, e, d))
        return out


def edit_cost(
    costs: EditCosts, original: dict[tuple[int, int], frozenset[int]], edges: EdgeSet
) -> float:
    """Total edit cost of ``edges`` relative to the ``original`` signs per pair."""
    pairs = set(original) | set(edges.pairs)
    return float(
        sum(costs.of_pair(original.get(pair, frozenset()), edges.signs(*pair)) for pair in pairs)
    )


def pair_masks(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted pair keys ``u * n + v`` and their 2-bit sign masks, for fast lookups."""
    keys = edges[:, 0] * n + edges[:, 1]
    bits = np.where(edges[:, 2] > 0, 1, 2)
    unique, inverse = np.unique(keys, return_inverse=True)
    masks = np.zeros(len(unique), dtype=np.int64)
    np.bitwise_or.at(masks, inverse, bits)
    return unique, masks


def lookup_masks(keys: np.ndarray, table: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The sign mask of each pair key in a :func:`pair_masks` table (0 where absent)."""
    unique, masks = table
    position = np.searchsorted(unique, keys)
    position = np.minimum(position, max(len(unique) - 1, 0))
    found = (unique[position] == keys) if len(unique) else np.zeros(len(keys), dtype=bool)
    return np.where(found, masks[position] if len(unique) else 0, 0)


def move_edit_costs(
    costs: EditCosts,
    original: tuple[np.ndarray, np.ndarray],
    edges: EdgeSet,
    moves: Moves,
) -> np.ndarray:
    """Change of the total edit cost under each move (negative when it takes an edit back).

    Parameters
    ----------
    costs : EditCosts
    original : tuple
        :func:`pair_masks` of the original KB's edges.
    edges : EdgeSet
        The current edges.
    moves : Moves

    Notes
    -----
    Vectorised: each (move, pair) group's signs before and after are 2-bit masks looked up in
    a 4 x 4 table of :meth:`EditCosts.of_pair`.  O(changes log changes).
    """
    if len(moves) == 0:
        return np.zeros(0)
    n = edges.n
    sets = [frozenset(), frozenset({1}), frozenset({-1}), frozenset({1, -1})]
    table = np.array([[costs.of_pair(a, b) for b in sets] for a in sets])
    key = moves.u * n + moves.v
    group, inverse = np.unique(moves.move * (n * n) + key, return_inverse=True)
    bit = np.where(moves.sign > 0, 1, 2)
    added = np.zeros(len(group), dtype=np.int64)
    removed = np.zeros(len(group), dtype=np.int64)
    np.bitwise_or.at(added, inverse[moves.delta > 0], bit[moves.delta > 0])
    np.bitwise_or.at(removed, inverse[moves.delta < 0], bit[moves.delta < 0])
    pair_key = group % (n * n)
    current = lookup_masks(pair_key, pair_masks(edges.array(), n))
    before = lookup_masks(pair_key, original)
    after = (current & ~removed) | added
    change = table[before, after] - table[before, current]
    return np.bincount(group // (n * n), weights=change, minlength=len(moves))
