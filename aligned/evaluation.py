"""Evaluation of a finished run on the sealed test split (DESIGN.md section 3).

This is the one place that opens the test split.  Knowledge consistency is always measured
against the original, frozen KB, never against the revised one (that would be circular).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from aligned.adaptor import Gate
from aligned.config import load_config
from aligned.errors import InputError
from aligned.knowledge_base import KnowledgeBase
from aligned.metrics import (
    balanced_consistency,
    edge_changes,
    macro_f1,
    pair_macro_f1,
    signed_edge_scores,
)

METHODS = ("all_zero", "mean_response", "kb_original", "kb_revised", "network", "integrated")
TOP_DE = 20


def pearson_rows(
    truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray, top: int | None = None
) -> float | None:
    """Mean over conditions of the Pearson correlation between predicted and true LFC.

    With ``top``, each condition uses only its ``top`` genes of largest true ``|LFC|``
    (the DE genes).  Conditions where either side is constant are skipped; None if all are.
    """
    values = []
    for row in range(truth.shape[0]):
        genes = np.flatnonzero(mask[row])
        if top is not None:
            genes = genes[np.argsort(-np.abs(truth[row, genes]), kind="stable")[:top]]
        x, y = truth[row, genes], prediction[row, genes]
        if len(genes) > 1 and x.std() > 0 and y.std() > 0:
            values.append(float(np.corrcoef(x, y)[0, 1]))
    return float(np.mean(values)) if values else None


def direction_accuracy(labels: np.ndarray, prediction: np.ndarray, mask: np.ndarray) -> float:
    """Share of DE entries (label non-zero) whose predicted sign matches the label."""
    de = mask & (labels != 0)
    return float((np.sign(prediction[de]) == labels[de]).mean()) if de.any() else float("nan")


def score_method(labels, lfc, scored, frozen, predicted_labels, predicted_lfc) -> dict[str, Any]:
    """Every test figure of one method."""
    data_f1 = macro_f1(labels, predicted_labels, scored)
    kb_f1 = macro_f1(frozen, predicted_labels, scored)
    values = predicted_lfc if predicted_lfc is not None else predicted_labels.astype(np.float32)
    return {
        "data_f1": data_f1,
        "kb_f1": kb_f1,
        "balanced": balanced_consistency(data_f1, kb_f1),
        "pearson": pearson_rows(lfc, values, scored),
        "pearson_top20": pearson_rows(lfc, values, scored, top=TOP_DE),
        "direction_accuracy": direction_accuracy(labels, values, scored),
    }


def evaluate_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The test metrics of every method, and the edge figures when a ground truth exists.

    Returns
    -------
    dict
        ``{"test": {METHOD: {...}}, "edges": {"original": {...}, "revised": {...}}}``; the
        ``edges`` key appears only when the data carry a ground-truth KB.

    Raises
    ------
    InputError
        If ``run_dir`` holds no finished session.
    """
    from aligned.data import load_data
    from aligned.data.splits import open_sealed_test
    from aligned.predictor import load_predictor
    from aligned.session import kb_labels

    run_dir = Path(run_dir)
    if not (run_dir / "kb" / "revised.tsv").exists():
        raise InputError("holds no finished session (no kb/revised.tsv)", run_dir)
    config = load_config(run_dir / "config.toml")
    k = config["knowledge"]["k"]
    data = load_data(
        config["data"]["path"],
        perturbation=config["data"]["perturbation"],
        seed=config["session"]["seed"],
        fractions=tuple(config["data"]["split"]),
    )
    original = KnowledgeBase.read(run_dir / "kb" / "original.tsv")
    revised = KnowledgeBase.read(run_dir / "kb" / "revised.tsv")
    predictor = load_predictor(run_dir / "checkpoints" / "predictor-final.pt", device="cpu")
    gate = Gate.read(run_dir / "gate.tsv")
    train = data.train
    test = open_sealed_test(data, purpose="evaluation")
    labels, lfc, scored = test.labels, test.lfc, test.scored
    frozen = kb_labels(original, test, k, data.genes)

    tau = float(data.label_rule.get("tau", 1.0))
    mean_lfc = np.where(train.scored, train.lfc, np.nan)
    mean_lfc = np.nan_to_num(np.nanmean(mean_lfc, axis=0), nan=0.0) if len(train) else None
    mean_lfc = np.zeros(len(data.genes), np.float32) if mean_lfc is None else mean_lfc
    mean_labels = np.where(np.abs(mean_lfc) >= tau, np.sign(mean_lfc), 0).astype(np.int8)
    network = predictor.predict(test)
    predictions = {
        "all_zero": (np.zeros_like(labels), np.zeros_like(lfc)),
        "mean_response": (np.tile(mean_labels, (len(test), 1)), np.tile(mean_lfc, (len(test), 1))),
        "kb_original": (frozen, None),
        "kb_revised": (kb_labels(revised, test, k, data.genes), None),
        "network": (network, predictor.predict_lfc(test)),
    }
    predictions["integrated"] = (gate.combine(predictions["kb_revised"][0], network), None)
    result: dict[str, Any] = {
        "test": {
            method: score_method(labels, lfc, scored, frozen, *predictions[method])
            for method in METHODS
        },
        "conditions": len(test),
    }
    truth_path = data.ground_truth_path()
    if truth_path is not None:
        truth = KnowledgeBase.read(truth_path)
        result["edges"] = {
            name: {
                **signed_edge_scores(kb, truth),
                "pair_macro_f1": pair_macro_f1(kb, truth),
                **edge_changes(original, kb),
            }
            for name, kb in (("original", original), ("revised", revised))
        }
    return result


def save_evaluation(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Evaluate a finished run, save ``evaluation.json`` in it, and refresh its report.

    The report (``report.html``) shows the test figures only once they are saved, so it is
    rewritten here; a report failure leaves the saved evaluation in place and is raised.

    Returns
    -------
    dict
        What :func:`evaluate_run` returns.
    """
    from aligned.io import atomic_write_text
    from aligned.report import EVALUATION_NAME, write_report

    result = evaluate_run(run_dir)
    text = json.dumps(result, indent=2, sort_keys=True, default=float) + "\n"
    atomic_write_text(Path(run_dir) / EVALUATION_NAME, text)
    write_report(run_dir)
    return result
