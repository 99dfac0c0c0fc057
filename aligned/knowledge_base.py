"""The knowledge base: a set of signed regulatory edges, its files, and its deductions.

A :class:`KnowledgeBase` is a plain table of edges ``(source, target, sign)`` with sign
``+1`` (activation), ``-1`` (repression) or ``0`` (unknown, written ``?``), plus any extra
columns the file carried (evidence, references).  Reasoning lives in
:mod:`aligned.reasoning`; this module reads and writes edges and dispatches to a backend.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp

from aligned.errors import InputError
from aligned.io import atomic_write_text
from aligned.reasoning import tensor
from aligned.reasoning.status import PERTURBED, STATUS_NAMES, labels_from_status
from aligned.reasoning.walk import Walk

BACKENDS = ("tensor", "prolog", "asp")
CORE_COLUMNS = ("source", "target", "sign")

# sign tokens accepted in edge tables (lower-cased before lookup); "dual" means two edges
SIGN_TOKENS: dict[str, tuple[int, ...]] = {
    "+": (1,),
    "1": (1,),
    "+1": (1,),
    "activation": (1,),
    "-": (-1,),
    "-1": (-1,),
    "repression": (-1,),
    "?": (0,),
    "0": (0,),
    "unknown": (0,),
    "+-": (1, -1),
    "-+": (1, -1),
    "dual": (1, -1),
}
SIGN_TEXT = {1: "+", -1: "-", 0: "?"}


class KnowledgeBase:
    """Signed directed regulatory edges over a set of genes.

    Parameters
    ----------
    edges : pandas.DataFrame
        Columns ``source``, ``target`` (str) and ``sign`` (+1, -1 or 0 for unknown), plus any
        extra columns, kept as text.  Identical ``(source, target, sign)`` rows collapse into
        one; their distinct extra values are joined with ``"; "`` so nothing is lost.
    genes : iterable of str, optional
        Genes of the KB.  Every edge endpoint is a gene; genes listed here without edges are
        kept as isolated genes.  Order: these genes first, then endpoints in edge order.

    Examples
    --------
    >>> kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", -1)])
    >>> kb.deduce({"a": -1}, k=2)["label"].to_dict()
    {'a': -1, 'b': -1, 'c': 1}
    """

    def __init__(self, edges: pd.DataFrame, genes: Iterable[str] | None = None):
        self._edges = _normalise_edges(edges)
        listed = list(dict.fromkeys(genes)) if genes is not None else []
        endpoints = pd.unique(self._edges[["source", "target"]].to_numpy().ravel()).tolist()
        self._genes = list(dict.fromkeys([*listed, *endpoints]))

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def from_edges(
        cls, edges: Iterable[tuple[str, str, int]], genes: Iterable[str] | None = None
    ) -> KnowledgeBase:
        """Build a KB from ``(source, target, sign)`` tuples (sign +1, -1 or 0)."""
        frame = pd.DataFrame(list(edges), columns=list(CORE_COLUMNS))
        return cls(frame, genes=genes)

    @classmethod
    def read(cls, path: str | os.PathLike) -> KnowledgeBase:
        """Read a KB from a TSV/CSV edge table or a ``.pl`` file of ``edge/3`` facts.

        The table needs columns ``source``, ``target`` and ``sign`` (any order, any case);
        sign tokens are ``+ - ? +-``, ``1 -1 0`` or ``activation repression unknown dual``
        (case-insensitive); ``+-``/``dual`` becomes two edges.  Lines starting with ``#`` and
        blank lines are skipped.  A ``.csv`` file is comma-separated, anything else
        tab-separated.  A ``.pl`` file may hold only ``edge(S, T, Sign)`` and ``gene(G)`` facts;
        it is parsed, never executed.

        Raises
        ------
        InputError
            Naming the file, the line and the problem: missing file, empty file, non-UTF-8
            byte, missing column, unknown sign token, empty gene name, or (``.pl``) anything
            but a fact.
        """
        path = Path(path)
        if path.suffix == ".pl":
            from aligned.reasoning import prolog

            facts, genes = prolog.read_facts(path)
            return cls.from_edges([(s, t, sign) for s, t, sign, _ in facts], genes=genes)
        return cls(_read_edge_table(path))

    @classmethod
    def from_networkx(cls, graph: nx.DiGraph) -> KnowledgeBase:
        """Build a KB from a (multi)digraph whose edges carry a ``sign`` attribute.

        The sign may be an integer or any token :meth:`read` accepts; other edge attributes
        become extra columns.  Nodes without edges become isolated genes.
        """
        rows = []
        for source, target, attributes in graph.edges(data=True):
            if "sign" not in attributes:
                raise InputError(f"edge {source!r} -> {target!r} has no 'sign' attribute")
            extras = {key: value for key, value in attributes.items() if key != "sign"}
            for sign in _parse_sign(str(attributes["sign"])):
                rows.append({"source": str(source), "target": str(target), "sign": sign, **extras})
        frame = pd.DataFrame(rows, columns=None if rows else list(CORE_COLUMNS))
        return cls(frame, genes=[str(node) for node in graph.nodes])

    # ---- plain views ----------------------------------------------------------------------

    @property
    def edges(self) -> pd.DataFrame:
        """The edge table (a copy): ``source``, ``target``, ``sign`` and extra columns."""
        return self._edges.copy()

    @property
    def genes(self) -> list[str]:
        """Every gene of the KB, isolated ones included (a copy)."""
        return list(self._genes)

    def edge_tuples(self) -> list[tuple[str, str, int]]:
        """The edges as ``(source, target, sign)`` tuples, in table order."""
        return list(
            zip(
                self._edges["source"].tolist(),
                self._edges["target"].tolist(),
                self._edges["sign"].astype(int).tolist(),
            )
        )

    def __len__(self) -> int:
        return len(self._edges)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KnowledgeBase):
            return NotImplemented
        return self._genes == other._genes and self._edges.equals(other._edges)

    def __repr__(self) -> str:
        counts = self._edges["sign"].value_counts()
        return (
            f"KnowledgeBase({len(self._genes)} genes, {len(self)} edges: "
            f"{counts.get(1, 0)} activation, {counts.get(-1, 0)} repression, "
            f"{counts.get(0, 0)} unknown)"
        )

    # ---- files ---------------------------------------------------------------------------

    def write(self, path: str | os.PathLike) -> None:
        """Write the edge table as TSV (signs as ``+ - ?``), atomically.

        ``KnowledgeBase.read(path)`` gives back an equal KB, except for isolated genes, which
        an edge table cannot hold (use :meth:`to_prolog` with ``rules=False`` to keep them).
        """
        atomic_write_text(path, self._edge_table_text())

    def to_prolog(self, path: str | os.PathLike, rules: bool = True) -> None:
        """Write a standalone Prolog program: ``gene/1`` and ``edge/3`` facts (genes as strings)
        and, when ``rules``, the deduction and explanation rules of ``rules/deduce.pl``.

        The file loads in plain ``swipl`` with no warnings.  With ``rules=False`` it holds
        facts only and :meth:`read` loads it back.
        """
        from aligned.reasoning import prolog

        atomic_write_text(path, prolog.program_text(self.edge_tuples(), self._genes, rules=rules))

    def to_asp(self, path: str | os.PathLike) -> None:
        """Write a standalone ASP program (facts plus ``rules/deduce.lp``) that grounds in
        plain ``clingo``; add ``pert(C, G, D)`` facts to deduce condition ``C``."""
        from aligned.reasoning import asp

        atomic_write_text(path, asp.program_text(self.edge_tuples(), self._genes))

    def to_networkx(self) -> nx.MultiDiGraph:
        """A :class:`networkx.MultiDiGraph` with one edge per KB edge (attribute ``sign`` and
        the extra columns); a dual edge is two parallel edges keyed by sign."""
        graph = nx.MultiDiGraph()
        graph.add_nodes_from(self._genes)
        extras = [column for column in self._edges.columns if column not in CORE_COLUMNS]
        for row in self._edges.itertuples(index=False):
            attributes = {column: getattr(row, column) for column in extras}
            graph.add_edge(
                row.source, row.target, key=int(row.sign), sign=int(row.sign), **attributes
            )
        return graph

    def _edge_table_text(self) -> str:
        columns = list(self._edges.columns)
        lines = ["\t".join(_tsv_field(column) for column in columns)]
        for row in self._edges.itertuples(index=False):
            values = [SIGN_TEXT[v] if c == "sign" else v for c, v in zip(columns, row)]
            lines.append("\t".join(_tsv_field(value) for value in values))
        return "\n".join(lines) + "\n"

    # ---- comparison ------------------------------------------------------------------------

    def diff(self, other: KnowledgeBase) -> pd.DataFrame:
        """Edges added, removed and flipped going from this KB to ``other``.

        Returns
        -------
        pandas.DataFrame
            Columns ``change`` (``added``, ``removed``, ``flipped``), ``source``, ``target``,
            ``old_sign``, ``new_sign`` (``<NA>`` where absent), sorted by source and target.

        Notes
        -----
        Per ordered gene pair, compare the sets of signs.  A pair with exactly one sign on
        each side and different signs is ``flipped``; otherwise each sign only on this side is
        ``removed`` and each sign only on the other side ``added`` (so a single edge becoming
        dual is one ``added``).  O(edges log edges).
        """
        return diff(self, other)

    # ---- reasoning -----------------------------------------------------------------------

    @cached_property
    def _gene_index(self) -> dict[str, int]:
        return {gene: i for i, gene in enumerate(self._genes)}

    @cached_property
    def transition(self) -> sp.csr_matrix:
        """The signed-state transition matrix (see ``tensor.transition_matrix``)."""
        index = self._gene_index
        return tensor.transition_matrix(
            self._edges["source"].map(index).to_numpy(),
            self._edges["target"].map(index).to_numpy(),
            self._edges["sign"].to_numpy(),
            len(self._genes),
        )

    def deduce_matrix(
        self, X: np.ndarray | sp.spmatrix, k: int = 3, genes: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Deduce every condition of a perturbation matrix at once (the fast tensor path).

        Parameters
        ----------
        X : array or sparse matrix
            Conditions x ``len(genes)``, entries in {-1, 0, +1}.
        k : int
            Walk length bound (``k >= 1``).
        genes : sequence of str, optional
            The genes of ``X``'s columns and of the outputs; defaults to :attr:`genes`.  Genes
            outside the KB are never reached; perturbed ones still get status ``perturbed``.

        Returns
        -------
        labels, status : numpy.ndarray of int8
            Conditions x genes: labels in {-1, 0, +1} and status codes
            (:mod:`aligned.reasoning.status`).

        Notes
        -----
        DESIGN.md section 1 semantics.  Cost O(k * conditions * states reached * out-degree)
        with memory one chunk of reached states plus the int8 outputs.
        """
        _check_k(k)
        X = sp.csr_matrix(X, dtype=np.float32)
        if genes is None:
            return tensor.deduce_matrix(X, self.transition, k)
        genes = list(genes)
        if X.shape[1] != len(genes):
            raise ValueError(f"X has {X.shape[1]} columns but {len(genes)} genes were given")
        index = self._gene_index
        columns = np.array([index.get(gene, -1) for gene in genes], dtype=np.int64)
        inside = columns >= 0
        to_kb = sp.csr_matrix(
            (np.ones(inside.sum(), dtype=np.float32), (np.flatnonzero(inside), columns[inside])),
            shape=(len(genes), len(self._genes)),
        )
        _, kb_status = tensor.deduce_matrix(X @ to_kb, self.transition, k)
        status = np.zeros(X.shape, dtype=np.int8)
        status[:, inside] = kb_status[:, columns[inside]]
        perturbed = X.tocoo()
        status[perturbed.row, perturbed.col] = PERTURBED  # genes outside the KB included
        labels = labels_from_status(status, X.toarray())
        return labels, status

    def deduce(
        self, perturbation: Mapping[str, int], k: int = 3, backend: str = "tensor"
    ) -> pd.DataFrame:
        """Deduce the response of every KB gene to one (single or combined) perturbation.

        Parameters
        ----------
        perturbation : mapping of str to int
            Gene -> -1 (loss of function) or +1 (gain of function).
        k : int
            Walk length bound (``k >= 1``).
        backend : {"tensor", "prolog", "asp"}
            The engine; all three compute the same result.

        Returns
        -------
        pandas.DataFrame
            Indexed by gene (KB genes, then perturbed genes outside the KB), columns ``label``
            (-1, 0, +1) and ``status`` (``none``, ``up``, ``down``, ``conflict``,
            ``unsigned``, ``perturbed``).

        Notes
        -----
        A gene is reached with sign ``s`` when a walk of length 1..k from a perturbed gene
        ``p`` over signed edges has ``d(p)`` times the product of its signs equal to ``s``;
        both signs give ``conflict``, walks through ``?`` edges only give ``unsigned``.
        Perturbed genes keep status ``perturbed`` and their own sign, even on a cycle.
        """
        return self.deduce_many([perturbation], k=k, backend=backend)[0]

    def deduce_many(
        self, perturbations: Sequence[Mapping[str, int]], k: int = 3, backend: str = "tensor"
    ) -> list[pd.DataFrame]:
        """:meth:`deduce` for several perturbations in one call (one engine call per backend)."""
        _check_k(k)
        checked = [_check_perturbation(p) for p in perturbations]
        genes = self._genes + sorted({g for p in checked for g in p} - set(self._gene_index))
        if backend == "tensor":
            index = {gene: i for i, gene in enumerate(genes)}
            rows, cols, values = [], [], []
            for row, perturbation in enumerate(checked):
                for gene, sign in perturbation.items():
                    rows.append(row)
                    cols.append(index[gene])
                    values.append(sign)
            X = sp.csr_matrix((values, (rows, cols)), shape=(len(checked), len(genes)))
            _, status = self.deduce_matrix(X, k, genes=genes)
        elif backend in ("prolog", "asp"):
            status = self._deduce_with_engine(backend, checked, k, genes)
        else:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        frames = []
        for row, perturbation in enumerate(checked):
            signs = np.array([perturbation.get(gene, 0) for gene in genes], dtype=np.int8)
            labels = labels_from_status(status[row], signs)
            frames.append(
                pd.DataFrame(
                    {"label": labels.astype(int), "status": [STATUS_NAMES[s] for s in status[row]]},
                    index=pd.Index(genes, name="gene"),
                )
            )
        return frames

    def _deduce_with_engine(
        self, backend: str, perturbations: list[dict[str, int]], k: int, genes: list[str]
    ) -> np.ndarray:
        if backend == "prolog":
            from aligned.reasoning import prolog as engine
        else:
            from aligned.reasoning import asp as engine
        results = engine.deduce(self.edge_tuples(), self._genes, perturbations, k)
        index = {gene: i for i, gene in enumerate(genes)}
        status = np.zeros((len(perturbations), len(genes)), dtype=np.int8)
        for row, result in enumerate(results):
            for gene, code in result.items():
                status[row, index[gene]] = code
        return status

    def explain(
        self, perturbation: Mapping[str, int], gene: str, k: int = 3, limit: int = 20
    ) -> list[Walk]:
        """The signed walks of length 1..k that carry ``perturbation`` to ``gene``.

        Shortest first, then by gene sequence; at most ``limit``.  The walks are read back
        from the Prolog proof (``explain_walk`` in ``rules/deduce.pl``).

        Notes
        -----
        Only ``+``/``-`` edges form signed walks.  The number of walks can grow exponentially
        with k on dense or cyclic graphs; enumeration goes length by length and stops at
        ``limit``.
        """
        _check_k(k)
        perturbation = _check_perturbation(perturbation)
        from aligned.reasoning import prolog

        return prolog.explain(self.edge_tuples(), self._genes, perturbation, gene, k, limit)

    def query(self, goal: str, time_limit: float = 5.0) -> list[dict]:
        """Run a Prolog goal against this KB and return its solutions as dicts.

        Genes are Prolog strings: ``kb.query('edge(S, "geneC", -1)')``.  The deduction rules
        are available too (see ``rules/deduce.pl``).  Only safe goals run: anything that
        changes the database, loads files, does I/O or calls the shell is refused with
        :class:`~aligned.errors.UnsafeGoal`; a goal running past ``time_limit`` seconds stops.
        """
        from aligned.reasoning import prolog

        return prolog.query(self.edge_tuples(), self._genes, goal, time_limit=time_limit)


# ---- module-level functions (networkx style) --------------------------------------------


def diff(old: KnowledgeBase, new: KnowledgeBase) -> pd.DataFrame:
    """Edges added, removed and flipped from ``old`` to ``new``; see :meth:`KnowledgeBase.diff`."""
    before, after = _signs_by_pair(old), _signs_by_pair(new)
    rows = []
    for pair in before.keys() | after.keys():
        old_signs = before.get(pair, frozenset())
        new_signs = after.get(pair, frozenset())
        if old_signs == new_signs:
            continue
        if len(old_signs) == 1 and len(new_signs) == 1:
            rows.append(("flipped", *pair, next(iter(old_signs)), next(iter(new_signs))))
            continue
        rows += [("removed", *pair, sign, None) for sign in sorted(old_signs - new_signs)]
        rows += [("added", *pair, None, sign) for sign in sorted(new_signs - old_signs)]
    frame = pd.DataFrame(rows, columns=["change", "source", "target", "old_sign", "new_sign"])
    frame["old_sign"] = frame["old_sign"].astype("Int8")
    frame["new_sign"] = frame["new_sign"].astype("Int8")
    return frame.sort_values(["source", "target", "change"], ignore_index=True)


def _signs_by_pair(kb: KnowledgeBase) -> dict[tuple[str, str], frozenset]:
    """(source, target) -> the set of its signs, in O(edges).

    Plain dicts: a pandas lookup per pair costs about as much as this whole pass over a small KB.
    """
    signs: dict[tuple[str, str], set] = {}
    edges = kb._edges
    for source, target, sign in zip(edges["source"], edges["target"], edges["sign"].tolist()):
        signs.setdefault((source, target), set()).add(sign)
    return {pair: frozenset(values) for pair, values in signs.items()}


# ---- validation at the door ---------------------------------------------------------------


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InputError(f"the deduction bound k must be an integer >= 1, got {k!r}")


def _check_perturbation(perturbation: Mapping[str, int]) -> dict[str, int]:
    checked = {}
    for gene, sign in perturbation.items():
        if not isinstance(gene, str) or gene == "":
            raise InputError(f"perturbed gene names must be non-empty strings, got {gene!r}")
        if sign not in (-1, 1):
            raise InputError(
                f"perturbation of {gene!r} must be -1 (loss) or +1 (gain), got {sign!r}"
            )
        checked[gene] = int(sign)
    return checked


def _parse_sign(token: str) -> tuple[int, ...]:
    signs = SIGN_TOKENS.get(token.strip().lower())
    if signs is None:
        raise KeyError(token)
    return signs


def _normalise_edges(edges: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in CORE_COLUMNS if column not in edges.columns]
    if missing:
        raise InputError(f"edge table lacks column(s): {', '.join(missing)}")
    extras = [column for column in edges.columns if column not in CORE_COLUMNS]
    frame = edges[list(CORE_COLUMNS) + extras].copy()
    frame["source"] = frame["source"].astype(str)
    frame["target"] = frame["target"].astype(str)
    signs = pd.to_numeric(frame["sign"], errors="raise")
    if not signs.isin([-1, 0, 1]).all():
        bad = signs[~signs.isin([-1, 0, 1])].iloc[0]
        raise InputError(f"edge signs must be +1, -1 or 0 (unknown), got {bad!r}")
    frame["sign"] = signs.astype(np.int8)
    for column in extras:
        frame[column] = frame[column].fillna("").astype(str)
    if (frame["source"] == "").any() or (frame["target"] == "").any():
        raise InputError("edge table has an empty gene name")
    key = list(CORE_COLUMNS)
    if frame.duplicated(key).any():
        if extras:
            frame = frame.groupby(key, sort=False, as_index=False).agg(_join_distinct)
        else:
            frame = frame.drop_duplicates(key)
    return frame.reset_index(drop=True)


def _tsv_field(value: str) -> str:
    """Quote a field (CSV-style, doubling quotes) when it would not read back as itself."""
    if value.startswith("#") or any(char in value for char in '\t\n\r"'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _join_distinct(values: pd.Series) -> str:
    return "; ".join(dict.fromkeys(value for value in values if value != ""))


def _read_edge_table(path: Path) -> pd.DataFrame:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an edge table", path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 (byte 0x{raw[error.start]:02x})", path, line) from None
    if not text.strip():
        raise InputError("file is empty", path)

    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    numbered = [
        (number, line)
        for number, line in enumerate(text.splitlines(keepends=True), start=1)
        if line.strip() and not line.startswith("#")
    ]
    if not numbered:
        raise InputError("file holds no header line (only comments)", path)
    current = [numbered[0][0]]

    def lines():
        for number, line in numbered:
            current[0] = number
            yield line

    reader = csv.reader(lines(), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    # core columns match in any case; extra columns keep their own names
    header = [name.lower() if name.lower() in CORE_COLUMNS else name for name in header]
    missing = [column for column in CORE_COLUMNS if column not in header]
    if missing:
        found = ", ".join(header) if len(header) > 1 else f"{header[0]!r} (wrong delimiter?)"
        raise InputError(
            f"missing column(s) {', '.join(missing)}; the header has {found}", path, current[0]
        )
    position = {name: header.index(name) for name in header}
    rows = []
    for fields in reader:
        line = current[0]
        if len(fields) != len(header):
            raise InputError(f"expected {len(header)} fields, found {len(fields)}", path, line)
        source, target = fields[position["source"]], fields[position["target"]]
        if source == "" or target == "":
            raise InputError("empty gene name", path, line)
        token = fields[position["sign"]]
        try:
            signs = _parse_sign(token)
        except KeyError:
            raise InputError(
                f"unknown sign {token!r} (use + - ? +-, 1 -1 0, or activation repression "
                "unknown dual)",
                path,
                line,
            ) from None
        extras = {name: fields[i] for name, i in position.items() if name not in CORE_COLUMNS}
        rows += [{"source": source, "target": target, "sign": s, **extras} for s in signs]
    columns = list(CORE_COLUMNS) + [name for name in header if name not in CORE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)
