"""Real data: the E. coli PRECISE knockouts and RegulonDB's network, from the pymodulon wheel.

Source: the registry wheel ``pymodulon==0.2.1`` (MIT licence), whose
``pymodulon/data/ecoli/`` holds PRECISE (Sastry et al. 2019, Nat. Commun. 10:5536):
``log_tpm.csv`` (3,923 genes x 278 RNA-seq samples, log2(TPM + 1)), ``sample_table.csv``,
``gene_table.csv`` (b-numbers, gene names) and ``trn.csv`` (RegulonDB regulator -> gene
edges, effect ``+ - +- ?``).  The wheel is fetched with ``pip download --no-deps`` into a cache
directory (or given with ``--source``) and read with :mod:`zipfile`; it is never installed
and nothing of it is copied into the repository.

Conditions are the 40 single-gene knockouts of ``knowledge/ecoli_precise_knockouts.csv``,
each against its matched wild-type control.  Genes are b-numbers throughout.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aligned.data.dataset import PerturbationData, refuse_non_empty
from aligned.data.h5ad import DataWarning
from aligned.data.labels import label_responses, welch_qvalues
from aligned.data.splits import assign_splits
from aligned.errors import AlignedError, InputError
from aligned.io import atomic_write_text
from aligned.knowledge_base import KnowledgeBase
from aligned.resources import resource_path

PYMODULON = "pymodulon==0.2.1"
WHEEL_NAME = "pymodulon-0.2.1-py3-none-any.whl"
# sha256 of the wheel on PyPI (registry files are immutable); a download must match it
WHEEL_SHA256 = "24cf88b53e7dfe69c3bc1d4f3e28b2d30a0bf874eab1930d22208aff3ddd81b8"
MEMBER = "pymodulon/data/ecoli/{}.csv"
KNOCKOUTS_FILE = "ecoli_precise_knockouts.csv"
SIGN_NAMES = {"+": 1, "-": -1, "?": 0}
EFFECTS = {"+": (1,), "-": (-1,), "+-": (1, -1), "?": (0,)}  # RegulonDB effect -> edge signs
KNOCKOUT_COLUMNS = ("ko", "project", "deleted", "bnum", "ctrl", "tier", "n_ko", "n_ctrl", "strain")

# BW25113 carries deletions of araBAD, lacZ (lacZ4787) and rhaDAB (Datsenko & Wanner 2000):
# against an MG1655 control these genes drop for reasons unrelated to the knockout
BW25113_MISSING = ("araB", "araA", "araD", "lacZ", "rhaD", "rhaA", "rhaB")

# RegulonDB regulator names that differ from the gene names of gene_table.csv (EcoCyc
# synonyms); each alias was checked against its targets in trn.csv (e.g. envR -> acrAB,
# hprR -> cusRS, csqR -> yihUTSV).  A value with ";" is a complex of several genes.
REGULATOR_ALIASES = {
    "h-NS": "hns",
    "hU": "hupA;hupB",
    "ihf": "ihfA;ihfB",
    "hipAB": "hipA;hipB",
    "ntrC": "glnG",
    "bCCP": "accB",
    "btsR": "yehT",
    "cecR": "ybiH",
    "comR": "ycfQ",
    "csqR": "yihW",
    "dpiA": "citB",
    "envR": "acrS",
    "gutM": "srlM",
    "hprR": "yedW",
    "matA": "ecpR",
    "nimR": "yeaM",
    "pdeL": "yahA",
    "sutR": "ydcN",
}


def default_cache() -> Path:
    """``$ALIGNED_CACHE`` when set, else ``~/.cache/aligned``."""
    return Path(os.environ.get("ALIGNED_CACHE") or Path.home() / ".cache" / "aligned")


def fetch_wheel(cache: str | os.PathLike | None = None) -> Path:
    """Return the cached pymodulon wheel, downloading it with pip when it is not there yet.

    Raises
    ------
    AlignedError
        One line saying how to supply the wheel, when the download fails or the file does
        not match the published checksum.
    """
    cache = Path(cache) if cache is not None else default_cache()
    wheel = cache / WHEEL_NAME
    if not wheel.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", PYMODULON, "-d", cache]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not wheel.is_file():
            lines = (result.stderr or result.stdout).strip().splitlines()
            reason = lines[-1] if lines else f"pip exited with status {result.returncode}"
            raise AlignedError(
                f"cannot download {PYMODULON} ({reason}); fetch it where the registry is "
                f"reachable with 'pip download --no-deps {PYMODULON}' and pass the wheel with "
                "--source PATH"
            )
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise AlignedError(
            f"{wheel}: checksum {digest[:12]}... does not match the published {PYMODULON} "
            "wheel; delete it and run again, or pass a good copy with --source PATH"
        )
    return wheel


@dataclass
class PreciseTables:
    """The four PRECISE tables, as read from the wheel."""

    log_tpm: pd.DataFrame  # genes (b-numbers) x samples
    samples: pd.DataFrame  # one row per sample, indexed by sample id
    genes: pd.DataFrame  # gene_table: indexed by b-number, column gene_name
    trn: pd.DataFrame  # regulator, gene_id, effect
    source: str = ""
    sha256: str = ""


def read_precise(source: str | os.PathLike) -> PreciseTables:
    """Read the PRECISE tables straight from the wheel (or any zip with the same members).

    Raises
    ------
    InputError
        When the file is no zip, lacks a table, or a table lacks a column it needs.
    """
    source = Path(source)
    if not source.is_file():
        raise InputError("file not found (expected the pymodulon-0.2.1 wheel)", source)
    try:
        with zipfile.ZipFile(source) as archive:

            def table(name: str, **options) -> pd.DataFrame:
                member = MEMBER.format(name)
                try:
                    with archive.open(member) as handle:
                        return pd.read_csv(handle, **options)
                except KeyError:
                    raise InputError(f"the archive has no {member}", source) from None

            log_tpm = table("log_tpm", index_col=0)
            samples = table("sample_table", index_col=0)
            genes = table("gene_table", index_col=0)
            trn = table("trn", dtype=str, keep_default_na=False)
    except zipfile.BadZipFile:
        raise InputError("not a zip file (expected the pymodulon-0.2.1 wheel)", source) from None
    for name, frame, columns in (
        ("sample_table.csv", samples, ("project", "condition", "Strain")),
        ("gene_table.csv", genes, ("gene_name",)),
        ("trn.csv", trn, ("regulator", "gene_id", "effect")),
    ):
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise InputError(f"{name} lacks column(s) {', '.join(missing)}", source)
    if not np.isfinite(log_tpm.to_numpy(dtype=np.float64)).all():
        raise InputError("log_tpm.csv holds NaN or infinite values", source)
    return PreciseTables(log_tpm, samples, genes, trn, str(source), _sha256(source))


# ---- the knowledge base ------------------------------------------------------------------


@dataclass
class TrnMapping:
    """How ``trn.csv`` became gene-to-gene edges."""

    rows: int = 0  # trn.csv rows read
    mapped_rows: int = 0  # of which had a regulator that maps to genes
    aliases: dict[str, str] = field(default_factory=dict)  # regulator -> gene name(s) used
    complexes: dict[str, list[str]] = field(default_factory=dict)  # regulator -> subunits
    unmapped: dict[str, int] = field(default_factory=dict)  # regulator -> rows left out


def map_trn(
    trn: pd.DataFrame, gene_table: pd.DataFrame, *, aliases: bool = True
) -> tuple[KnowledgeBase, TrnMapping]:
    """Turn RegulonDB regulator -> gene rows into signed b-number edges.

    Parameters
    ----------
    trn : pandas.DataFrame
        Columns ``regulator`` (a gene name, a complex ``a;b``, or a metabolite / tRNA),
        ``gene_id`` (b-number) and ``effect`` (``+ - +- ?``).
    gene_table : pandas.DataFrame
        Indexed by b-number, with ``gene_name``.
    aliases : bool
        Map RegulonDB names that are EcoCyc synonyms of a gene name (:data:`REGULATOR_ALIASES`).

    Returns
    -------
    KnowledgeBase
        Edges ``(regulator gene, target, sign)`` with column ``regulator`` (the trn.csv name);
        a complex regulates through each subunit; ``+-`` gives two edges, ``?`` sign 0.
    TrnMapping
        Counts, the aliases and complexes used, and the regulators left out (metabolites,
        tRNAs, genes absent from the gene table) with their row counts.

    Raises
    ------
    InputError
        For an unknown effect token or a target that is not in the gene table (with its
        trn.csv line).
    """
    names = gene_table["gene_name"].astype(str)
    # a gene name may repeat in gene_table (insertion elements): only unique names resolve
    unique = names[~names.duplicated(keep=False)]
    bnumber = dict(zip(unique, unique.index))
    report = TrnMapping(rows=len(trn))
    resolved: dict[str, list[str] | None] = {}
    for regulator in pd.unique(trn["regulator"]):
        name = REGULATOR_ALIASES.get(regulator, regulator) if aliases else regulator
        parts = name.split(";")
        genes = [bnumber.get(part) for part in parts]
        resolved[regulator] = None if None in genes else genes
        if resolved[regulator] is not None and name != regulator:
            report.aliases[regulator] = name
        if resolved[regulator] is not None and len(parts) > 1:
            report.complexes[regulator] = parts
    rows = []
    for line, (regulator, target, effect) in enumerate(
        trn[["regulator", "gene_id", "effect"]].itertuples(index=False), start=2
    ):
        signs = EFFECTS.get(effect.strip())
        if signs is None:
            raise InputError(f"unknown effect {effect!r} (expected + - +- ?)", "trn.csv", line)
        if target not in gene_table.index:
            raise InputError(f"target {target!r} is not in gene_table.csv", "trn.csv", line)
        sources = resolved[regulator]
        if sources is None:
            report.unmapped[regulator] = report.unmapped.get(regulator, 0) + 1
            continue
        report.mapped_rows += 1
        rows += [(source, target, sign, regulator) for source in sources for sign in signs]
    edges = pd.DataFrame(rows, columns=["source", "target", "sign", "regulator"])
    edges = edges.sort_values(["source", "target", "sign"], kind="stable", ignore_index=True)
    return KnowledgeBase(edges), report


# ---- the knockout data set --------------------------------------------------------------------


def read_knockouts(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The knockout table (default: the shipped ``knowledge/ecoli_precise_knockouts.csv``)."""
    path = Path(path) if path is not None else resource_path("knowledge", KNOCKOUTS_FILE)
    if not path.is_file():
        raise InputError("file not found", path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in KNOCKOUT_COLUMNS if column not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path, 1)
    repeated = table["ko"].duplicated()
    if repeated.any():
        line = int(np.flatnonzero(repeated.to_numpy())[0]) + 2
        raise InputError(f"knockout {table['ko'][line - 2]!r} is listed twice", path, line)
    table.attrs["path"] = str(path)  # so that later errors can name the file
    return table


def knockout_data(
    tables: PreciseTables,
    knockouts: pd.DataFrame,
    *,
    tau: float = 1.0,
    welch: bool = False,
    alpha: float = 0.05,
) -> PerturbationData:
    """Log fold changes and labels of each knockout against its matched control.

    ``lfc`` = mean log2(TPM + 1) of the knockout's samples minus the mean of its control's.
    For a BW25113 knockout against a control of another strain, the genes BW25113 lacks
    (:data:`BW25113_MISSING`) are not scored.  Rows whose deleted gene is not measured, or
    whose samples are missing, are excluded with a :class:`DataWarning` and listed in
    ``meta["excluded"]``.

    Raises
    ------
    InputError
        When a row's gene name disagrees with the gene table's name for its b-number.
    """
    log_tpm = tables.log_tpm
    genes = log_tpm.index.astype(str).tolist()
    position = {gene: i for i, gene in enumerate(genes)}
    key = tables.samples["project"].astype(str) + "__" + tables.samples["condition"].astype(str)
    measured = key[key.index.isin(log_tpm.columns)]
    samples_of = {name: group.index.tolist() for name, group in measured.groupby(measured)}
    absent = tables.genes.index[tables.genes["gene_name"].isin(BW25113_MISSING)]
    bw_missing = sorted(position[b] for b in absent if b in position)
    rows, excluded = [], {}
    for line, row in enumerate(knockouts.itertuples(index=False), start=2):
        reason = _exclusion(row, position, samples_of)
        if reason:
            excluded[row.ko] = reason
            continue
        table_name = tables.genes["gene_name"].get(row.bnum)
        if table_name is not None and table_name != row.deleted:
            raise InputError(
                f"{row.ko}: deleted gene {row.deleted!r} but {row.bnum} is {table_name!r} "
                "in gene_table.csv",
                knockouts.attrs.get("path", "knockout table"),
                line,
            )
        rows.append(_knockout_row(row, tables, samples_of, bw_missing))
    if excluded:
        warnings.warn(
            f"{len(excluded)} knockout(s) excluded: "
            + "; ".join(f"{ko} ({why})" for ko, why in excluded.items()),
            DataWarning,
            stacklevel=2,
        )
    lfc = np.array([r["lfc"] for r in rows]).reshape(len(rows), len(genes))
    qvalues = None
    if welch:
        qvalues = welch_qvalues(*(np.array([r[k] for r in rows]) for k in _MOMENTS))
    labels, rule = label_responses(lfc, tau, qvalues=qvalues, alpha=alpha)
    scored = np.ones(lfc.shape, dtype=bool)
    for i, r in enumerate(rows):
        scored[i, position[r["bnum"]]] = False
        if r["masked"]:
            scored[i, bw_missing] = False
    columns = ["control", "tier", "notes", "deleted", "project", "strain", "n_ko", "n_ctrl"]
    return PerturbationData.from_perturbations(
        genes,
        [{r["bnum"]: -1} for r in rows],
        lfc,
        labels,
        scored,
        ids=[r["ko"] for r in rows],
        columns={column: [r[column] for r in rows] for column in columns},
        label_rule=rule,
        meta={
            "source": "E. coli PRECISE (Sastry et al. 2019) from the pymodulon 0.2.1 wheel",
            "wheel": {"file": Path(tables.source).name, "sha256": tables.sha256},
            "lfc": "mean log2(TPM+1) of the knockout samples minus the mean of the control",
            "bw25113_masked_genes": [genes[i] for i in bw_missing],
            "excluded": excluded,
        },
    )


_MOMENTS = ("mean_ko", "var_ko", "n_ko", "mean_ctrl", "var_ctrl", "n_ctrl")


def _exclusion(row, position: dict[str, int], samples_of: dict[str, list[str]]) -> str:
    if row.bnum not in position:
        return f"deleted gene {row.deleted} ({row.bnum}) is not measured"
    for role, name in (("knockout", row.ko), ("control", row.ctrl)):
        if name not in samples_of:
            return f"no {role} samples of {name} in log_tpm.csv"
    return ""


def _knockout_row(row, tables: PreciseTables, samples_of: dict, bw_missing: list[int]) -> dict:
    ko_samples = tables.log_tpm[samples_of[row.ko]]
    ctrl_samples = tables.log_tpm[samples_of[row.ctrl]]
    control_strains = set(tables.samples.loc[samples_of[row.ctrl], "Strain"].astype(str))
    # the curated table knows the knockout strain; sample_table mislabels some BW25113 runs
    masked = "BW25113" in row.strain and not any("BW25113" in s for s in control_strains)
    notes = [row.note] if getattr(row, "note", "") else []
    if masked and bw_missing:
        notes.append("araBAD, lacZ, rhaDAB not scored (absent from BW25113)")
    for role, expected, found in (
        ("knockout", row.n_ko, ko_samples.shape[1]),
        ("control", row.n_ctrl, ctrl_samples.shape[1]),
    ):
        if str(found) != str(expected):
            notes.append(f"{found} {role} samples found, table lists {expected}")
    n_ko, n_ctrl = ko_samples.shape[1], ctrl_samples.shape[1]
    return {
        "ko": row.ko,
        "bnum": row.bnum,
        "lfc": (ko_samples.mean(axis=1) - ctrl_samples.mean(axis=1)).to_numpy(),
        "mean_ko": ko_samples.mean(axis=1).to_numpy(),
        "var_ko": ko_samples.var(axis=1, ddof=1).fillna(0.0).to_numpy(),
        "mean_ctrl": ctrl_samples.mean(axis=1).to_numpy(),
        "var_ctrl": ctrl_samples.var(axis=1, ddof=1).fillna(0.0).to_numpy(),
        "masked": masked,
        "control": row.ctrl,
        "tier": row.tier,
        "notes": "; ".join(notes),
        "deleted": row.deleted,
        "project": row.project,
        "strain": row.strain,
        "n_ko": n_ko,
        "n_ctrl": n_ctrl,
    }


# ---- the whole build ----------------------------------------------------------------------


@dataclass
class EcoliBuild:
    """What :func:`build_ecoli` made: the data set (splits assigned), the KB, and a report."""

    data: PerturbationData
    kb: KnowledgeBase
    mapping: TrnMapping
    report: dict

    def summary(self) -> dict[str, str]:
        """A few lines for the command line."""
        r = self.report
        return {
            "conditions": f"{r['conditions']} knockouts ({r['excluded']} excluded)",
            "genes measured": str(r["genes"]),
            "non-zero labels": f"{r['nonzero_labels']} (tau = {r['tau']:g})",
            "KB edges": f"{r['kb_edges']} over {r['kb_genes']} genes",
            "regulators left out": f"{len(self.mapping.unmapped)} (metabolites, tRNAs, ...)",
            "KB 1-step calls": (
                f"precision {r['kb_calls_k1']['precision']:.3f}, recall "
                f"{r['kb_calls_k1']['recall']:.3f} on {r['kb_calls_k1']['knockouts']} "
                "knockouts of KB regulators"
            ),
            "splits": ", ".join(f"{k} {v}" for k, v in r["splits"].items()),
        }


def build_ecoli(
    out: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    tau: float = 1.0,
    knockouts: str | os.PathLike | None = None,
    seed: int = 0,
    aliases: bool = True,
) -> EcoliBuild:
    """Build and write the E. coli data set: ``data/``, ``kb.tsv``, ``gene_names.tsv``,
    ``ecoli.json``.

    Parameters
    ----------
    out : path
        A new or empty directory.
    source : path, optional
        The pymodulon-0.2.1 wheel; downloaded into ``cache`` when not given.
    cache : path, optional
        Download cache (:func:`default_cache` when not given).
    tau : float
        Label threshold on ``|log2 fold change|``.
    knockouts : path, optional
        Knockout table; the shipped one by default.
    seed : int
        Split seed (conditions group by deleted gene).
    aliases : bool
        Map RegulonDB synonyms of gene names (:data:`REGULATOR_ALIASES`).

    Raises
    ------
    AlignedError
        When ``out`` already holds files, or the wheel can be neither found nor downloaded.
    """
    out = Path(out)
    refuse_non_empty(out)
    wheel = Path(source) if source is not None else fetch_wheel(cache)
    tables = read_precise(wheel)
    kb, mapping = map_trn(tables.trn, tables.genes, aliases=aliases)
    data = knockout_data(tables, read_knockouts(knockouts), tau=tau)
    # figures describe the whole table, so they are taken before the test split is sealed
    report = {
        "conditions": len(data),
        "excluded": len(data.meta["excluded"]),
        "genes": len(data.genes),
        "tau": tau,
        "nonzero_labels": int(((data.labels != 0) & data.scored).sum()),
        "kb_edges": len(kb),
        "kb_genes": len(kb.genes),
        "kb_signs": {t: int((kb.edges["sign"] == v).sum()) for t, v in SIGN_NAMES.items()},
        "trn_rows": mapping.rows,
        "trn_rows_mapped": mapping.mapped_rows,
        "regulators_unmapped": mapping.unmapped,
        "regulator_aliases": mapping.aliases,
        "regulator_complexes": mapping.complexes,
        "kb_calls_k1": kb_call_agreement(kb, data, k=1),
    }
    meta = dict(data.meta, knowledge_kb="../kb.tsv", gene_names="../gene_names.tsv")
    data = PerturbationData(
        data.genes, data.conditions, data.lfc, data.labels, data.scored,
        label_rule=data.label_rule, meta=meta,
    )  # fmt: skip
    data = assign_splits(data, seed=seed)
    report["splits"] = {k: v for k, v in data.split_sizes().items() if v}
    out.mkdir(parents=True, exist_ok=True)
    data.save(out / "data")
    kb.write(out / "kb.tsv")
    names = tables.genes["gene_name"].astype(str)
    atomic_write_text(
        out / "gene_names.tsv",
        pd.DataFrame({"gene": names.index, "name": names.to_numpy()}).to_csv(
            sep="\t", index=False, lineterminator="\n"
        ),
    )
    record = {"format": "aligned.ecoli", "version": 1, "source": data.meta["wheel"], **report}
    atomic_write_text(out / "ecoli.json", json.dumps(record, indent=2) + "\n")
    return EcoliBuild(data, kb, mapping, report)


def kb_call_agreement(kb: KnowledgeBase, data: PerturbationData, k: int = 1) -> dict:
    """How often the KB's deduction calls agree with the labels, on knockouts of KB regulators.

    A *call* is a scored entry where the deduction at bound ``k`` is +1 or -1; a *hit* is a
    call equal to a non-zero label.  Precision is hits / calls, recall hits / non-zero scored
    labels, over the conditions whose perturbed genes all have an outgoing KB edge.  It reads
    every label, so it takes data whose test split is not sealed (build time, or evaluation).
    """
    regulators = set(kb.edges["source"])
    rows = np.array([bool(p) and set(p) <= regulators for p in data.perturbations], dtype=bool)
    calls_made, _ = kb.deduce_matrix(data.perturbation_matrix()[rows], k, genes=data.genes)
    labels, scored = data.labels[rows], data.scored[rows]
    calls = (calls_made != 0) & scored
    changes = (labels != 0) & scored
    hits = int((calls & changes & (calls_made == labels)).sum())
    return {
        "k": k,
        "knockouts": int(rows.sum()),
        "calls": int(calls.sum()),
        "labels": int(changes.sum()),
        "hits": hits,
        "precision": hits / max(int(calls.sum()), 1),
        "recall": hits / max(int(changes.sum()), 1),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
