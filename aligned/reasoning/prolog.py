"""SWI-Prolog backend: deduction, explanation, sandboxed queries and safe fact reading.

The deduction and explanation logic lives in ``rules/deduce.pl``; this module only writes
facts as properly quoted Prolog text, loads them, runs fixed goals and reads the answers
back.  Each knowledge base is loaded into a Prolog module of its own, named from a hash of
its program, so two knowledge bases never share a database.

One SWI-Prolog engine serves the whole process (pyswip cannot start a second one); a
re-entrant lock serialises every call into it.  Answers cross from Prolog to Python as one
JSON string per call, written by Prolog: pyswip hands strings back as NUL-terminated bytes
and prints compound terms in its own syntax, so JSON is the one lossless channel.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from aligned.errors import BackendUnavailable, InputError, UnsafeGoal
from aligned.reasoning.status import STATUS_CODES
from aligned.reasoning.walk import Walk
from aligned.resources import resource_path

Edge = tuple[str, str, int]

# How many knowledge-base modules stay loaded; the least recently used one is unloaded.
_CACHE_SIZE = 8

# The bridge between Python and the knowledge-base modules (loading, sandbox, fact reader,
# JSON answers) lives in rules/engine.pl; it is not part of the exported rules.
ENGINE_FILE = "engine.pl"


def prolog_string(text: str) -> str:
    """Return a Prolog double-quoted string literal that reads back as exactly ``text``.

    Parameters
    ----------
    text : str
        Any text: a gene name, a goal, a file path.

    Returns
    -------
    str
        A literal in plain ASCII: backslashes and double quotes are escaped, and every
        character outside printable ASCII (control characters, ``Ü``, emoji, ...) is written
        as ``\\x<hex>\\``.

    Raises
    ------
    ValueError
        If ``text`` holds a lone surrogate, which no Prolog text can represent.

    Notes
    -----
    Plain ASCII keeps an exported program's meaning independent of the locale ``swipl``
    runs in: under ``LANG=C`` SWI-Prolog reads source files as Latin-1 and would garble
    raw UTF-8.

    Examples
    --------
    >>> print(prolog_string('a "q" b'))
    "a \\"q\\" b"
    >>> print(prolog_string("Ünï"))
    "\\xdc\\n\\xef\\"
    """
    parts = ['"']
    for char in text:
        code = ord(char)
        if char in '\\"':
            parts.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            parts.append(char)
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(
                f"text {text!r} holds a lone surrogate; it cannot be written to Prolog"
            )
        else:
            parts.append(f"\\x{code:x}\\")
    parts.append('"')
    return "".join(parts)


def program_text(edges: Iterable[Edge], genes: Iterable[str], rules: bool = True) -> str:
    """Return a standalone Prolog program for a knowledge base.

    Parameters
    ----------
    edges : iterable of (source, target, sign)
        Signed edges, sign 1 (activation), -1 (repression) or 0 (unknown, ``?``).
    genes : iterable of str
        Every gene, isolated ones included; edge endpoints are added if missing.
    rules : bool, default True
        Append ``rules/deduce.pl`` so the program answers ``deduce/3``, ``status/4`` and
        ``explain_walk/4`` in plain ``swipl``.

    Returns
    -------
    str
        A header comment, one ``gene/1`` fact per gene and one ``edge/3`` fact per distinct
        edge (both sorted), then the rules.  Without rules it holds nothing but facts, so
        :func:`read_facts` reads it back.

    Raises
    ------
    ValueError
        If an edge sign is not 1, -1 or 0.

    Notes
    -----
    Gene names are written as Prolog strings with :func:`prolog_string`, so any name
    (``5'UTR``, ``TP53``, ``a "q" b``, ``Ünï``) reads back unchanged in any locale.
    Duplicate edges collapse.  The output is deterministic: the same knowledge base always
    gives the same text.
    """
    edge_set = sorted({(str(s), str(t), int(sign)) for s, t, sign in edges})
    for source, target, sign in edge_set:
        if sign not in (1, -1, 0):
            raise ValueError(f"edge {source!r} -> {target!r} has sign {sign}; expected 1, -1 or 0")
    gene_set = sorted(set(genes) | {s for s, _, _ in edge_set} | {t for _, t, _ in edge_set})
    lines = [
        "% Knowledge base written by aligned.",
        f"% {len(gene_set)} genes, {len(edge_set)} edges.",
        "% edge(Source, Target, Sign): Sign 1 activation, -1 repression, 0 unknown (?).",
        "% Gene names are Prolog strings; characters outside ASCII are written as \\x<hex>\\.",
        "",
    ]
    lines += [f"gene({prolog_string(gene)})." for gene in gene_set]
    lines.append("")
    lines += [
        f"edge({prolog_string(source)}, {prolog_string(target)}, {sign})."
        for source, target, sign in edge_set
    ]
    text = "\n".join(lines) + "\n"
    if rules:
        text += "\n" + resource_path("rules", "deduce.pl").read_text(encoding="utf-8")
    return text


def deduce(
    edges: Iterable[Edge],
    genes: Iterable[str],
    perturbations: Sequence[Mapping[str, int]],
    k: int,
) -> list[dict[str, int]]:
    """Deduce the status of every gene under each perturbation with SWI-Prolog.

    Parameters
    ----------
    edges : iterable of (source, target, sign)
        The knowledge base's signed edges (sign 1, -1 or 0 for ``?``).
    genes : iterable of str
        Its genes.
    perturbations : sequence of mappings gene -> direction
        Direction -1 (loss of function) or +1 (gain of function).
    k : int
        The walk-length bound, at least 1.

    Returns
    -------
    list of dict
        One dict per perturbation mapping gene -> status code (see
        :mod:`aligned.reasoning.status`) for every gene whose status is not ``NONE``.
        Perturbed genes are ``PERTURBED`` even when they are not in ``genes``.

    Raises
    ------
    BackendUnavailable
        If pyswip or SWI-Prolog is missing.
    ValueError
        If ``k < 1`` or a direction is not -1 or +1.

    Examples
    --------
    >>> deduce([("a", "b", 1), ("b", "c", -1)], ["a", "b", "c"], [{"a": -1}], k=2)
    [{'a': 5, 'b': 2, 'c': 1}]

    Notes
    -----
    DESIGN.md section 1: a gene is reached with sign ``s`` if a walk of length 1..k from a
    perturbed gene ``p`` over signed edges has ``s = d(p) * prod(edge signs)``; walks may
    revisit genes and pass through other perturbed genes.  +1 only is ``UP``, -1 only
    ``DOWN``, both ``CONFLICT``; reached only by walks that use a ``?`` edge is
    ``UNSIGNED``.  ``deduce/3`` in ``rules/deduce.pl`` runs k rounds of breadth-first
    search over (gene, sign-state) states, never enumerating walks, so one perturbation
    costs O((G + E) log(G + E) + k G) for G genes and E edges, cycles and self-loops
    included.
    """
    _check_k(k)
    perturbations = [dict(p) for p in perturbations]
    for perturbation in perturbations:
        _check_perturbation(perturbation)
    if not perturbations:
        return []
    terms = ", ".join(_perturbation_term(p) for p in perturbations)
    goal = (
        f"member(P, [{terms}]), deduce(P, {k}, Statuses), "
        "findall([Gene, Status], member(Gene-Status, Statuses), Rows)"
    )
    with _engine_session() as engine:
        module = engine.module_for(edges, genes)
        rows = engine.solutions(module, len(perturbations), "Rows", goal)
    return [{gene: STATUS_CODES[status] for gene, status in statuses} for statuses in rows]


def explain(
    edges: Iterable[Edge],
    genes: Iterable[str],
    perturbation: Mapping[str, int],
    gene: str,
    k: int,
    limit: int = 20,
) -> list[Walk]:
    """Return the signed walks that carry a perturbation to ``gene``, shortest first.

    Parameters
    ----------
    edges, genes
        The knowledge base, as for :func:`deduce`.
    perturbation : mapping gene -> direction
        Direction -1 (loss) or +1 (gain) per perturbed gene.
    gene : str
        The gene to explain.
    k : int
        The walk-length bound, at least 1.
    limit : int, default 20
        At most this many walks are returned.

    Returns
    -------
    list of Walk
        Walks of length 1..k over signed edges (``?`` edges never appear) from a perturbed
        gene to ``gene``, in :class:`Walk` order: by length, then genes, then edge signs.
        A dual edge gives one walk per sign.  Empty when no signed walk reaches ``gene``.

    Raises
    ------
    BackendUnavailable
        If pyswip or SWI-Prolog is missing.
    ValueError
        If ``k < 1``, ``limit < 1`` or a direction is not -1 or +1.

    Examples
    --------
    >>> [str(w) for w in explain([("a", "b", 1), ("b", "c", -1)], [], {"a": -1}, "c", k=3)]
    ['a(-) -+> b -| c  => up']

    Notes
    -----
    These are the proofs of ``explain_walk/4`` in ``rules/deduce.pl``, read back.  It
    enumerates length by length and, within a length, in order, extending a partial walk
    only through genes that reach ``gene`` in exactly the remaining number of steps.  No
    branch is a dead end, so the cost is O(k E) set-up plus O(k * out-degree) per walk
    returned, even on graphs with exponentially many walks.
    """
    _check_k(k)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    perturbation = dict(perturbation)
    _check_perturbation(perturbation)
    if not perturbation:
        return []
    goal = (
        f"explain_walk({_perturbation_term(perturbation)}, {prolog_string(gene)}, {k}, "
        "walk(Genes, Signs, Start))"
    )
    with _engine_session() as engine:
        module = engine.module_for(edges, genes)
        rows = engine.solutions(module, limit, "[Genes, Signs, Start]", goal)
    return sorted(
        Walk.from_steps(tuple(walk_genes), tuple(signs), start) for walk_genes, signs, start in rows
    )


def query(
    edges: Iterable[Edge],
    genes: Iterable[str],
    goal: str,
    time_limit: float = 5.0,
    max_solutions: int = 1000,
) -> list[dict]:
    """Run a read-only Prolog goal against a knowledge base and return its solutions.

    Parameters
    ----------
    edges, genes
        The knowledge base, as for :func:`deduce`.
    goal : str
        A Prolog goal, e.g. ``'edge(S, "geneC", -1)'``; gene names are strings.  The
        rules of ``rules/deduce.pl`` (``deduce/3``, ``status/4``, ``explain_walk/4``) can
        be called.
    time_limit : float, default 5.0
        Seconds the goal may run (all its solutions together).
    max_solutions : int, default 1000
        At most this many solutions are returned.

    Returns
    -------
    list of dict
        One dict per solution, in Prolog's solution order, mapping each variable name
        (except ``_``-prefixed ones) to its value: strings and atoms as ``str``, integers
        as ``int``, floats as ``float``, lists as ``list``, unbound variables as ``None``,
        any other term as its Prolog text.

    Raises
    ------
    InputError
        If the goal cannot be parsed ("cannot parse goal: ..."), calls an unknown
        predicate or raises an error ("query failed: ..."), or runs longer than
        ``time_limit`` ("query exceeded its time limit of ... s").
    UnsafeGoal
        If the goal is refused: ``library(sandbox)`` does not accept it, or it names a
        predicate that changes the database, loads code, runs programs or does
        input/output anywhere in the term.
    BackendUnavailable
        If pyswip or SWI-Prolog is missing.
    ValueError
        If ``time_limit`` is not a positive number or ``max_solutions < 1``.

    Examples
    --------
    >>> query([("geneA", "geneC", -1), ("TP53", "geneC", 1)], [], 'edge(S, "geneC", -1)')
    [{'S': 'geneA'}]

    Notes
    -----
    The goal text is passed to Prolog as a string literal and parsed there
    (``term_string/3``), never spliced into a goal.  It runs in the knowledge base's own
    module under ``call_with_time_limit/2``; its cost is whatever the goal costs, bounded
    by ``time_limit``.
    """
    if not (isinstance(time_limit, (int, float)) and math.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    if max_solutions < 1:
        raise ValueError(f"max_solutions must be at least 1, got {max_solutions}")
    with _engine_session() as engine:
        module = engine.module_for(edges, genes)
        outcome = engine.call_json(
            f"aligned_engine:run_query({module}, {prolog_string(goal)}, "
            f"{float(time_limit)!r}, {int(max_solutions)}, Json)"
        )
    if "solutions" in outcome:
        return outcome["solutions"]
    if "syntax" in outcome:
        raise InputError(f"cannot parse goal: {outcome['syntax']}")
    if "refused" in outcome:
        raise UnsafeGoal(f"goal refused: {outcome['refused']}")
    if "timeout" in outcome:
        raise InputError(f"query exceeded its time limit of {time_limit:g} s")
    raise InputError(f"query failed: {outcome['error']}")


def read_facts(path: str | os.PathLike) -> tuple[list[tuple[str, str, int, int]], list[str]]:
    """Read the ``edge/3`` and ``gene/1`` facts of a Prolog knowledge file, executing nothing.

    Parameters
    ----------
    path : str or path-like
        A UTF-8 ``.pl`` file of facts such as ``edge("geneA", "geneC", -1).`` or
        ``edge(lacI, lacZ, '-').``

    Returns
    -------
    edges : list of (source, target, sign, line)
        In file order; sign 1, -1 or 0, line the 1-based line where the fact starts.
    genes : list of str
        The genes of the ``gene/1`` facts, in file order, without repeats.

    Raises
    ------
    InputError
        Naming the file and line: a directive (``:- ...``), a rule, a grammar rule, any
        other predicate, a variable, a sign other than 1, -1, 0, ``'+'``, ``'-'``, ``'?'``,
        a gene name that is not a string or atom or is empty, a syntax error, bytes that
        are not UTF-8, or a file that cannot be read.
    BackendUnavailable
        If pyswip or SWI-Prolog is missing.

    Notes
    -----
    Terms are read one by one with ``read_term/3``; nothing in the file is called, so a
    directive such as ``:- shell('rm -rf ~')`` is reported, not run.  Cost linear in the
    file size.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read knowledge file: {exc.strerror}", path) from exc
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError("the file is not valid UTF-8", path, line) from exc
    with _engine_session() as engine:
        outcome = engine.call_json(
            f"aligned_engine:read_facts({prolog_string(str(path.resolve()))}, Json)"
        )
    if "error" in outcome:
        raise InputError(outcome["error"], path, outcome["line"])
    edges = [(source, target, sign, line) for source, target, sign, line in outcome["edges"]]
    genes = list(dict.fromkeys(gene for gene, _line in outcome["genes"]))
    return edges, genes


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"the deduction bound k must be at least 1, got {k}")


def _check_perturbation(perturbation: Mapping[str, int]) -> None:
    for gene, direction in perturbation.items():
        if direction not in (-1, 1):
            raise ValueError(f"perturbation of {gene!r} must be -1 or +1, got {direction!r}")


def _perturbation_term(perturbation: Mapping[str, int]) -> str:
    """A perturbation as the Prolog list ``["geneA"-(-1), "geneB"-(1)]``."""
    pairs = (f"{prolog_string(gene)}-({int(d)})" for gene, d in sorted(perturbation.items()))
    return "[" + ", ".join(pairs) + "]"


class _Engine:
    """The process's SWI-Prolog engine and the knowledge-base modules loaded into it."""

    def __init__(self) -> None:
        try:
            from pyswip import Prolog
        except Exception as exc:  # pyswip raises its own error types when libswipl is missing
            raise BackendUnavailable(
                f"SWI-Prolog is not available (apt-get install swi-prolog-nox): {exc}"
            ) from exc
        self._prolog = Prolog()
        self._modules: collections.OrderedDict[str, str] = collections.OrderedDict()
        engine_file = str(resource_path("rules", ENGINE_FILE))
        self._check(f"load_files({prolog_string(engine_file)}, [silent(true)])")

    def _check(self, goal: str) -> dict:
        """Run ``goal`` once and return its bindings; a failure is a bug, not a user error."""
        answers = list(self._prolog.query(goal, maxresult=1))
        if not answers:
            raise RuntimeError(f"SWI-Prolog goal failed: {goal[:200]}")
        return answers[0]

    def call_json(self, goal: str):
        """Run a bridge goal that binds ``Json`` and return the decoded JSON value."""
        # pyswip returns Prolog strings as UTF-8 bytes.
        return json.loads(self._check(goal)["Json"].decode("utf-8"))

    def solutions(self, module: str, max_solutions: int, template: str, goal: str) -> list:
        """The first ``max_solutions`` instances of ``template`` for ``goal`` in ``module``."""
        return self.call_json(
            f"aligned_engine:solutions_json({module}, {max_solutions}, {template}, ({goal}), Json)"
        )

    def module_for(self, edges: Iterable[Edge], genes: Iterable[str]) -> str:
        """Load a knowledge base into a module of its own (once) and return its name."""
        text = program_text(edges, genes)
        module = "aligned_kb_" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]
        if module in self._modules:
            self._modules.move_to_end(module)
            return module
        handle, name = tempfile.mkstemp(prefix=f"{module}_", suffix=".pl")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            self._check(f"aligned_engine:load_kb({module}, {prolog_string(name)})")
        finally:
            # Prolog keeps the clauses; the file is only needed while loading.
            os.unlink(name)
        self._modules[module] = name
        while len(self._modules) > _CACHE_SIZE:
            _, old_file = self._modules.popitem(last=False)
            self._check(f"aligned_engine:unload_kb({prolog_string(old_file)})")
        return module


_ENGINE_LOCK = threading.RLock()
_ENGINE: _Engine | None = None


@contextlib.contextmanager
def _engine_session() -> Iterator[_Engine]:
    """Hold the engine lock and yield the process's engine, started on first use.

    pyswip attaches a Prolog thread to every Python thread that queries and never detaches
    it; SWI-Prolog then warns at exit that it failed to stop those threads.  So a thread
    other than the main one gives its Prolog thread back when it is done (modules and
    their clauses are global and stay loaded).  The engine itself belongs to the thread
    that started it: a program that queries from worker threads should make its first
    call from the main thread, or SWI-Prolog prints that warning at exit anyway.
    """
    global _ENGINE
    with _ENGINE_LOCK:
        try:
            if _ENGINE is None:
                _ENGINE = _Engine()
            yield _ENGINE
        finally:
            if threading.current_thread() is not threading.main_thread():
                _destroy_thread_engine()


def _destroy_thread_engine() -> None:
    from pyswip import core

    destroy = getattr(core._lib, "PL_thread_destroy_engine", None)
    if destroy is not None and core.PL_thread_self() != -1:
        destroy()
