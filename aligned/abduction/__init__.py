"""Abduction: minimal, explained revisions of a knowledge base (DESIGN.md section 2, step 5).

:func:`abduce` revises a :class:`~aligned.knowledge_base.KnowledgeBase` against perturbation
data and returns a :class:`Revision`; :func:`write_revision` writes its files.  Inside:
:mod:`~aligned.abduction.problem` (objective and arrays), :mod:`~aligned.abduction.state`
(walk-count deduction and exact edit evaluation), :mod:`~aligned.abduction.candidates`,
:mod:`~aligned.abduction.local_search` (the vectorised solver),
:mod:`~aligned.abduction.components` and :mod:`~aligned.abduction.exact` (independent parts
solved by clingo with ``rules/abduce.lp``), and :mod:`~aligned.abduction.solve` (which path runs
where).
"""

from aligned.abduction.api import abduce
from aligned.abduction.problem import EditCosts, Problem, build_problem
from aligned.abduction.revision import Revision, write_revision
from aligned.abduction.solve import SOLVERS, solve_problem

__all__ = [
    "SOLVERS",
    "EditCosts",
    "Problem",
    "Revision",
    "abduce",
    "build_problem",
    "solve_problem",
    "write_revision",
]
