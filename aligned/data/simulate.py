"""Synthetic benchmark with a known answer: a true signed GRN, a corrupted copy, and data.

``simulate`` draws a signed gene regulatory network (the *true KB*), corrupts it at level
``p`` (the *corrupted KB*, what a refinement session starts from), and generates perturbation
data from the true network by one of two protocols:

``"linear"`` (default)
    Single knockouts of every regulator (and optionally random double knockouts) propagate
    through the true network as a linear model whose effect is damped at every step; several
    noisy replicates of each condition and of a shared control give log fold changes, which
    are labelled by the label rule (``|LFC| >= tau``).
``"deduction"``
    The ALIGNED paper's protocol: the labels of every single-gene knockout of a regulator are
    the true KB's deduction at bound ``k`` (DESIGN.md section 1), and ``lfc`` is those
    labels as float (so the label rule at any ``0 < tau <= 1`` gives them back).

Every random stage draws from its own stream spawned from ``seed``, so a corruption sweep
(same seed, several ``p``) shares one true network and one data set.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aligned.data.dataset import PerturbationData, perturbation_matrix, refuse_non_empty
from aligned.data.labels import label_responses, welch_qvalues
from aligned.data.splits import assign_splits
from aligned.errors import InputError
from aligned.io import atomic_write_text
from aligned.knowledge_base import KnowledgeBase

PROTOCOLS = ("linear", "deduction")
_MAX_STEPS = 500
SIMULATION_FILE = "simulation.json"
TRUE_KB_FILE = "kb_true.tsv"
CORRUPTED_KB_FILE = "kb_corrupted.tsv"
DATA_DIR = "data"


@dataclass
class Simulation:
    """What :func:`simulate` returns.

    Attributes
    ----------
    kb_true : KnowledgeBase
        The network the data were generated from (every gene listed, isolated ones too).
    kb_corrupted : KnowledgeBase
        ``kb_true`` with edges removed and false edges added.
    data : PerturbationData
        The perturbation data, splits assigned.
    params : dict
        Every parameter, the seed included, and the counts of what was made.
    """

    kb_true: KnowledgeBase
    kb_corrupted: KnowledgeBase
    data: PerturbationData
    params: dict = field(default_factory=dict)


def simulate(
    n_genes: int = 300,
    corruption: float = 0.3,
    protocol: str = "linear",
    seed: int = 0,
    k: int = 3,
    *,
    regulator_fraction: float = 0.2,
    edges_per_gene: float = 5.0,
    degree_exponent: float = 0.8,
    activation_fraction: float = 0.6,
    damping: float = 0.8,
    knockout_lfc: float = -4.0,
    noise: float = 0.3,
    replicates: int = 3,
    doubles: int = 0,
    tau: float = 1.0,
    welch: bool = False,
    alpha: float = 0.05,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> Simulation:
    """Simulate a true GRN, its corrupted copy, and perturbation data with splits.

    Parameters
    ----------
    n_genes : int
        Genes, named ``g000``, ``g001``, ... (zero-padded to a common width).
    corruption : float
        Level ``p`` in [0, 1]: see :func:`corrupt`.
    protocol : {"linear", "deduction"}
        How responses are made (module docstring).
    seed : int
        Seeds every random stage.
    k : int
        Deduction bound of the ``deduction`` protocol (recorded for the others).
    regulator_fraction : float
        Share of genes with outgoing edges.
    edges_per_gene : float
        Target edge count is ``round(edges_per_gene * n_genes)`` (fewer when a regulator's
        out-degree hits ``n_genes - 1``).
    degree_exponent : float
        Out-degrees follow a Zipf law over regulators: the ``r``-th regulator's expected
        share is proportional to ``r ** -degree_exponent`` (every regulator has one target
        or more), which gives a few hubs and many small regulators.
    activation_fraction : float
        Probability that an edge activates.
    damping : float
        ``linear``: each step passes on ``damping`` times the weighted change of the regulators.
    knockout_lfc : float
        ``linear``: log2 fold change imposed on a knocked-out gene.
    noise : float
        ``linear``: standard deviation of the Gaussian noise on each replicate's log expression.
    replicates : int
        ``linear``: replicates of each condition and of the shared control.
    doubles : int
        ``linear``: number of random double knockouts (distinct regulator pairs) added.
    tau : float
        ``linear``: label threshold on ``|LFC|``.
    welch : bool
        ``linear``: also require a Welch-test BH ``q < alpha`` (needs ``replicates >= 2``).
    alpha : float
        FDR for ``welch``.
    fractions : three floats
        Train, validation and test shares of conditions (grouped by perturbed gene set).

    Returns
    -------
    Simulation

    Raises
    ------
    InputError
        For a parameter out of range.

    Notes
    -----
    The linear model: with ``W[s, t] = sign * w_st / sqrt(sum_s' w_s't)`` (``w ~ U(0.5, 1)``),
    the change after step ``l`` is ``d_l = damping * d_{l-1} W``, with ``d_0`` the imposed
    knockout change and knocked-out genes held at it; the response is ``sum_l d_l``, summed
    until a step changes nothing by more than 1e-6.  Should a network's cycles amplify so
    that the sum diverges, ``W`` shrinks by 0.8 until it converges; the scale is recorded in
    ``data.meta["model"]``.  Log expression of each replicate is a baseline
    ``N(8, 1.5^2)`` plus the response plus ``N(0, noise^2)``; one shared control has the same
    number of replicates.  The model is linear, so double knockouts add up (no epistasis).
    Cost O(steps x conditions x edges) time and O(conditions x genes) memory; nothing
    genes x genes is dense.
    """
    _check_parameters(locals())
    streams = np.random.default_rng(seed).spawn(3)  # graph, corruption, data
    genes = gene_names(n_genes)
    kb_true = random_grn(
        genes,
        streams[0],
        regulator_fraction=regulator_fraction,
        edges_per_gene=edges_per_gene,
        degree_exponent=degree_exponent,
        activation_fraction=activation_fraction,
    )
    kb_corrupted, corruption_counts = corrupt(kb_true, corruption, streams[1])
    regulators = sorted(set(kb_true.edges.loc[lambda e: e["sign"] != 0, "source"]))
    linear = {
        "damping": damping,
        "knockout_lfc": knockout_lfc,
        "noise": noise,
        "replicates": replicates,
        "doubles": doubles,
        "tau": tau,
        "welch": welch,
        "alpha": alpha,
    }
    if protocol == "deduction":
        made = _deduction_data(kb_true, genes, regulators, k)
    else:
        made = _linear_data(kb_true, genes, regulators, streams[2], **linear)
    perturbations, lfc, labels, rule, columns, model = made
    params = {
        "n_genes": n_genes,
        "corruption": corruption,
        "protocol": protocol,
        "seed": seed,
        "k": k,
        "regulator_fraction": regulator_fraction,
        "edges_per_gene": edges_per_gene,
        "degree_exponent": degree_exponent,
        "activation_fraction": activation_fraction,
        "fractions": list(fractions),
    }
    if protocol == "linear":
        params.update(linear)
    true_signs = kb_true.edges["sign"]
    counts = {
        "genes": n_genes,
        "regulators": len(regulators),
        "true_edges": len(kb_true),
        "true_activations": int((true_signs == 1).sum()),
        "true_repressions": int((true_signs == -1).sum()),
        "corrupted_edges": len(kb_corrupted),
        **corruption_counts,
        "conditions": len(perturbations),
    }
    data = PerturbationData.from_perturbations(
        genes,
        perturbations,
        lfc,
        labels,
        columns=columns,
        label_rule=rule,
        meta={
            "source": "simulation",
            "protocol": protocol,
            "seed": seed,
            "ground_truth_kb": f"../{TRUE_KB_FILE}",
            "corrupted_kb": f"../{CORRUPTED_KB_FILE}",
            "simulation": f"../{SIMULATION_FILE}",
            "model": model,
        },
    )
    data = assign_splits(data, fractions, seed=seed)
    params["counts"] = counts
    return Simulation(kb_true, kb_corrupted, data, params)


def gene_names(n_genes: int) -> list[str]:
    """``g0``..``g9`` style names, zero-padded so that they sort in numeric order."""
    width = len(str(max(n_genes - 1, 0)))
    return [f"g{i:0{width}d}" for i in range(n_genes)]


def random_grn(
    genes: list[str],
    rng: np.random.Generator,
    *,
    regulator_fraction: float = 0.2,
    edges_per_gene: float = 5.0,
    degree_exponent: float = 0.8,
    activation_fraction: float = 0.6,
) -> KnowledgeBase:
    """A random signed GRN over ``genes`` (see :func:`simulate` for the parameters).

    Regulators are a random ``regulator_fraction`` of the genes; out-degrees are ``1`` plus a
    multinomial draw with Zipf weights, capped at ``n - 1``; targets are uniform over the other
    genes (no self-loops; cycles through several genes arise freely).  O(edges).
    """
    n = len(genes)
    n_regulators = min(n, max(1, round(regulator_fraction * n)))
    regulators = rng.choice(n, size=n_regulators, replace=False)
    n_edges = max(n_regulators, round(edges_per_gene * n))
    weights = np.arange(1, n_regulators + 1, dtype=np.float64) ** -degree_exponent
    degrees = 1 + rng.multinomial(n_edges - n_regulators, weights / weights.sum())
    degrees = np.minimum(degrees, n - 1)
    sources, targets = [], []
    for regulator, degree in zip(regulators, degrees):
        others = rng.choice(n - 1, size=degree, replace=False)
        others[others >= regulator] += 1  # skip the regulator itself
        sources.append(np.full(degree, regulator))
        targets.append(np.sort(others))
    sources = np.concatenate(sources)
    targets = np.concatenate(targets)
    signs = np.where(rng.random(len(sources)) < activation_fraction, 1, -1)
    order = np.lexsort((targets, sources))
    names = np.asarray(genes, dtype=object)
    edges = pd.DataFrame(
        {
            "source": names[sources[order]],
            "target": names[targets[order]],
            "sign": signs[order].astype(np.int8),
        }
    )
    return KnowledgeBase(edges, genes=genes)


def corrupt(
    kb: KnowledgeBase, p: float, rng: np.random.Generator | int
) -> tuple[KnowledgeBase, dict]:
    """Corrupt a KB at level ``p``: remove ``p/2`` of its edges, add ``p/4`` false activations
    and ``p/4`` false repressions.

    Parameters
    ----------
    kb : KnowledgeBase
        The true KB with ``E`` edge rows.
    p : float
        Corruption level in [0, 1].
    rng : numpy.random.Generator or int
        Random stream or seed.

    Returns
    -------
    KnowledgeBase
        Over the same genes.
    dict
        ``removed``, ``added_activations``, ``added_repressions``.

    Notes
    -----
    Exactly ``round(p/2 * E)`` edge rows, drawn uniformly without replacement, are removed,
    and ``round(p/4 * E)`` activations plus as many repressions are added at ordered gene
    pairs drawn uniformly without replacement from the pairs that carry no edge of ``kb``
    (self pairs included: a self-loop is a possible false edge).  Rounding is half up.
    The draw indexes the non-edges directly (no rejection, nothing ``n x n`` dense):
    O(E log E + added).
    """
    rng = np.random.default_rng(rng)
    edges = kb.edges
    genes = kb.genes
    n, n_edges = len(genes), len(edges)
    n_remove = _round_half_up(p / 2 * n_edges)
    n_add = _round_half_up(p / 4 * n_edges)
    index = {gene: i for i, gene in enumerate(genes)}
    codes = np.unique(edges["source"].map(index).to_numpy() * n + edges["target"].map(index))
    free = n * n - len(codes)
    if 2 * n_add > free:
        raise InputError(f"cannot add {2 * n_add} false edges: only {free} gene pairs are free")
    removed = rng.choice(n_edges, size=n_remove, replace=False)
    kept = edges.drop(index=edges.index[removed])[["source", "target", "sign"]]
    chosen = _nth_free_codes(rng.choice(free, size=2 * n_add, replace=False), codes)
    names = np.asarray(genes, dtype=object)
    added = pd.DataFrame(
        {
            "source": names[chosen // n],
            "target": names[chosen % n],
            "sign": np.repeat(np.array([1, -1], dtype=np.int8), n_add),
        }
    )
    corrupted = pd.concat([kept, added], ignore_index=True)
    corrupted = corrupted.sort_values(["source", "target", "sign"], ignore_index=True)
    counts = {"removed": n_remove, "added_activations": n_add, "added_repressions": n_add}
    return KnowledgeBase(corrupted, genes=genes), counts


def write_simulation(sim: Simulation, out_dir: str | os.PathLike) -> Path:
    """Write ``kb_true.tsv``, ``kb_corrupted.tsv``, ``data/`` and ``simulation.json``.

    Raises
    ------
    AlignedError
        When ``out_dir`` exists and is not empty (nothing is overwritten).
    """
    out = Path(out_dir)
    refuse_non_empty(out)
    out.mkdir(parents=True, exist_ok=True)
    sim.kb_true.write(out / TRUE_KB_FILE)
    sim.kb_corrupted.write(out / CORRUPTED_KB_FILE)
    sim.data.save(out / DATA_DIR)
    record = {
        "format": "aligned.simulation",
        "version": 1,
        "params": sim.params,
        "files": {
            "kb_true": TRUE_KB_FILE,
            "kb_corrupted": CORRUPTED_KB_FILE,
            "data": DATA_DIR,
        },
        "aligned_version": _package_version(),
    }
    atomic_write_text(out / SIMULATION_FILE, json.dumps(record, indent=2) + "\n")
    return out


def load_simulation(out_dir: str | os.PathLike) -> Simulation:
    """Read back what :func:`write_simulation` wrote."""
    out = Path(out_dir)
    path = out / SIMULATION_FILE
    if not path.is_file():
        raise InputError("missing file: not a simulation directory", path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"malformed JSON: {error.msg}", path, error.lineno) from None
    data = PerturbationData.load(out / DATA_DIR)
    genes = gene_names(record["params"]["n_genes"])
    kb_true = KnowledgeBase(KnowledgeBase.read(out / TRUE_KB_FILE).edges, genes=genes)
    kb_corrupted = KnowledgeBase(KnowledgeBase.read(out / CORRUPTED_KB_FILE).edges, genes=genes)
    return Simulation(kb_true, kb_corrupted, data, record["params"])


# ---- the two protocols ----------------------------------------------------------------------


def _single_knockouts(regulators: list[str]) -> list[dict[str, int]]:
    return [{gene: -1} for gene in regulators]


def _deduction_data(kb_true: KnowledgeBase, genes: list[str], regulators: list[str], k: int):
    perturbations = _single_knockouts(regulators)
    labels, _ = kb_true.deduce_matrix(perturbation_matrix(perturbations, genes), k, genes=genes)
    rule = {
        "rule": "deduction",
        "k": k,
        "kb": "ground truth",
        "description": (
            f"labels are the true KB's deduction at bound k = {k} (DESIGN.md section 1); "
            "lfc holds the same values as float"
        ),
    }
    columns = {"control": ["none"] * len(perturbations)}
    model = {"kind": "deduction", "k": k}
    return perturbations, labels.astype(np.float32), labels, rule, columns, model


def _linear_data(
    kb_true: KnowledgeBase,
    genes: list[str],
    regulators: list[str],
    rng: np.random.Generator,
    *,
    damping: float,
    knockout_lfc: float,
    noise: float,
    replicates: int,
    doubles: int,
    tau: float,
    welch: bool,
    alpha: float,
):
    perturbations = _single_knockouts(regulators) + _double_knockouts(regulators, doubles, rng)
    weights = _linear_weights(kb_true, {gene: i for i, gene in enumerate(genes)}, rng)
    clamp = abs(knockout_lfc) * perturbation_matrix(perturbations, genes).toarray().astype(float)
    response, scale = _propagate(clamp, weights, damping)
    baseline = rng.normal(8.0, 1.5, size=len(genes))
    treated_mean, treated_var = _replicate_moments(baseline + response, noise, replicates, rng)
    control_mean, control_var = _replicate_moments(baseline[None, :], noise, replicates, rng)
    lfc = treated_mean - control_mean
    qvalues = None
    if welch:
        n = np.full(len(perturbations), replicates)
        qvalues = welch_qvalues(
            treated_mean,
            treated_var,
            n,
            np.broadcast_to(control_mean, lfc.shape),
            np.broadcast_to(control_var, lfc.shape),
            n,
        )
    labels, rule = label_responses(lfc, tau, qvalues=qvalues, alpha=alpha)
    columns = {
        "control": ["ctrl"] * len(perturbations),
        "n_replicates": [replicates] * len(perturbations),
    }
    model = {"kind": "linear", "damping": damping, "weight_scale": scale, "noise": noise}
    return perturbations, lfc, labels, rule, columns, model


def _replicate_moments(
    expected: np.ndarray, noise: float, replicates: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased variance of ``replicates`` noisy draws around ``expected``.

    Replicates are drawn one at a time and summed, so memory stays at a few copies of
    ``expected`` however many replicates there are.
    """
    total = np.zeros_like(expected)
    squares = np.zeros_like(expected)
    for _ in range(replicates):
        sample = expected + rng.normal(0.0, noise, size=expected.shape)
        total += sample
        squares += sample**2
    mean = total / replicates
    if replicates < 2:
        return mean, np.full_like(expected, np.nan)
    return mean, np.maximum(squares - replicates * mean**2, 0.0) / (replicates - 1)


def _double_knockouts(
    regulators: list[str], doubles: int, rng: np.random.Generator
) -> list[dict[str, int]]:
    n = len(regulators)
    possible = n * (n - 1) // 2
    if doubles > possible:
        raise InputError(f"asked for {doubles} double knockouts but {n} regulators give {possible}")
    # draw distinct unordered pairs by their index in the upper triangle
    chosen = rng.choice(possible, size=doubles, replace=False)
    first, second = np.triu_indices(n, k=1)
    return [{regulators[first[c]]: -1, regulators[second[c]]: -1} for c in np.sort(chosen)]


def _linear_weights(
    kb: KnowledgeBase, index: dict[str, int], rng: np.random.Generator
) -> sp.csr_matrix:
    """Signed weights ``sign * w / sqrt(sum of w into the target)``, ``w ~ U(0.5, 1)``.

    Dividing by the square root of a target's total input keeps genes with many regulators
    from swinging further than genes with one, while one strong regulator still shows.
    """
    edges = kb.edges
    edges = edges[edges["sign"] != 0]
    sources = edges["source"].map(index).to_numpy()
    targets = edges["target"].map(index).to_numpy()
    strength = rng.uniform(0.5, 1.0, size=len(edges))
    inflow = np.bincount(targets, weights=strength, minlength=len(index))
    values = edges["sign"].to_numpy() * strength / np.sqrt(inflow[targets])
    return sp.csr_matrix((values, (sources, targets)), shape=(len(index), len(index)))


def _propagate(
    clamp: np.ndarray, weights: sp.csr_matrix, damping: float
) -> tuple[np.ndarray, float]:
    """Sum of damped propagation steps, knocked-out genes held at their imposed change.

    Returns the response and the weight scale used: 1, unless the series fails to converge
    (a network whose cycles amplify), in which case the weights shrink by 0.8 until it does.
    """
    held = clamp != 0
    bound = 1e3 * max(np.abs(clamp).max(initial=0.0), 1.0)
    scale = 1.0
    while True:
        step = clamp.copy()
        total = clamp.copy()
        for _ in range(_MAX_STEPS):
            step = damping * scale * np.asarray(step @ weights)
            step[held] = 0.0  # a knocked-out gene stays knocked out
            total += step
            largest = np.abs(step).max(initial=0.0)
            if largest < 1e-6 or largest > bound:
                break
        if largest < 1e-6:
            return total, scale
        scale *= 0.8


# ---- checks and small helpers ---------------------------------------------------------------


def _check_parameters(values: dict) -> None:
    checks = [
        ("n_genes", values["n_genes"] >= 2, "at least 2"),
        ("corruption", 0 <= values["corruption"] <= 1, "in [0, 1]"),
        ("protocol", values["protocol"] in PROTOCOLS, "linear or deduction"),
        ("k", isinstance(values["k"], int) and values["k"] >= 1, "an integer >= 1"),
        ("regulator_fraction", 0 < values["regulator_fraction"] <= 1, "in (0, 1]"),
        ("edges_per_gene", values["edges_per_gene"] > 0, "> 0"),
        ("degree_exponent", values["degree_exponent"] >= 0, ">= 0"),
        ("activation_fraction", 0 <= values["activation_fraction"] <= 1, "in [0, 1]"),
        ("damping", 0 < values["damping"] < 1, "in (0, 1)"),
        ("knockout_lfc", values["knockout_lfc"] != 0, "non-zero"),
        ("noise", values["noise"] >= 0, ">= 0"),
        ("replicates", values["replicates"] >= 1, ">= 1"),
        ("doubles", values["doubles"] >= 0, ">= 0"),
        ("tau", values["tau"] > 0, "> 0"),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise InputError(f"simulate: {name} must be {expected}, got {values[name]!r}")
    if values["welch"] and values["replicates"] < 2:
        raise InputError("simulate: welch=True needs replicates >= 2")


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def _nth_free_codes(positions: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Map positions among the codes *not* in sorted ``taken`` to the codes themselves.

    The ``q``-th free code is ``q + j``, where ``j`` counts taken codes ``c_i`` with
    ``c_i - i <= q`` (the taken codes that come before it).
    """
    shifted = taken - np.arange(len(taken))
    return positions + np.searchsorted(shifted, positions, side="right")


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aligned")
    except PackageNotFoundError:
        return "unknown"
