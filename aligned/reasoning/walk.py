"""A signed walk through the knowledge base: the unit of an explanation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Walk:
    """A walk ``genes[0] -> genes[1] -> ... -> genes[-1]`` over signed edges.

    ``edge_signs[i]`` is the sign (+1 or -1) of the edge ``genes[i] -> genes[i+1]``;
    ``start_sign`` is the perturbation of ``genes[0]`` (-1 loss, +1 gain) and ``sign`` the
    sign with which the walk reaches its last gene: ``start_sign * prod(edge_signs)``.
    Walks order by length first, then by their genes, which is the order explanations use.
    """

    length: int
    genes: tuple[str, ...]
    edge_signs: tuple[int, ...]
    start_sign: int
    sign: int

    @classmethod
    def from_steps(cls, genes: tuple[str, ...], edge_signs: tuple[int, ...], start_sign: int):
        if len(genes) != len(edge_signs) + 1:
            raise ValueError("a walk has one more gene than it has edges")
        sign = start_sign
        for edge_sign in edge_signs:
            sign *= edge_sign
        return cls(len(edge_signs), tuple(genes), tuple(edge_signs), start_sign, sign)

    def __str__(self) -> str:
        text = f"{self.genes[0]}({'+' if self.start_sign > 0 else '-'})"
        for gene, edge_sign in zip(self.genes[1:], self.edge_signs):
            text += f" {'-+>' if edge_sign > 0 else '-|'} {gene}"
        return text + f"  => {'up' if self.sign > 0 else 'down'}"
