"""aligned: reconcile perturbation data with gene regulatory knowledge.

The two nouns are :class:`KnowledgeBase` (signed regulatory edges, their files and their
deductions) and the perturbation data set; sessions, abduction and reports are verbs over them.
"""

from aligned.errors import AlignedError, InputError
from aligned.knowledge_base import KnowledgeBase, diff

__version__ = "0.1.0"

__all__ = ["AlignedError", "InputError", "KnowledgeBase", "diff", "__version__"]
