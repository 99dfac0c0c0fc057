"""Perturbation data: the data set object, labels, splits, and its sources.

Sources: :func:`simulate` (synthetic, with a ground-truth KB), :func:`build_ecoli` (the
E. coli PRECISE knockouts), :func:`read_gears_h5ad` (GEARS-style AnnData).  Everything else
reads data through :func:`load_data`.
"""

from aligned.data.dataset import PerturbationData, PerturbationInputs, SealedSplitError
from aligned.data.ecoli import build_ecoli
from aligned.data.h5ad import DataWarning, read_gears_h5ad
from aligned.data.labels import benjamini_hochberg, label_responses, welch_qvalues
from aligned.data.loader import load_data
from aligned.data.perturbation import format_perturbation, parse_perturbation
from aligned.data.simulate import (
    Simulation,
    corrupt,
    load_simulation,
    random_grn,
    simulate,
    write_simulation,
)
from aligned.data.splits import assign_splits, open_sealed_test

__all__ = [
    "DataWarning",
    "PerturbationData",
    "PerturbationInputs",
    "SealedSplitError",
    "Simulation",
    "assign_splits",
    "benjamini_hochberg",
    "build_ecoli",
    "corrupt",
    "format_perturbation",
    "label_responses",
    "load_data",
    "load_simulation",
    "open_sealed_test",
    "parse_perturbation",
    "random_grn",
    "read_gears_h5ad",
    "simulate",
    "welch_qvalues",
    "write_simulation",
]
