"""Deduction speed: every single-gene knockout of a random KB, through each backend.

The tensor backend runs on the full-size KB (default 10,000 genes, 200,000 edges, k = 3);
Prolog and ASP run on a smaller KB (default 1,000 genes) where all three are timed on the
same conditions, so the speed ratio is on record.  Prints one table and appends it to
``benchmarks/results/deduce.md``.

    python benchmarks/deduce.py [--genes 10000] [--edges 200000] [--k 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _record import append_record, peak_rss_gib

from aligned import KnowledgeBase
from aligned.reasoning.tensor import single_perturbations


def random_kb(n_genes: int, n_edges: int, unknown_fraction: float, seed: int) -> KnowledgeBase:
    """Uniformly random signed edges (duplicates collapse, so slightly fewer than asked)."""
    rng = np.random.default_rng(seed)
    sources = rng.integers(0, n_genes, n_edges)
    targets = rng.integers(0, n_genes, n_edges)
    signs = rng.choice([1, -1], n_edges)
    signs[rng.random(n_edges) < unknown_fraction] = 0
    names = [f"g{i}" for i in range(n_genes)]
    edges = zip([names[i] for i in sources], [names[i] for i in targets], signs.tolist())
    return KnowledgeBase.from_edges(edges, genes=names)


def time_tensor(kb: KnowledgeBase, k: int) -> tuple[float, np.ndarray]:
    X = single_perturbations(len(kb.genes), np.arange(len(kb.genes)))
    _ = kb.transition  # built once per KB, outside the timed deduction
    start = time.perf_counter()
    _, status = kb.deduce_matrix(X, k)
    return time.perf_counter() - start, status


def time_engine(kb: KnowledgeBase, backend: str, k: int, n_conditions: int) -> float:
    perturbations = [{gene: -1} for gene in kb.genes[:n_conditions]]
    start = time.perf_counter()
    kb.deduce_many(perturbations, k=k, backend=backend)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=200_000)
    parser.add_argument("--small-genes", type=int, default=1_000)
    parser.add_argument("--small-edges", type=int, default=20_000)
    parser.add_argument("--engine-conditions", type=int, default=100)
    parser.add_argument("--unknown-fraction", type=float, default=0.0)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the section to this file instead of the record")
    args = parser.parse_args()

    rows = []
    big = random_kb(args.genes, args.edges, args.unknown_fraction, args.seed)
    seconds, status = time_tensor(big, args.k)
    reached = float((status[status != 5] != 0).mean())
    rows.append(
        [
            "tensor",
            args.genes,
            len(big),
            args.genes,
            args.k,
            f"{seconds:.2f}",
            f"{seconds / args.genes * 1e3:.3f}",
            f"{reached:.2f}",
            f"{peak_rss_gib():.2f}",
        ]
    )

    small = random_kb(args.small_genes, args.small_edges, args.unknown_fraction, args.seed)
    n = args.engine_conditions
    for backend in ("tensor", "prolog", "asp"):
        if backend == "tensor":
            X = single_perturbations(len(small.genes), np.arange(n))
            _ = small.transition
            start = time.perf_counter()
            small.deduce_matrix(X, args.k)
            seconds = time.perf_counter() - start
        else:
            seconds = time_engine(small, backend, args.k, n)
        rows.append(
            [
                backend,
                args.small_genes,
                len(small),
                n,
                args.k,
                f"{seconds:.2f}",
                f"{seconds / n * 1e3:.3f}",
                "",
                "",
            ]
        )

    header = [
        "backend",
        "genes",
        "edges",
        "conditions",
        "k",
        "seconds",
        "ms/condition",
        "reached fraction",
        "peak RSS GiB",
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))
    path = append_record("deduce", header, rows, args.out)
    print(f"recorded in {path} (seed {args.seed}, unknown fraction {args.unknown_fraction})")


if __name__ == "__main__":
    main()
