"""aligned: reconcile perturbation data with gene regulatory knowledge.

The two nouns are :class:`KnowledgeBase` (signed regulatory edges, their files and their
deductions) and :class:`PerturbationData` (conditions, responses, labels and splits);
simulation, abduction, sessions and evaluation are verbs over them.
"""

__version__ = "0.1.0"

from aligned.data import PerturbationData, load_data, simulate  # noqa: E402
from aligned.errors import AlignedError, InputError  # noqa: E402
from aligned.knowledge_base import KnowledgeBase, diff  # noqa: E402

# The verbs that pull in torch or clingo load on first use, so `import aligned` stays light.
_LAZY = {
    "Session": "aligned.session",
    "abduce": "aligned.abduction",
    "evaluate_run": "aligned.evaluation",
    "write_report": "aligned.report",
}

__all__ = [
    "AlignedError",
    "InputError",
    "KnowledgeBase",
    "PerturbationData",
    "Session",
    "__version__",
    "abduce",
    "diff",
    "evaluate_run",
    "load_data",
    "simulate",
    "write_report",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aligned' has no attribute {name!r}")
