"""The perturbation data set: conditions, their responses, ternary labels and splits.

:class:`PerturbationData` is the one object every later stage reads (DESIGN.md section 2,
step 1).  It holds, for ``C`` conditions over ``G`` measured genes:

* ``genes`` (the columns) and ``conditions`` (one row per condition: ``id``,
  ``perturbation`` text, ``control``, ``group``, ``tier``, ``notes``, ``split``, and any
  extra columns a reader adds);
* ``lfc`` (float32, C x G), ``labels`` (int8 in {-1, 0, +1}) and ``scored`` (bool: False at
  perturbed genes and masked artefacts);
* ``label_rule`` and ``meta`` (JSON-able dicts: how the labels were made, where the data
  came from).

The test split is sealed.  An object that holds test conditions refuses to hand out its
``lfc``, ``labels`` or ``scored`` arrays; training code works on :attr:`train` and
:attr:`validation` views, which are copies that contain no test row at all, and sees the
test conditions' inputs through :meth:`test_inputs`.  Only
:func:`aligned.data.splits.open_sealed_test` (called by evaluation) reads test labels.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aligned.data.perturbation import format_perturbation, gene_set_key, parse_perturbation
from aligned.errors import AlignedError, InputError
from aligned.io import atomic_write_bytes, atomic_write_text

SPLITS = ("train", "validation", "test", "unassigned")
CORE_COLUMNS = ("id", "perturbation", "control", "group", "tier", "notes", "split")
FORMAT = "aligned.perturbation-data"
FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
ARRAYS_FILE = "arrays.npz"
CONDITIONS_FILE = "conditions.tsv"
GENES_FILE = "genes.tsv"


class SealedSplitError(AlignedError, PermissionError):
    """Test labels or responses were asked for outside the evaluation function."""


class PerturbationInputs:
    """The inputs of a set of conditions: genes, the conditions table and the perturbations.

    This is what a model may see of the test split (:meth:`PerturbationData.test_inputs`):
    no response, no label.

    Parameters
    ----------
    genes : sequence of str
        The measured genes, unique.
    conditions : pandas.DataFrame
        At least ``id`` (unique, non-empty) and ``perturbation`` (text such as
        ``geneA=-1;geneB=+1``).  Missing columns ``control``, ``tier``, ``notes`` default to
        ``""``, ``group`` to the perturbed gene set, ``split`` to ``"unassigned"``.

    Raises
    ------
    InputError
        On duplicate genes or ids, an unreadable perturbation or an unknown split.
    """

    def __init__(self, genes: Sequence[str], conditions: pd.DataFrame):
        self._genes = [str(gene) for gene in genes]
        _check_unique(self._genes, "gene")
        self._conditions, self._perturbations = _normalise_conditions(conditions)

    @property
    def genes(self) -> list[str]:
        """The measured genes (the columns of every array), a copy."""
        return list(self._genes)

    @property
    def conditions(self) -> pd.DataFrame:
        """The conditions table, a copy (editing it cannot unseal or resplit the data)."""
        return self._conditions.copy()

    @property
    def perturbations(self) -> list[dict[str, int]]:
        """One ``{gene: -1 or +1}`` map per condition, in row order."""
        return [dict(perturbation) for perturbation in self._perturbations]

    @property
    def ids(self) -> list[str]:
        """The condition ids, in row order."""
        return self._conditions["id"].tolist()

    def __len__(self) -> int:
        return len(self._conditions)

    def perturbation_matrix(self, genes: Sequence[str] | None = None) -> sp.csr_matrix:
        """The signed perturbations as a sparse matrix, conditions x ``len(genes)``.

        Parameters
        ----------
        genes : sequence of str, optional
            The column index (a KB's genes, say); defaults to :attr:`genes`.  A perturbed gene
            absent from it is left out of that row.

        Returns
        -------
        scipy.sparse.csr_matrix
            float32, entry -1 (loss) or +1 (gain) at each perturbed gene.
        """
        return perturbation_matrix(self._perturbations, self._genes if genes is None else genes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} conditions x {len(self._genes)} genes)"


class PerturbationData(PerturbationInputs):
    """Perturbation conditions with their responses, labels and splits.

    Parameters
    ----------
    genes, conditions
        As for :class:`PerturbationInputs`.
    lfc : array, conditions x genes
        Log fold changes (stored as float32); must be finite.
    labels : array, conditions x genes
        Ternary labels in {-1, 0, +1} (stored as int8).
    scored : array of bool, optional
        Which entries count in metrics; defaults to every entry except the perturbed genes.
    label_rule : dict, optional
        The rule that made ``labels`` (see :func:`aligned.data.labels.label_responses`).
    meta : dict, optional
        Provenance.  ``meta["ground_truth_kb"]``, when present, is the path of the true KB
        relative to the saved dataset directory (see :meth:`ground_truth_path`).

    Raises
    ------
    InputError
        On any shape, dtype, value or id problem, naming it.

    Examples
    --------
    >>> data = PerturbationData.from_perturbations(
    ...     ["a", "b"], [{"a": -1}], lfc=[[-3.0, 1.5]], labels=[[-1, 1]])
    >>> data.scored.tolist()
    [[False, True]]
    """

    # evaluation's opened copy of the test split turns this off (see splits.open_sealed_test)
    _seals_test = True

    def __init__(
        self,
        genes: Sequence[str],
        conditions: pd.DataFrame,
        lfc: np.ndarray,
        labels: np.ndarray,
        scored: np.ndarray | None = None,
        *,
        label_rule: Mapping | None = None,
        meta: Mapping | None = None,
    ):
        super().__init__(genes, conditions)
        shape = (len(self._conditions), len(self._genes))
        self._lfc, self._labels = _check_responses(lfc, labels, shape)
        if scored is None:
            scored = self.perturbation_matrix().toarray() == 0
        self._scored = _check_scored(scored, shape)
        self.label_rule = _json_copy(label_rule or {}, "label_rule")
        self.meta = _json_copy(meta or {}, "meta")
        # the directory this object was loaded from: ground_truth_path() resolves against it
        self.source: Path | None = None
        self._test_rows = self._conditions["split"].to_numpy() == "test"

    @classmethod
    def from_perturbations(
        cls,
        genes: Sequence[str],
        perturbations: Sequence[Mapping[str, int]],
        lfc: np.ndarray,
        labels: np.ndarray,
        scored: np.ndarray | None = None,
        *,
        ids: Sequence[str] | None = None,
        columns: Mapping[str, Sequence] | None = None,
        label_rule: Mapping | None = None,
        meta: Mapping | None = None,
    ) -> PerturbationData:
        """Build a data set from perturbation maps instead of a conditions table.

        ``ids`` default to the perturbation text; ``columns`` adds conditions-table columns
        (``control``, ``tier``, ``notes``, ``split``, or extra ones), one value per condition.
        """
        try:
            texts = [format_perturbation(perturbation) for perturbation in perturbations]
        except ValueError as error:
            raise InputError(str(error)) from None
        table = pd.DataFrame({"id": list(ids) if ids is not None else texts, "perturbation": texts})
        for name, values in (columns or {}).items():
            table[name] = list(values)
        return cls(genes, table, lfc, labels, scored, label_rule=label_rule, meta=meta)

    # ---- the arrays, sealed while test rows are inside ------------------------------------

    def _unsealed(self, name: str) -> np.ndarray:
        if self._seals_test and self._test_rows.any():
            raise SealedSplitError(
                f"data.{name} is sealed: this data set holds {int(self._test_rows.sum())} test "
                "condition(s); train on data.train / data.validation, predict on "
                "data.test_inputs(), and read test labels only through "
                "aligned.data.splits.open_sealed_test in evaluation"
            )
        return getattr(self, f"_{name}")

    @property
    def lfc(self) -> np.ndarray:
        """Log fold changes, float32, conditions x genes (sealed while test rows are inside)."""
        return self._unsealed("lfc")

    @property
    def labels(self) -> np.ndarray:
        """Ternary labels, int8 in {-1, 0, +1} (sealed while test rows are inside)."""
        return self._unsealed("labels")

    @property
    def scored(self) -> np.ndarray:
        """Which entries count in metrics, bool (sealed while test rows are inside)."""
        return self._unsealed("scored")

    # ---- subsets ---------------------------------------------------------------------------

    def subset(self, rows: np.ndarray | Sequence[int]) -> PerturbationData:
        """A copy holding only ``rows`` (a boolean mask or integer positions).

        A subset that still holds test rows stays sealed.
        """
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape != (len(self),):
            raise InputError(f"a row mask needs {len(self)} entries, got {rows.shape[0]}")
        subset = type(self)(
            self._genes,
            self._conditions.iloc[rows].reset_index(drop=True),
            self._lfc[rows],
            self._labels[rows],
            self._scored[rows],
            label_rule=self.label_rule,
            meta=self.meta,
        )
        subset.source = self.source
        return subset

    def split_view(self, split: str) -> PerturbationData:
        """The conditions of one split, as a new data set without any other row.

        Parameters
        ----------
        split : {"train", "validation", "unassigned"}
            ``"test"`` is refused: see :meth:`test_inputs`.

        Raises
        ------
        SealedSplitError
            For ``"test"``.
        InputError
            For a name that is no split.
        """
        if split == "test":
            raise SealedSplitError(
                "the test split is sealed: use data.test_inputs() for its perturbations; "
                "evaluation reads its labels through aligned.data.splits.open_sealed_test"
            )
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return self.subset(self._conditions["split"].to_numpy() == split)

    @property
    def train(self) -> PerturbationData:
        """The training conditions (a new copy on every access: keep a reference)."""
        return self.split_view("train")

    @property
    def validation(self) -> PerturbationData:
        """The validation conditions (a new copy on every access: keep a reference)."""
        return self.split_view("validation")

    def without_test(self) -> PerturbationData:
        """Every condition but the sealed test split (train, validation and unassigned
        together: what abduction fits), as a new, unsealed data set."""
        return self.subset(self._conditions["split"].to_numpy() != "test")

    def test_inputs(self) -> PerturbationInputs:
        """The test conditions' genes, table and perturbations: no response, no label."""
        rows = self._conditions["split"].to_numpy() == "test"
        return PerturbationInputs(self._genes, self._conditions[rows].reset_index(drop=True))

    def split_sizes(self) -> dict[str, int]:
        """Number of conditions in each split (every split named, zeros included)."""
        counts = self._conditions["split"].value_counts()
        return {split: int(counts.get(split, 0)) for split in SPLITS}

    # ---- provenance ------------------------------------------------------------------------

    def ground_truth_path(self) -> Path | None:
        """The true KB's file (synthetic data), or None when the data carry no ground truth.

        Raises
        ------
        AlignedError
            When the path is relative and this object was not loaded from a directory.
        """
        recorded = self.meta.get("ground_truth_kb")
        if recorded is None:
            return None
        path = Path(recorded)
        if path.is_absolute():
            return path
        if self.source is None:
            raise AlignedError(
                f"the ground-truth KB {recorded!r} is relative to the saved dataset directory, "
                "and this data set was not loaded from one"
            )
        return (self.source / path).resolve()

    # ---- files -----------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> None:
        """Write the data set to ``directory`` (created if needed), every file atomically.

        Files: ``arrays.npz`` (lfc, labels, scored, ids, genes), ``conditions.tsv``,
        ``genes.tsv`` and ``dataset.json`` (format, shapes, label rule, meta), written last.
        :meth:`load` gives back an equal object.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            lfc=self._lfc,
            labels=self._labels,
            scored=self._scored,
            ids=np.asarray(self.ids, dtype=str),
            genes=np.asarray(self._genes, dtype=str),
        )
        atomic_write_bytes(directory / ARRAYS_FILE, buffer.getvalue())
        atomic_write_text(directory / CONDITIONS_FILE, _to_tsv(self._conditions))
        atomic_write_text(directory / GENES_FILE, _to_tsv(pd.DataFrame({"gene": self._genes})))
        extras = [column for column in self._conditions.columns if column not in CORE_COLUMNS]
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "n_conditions": len(self),
            "n_genes": len(self._genes),
            "column_dtypes": {column: str(self._conditions[column].dtype) for column in extras},
            "label_rule": self.label_rule,
            "meta": self.meta,
        }
        atomic_write_text(directory / DATASET_FILE, json.dumps(header, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> PerturbationData:
        """Read a data set written by :meth:`save`.

        Raises
        ------
        InputError
            One line naming the file (and line) for: a missing directory or file, malformed
            JSON, a wrong format, duplicate or mismatched ids or genes, or arrays whose
            shape, dtype or values disagree with the tables.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise InputError("not a directory (expected a saved dataset)", directory)
        header = _read_header(directory / DATASET_FILE)
        genes_path = directory / GENES_FILE
        genes = _read_tsv(genes_path, ["gene"])["gene"].tolist()
        _check_unique(genes, "gene", genes_path)
        conditions_path = directory / CONDITIONS_FILE
        conditions = _read_tsv(conditions_path, ["id", "perturbation"])
        conditions = _restore_dtypes(conditions, header["column_dtypes"], conditions_path)
        _normalise_conditions(conditions, conditions_path)  # line-numbered errors first
        for name, expected, actual in (
            ("conditions", header["n_conditions"], len(conditions)),
            ("genes", header["n_genes"], len(genes)),
        ):
            if expected != actual:
                raise InputError(
                    f"dataset.json says {expected} {name} but the table holds {actual}",
                    directory / DATASET_FILE,
                )
        arrays = _read_arrays(directory / ARRAYS_FILE, conditions["id"].tolist(), genes)
        try:
            data = cls(
                genes,
                conditions,
                arrays["lfc"],
                arrays["labels"],
                arrays["scored"],
                label_rule=header["label_rule"],
                meta=header["meta"],
            )
        except InputError as error:
            raise InputError(error.problem, directory / ARRAYS_FILE) from None
        data.source = directory.resolve()
        return data

    # ---- comparison ------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PerturbationData):
            return NotImplemented
        return (
            self._genes == other._genes
            and self._conditions.equals(other._conditions)
            and np.array_equal(self._lfc, other._lfc)
            and np.array_equal(self._labels, other._labels)
            and np.array_equal(self._scored, other._scored)
            and self.label_rule == other.label_rule
            and self.meta == other.meta
        )

    __hash__ = None  # mutable metadata: equal objects need not hash equal

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name} {count}" for name, count in self.split_sizes().items() if count)
        return (
            f"{type(self).__name__}({len(self)} conditions x {len(self._genes)} genes; "
            f"{sizes or 'empty'})"
        )


def perturbation_matrix(
    perturbations: Sequence[Mapping[str, int]], genes: Sequence[str]
) -> sp.csr_matrix:
    """Perturbation maps as a float32 CSR matrix, one row each, columns ``genes``.

    Entries are the signs (-1 or +1); a perturbed gene not in ``genes`` is left out.
    """
    index = {gene: i for i, gene in enumerate(genes)}
    rows, cols, values = [], [], []
    for row, perturbation in enumerate(perturbations):
        for gene, sign in perturbation.items():
            if gene in index:
                rows.append(row)
                cols.append(index[gene])
                values.append(sign)
    return sp.csr_matrix(
        (np.asarray(values, dtype=np.float32), (rows, cols)),
        shape=(len(perturbations), len(index)),
        dtype=np.float32,
    )


def refuse_non_empty(out: Path) -> None:
    """Raise unless ``out`` is absent or an empty directory (outputs never overwrite)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AlignedError(
            f"{out}: the output directory already holds files; choose a new or empty one"
        )


# ---- validation at the door -----------------------------------------------------------------


def _check_unique(values: Sequence[str], what: str, path: Path | None = None) -> None:
    """Raise on an empty or repeated value; ``path`` names the TSV (header on line 1)."""
    first_seen: dict[str, int] = {}
    for row, value in enumerate(values):
        line = row + 2 if path is not None else None
        if value == "":
            raise InputError(f"empty {what}", path, line)
        if value in first_seen:
            where = f"line {first_seen[value] + 2}" if path is not None else "an earlier row"
            raise InputError(f"duplicate {what} {value!r} (first on {where})", path, line)
        first_seen[value] = row


def _normalise_conditions(
    conditions: pd.DataFrame, path: Path | None = None
) -> tuple[pd.DataFrame, list[dict[str, int]]]:
    """Fill default columns, check ids, perturbations and splits; return table and maps."""
    missing = [column for column in ("id", "perturbation") if column not in conditions.columns]
    if missing:
        raise InputError(f"the conditions table lacks column(s) {', '.join(missing)}", path)
    table = conditions.reset_index(drop=True).copy()
    table["id"] = table["id"].astype(str)
    _check_unique(table["id"].tolist(), "condition id", path)
    perturbations = []
    for row, text in enumerate(table["perturbation"].astype(str)):
        try:
            perturbations.append(parse_perturbation(text))
        except ValueError as error:
            raise InputError(str(error), path, row + 2 if path is not None else None) from None
    table["perturbation"] = [format_perturbation(p) for p in perturbations]
    if "group" not in table.columns:
        table["group"] = [gene_set_key(p) for p in perturbations]
    defaults = {"control": "", "tier": "", "notes": "", "split": "unassigned"}
    for column, default in defaults.items():
        if column not in table.columns:
            table[column] = default
    for column in CORE_COLUMNS:
        table[column] = table[column].fillna("").astype(str)
    bad = ~table["split"].isin(SPLITS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"unknown split {table['split'].iloc[row]!r}; expected one of {', '.join(SPLITS)}",
            path,
            row + 2 if path is not None else None,
        )
    extras = [column for column in table.columns if column not in CORE_COLUMNS]
    return table[list(CORE_COLUMNS) + extras], perturbations


def _as_matrix(values, shape: tuple[int, int], name: str, dtype=None) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.size == 0 and shape[0] * shape[1] == 0:
        array = array.reshape(shape)  # an empty list stands for an empty matrix
    if array.shape != shape:
        raise InputError(f"{name} has shape {array.shape}, expected {shape} (conditions x genes)")
    return array


def _check_responses(
    lfc: np.ndarray, labels: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    lfc = _as_matrix(lfc, shape, "lfc", np.float32)
    labels = _as_matrix(labels, shape, "labels")
    if not np.isfinite(lfc).all():
        row, col = np.argwhere(~np.isfinite(lfc))[0]
        raise InputError(f"lfc holds a non-finite value at condition {row}, gene {col}")
    valid = np.isin(labels, (-1, 0, 1))
    if not valid.all():
        raise InputError(f"labels must be -1, 0 or +1, found {labels[~valid].flat[0].item()!r}")
    return lfc, labels.astype(np.int8)


def _check_scored(scored: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    scored = _as_matrix(scored, shape, "scored")
    if scored.dtype != bool:
        raise InputError(f"scored must be boolean, got dtype {scored.dtype}")
    return scored.copy()


def _json_copy(value: Mapping, name: str) -> dict:
    """A deep copy through JSON, so that what is saved is exactly what loads back."""
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be JSON-serialisable: {error}") from None


# ---- file helpers -------------------------------------------------------------------------


def _to_tsv(table: pd.DataFrame) -> str:
    # pandas quotes fields holding tabs, quotes or line breaks, and read_csv undoes it
    return table.to_csv(sep="\t", index=False, lineterminator="\n")


def _read_tsv(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise InputError("missing file (the saved dataset is incomplete)", path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise InputError(f"cannot read the table: {message}", path) from None
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)} in the header", path, 1)
    return table


def _read_header(path: Path) -> dict:
    if not path.is_file():
        raise InputError("missing file: not a saved dataset directory", path)
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"malformed JSON: {error.msg}", path, error.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InputError(f"not a saved dataset (format is not {FORMAT!r})", path)
    if header.get("version") != FORMAT_VERSION:
        raise InputError(
            f"dataset format version {header.get('version')!r} is not supported "
            f"(this aligned reads version {FORMAT_VERSION})",
            path,
        )
    for key, kind in (
        ("n_conditions", int),
        ("n_genes", int),
        ("column_dtypes", dict),
        ("label_rule", dict),
        ("meta", dict),
    ):
        if not isinstance(header.get(key), kind):
            raise InputError(f"entry {key!r} is missing or not a {kind.__name__}", path)
    return header


def _restore_dtypes(table: pd.DataFrame, dtypes: dict, path: Path) -> pd.DataFrame:
    """Give extra columns back the dtype they were saved with (TSV keeps only text)."""
    for column, dtype in dtypes.items():
        if column not in table.columns:
            raise InputError(f"column {column!r} listed in dataset.json is missing", path, 1)
        try:
            if dtype == "bool":
                table[column] = table[column].map({"True": True, "False": False}).astype(bool)
            elif dtype != "object":
                table[column] = table[column].astype(dtype)
        except (ValueError, TypeError):
            raise InputError(f"column {column!r} does not read as {dtype}", path) from None
    return table


def _read_arrays(path: Path, ids: list[str], genes: list[str]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError("missing file (the saved dataset is incomplete)", path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the arrays: {error}", path) from None
    missing = [k for k in ("lfc", "labels", "scored", "ids", "genes") if k not in arrays]
    if missing:
        raise InputError(f"missing array(s) {', '.join(missing)}", path)
    for name, stored, expected, table in (
        ("ids", arrays["ids"].tolist(), ids, CONDITIONS_FILE),
        ("genes", arrays["genes"].tolist(), genes, GENES_FILE),
    ):
        if stored != expected:
            if len(stored) != len(expected):
                problem = f"{len(stored)} {name} but {table} lists {len(expected)}"
            else:
                row = next(i for i, (a, b) in enumerate(zip(stored, expected)) if a != b)
                problem = f"{name}[{row}] is {stored[row]!r} but {table} has {expected[row]!r}"
            raise InputError(f"the arrays do not match the tables: {problem}", path)
    return arrays
