"""The clingo backend (aligned/reasoning/asp.py and rules/deduce.lp)."""

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import clingo
import pytest

from aligned.errors import BackendUnavailable, InputError
from aligned.reasoning import asp
from aligned.reasoning.asp import DeductionTimeout, SolveStats, asp_string, deduce, program_text
from aligned.reasoning.status import STATUS_CODES, STATUS_NAMES

AWKWARD_NAMES = [
    "5'UTR",
    "HLA-A",
    'a "q" b',
    "back\\slash",
    "Ünï",
    "TP53",
    "1abc",
    "with space",
    "ends with\\",
    "new\nline",
    "tab\there",
    "%not a comment",
    "X",
]


def statuses(edges, perturbation, k=3, genes=None):
    """Deduce one condition and name the statuses, e.g. ``{"b": "down"}``."""
    genes = genes if genes is not None else {g for s, t, _ in edges for g in (s, t)}
    (result,) = deduce(edges, genes, [perturbation], k)
    return {gene: STATUS_NAMES[code] for gene, code in result.items()}


def brute_force(edges, perturbation, k):
    """Enumerate every walk of length 1..k explicitly: an oracle independent of deduce.lp."""
    successors = defaultdict(list)
    for source, target, sign in set(edges):
        successors[source].append((target, sign))
    reached = defaultdict(set)  # gene -> signs of the walks reaching it; None: used a ? edge

    def walk(gene, sign, length):
        if length == k:
            return
        for target, edge_sign in successors[gene]:
            new_sign = None if sign is None or edge_sign == 0 else sign * edge_sign
            reached[target].add(new_sign)
            walk(target, new_sign, length + 1)

    for gene, sign in perturbation.items():
        walk(gene, sign, 0)
    result = {}
    for gene, signs in reached.items():
        if 1 in signs and -1 in signs:
            result[gene] = "conflict"
        elif 1 in signs:
            result[gene] = "up"
        elif -1 in signs:
            result[gene] = "down"
        else:
            result[gene] = "unsigned"
    result.update({gene: "perturbed" for gene in perturbation})
    return result


def clingo_command() -> list[str]:
    """The plain clingo application: an executable if one is installed, else ``python -m``."""
    beside_python = Path(sys.executable).parent / "clingo"
    if beside_python.is_file():
        return [str(beside_python)]
    on_path = shutil.which("clingo")
    if on_path:
        return [on_path]
    # The clingo wheel ships the same application as a module.
    return [sys.executable, "-m", "clingo"]


def run_clingo(path: Path, extra: str, k: int = 3) -> tuple[list[clingo.Symbol], str]:
    """Solve ``path`` plus the ``extra`` text in a separate clingo process."""
    completed = subprocess.run(
        [*clingo_command(), str(path), "-", "--outf=2", "-c", f"k={k}"],
        input=extra,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    # clingo exits with 10 (satisfiable) or 30 (all models found); the module form with 0.
    assert completed.returncode in (0, 10, 30), completed.stderr
    output = json.loads(completed.stdout)
    (witness,) = output["Call"][0]["Witnesses"]
    return [clingo.parse_term(text) for text in witness["Value"]], completed.stderr


# --- asp_string -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", AWKWARD_NAMES + ["", "emoji 😀", "\\n", '\\"'])
def test_asp_string_round_trips_through_clingo(name):
    control = clingo.Control()
    control.add("base", [], f"name({asp_string(name)}).")
    control.ground([("base", [])])
    (atom,) = control.symbolic_atoms.by_signature("name", 1)
    assert atom.symbol.arguments[0].string == name


def test_asp_string_refuses_nul():
    with pytest.raises(InputError, match="NUL"):
        asp_string("a\x00b")


# --- deduction on hand-made graphs --------------------------------------------------------


def test_chain_propagates_signs():
    edges = [("a", "b", -1), ("b", "c", 1), ("c", "d", -1)]
    assert statuses(edges, {"a": -1}) == {"a": "perturbed", "b": "up", "c": "up", "d": "down"}
    assert statuses(edges, {"a": 1}) == {"a": "perturbed", "b": "down", "c": "down", "d": "up"}


def test_k_bounds_the_walk_length():
    edges = [("a", "b", 1), ("b", "c", 1), ("c", "d", 1)]
    assert statuses(edges, {"a": 1}, k=1) == {"a": "perturbed", "b": "up"}
    assert statuses(edges, {"a": 1}, k=2) == {"a": "perturbed", "b": "up", "c": "up"}
    assert set(statuses(edges, {"a": 1}, k=10)) == {"a", "b", "c", "d"}


def test_negative_cycle_gives_conflict_once_walks_go_round_it():
    # b -| c -> b is a negative cycle: going round it once flips the sign with which b is reached.
    edges = [("a", "b", 1), ("b", "c", -1), ("c", "b", 1)]
    assert statuses(edges, {"a": 1}, k=2) == {"a": "perturbed", "b": "up", "c": "down"}
    # Length 3 walks a -> b -| c -> b reach b with -1 as well.
    assert statuses(edges, {"a": 1}, k=3) == {"a": "perturbed", "b": "conflict", "c": "down"}


def test_negative_self_loop_gives_conflict_from_length_two():
    edges = [("a", "b", 1), ("b", "b", -1)]
    assert statuses(edges, {"a": 1}, k=1) == {"a": "perturbed", "b": "up"}
    assert statuses(edges, {"a": 1}, k=2) == {"a": "perturbed", "b": "conflict"}


def test_positive_self_loop_keeps_the_sign():
    edges = [("a", "b", -1), ("b", "b", 1)]
    assert statuses(edges, {"a": 1}, k=5) == {"a": "perturbed", "b": "down"}


def test_dual_edge_gives_conflict():
    edges = [("a", "b", 1), ("a", "b", -1), ("b", "c", 1)]
    assert statuses(edges, {"a": -1}) == {"a": "perturbed", "b": "conflict", "c": "conflict"}


def test_unknown_sign_edge_gives_unsigned_downstream():
    edges = [("a", "b", 0), ("b", "c", -1)]
    assert statuses(edges, {"a": -1}) == {"a": "perturbed", "b": "unsigned", "c": "unsigned"}


def test_unsigned_walk_neither_makes_nor_cancels_a_signed_call():
    edges = [("a", "b", 0), ("b", "c", -1), ("a", "c", 1)]
    assert statuses(edges, {"a": 1}) == {"a": "perturbed", "b": "unsigned", "c": "up"}


def test_perturbed_gene_reached_by_a_cycle_stays_perturbed():
    # Walks come back to a (length 2) and go on to b again (length 3) with the same sign.
    edges = [("a", "b", -1), ("b", "a", -1)]
    assert statuses(edges, {"a": 1}, k=4) == {"a": "perturbed", "b": "down"}
    assert statuses(edges, {"a": -1}, k=4) == {"a": "perturbed", "b": "up"}


def test_combined_perturbations_add_up_and_walks_pass_through_perturbed_genes():
    edges = [("a", "c", 1), ("b", "c", 1), ("a", "b", -1), ("b", "d", 1)]
    # c: down from a, up from b; d: down from a -| b -> d (through perturbed b), up from b.
    result = statuses(edges, {"a": -1, "b": 1})
    assert result == {"a": "perturbed", "b": "perturbed", "c": "conflict", "d": "up"}
    result = statuses(edges, {"a": 1, "b": -1})
    assert result == {"a": "perturbed", "b": "perturbed", "c": "conflict", "d": "down"}


def test_isolated_and_unknown_genes():
    edges = [("a", "b", 1)]
    genes = {"a", "b", "lonely"}
    assert statuses(edges, {"a": 1}, genes=genes) == {"a": "perturbed", "b": "up"}
    assert statuses(edges, {"lonely": -1}, genes=genes) == {"lonely": "perturbed"}
    # A perturbed gene that is not in the knowledge base still counts as perturbed.
    assert statuses(edges, {"elsewhere": 1}, genes=genes) == {"elsewhere": "perturbed"}


def test_empty_knowledge_base_and_empty_inputs():
    assert deduce([], [], [{"x": -1}], k=3) == [{"x": STATUS_CODES["perturbed"]}]
    assert deduce([("a", "b", 1)], ["a", "b"], [], k=3) == []
    assert deduce([("a", "b", 1)], ["a", "b"], [{}], k=3) == [{}]


def test_conditions_are_independent_and_chunking_does_not_change_results():
    edges = [("a", "b", 1), ("b", "c", -1), ("c", "a", 0)]
    perturbations = [{"a": 1}, {"b": -1}, {"c": 1}, {"a": -1, "c": -1}, {}]
    together = deduce(edges, ["a", "b", "c"], perturbations, k=3)
    one_by_one = [deduce(edges, ["a", "b", "c"], [p], k=3)[0] for p in perturbations]
    chunked = deduce(edges, ["a", "b", "c"], perturbations, k=3, chunk_size=2)
    assert together == one_by_one == chunked


def test_statistics_are_recorded_per_clingo_call():
    stats: list[SolveStats] = []
    deduce([("a", "b", 1)], ["a", "b"], [{"a": 1}] * 5, k=2, chunk_size=2, stats=stats)
    assert [s.conditions for s in stats] == [2, 2, 1]
    assert all(s.encoding == "deduce.lp" and s.ground_atoms > 0 for s in stats)


def test_time_budget_is_enforced():
    with pytest.raises(DeductionTimeout, match="budget"):
        deduce([("a", "b", 1)], ["a", "b"], [{"a": 1}], k=3, time_limit=0.0)


@pytest.mark.parametrize(
    ("edges", "perturbations", "k"),
    [
        ([("a", "b", 2)], [{"a": 1}], 3),
        ([("a", "b", 1)], [{"a": 0}], 3),
        ([("a", "b", 1)], [{"a": 1}], 0),
        ([("a", 3, 1)], [{"a": 1}], 3),
    ],
)
def test_invalid_input_is_refused(edges, perturbations, k):
    with pytest.raises(InputError):
        deduce(edges, ["a", "b"], perturbations, k)


def test_bad_gene_names_and_chunk_size_are_refused():
    with pytest.raises(InputError, match="strings"):
        deduce([], ["a", 7], [{"a": 1}], k=1)
    with pytest.raises(InputError, match="strings"):
        deduce([], [], [{("a",): 1}], k=1)
    with pytest.raises(InputError, match="chunk_size"):
        deduce([], [], [{"a": 1}], k=1, chunk_size=0)


def test_clingo_reports_nothing_and_statistics_are_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="aligned.reasoning.asp")
    deduce([], [], [{"a": 1}], k=3)
    deduce([("a", "b", 0), ("b", "a", -1)], ["a", "b"], [{"a": 1}, {}], k=3)
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert sum("SolveStats" in r.message for r in caplog.records) == 2


def test_missing_clingo_raises_backend_unavailable(monkeypatch):
    monkeypatch.setattr(asp, "clingo", None)
    with pytest.raises(BackendUnavailable, match="clingo"):
        deduce([], [], [{"a": 1}], k=1)


def test_awkward_gene_names_deduce_as_themselves():
    names = AWKWARD_NAMES
    edges = [(names[i], names[i + 1], 1) for i in range(len(names) - 1)]
    result = statuses(edges, {names[0]: 1}, k=len(names))
    assert result == {names[0]: "perturbed", **{name: "up" for name in names[1:]}}


# --- the exported program in the plain clingo application ----------------------------------


def test_exported_program_round_trips_awkward_names_in_plain_clingo(tmp_path):
    names = AWKWARD_NAMES
    edges = [(names[i], names[(i + 1) % len(names)], (-1) ** i) for i in range(len(names))]
    edges.append((names[0], names[3], 0))
    genes = set(names) | {"isolated gene"}
    path = tmp_path / "kb.lp"
    path.write_text(program_text(edges, genes), encoding="utf-8")

    perturbations = [{names[0]: -1}, {names[2]: 1, names[5]: -1}]
    facts = "".join(
        f"pert({c},{asp_string(gene)},{sign})."
        for c, perturbation in enumerate(perturbations)
        for gene, sign in perturbation.items()
    )
    symbols, stderr = run_clingo(path, facts + "\n#show edge/3. #show gene/1.\n", k=4)
    assert stderr == "", f"clingo printed warnings:\n{stderr}"

    by_name = defaultdict(list)
    for symbol in symbols:
        by_name[symbol.name].append(symbol)
    read_edges = {
        (s.string, t.string, e.number) for s, t, e in (x.arguments for x in by_name["edge"])
    }
    assert read_edges == set(edges)
    assert {x.arguments[0].string for x in by_name["gene"]} == genes

    expected = deduce(edges, genes, perturbations, k=4)
    read = [{} for _ in perturbations]
    for c, gene, status in (x.arguments for x in by_name["status"]):
        read[c.number][gene.string] = STATUS_CODES[status.name]
    assert read == expected


def test_exported_program_without_perturbations_solves_to_nothing(tmp_path):
    path = tmp_path / "kb.lp"
    path.write_text(program_text([("a", "b", 1), ("b", "c", 0)], {"a", "b", "c"}), "utf-8")
    symbols, stderr = run_clingo(path, "")
    assert symbols == []
    assert stderr == ""


def test_empty_knowledge_base_grounds_without_warnings(tmp_path):
    path = tmp_path / "empty.lp"
    text = program_text([], [])
    assert text.startswith("%")
    path.write_text(text, encoding="utf-8")
    symbols, stderr = run_clingo(path, "")
    assert (symbols, stderr) == ([], "")


def test_exported_program_is_deterministic():
    edges = [("b", "c", -1), ("a", "b", 1), ("a", "b", 1), ("c", "a", 0)]
    first = program_text(edges, ["c", "a", "b"])
    second = program_text(list(reversed(edges)), {"a", "b", "c"})
    assert first == second
    assert first.count('edge("a","b",1).') == 1


# --- agreement with an explicit walk enumerator --------------------------------------------


def random_instance(rng: random.Random):
    genes = [f"g{i}" for i in range(rng.randint(1, 6))]
    edges = [
        (rng.choice(genes), rng.choice(genes), rng.choice([1, -1, 0]))
        for _ in range(rng.randint(0, 10))
    ]
    perturbations = [
        {
            gene: rng.choice([1, -1])
            for gene in rng.sample(genes, rng.randint(1, min(2, len(genes))))
        }
        for _ in range(rng.randint(1, 4))
    ]
    return genes, edges, perturbations, rng.randint(1, 4)


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_brute_force_walk_enumeration(seed):
    genes, edges, perturbations, k = random_instance(random.Random(seed))
    results = deduce(edges, genes, perturbations, k)
    for perturbation, result in zip(perturbations, results, strict=True):
        named = {gene: STATUS_NAMES[code] for gene, code in result.items()}
        assert named == brute_force(edges, perturbation, k), (edges, perturbation, k)
