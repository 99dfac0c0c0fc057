"""The toy walkthrough: the bundled knowledge base read, deduced by all three engines,
explained, queried and exported.  ``aligned walkthrough`` runs it and prints the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aligned.errors import InputError
from aligned.knowledge_base import KnowledgeBase
from aligned.reasoning.walk import Walk
from aligned.resources import resource_path

PERTURBATION = {"hns": -1}
EXPLAINED_GENE = "osmY"
QUERY = "edge(Regulator, Target, -1)"


@dataclass
class Walkthrough:
    """What the walkthrough computed, for printing or inspection."""

    kb: KnowledgeBase
    k: int
    deductions: dict[str, pd.DataFrame]
    walks: list[Walk]
    repressions: list[dict]
    exported: list[Path] = field(default_factory=list)

    @property
    def backends_agree(self) -> bool:
        first = next(iter(self.deductions.values()))
        return all(frame.equals(first) for frame in self.deductions.values())


def run_walkthrough(out_dir: str | Path, k: int = 2) -> Walkthrough:
    """Run the toy walkthrough and write its exports to ``out_dir``.

    ``out_dir`` must be new or empty, so that nothing already there is overwritten.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError("output directory is not empty; choose a new one", out_dir)
    kb = KnowledgeBase.read(resource_path("knowledge", "toy.tsv"))
    deductions = {
        backend: kb.deduce(PERTURBATION, k=k, backend=backend)
        for backend in ("tensor", "prolog", "asp")
    }
    walks = kb.explain(PERTURBATION, EXPLAINED_GENE, k=k)
    repressions = kb.query(QUERY)
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = [out_dir / "toy.tsv", out_dir / "toy.pl", out_dir / "toy.lp"]
    kb.write(exported[0])
    kb.to_prolog(exported[1])
    kb.to_asp(exported[2])
    return Walkthrough(kb, k, deductions, walks, repressions, exported)
