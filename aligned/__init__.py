"""aligned: reconcile perturbation data with gene regulatory knowledge.

The two nouns are :class:`KnowledgeBase` (signed regulatory edges, their files and their
deductions) and :class:`PerturbationData` (conditions, responses, labels and splits);
simulation, abduction, sessions and evaluation are verbs over them.
"""

__version__ = "0.1.0"

from aligned.data import PerturbationData, load_data, simulate  # noqa: E402
from aligned.errors import AlignedError, InputError  # noqa: E402
from aligned.knowledge_base import KnowledgeBase, diff  # noqa: E402

__all__ = [
    "AlignedError",
    "InputError",
    "KnowledgeBase",
    "PerturbationData",
    "__version__",
    "diff",
    "load_data",
    "simulate",
]
