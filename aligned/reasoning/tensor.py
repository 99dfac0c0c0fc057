"""Deduction as sparse boolean propagation: the fast path every other part uses.

The knowledge base becomes one transition matrix over *signed states*.  Gene ``g`` has three
states: reached with ``+1``, reached with ``-1``, and reached only by walks that used an
edge of unknown sign (``u``).  An edge ``g -> h`` of sign ``e`` moves

* ``(g, s)`` to ``(h, s * e)`` when ``s`` is ``+1``/``-1`` and ``e`` is ``+1``/``-1``;
* ``(g, s)`` to ``(h, u)`` when ``e`` is unknown, or when ``s`` is already ``u``.

A gene is reached by a walk of length ``1..k`` exactly when its state's breadth-first
distance from the perturbed states is at most ``k``, so k sparse products with a visited set
compute DESIGN.md section 1 without enumerating walks (which is exponential on cycles).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from aligned.reasoning.status import PERTURBED, UNSIGNED

PLUS, MINUS, UNKNOWN = 0, 1, 2  # state blocks: state index = block * n_genes + gene


def transition_matrix(
    sources: np.ndarray, targets: np.ndarray, signs: np.ndarray, n_genes: int
) -> sp.csr_matrix:
    """Build the boolean transition matrix over signed states (``3n x 3n`` or ``2n x 2n``).

    Parameters
    ----------
    sources, targets : array of int
        Gene indices of each edge's source and target.
    signs : array of int
        Each edge's sign: +1, -1, or 0 for unknown.
    n_genes : int
        Number of genes ``n``.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``M[i, j] = 1`` when state ``i`` moves to state ``j`` along one edge.

    Notes
    -----
    Every edge contributes three entries (one per source state), so ``nnz <= 3 * edges``;
    building costs O(edges log edges).  A dual edge (both signs) is two edges.  When no edge
    has unknown sign the ``u`` block cannot be reached and is left out: the matrix is then
    ``2n x 2n``, which makes every product a third cheaper.
    """
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    signs = np.asarray(signs, dtype=np.int64)
    rows, cols = [], []

    def move(edge_mask: np.ndarray, from_block: int, to_block: int) -> None:
        rows.append(sources[edge_mask] + from_block * n_genes)
        cols.append(targets[edge_mask] + to_block * n_genes)

    positive, negative, unknown = signs > 0, signs < 0, signs == 0
    move(positive, PLUS, PLUS)
    move(positive, MINUS, MINUS)
    move(negative, PLUS, MINUS)
    move(negative, MINUS, PLUS)
    blocks = 2
    if unknown.any():
        # the u block only exists when some edge has unknown sign; without one it stays empty
        blocks = 3
        move(unknown, PLUS, UNKNOWN)
        move(unknown, MINUS, UNKNOWN)
        move(np.ones_like(positive), UNKNOWN, UNKNOWN)
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    size = blocks * n_genes
    matrix = sp.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col)), shape=(size, size))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def reached_states(perturbation: sp.csr_matrix, transition: sp.csr_matrix, k: int) -> np.ndarray:
    """States reached by walks of length ``1..k`` from each condition's perturbed genes.

    Parameters
    ----------
    perturbation : scipy.sparse.csr_matrix
        Conditions x genes, entries in {-1, 0, +1}.
    transition : scipy.sparse.csr_matrix
        The matrix of :func:`transition_matrix`.
    k : int
        Walk length bound, ``k >= 1``.

    Returns
    -------
    numpy.ndarray of bool
        Conditions x states: the reached states.  It also holds each condition's
        perturbed states (step 0): callers give perturbed genes the status ``perturbed``, so
        whether they were reached again does not matter.

    Notes
    -----
    Breadth-first: each step multiplies only the newly reached states (the frontier) by the
    transition matrix and drops states seen before, so every state is expanded at most once
    per condition.  Cost O(k * conditions * transition nnz) in the worst case, memory
    O(conditions * states) for the dense boolean result (call it on chunks of conditions).
    """
    n_genes = perturbation.shape[1]
    n_states = transition.shape[0]
    perturbation = perturbation.tocoo()
    values = perturbation.data
    start_block = np.where(values > 0, PLUS, MINUS)
    frontier = sp.csr_matrix(
        (
            np.ones(len(values), dtype=np.float32),
            (perturbation.row, perturbation.col + start_block * n_genes),
        ),
        shape=(perturbation.shape[0], n_states),
    )
    frontier.sum_duplicates()
    frontier.data[:] = 1.0
    seen = frontier
    reached = seen.toarray().astype(bool)
    for step in range(k):
        if frontier.nnz == 0:
            break
        following = frontier @ transition
        if step == k - 1:
            # the last step needs no frontier: write it straight into the dense result
            reached |= following.toarray() > 0
            break
        following.data[:] = 1.0
        frontier = following - following.multiply(seen)
        frontier.eliminate_zeros()
        seen = seen + frontier
        reached |= frontier.toarray() > 0
    return reached


def status_from_reached(
    reached: np.ndarray, perturbation: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray]:
    """Status codes and labels (conditions x genes, int8) from reached signed states.

    See :mod:`aligned.reasoning.status` for the codes.  Cost O(conditions * genes).
    """
    n_genes = perturbation.shape[1]
    plus = reached[:, PLUS * n_genes : (PLUS + 1) * n_genes].view(np.int8)
    minus = reached[:, MINUS * n_genes : (MINUS + 1) * n_genes].view(np.int8)
    # UP = 1, DOWN = 2 and CONFLICT = 3 are exactly plus + 2 * minus
    status = plus + 2 * minus
    labels = plus - minus
    if reached.shape[1] > 2 * n_genes:
        unknown = reached[:, UNKNOWN * n_genes :]
        status[unknown & (status == 0)] = UNSIGNED
    perturbed = perturbation.tocoo()
    status[perturbed.row, perturbed.col] = PERTURBED
    labels[perturbed.row, perturbed.col] = np.sign(perturbed.data)
    return status, labels


def deduce_matrix(
    perturbation: sp.spmatrix | np.ndarray,
    transition: sp.csr_matrix,
    k: int,
    chunk_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Deduce labels and status codes for many conditions at once.

    Parameters
    ----------
    perturbation : array or sparse matrix
        Conditions x genes, entries in {-1, 0, +1}; columns follow the transition's genes.
    transition : scipy.sparse.csr_matrix
        The matrix of :func:`transition_matrix`.
    k : int
        Walk length bound, ``k >= 1``.
    chunk_size : int
        Conditions propagated together; bounds memory to one chunk's reached states.

    Returns
    -------
    labels : numpy.ndarray of int8
        Conditions x genes in {-1, 0, +1}.
    status : numpy.ndarray of int8
        Conditions x genes status codes.

    Notes
    -----
    Implements DESIGN.md section 1 for single and combined perturbations.  Memory is the two
    dense int8 outputs plus one chunk of sparse reached states; nothing genes x genes dense is
    ever built.
    """
    if k < 1:
        raise ValueError(f"the deduction bound k must be at least 1, got {k}")
    perturbation = sp.csr_matrix(perturbation, dtype=np.float32)
    n_conditions, n_genes = perturbation.shape
    if transition.shape[0] not in (2 * n_genes, 3 * n_genes):
        raise ValueError("perturbation columns do not match the transition matrix's genes")
    status = np.zeros((n_conditions, n_genes), dtype=np.int8)
    labels = np.zeros((n_conditions, n_genes), dtype=np.int8)
    for start in range(0, n_conditions, chunk_size):
        rows = slice(start, start + chunk_size)
        block = perturbation[rows]
        status[rows], labels[rows] = status_from_reached(
            reached_states(block, transition, k), block
        )
    return labels, status


def single_perturbations(n_genes: int, genes: Sequence[int], sign: int = -1) -> sp.csr_matrix:
    """One condition per listed gene index, perturbed with ``sign`` (default loss, -1)."""
    genes = np.asarray(genes, dtype=np.int64)
    values = np.full(len(genes), sign, dtype=np.float32)
    return sp.csr_matrix((values, (np.arange(len(genes)), genes)), shape=(len(genes), n_genes))
