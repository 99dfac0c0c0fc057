"""Status codes of a deduced gene, shared by every reasoning backend.

The codes follow DESIGN.md section 1.  Each backend returns, per (condition, gene), one of
these integers; the ternary label is derived from the status with :func:`label_of`.
"""

from __future__ import annotations

import numpy as np

NONE = 0
UP = 1
DOWN = 2
CONFLICT = 3
UNSIGNED = 4
PERTURBED = 5

STATUS_NAMES = ("none", "up", "down", "conflict", "unsigned", "perturbed")
STATUS_CODES = {name: code for code, name in enumerate(STATUS_NAMES)}


def labels_from_status(status: np.ndarray, perturbation: np.ndarray) -> np.ndarray:
    """Ternary labels (int8) for an array of status codes.

    ``up`` gives +1, ``down`` gives -1, ``perturbed`` gives the perturbation's own sign (taken
    from ``perturbation``, same shape as ``status``), everything else gives 0.
    """
    labels = np.zeros(status.shape, dtype=np.int8)
    labels[status == UP] = 1
    labels[status == DOWN] = -1
    perturbed = status == PERTURBED
    labels[perturbed] = np.sign(perturbation[perturbed]).astype(np.int8)
    return labels
