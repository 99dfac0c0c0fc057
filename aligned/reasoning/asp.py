"""The clingo backend: deduction with the ASP encoding in ``rules/deduce.lp``.

Python only writes facts (genes always as quoted ASP strings, see :func:`asp_string`) and reads
the answer set back; the logic lives in ``rules/deduce.lp``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aligned.errors import AlignedError, BackendUnavailable, InputError
from aligned.reasoning.status import STATUS_CODES
from aligned.resources import resource_path

try:
    import clingo
except ImportError:  # clingo is a hard dependency, but report a broken install clearly
    clingo = None

__all__ = [
    "DeductionTimeout",
    "SolveStats",
    "asp_string",
    "deduce",
    "program_text",
]

log = logging.getLogger(__name__)

ENCODING = "deduce.lp"

# Upper bound on the estimated ground size (conditions * k * (edges + genes)) of one solve.
# Above it the conditions are split into chunks so that memory stays bounded.
_GROUND_BUDGET = 4_000_000

Edge = tuple[str, str, int]


class DeductionTimeout(AlignedError, TimeoutError):
    """A clingo solve ran past its time budget and was cancelled."""


@dataclass(frozen=True)
class SolveStats:
    """What one clingo call cost.

    Attributes
    ----------
    encoding : str
        The encoding file that was solved.
    conditions : int
        Number of perturbation conditions solved together in this call.
    ground_atoms : int
        Number of ground atoms (the size of the grounder's symbolic atom table).
    ground_seconds, solve_seconds : float
        Wall-clock time spent grounding and solving.
    """

    encoding: str
    conditions: int
    ground_atoms: int
    ground_seconds: float
    solve_seconds: float


def asp_string(text: str) -> str:
    """Quote ``text`` as a clingo string literal.

    Parameters
    ----------
    text : str
        Any name: quotes, backslashes, newlines, spaces, unicode, upper case and leading
        digits are all kept exactly.

    Returns
    -------
    str
        The literal, double quotes included, e.g. ``'"a \\\\"q\\\\" b"'`` for ``a "q" b``.

    Raises
    ------
    InputError
        If ``text`` contains a NUL character, which clingo strings cannot hold.

    Notes
    -----
    clingo's lexer knows exactly three escapes inside a string: ``\\\\``, ``\\"`` and ``\\n``;
    every other character (tabs and unicode included) stands for itself. Backslashes are
    escaped first so that the escapes added afterwards are not doubled.

    Examples
    --------
    >>> print(asp_string('5\\'UTR'))
    "5'UTR"
    >>> print(asp_string('back\\\\slash'))
    "back\\\\slash"
    """
    if "\x00" in text:
        raise InputError(f"the name {text!r} contains a NUL character, which clingo cannot hold")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _check_edges(edges: Iterable[Edge]) -> list[Edge]:
    """Validate the edges once at the door and return them deduplicated and sorted."""
    checked = set()
    for edge in edges:
        source, target, sign = edge
        if not isinstance(source, str) or not isinstance(target, str):
            raise InputError(f"edge {edge!r}: gene names must be strings")
        if sign not in (1, -1, 0):
            raise InputError(f"edge {edge!r}: the sign must be 1, -1 or 0 (unknown)")
        checked.add((source, target, int(sign)))
    return sorted(checked)


def _check_genes(genes: Iterable[str]) -> list[str]:
    """Validate the gene names and return them deduplicated and sorted."""
    checked = set(genes)
    for gene in checked:
        if not isinstance(gene, str):
            raise InputError(f"gene {gene!r}: gene names must be strings")
    return sorted(checked)


def _fact_lines(edges: list[Edge], genes: list[str]) -> list[str]:
    lines = [f"gene({asp_string(gene)})." for gene in genes]
    lines += [f"edge({asp_string(s)},{asp_string(t)},{sign})." for s, t, sign in edges]
    return lines


def _encoding_text() -> str:
    return resource_path("rules", ENCODING).read_text(encoding="utf-8")


def program_text(edges: Iterable[Edge], genes: Iterable[str]) -> str:
    """A standalone ASP program: the knowledge base as facts plus the deduction rules.

    Parameters
    ----------
    edges : iterable of (str, str, int)
        Signed edges ``(source, target, sign)``, sign 1, -1 or 0 (unknown).
    genes : iterable of str
        Genes of the knowledge base, isolated ones included.

    Returns
    -------
    str
        Program text: a ``%`` header, ``gene/1`` facts, ``edge/3`` facts (sorted) and the text
        of ``rules/deduce.lp``. It grounds in plain ``clingo`` without warnings; with no
        ``pert/3`` facts its answer set is empty, and with ``pert(C, "gene", -1|1)`` facts
        appended its ``status/3`` atoms are the deduction.

    Raises
    ------
    InputError
        If an edge or a gene name is malformed, or a name contains a NUL character.

    Notes
    -----
    The output is deterministic: genes and edges are sorted and duplicates collapse. Cost is
    linear in genes plus edges (after an ``O(E log E)`` sort).
    """
    checked = _check_edges(edges)
    genes = _check_genes(genes)
    header = [
        "% Knowledge base exported by aligned, with its deduction rules (rules/deduce.lp).",
        f"% {len(genes)} genes, {len(checked)} edges; sign 1 activation, -1 repression, 0 unknown.",
        '% Query: append facts pert(Condition, "gene", -1|1) and run `clingo FILE -c k=3`.',
        "",
    ]
    body = _fact_lines(checked, genes)
    return "\n".join(header + body + ["", _encoding_text()])


def _chunks(count: int, size: int) -> list[range]:
    """Split ``range(count)`` into the fewest ranges of at most ``size``, evenly sized."""
    pieces = -(-count // size)
    size = -(-count // pieces)
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def deduce(
    edges: Iterable[Edge],
    genes: Iterable[str],
    perturbations: Sequence[Mapping[str, int]],
    k: int,
    time_limit: float = 30.0,
    *,
    chunk_size: int | None = None,
    stats: list[SolveStats] | None = None,
) -> list[dict[str, int]]:
    """Deduce every gene's status for each perturbation with clingo.

    Parameters
    ----------
    edges : iterable of (str, str, int)
        Signed edges ``(source, target, sign)``, sign 1, -1 or 0 (unknown, ``?``).
    genes : iterable of str
        Genes of the knowledge base. They do not change the result (a gene without edges is
        never reached); they are passed so that the ground program matches the exported one.
    perturbations : sequence of mapping str -> int
        One mapping per condition, gene -> -1 (loss) or +1 (gain). Perturbed genes need not be
        in ``genes``.
    k : int
        Walk length bound, ``k >= 1``.
    time_limit : float, default 30.0
        Seconds allowed for each clingo call (grounding plus solving).
    chunk_size : int, optional
        Conditions per clingo call. By default all conditions go in one call unless the
        estimated ground size exceeds a fixed budget, in which case they are split.
    stats : list of SolveStats, optional
        If given, one :class:`SolveStats` per clingo call is appended to it.

    Returns
    -------
    list of dict str -> int
        For each perturbation, gene -> status code (``aligned.reasoning.status``) for every
        gene whose status is not ``NONE``.

    Raises
    ------
    BackendUnavailable
        If the ``clingo`` Python package cannot be imported.
    InputError
        If an edge, a gene name, a perturbation sign, ``k`` or ``chunk_size`` is invalid.
    DeductionTimeout
        If a clingo call runs past ``time_limit``.

    Notes
    -----
    Semantics (DESIGN.md section 1): gene g is reached with sign s when a walk of length
    1..k from a perturbed gene p over signed edges has ``s = d(p) * prod(edge signs)``; walks
    may revisit genes and pass through other perturbed genes. Perturbed genes are PERTURBED;
    otherwise reached with +1 only is UP, -1 only DOWN, both CONFLICT; a gene reached only by
    walks that use a ``?`` edge is UNSIGNED. Cycles and self-loops need no special case: the
    step counter bounds every walk. An empty knowledge base leaves only the perturbed genes.

    The program is stratified, so the grounder computes the single answer set. Ground size is
    ``O(C * k * (E + G))`` for C conditions, E edges and G genes; conditions are chunked to
    keep it bounded. Grounding cannot be interrupted: the time budget cancels a running solve,
    and a grounding that alone overran the budget raises once it returns.

    Examples
    --------
    >>> edges = [("geneA", "geneB", 1), ("geneB", "geneC", -1)]
    >>> deduce(edges, ["geneA", "geneB", "geneC"], [{"geneA": -1}], k=3)
    [{'geneA': 5, 'geneB': 2, 'geneC': 1}]
    """
    if clingo is None:
        raise BackendUnavailable(
            "the asp backend needs the clingo Python package: pip install 'clingo>=5.7,<6'"
        )
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"the deduction bound k must be an integer >= 1, got {k!r}")
    if chunk_size is not None and chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size!r}")
    checked = _check_edges(edges)
    genes = _check_genes(genes)
    for index, perturbation in enumerate(perturbations):
        for gene, sign in perturbation.items():
            if not isinstance(gene, str):
                raise InputError(f"perturbation {index}: gene names must be strings, got {gene!r}")
            if sign not in (1, -1):
                raise InputError(f"perturbation {index}: {gene!r} has sign {sign!r}, not -1 or 1")
    if not perturbations:
        return []

    if chunk_size is None:
        per_condition = k * (len(checked) + len(genes) + 1)
        chunk_size = max(1, _GROUND_BUDGET // per_condition)
    # The knowledge base is written once and shared by every chunk.
    kb_text = "\n".join(_fact_lines(checked, genes) + [_encoding_text()])

    results: list[dict[str, int]] = [{} for _ in perturbations]
    for chunk in _chunks(len(perturbations), chunk_size):
        # Conditions are numbered by their index in ``perturbations`` so no mapping is needed.
        pert_lines = [
            f"pert({index},{asp_string(gene)},{int(sign)})."
            for index in chunk
            for gene, sign in sorted(perturbations[index].items())
        ]
        chunk_stats = _solve_chunk(kb_text, "\n".join(pert_lines), k, time_limit, results)
        stats_record = SolveStats(ENCODING, len(chunk), *chunk_stats)
        log.debug("clingo %s", stats_record)
        if stats is not None:
            stats.append(stats_record)
    return results


def _log_clingo_message(code: clingo.MessageCode, message: str) -> None:
    log.warning("clingo %s: %s", code.name, message.strip())


def _solve_chunk(
    kb_text: str, pert_text: str, k: int, time_limit: float, results: list[dict[str, int]]
) -> tuple[int, float, float]:
    """Ground and solve one chunk, write its statuses into ``results``; return the costs."""
    # clingo's messages go to our log rather than straight to stderr.
    control = clingo.Control(["-c", f"k={k}"], logger=_log_clingo_message)
    control.add("base", [], kb_text)
    control.add("base", [], pert_text)
    start = time.perf_counter()
    control.ground([("base", [])])
    ground_seconds = time.perf_counter() - start
    if ground_seconds > time_limit:
        raise DeductionTimeout(
            f"clingo grounding of {ENCODING} took {ground_seconds:.1f} s, over the budget of "
            f"{time_limit:g} s; lower k or pass fewer conditions per call"
        )

    models: list[list[clingo.Symbol]] = []

    def on_model(model: clingo.Model) -> None:
        models.append(model.symbols(shown=True))

    start = time.perf_counter()
    with control.solve(on_model=on_model, async_=True) as handle:
        if not handle.wait(time_limit - ground_seconds):
            handle.cancel()
            raise DeductionTimeout(
                f"clingo solving of {ENCODING} ran past the budget of {time_limit:g} s "
                "and was cancelled"
            )
        handle.get()
    solve_seconds = time.perf_counter() - start
    # A stratified program without constraints has exactly one answer set, so the first
    # model is the deduction.
    if not models:
        raise RuntimeError(f"{ENCODING} has no answer set; the encoding is broken")

    # Each ``arguments`` call crosses into C, so unpack it once per atom. Sorted so that every
    # dict lists its genes in name order, whatever order clingo reports them in.
    rows = []
    for symbol in models[0]:
        condition, gene, status = symbol.arguments
        rows.append((condition.number, gene.string, status.name))
    for condition, gene, status in sorted(rows):
        results[condition][gene] = STATUS_CODES[status]
    return len(control.symbolic_atoms), ground_seconds, solve_seconds
