"""The neural predictor f_y (DESIGN.md section 2, step 2): MLP and KB-graph GNN in torch.

>>> from aligned.predictor import make_predictor
>>> predictor = make_predictor("gnn", data.genes, kb=kb)          # doctest: +SKIP
>>> predictor.fit(data.train, data.validation)                    # doctest: +SKIP
>>> predictor.predict_proba(data.test_inputs()).shape             # doctest: +SKIP
(conditions, genes, 3)
"""

from aligned.metrics import macro_f1
from aligned.predictor.arrays import TrainingSet, perturbation_matrix
from aligned.predictor.base import (
    CLASS_ORDER,
    NotFittedError,
    Predictor,
    load_predictor,
)
from aligned.predictor.device import resolve_device
from aligned.predictor.gnn import GNNPredictor, GNNSettings, SignedGraph
from aligned.predictor.mlp import MLPPredictor, MLPSettings
from aligned.predictor.presets import Preset, make_predictor, read_preset
from aligned.predictor.training import FitHistory, TrainingSettings

__all__ = [
    "CLASS_ORDER",
    "FitHistory",
    "GNNPredictor",
    "GNNSettings",
    "MLPPredictor",
    "MLPSettings",
    "NotFittedError",
    "Predictor",
    "Preset",
    "SignedGraph",
    "TrainingSet",
    "TrainingSettings",
    "load_predictor",
    "macro_f1",
    "make_predictor",
    "perturbation_matrix",
    "read_preset",
    "resolve_device",
]
