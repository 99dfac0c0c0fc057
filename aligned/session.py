"""One knowledge-refinement session: the loop of DESIGN.md section 2, resumable.

``Session(config, out).run()`` reads like the numbered list in the design:

1. prepare: load the data (split by perturbation; the test split stays sealed) and the KB;
2. pre-train the neural predictor on the training split;
3. per iteration: deduce with the current KB, adapt (per-gene gate on validation), abduce a
   revision of the KB from the training labels with the network's probabilities as soft
   evidence, and retrain on observed labels plus weighted pseudo-labels for the knockouts of
   the unperturbed regulators whose out-edges the data confirm;
4. finish: the final gate, the revised KB, its rule files and the HTML report.

Every step writes its outputs atomically and then records itself in ``state.json``; a session
killed at any point and started again with the same command skips the completed steps and,
since every step is seeded, ends with the same result as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aligned import __version__
from aligned.abduction.revision import CHANGE_COLUMNS as REVISION_COLUMNS
from aligned.adaptor import Gate, fit_gate
from aligned.config import load_config, resolve_config, write_config
from aligned.errors import InputError
from aligned.io import atomic_write_text
from aligned.knowledge_base import KnowledgeBase
from aligned.metrics import (
    balanced_consistency,
    edge_changes,
    macro_f1,
    pair_macro_f1,
    signed_edge_scores,
)

log = logging.getLogger(__name__)

# changes.tsv: the abduction's edit table with the iteration that accepted each edit
CHANGE_COLUMNS = ["iteration", *REVISION_COLUMNS]


@contextlib.contextmanager
def _solve_progress(quiet: bool, description: str) -> Iterator[Callable[[str], None]]:
    """A pulsing bar with the elapsed time while a solve runs; ``done(text)`` ends it."""
    if quiet:
        yield lambda text: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task(description, total=None)

        def done(text: str) -> None:
            bar.update(task, description=f"{description}: {text}", total=1, completed=1)

        yield done


def kb_labels(kb: KnowledgeBase, inputs: Any, k: int, genes: list[str]) -> np.ndarray:
    """The KB's deduced labels for every condition of ``inputs`` over the output ``genes``.

    Perturbed genes outside ``genes`` still act as inputs: the deduction runs over the union
    of the output genes, the KB's genes and every perturbed gene.
    """
    perturbed = {gene for perturbation in inputs.perturbations for gene in perturbation}
    index = list(dict.fromkeys([*genes, *kb.genes, *sorted(perturbed)]))
    labels, _ = kb.deduce_matrix(inputs.perturbation_matrix(index), k, genes=index)
    return labels[:, : len(genes)]


def unlabelled_perturbations(
    kb: KnowledgeBase, data: Any, sign: int, regulators: Iterable[str] | None = None
) -> list[dict[str, int]]:
    """Single-gene perturbations of every KB regulator that no condition of ``data`` perturbs
    (and, given ``regulators``, that is one of them).

    These are the inputs that get pseudo-labels; ``data`` may hold the sealed test split, of
    which only the perturbed genes (inputs, never labels) are read.
    """
    perturbed = {gene for perturbation in data.test_inputs().perturbations for gene in perturbation}
    for split in (data.train, data.validation):
        perturbed |= {gene for perturbation in split.perturbations for gene in perturbation}
    allowed = None if regulators is None else set(regulators)
    sources = pd.unique(kb.edges["source"]).tolist()
    return [
        {gene: sign}
        for gene in sources
        if gene not in perturbed and (allowed is None or gene in allowed)
    ]


@dataclass
class SessionResult:
    """What a finished session leaves: the revised KB, its edits, the gate and the metrics."""

    run_dir: Path
    original: KnowledgeBase
    revised: KnowledgeBase
    changes: pd.DataFrame
    gate: Gate
    metrics: list[dict]


class Session:
    """A resumable refinement session writing into one run directory.

    Parameters
    ----------
    config : path or mapping
        A TOML file (validated by :func:`aligned.config.load_config`) or an already parsed
        mapping of the same shape.
    out : path, optional
        The run directory: new, empty, or holding this same session (which then resumes).
        Default for a configuration file: ``runs/STEM`` (``STEM`` the file's name without
        ``.toml``), so the same call resumes the same run; a mapping needs ``out``.
    quiet : bool
        No progress bars.

    Examples
    --------
    >>> import aligned
    >>> session = aligned.Session("examples/toy/config.toml")  # doctest: +SKIP
    >>> result = session.run()  # doctest: +SKIP
    >>> result.revised  # a KnowledgeBase  # doctest: +SKIP
    """

    def __init__(
        self,
        config: str | os.PathLike | Mapping,
        out: str | os.PathLike | None = None,
        quiet: bool = False,
    ):
        if isinstance(config, Mapping):
            if out is None:
                raise InputError("a session from a configuration mapping needs an out directory")
            self.config = resolve_config(config)
        else:
            self.config = load_config(config)
            if out is None:
                out = Path("runs") / Path(config).stem
        self.out = Path(out)
        self.quiet = quiet
        self.k = self.config["knowledge"]["k"]
        self.seed = self.config["session"]["seed"]

    # ---- the loop -----------------------------------------------------------------------------

    def run(self) -> SessionResult:
        """Run (or resume) the session to the end and return its result."""
        with _run_lock(self.out):
            self._claim_run_directory()
            self.prepare()
            self.predictor = self.pretrain()
            for iteration in range(1, self.config["session"]["iterations"] + 1):
                accepted = self.iterate(iteration)
                if accepted == 0:
                    log.info("iteration %d accepted no edit: the session has converged", iteration)
                    break
            return self.finish()

    def prepare(self) -> None:
        """Load data and KB; record the original KB and the split of every condition."""
        from aligned.data import load_data

        data_config = self.config["data"]
        self.data = load_data(
            data_config["path"],
            perturbation=data_config["perturbation"],
            seed=self.seed,
            fractions=tuple(data_config["split"]),
        )
        if len(self.data) == 0:
            raise InputError("the data set has no condition", data_config["path"])
        self.train = self.data.train
        self.validation = self.data.validation
        self.original = KnowledgeBase.read(self.config["knowledge"]["path"])
        if not set(self.original.genes) & set(self.data.genes):
            raise InputError(
                "the knowledge base and the data share no gene", self.config["knowledge"]["path"]
            )
        signs = [s for p in self.data.test_inputs().perturbations for s in p.values()]
        signs += [s for p in self.train.perturbations for s in p.values()]
        self.direction = -1 if sum(signs) <= 0 else 1
        if not self._done("prepare"):
            self.original.write(self.out / "kb" / "original.tsv")
            splits = self.data.conditions[["id", "perturbation", "split"]]
            atomic_write_text(self.out / "splits.tsv", splits.to_csv(sep="\t", index=False))
            self._complete("prepare")

    def pretrain(self):
        """Fit the predictor on the training split (iteration 0) or load its checkpoint."""
        from aligned.predictor import load_predictor, make_predictor

        path = self.out / "checkpoints" / "predictor-0.pt"
        if self._done("pretrain"):
            return load_predictor(path, device=self.config["predictor"]["device"])
        perturbed = {g for p in self.data.test_inputs().perturbations for g in p}
        perturbed |= {
            g for split in (self.train, self.validation) for p in split.perturbations for g in p
        }
        predictor = make_predictor(
            self.config["predictor"]["preset"],
            self.data.genes,
            kb=self.original,
            input_genes=list(
                dict.fromkeys([*self.data.genes, *self.original.genes, *sorted(perturbed)])
            ),
            device=self.config["predictor"]["device"],
            seed=self.seed,
            quiet=self.quiet,
        )
        predictor.fit(self.train, self.validation)
        predictor.save(path)
        self._record_metrics(0, self.original, predictor, revision=None, gate=None)
        self._complete("pretrain")
        return predictor

    def iterate(self, iteration: int) -> int:
        """One deduce -> adapt -> abduce -> retrain round; returns the number of edits."""
        from aligned.abduction import abduce
        from aligned.predictor import load_predictor

        name = f"iteration-{iteration}"
        kb_path = self.out / "kb" / f"{name}.tsv"
        checkpoint = self.out / "checkpoints" / f"predictor-{iteration}.pt"
        if self._done(name):
            self.predictor = load_predictor(checkpoint, device=self.config["predictor"]["device"])
            return self._state()["accepted"][name]
        current = self.current_kb(iteration - 1)
        gate = self.adapt(current, self.predictor)
        started = time.perf_counter()
        budget = self.config["abduction"]["time_limit"]
        with _solve_progress(self.quiet, f"iteration {iteration}: abduction") as done:
            revision = abduce(
                current,
                self.train,
                k=self.k,
                network_proba=self.predictor.predict_proba(self.train),
                network_weight=self.config["abduction"]["network_weight"],
                solver=self.config["abduction"]["solver"],
                time_limit=budget,
                label_model=self.config["abduction"]["label_model"],
            )
            done(
                f"{len(revision.changes)} edits, objective {revision.objective_before:.1f} "
                f"-> {revision.objective_after:.1f} ({revision.solver}, budget {budget:g} s)"
            )
        seconds = time.perf_counter() - started
        revised = revision.revised
        self.predictor = self.retrain(revised, gate, iteration, revision.regulators_confirmed)
        revised.write(kb_path)
        gate.write(self.out / "gates" / f"{name}.tsv")
        self._append_changes(iteration, revision.changes)
        self.predictor.save(checkpoint)
        self._record_metrics(iteration, revised, self.predictor, revision, gate, seconds)
        self._complete(name, accepted=len(revision.changes))
        return len(revision.changes)

    def adapt(self, kb: KnowledgeBase, predictor) -> Gate:
        """Fit the per-gene gate on validation conditions only."""
        validation = self.validation
        return fit_gate(
            self.data.genes,
            validation.labels,
            validation.scored,
            kb_labels(kb, validation, self.k, self.data.genes),
            predictor.predict(validation),
            margin=self.config["adaptor"]["margin"],
            min_support=self.config["adaptor"]["min_support"],
            alpha=self.config["adaptor"]["alpha"],
        )

    def retrain(self, kb: KnowledgeBase, gate: Gate, iteration: int, regulators: list[str]):
        """Refit on observed training labels plus pseudo-labels for unlabelled perturbations.

        Pseudo-labels go to the knockouts of the ``regulators`` the abduction found confirmed
        by the data (unperturbed genes whose out-edges explain observed responses), never to
        a gene whose out-edges no condition can judge: at 10,000 genes a corrupted KB has
        about 4,000 such sources, which would make every retraining four times the size to
        teach the network what nothing supports.  They come from the revised KB where the gate
        trusts it and from the current network elsewhere, and weigh
        ``session.pseudo_label_weight`` against 1 for data.
        """
        from aligned.predictor.arrays import TrainingSet

        predictor = self.predictor
        predictor.seed = self.seed + iteration
        if hasattr(predictor, "set_graph"):
            predictor.set_graph(kb)
        parts = [predictor.training_set(self.train)]
        unlabelled = unlabelled_perturbations(kb, self.data, self.direction, regulators)
        if unlabelled:
            inputs = _Inputs(unlabelled)
            pseudo = gate.combine(
                kb_labels(kb, inputs, self.k, self.data.genes), predictor.predict(unlabelled)
            )
            weight = np.full(
                pseudo.shape, self.config["session"]["pseudo_label_weight"], dtype=np.float32
            )
            index = {gene: column for column, gene in enumerate(self.data.genes)}
            for row, perturbation in enumerate(unlabelled):
                for gene in perturbation:
                    if gene in index:
                        weight[row, index[gene]] = 0.0  # perturbed genes are never scored
            parts.append(TrainingSet(predictor.encode(unlabelled), pseudo, weight))
        return predictor.fit(TrainingSet.concat(parts), self.validation)

    def finish(self) -> SessionResult:
        """Fit the final gate and write the revised KB, its edits, its rule files and the report."""
        state = self._state()
        last = max(
            (int(n.split("-")[1]) for n in state["completed"] if n.startswith("iter")), default=0
        )
        revised = self.current_kb(last)
        gate_path = self.out / "gate.tsv"
        if not self._done("finish"):
            gate = self.adapt(revised, self.predictor)
            gate.write(gate_path)
            revised.write(self.out / "kb" / "revised.tsv")
            revised.to_prolog(self.out / "rules" / "revised.pl")
            revised.to_asp(self.out / "rules" / "revised.lp")
            self._write_changes(self._changes())
            self.predictor.save(self.out / "checkpoints" / "predictor-final.pt")
            self._write_run_json(status="finished", iterations=last)
            self.write_report()
            self._complete("finish")
        return SessionResult(
            self.out, self.original, revised, self._changes(), Gate.read(gate_path), self._metrics()
        )

    def write_report(self) -> None:
        """Write ``report.html``; a failure is logged and never costs the finished run."""
        from aligned.report import write_report

        try:
            write_report(self.out)
        except Exception as error:  # the run's files are complete; the report is a view of them
            log.warning(
                "the run is complete but its report failed (retry: aligned report %s): %s",
                self.out,
                error,
            )

    # ---- state of the run directory ---------------------------------------------------------

    def current_kb(self, iteration: int) -> KnowledgeBase:
        """The KB after ``iteration`` (0: the original)."""
        if iteration == 0:
            return self.original
        return KnowledgeBase.read(self.out / "kb" / f"iteration-{iteration}.tsv")

    def _claim_run_directory(self) -> None:
        """Start a new run, or accept the same session's directory for resuming."""
        run_json = self.out / "run.json"
        if run_json.exists():
            recorded = json.loads(run_json.read_text(encoding="utf-8"))
            if recorded.get("config") != self.config:
                raise InputError(
                    "holds a run with another configuration; choose a new directory", self.out
                )
            return
        if any(p.name != ".lock" for p in self.out.iterdir()):
            raise InputError(
                "is not empty and holds no aligned run; choose a new directory", self.out
            )
        write_config(self.config, self.out / "config.toml")
        self._write_run_json(status="running")

    def _write_run_json(self, status: str, **extra: Any) -> None:
        import clingo
        import torch

        payload = {
            "aligned": __version__,
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "clingo": clingo.__version__,
                "numpy": np.__version__,
            },
            "seed": self.seed,
            "status": status,
            "config": self.config,
            **extra,
        }
        atomic_write_text(self.out / "run.json", json.dumps(payload, indent=2) + "\n")

    def _state(self) -> dict:
        path = self.out / "state.json"
        if not path.exists():
            return {"completed": [], "accepted": {}}
        return json.loads(path.read_text(encoding="utf-8"))

    def _done(self, step: str) -> bool:
        return step in self._state()["completed"]

    def _complete(self, step: str, accepted: int | None = None) -> None:
        state = self._state()
        state["completed"].append(step)
        if accepted is not None:
            state["accepted"][step] = accepted
        atomic_write_text(self.out / "state.json", json.dumps(state, indent=2) + "\n")

    def _changes(self) -> pd.DataFrame:
        path = self.out / "changes.tsv"
        if not path.exists():
            return pd.DataFrame(columns=CHANGE_COLUMNS)
        return pd.read_csv(
            path, sep="\t", dtype={"source": str, "target": str}, keep_default_na=False
        )

    def _append_changes(self, iteration: int, changes: pd.DataFrame) -> None:
        table = changes.copy()
        table.insert(0, "iteration", iteration)
        for column in CHANGE_COLUMNS:
            if column not in table.columns:
                table[column] = ""
        # a rerun of an interrupted iteration replaces that iteration's rows
        previous = self._changes()
        previous = previous[previous["iteration"].astype(str) != str(iteration)]
        parts = [part for part in (previous, table[CHANGE_COLUMNS]) if len(part)]
        combined = pd.concat(parts, ignore_index=True) if parts else table[CHANGE_COLUMNS]
        self._write_changes(combined)

    def _write_changes(self, table: pd.DataFrame) -> None:
        atomic_write_text(self.out / "changes.tsv", table.to_csv(sep="\t", index=False))

    def _metrics(self) -> list[dict]:
        path = self.out / "metrics.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []

    def _record_metrics(self, iteration, kb, predictor, revision, gate, seconds=None) -> None:
        """Validation figures of this iteration (the test split is never read here)."""
        validation = self.validation
        labels, scored = validation.labels, validation.scored
        network = predictor.predict(validation)
        deduced = kb_labels(kb, validation, self.k, self.data.genes)
        frozen = kb_labels(self.original, validation, self.k, self.data.genes)
        integrated = gate.combine(deduced, network) if gate is not None else network
        entry: dict[str, Any] = {
            "iteration": iteration,
            "validation": {
                name: {
                    "data_f1": macro_f1(labels, prediction, scored),
                    "kb_f1": macro_f1(frozen, prediction, scored),
                }
                for name, prediction in (
                    ("network", network),
                    ("kb", deduced),
                    ("integrated", integrated),
                )
            },
            "edges": {"total": len(kb), **edge_changes(self.original, kb)},
        }
        for scores in entry["validation"].values():
            scores["balanced"] = balanced_consistency(scores["data_f1"], scores["kb_f1"])
        if gate is not None:
            entry["gate_kb_genes"] = int(gate.trust_kb.sum())
        if revision is not None:
            entry["abduction"] = {
                "edits": len(revision.changes),
                "objective_before": float(revision.objective_before),
                "objective_after": float(revision.objective_after),
                "seconds": round(seconds, 3),
            }
        truth_path = self.data.ground_truth_path()
        if truth_path is not None:
            truth = KnowledgeBase.read(truth_path)
            entry["truth"] = {
                **signed_edge_scores(kb, truth),
                "pair_macro_f1": pair_macro_f1(kb, truth),
            }
        metrics = [m for m in self._metrics() if m["iteration"] != iteration] + [entry]
        atomic_write_text(self.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")


class _Inputs:
    """Perturbation maps with the small interface :func:`kb_labels` reads."""

    def __init__(self, perturbations: list[dict[str, int]]):
        self.perturbations = perturbations

    def perturbation_matrix(self, genes: list[str]):
        from aligned.predictor.arrays import perturbation_matrix

        return perturbation_matrix(self.perturbations, {g: i for i, g in enumerate(genes)})


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory; a second session is refused at once.

    The lock is an ``flock`` on ``RUN/.lock``: the kernel releases it when the process dies,
    even by SIGKILL, so a killed session never leaves a stale lock behind.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / ".lock", "w")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError("another session is running in this directory", run_dir) from None
        yield
    finally:
        handle.close()
