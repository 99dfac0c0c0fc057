"""``abduce``, its Revision and files, and the ``aligned abduce`` command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aligned.abduction import Revision, abduce, write_revision
from aligned.abduction.revision import CHANGE_COLUMNS
from aligned.cli import app
from aligned.data import PerturbationData, SealedSplitError, simulate, write_simulation
from aligned.errors import AlignedError, InputError
from aligned.knowledge_base import KnowledgeBase
from aligned.metrics import signed_edge_scores

runner = CliRunner()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the console entry point in a fresh interpreter, as a user would."""
    command = [sys.executable, "-c", "from aligned.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def fitted(sim):
    return sim.data.without_test()


@pytest.fixture(scope="module")
def sim():
    return simulate(120, corruption=0.3, protocol="deduction", seed=0)


@pytest.fixture(scope="module")
def revision(sim) -> Revision:
    return abduce(sim.kb_corrupted, fitted(sim), k=3, time_limit=60)


def toy():
    genes = ["r", "a", "b", "c"]
    truth = KnowledgeBase.from_edges([("r", "a", 1), ("a", "b", -1), ("r", "c", -1)], genes=genes)
    perturbations = [{"r": -1}, {"a": -1}, {"r": 1}]
    X = PerturbationData.from_perturbations(
        genes, perturbations, np.zeros((3, 4)), np.zeros((3, 4))
    ).perturbation_matrix(genes)
    labels, _ = truth.deduce_matrix(X, 3)
    data = PerturbationData.from_perturbations(genes, perturbations, labels * 2.0, labels)
    return genes, truth, data


# ---- the revision ------------------------------------------------------------------------


def test_abduction_improves_the_corrupted_kb(sim, revision):
    before = signed_edge_scores(sim.kb_corrupted, sim.kb_true)["f1"]
    after = signed_edge_scores(revision.revised, sim.kb_true)["f1"]
    assert revision.objective_after < revision.objective_before
    assert after > before + 0.02, f"signed-edge F1 {before:.3f} -> {after:.3f}"


def test_the_change_table_matches_the_diff(revision):
    changes = revision.changes
    assert list(changes.columns) == CHANGE_COLUMNS
    diff = revision.original.diff(revision.revised)
    ops = {"added": "add", "removed": "remove", "flipped": "flip"}
    expected = sorted((ops[r.change], r.source, r.target) for r in diff.itertuples(index=False))
    assert sorted(zip(changes["op"], changes["source"], changes["target"])) == expected
    assert set(changes["solver"]) <= {"asp", "greedy"}


def test_every_edit_says_which_conditions_support_it(sim, revision):
    """Leave-one-out evidence: each kept edit helps (objective change < 0) and names the
    conditions whose cost would rise without it."""
    ids = set(fitted(sim).ids)
    for row in revision.changes.itertuples(index=False):
        assert row.objective_change < 0, row
        supporting = row.supporting.split(";") if row.supporting else []
        assert supporting, row
        assert set(supporting) <= ids


def test_objective_change_is_the_effect_of_taking_the_edit_back(sim, revision):
    from aligned.abduction.edits import EdgeSet
    from aligned.abduction.problem import build_problem
    from aligned.abduction.solve import objective

    problem = build_problem(sim.kb_corrupted, fitted(sim), k=3)
    index = {gene: i for i, gene in enumerate(problem.genes)}
    final = {(index[s], index[t], e) for s, t, e in revision.revised.edge_tuples()}
    row = revision.changes.iloc[0]
    edges = EdgeSet(problem.n_genes, np.array(sorted(final)))
    u, v = index[row.source], index[row.target]
    if row.op == "add":
        edges.apply([(u, v, int(row.new_sign), -1)])
    elif row.op == "remove":
        edges.apply([(u, v, int(row.old_sign), 1)])
    else:
        edges.apply([(u, v, int(row.new_sign), -1), (u, v, int(row.old_sign), 1)])
    without = objective(problem, edges)
    assert revision.objective_after - without == pytest.approx(row.objective_change)


def test_a_kb_that_agrees_with_the_data_is_not_changed():
    sim = simulate(120, corruption=0.0, protocol="deduction", seed=1)
    revision = abduce(sim.kb_corrupted, fitted(sim), k=3, time_limit=60)
    assert revision.changes.empty
    assert set(revision.revised.edge_tuples()) == set(sim.kb_true.edge_tuples())
    assert revision.objective_after == revision.objective_before == 0.0


def test_a_second_abduction_settles_the_parts_that_already_fit_without_clingo(sim, revision):
    again = abduce(revision.revised, fitted(sim), k=3, time_limit=60)
    passes = [entry for entry in again.log if "settled" in entry]
    assert passes, again.log
    assert sum(entry["settled"] for entry in passes) > 0
    assert again.objective_after <= again.objective_before


def test_the_toy_kb_is_repaired_and_unknown_edges_are_left_alone():
    genes, truth, data = toy()
    wrong = KnowledgeBase.from_edges(
        [("r", "a", 1), ("a", "b", 1), ("c", "b", 0), ("r", "c", -1)], genes=genes
    )
    revision = abduce(wrong, data, k=3, time_limit=30)
    signed = {edge for edge in revision.revised.edge_tuples() if edge[2] != 0}
    assert signed == set(truth.edge_tuples())
    assert ("c", "b", 0) in revision.revised.edge_tuples()
    assert revision.counts["unknown_sign_edges_left_alone"] == 1


def test_extra_columns_survive_the_revision():
    genes, truth, data = toy()
    table = pd.DataFrame(
        {
            "source": ["r", "a", "r"],
            "target": ["a", "b", "c"],
            "sign": [1, 1, -1],
            "reference": ["PMID:1", "PMID:2", "PMID:3"],
        }
    )
    revision = abduce(KnowledgeBase(table, genes=genes), data, k=3, time_limit=30)
    revised = revision.revised.edges.set_index(["source", "target"])
    assert revised.loc[("r", "a"), "reference"] == "PMID:1"
    assert revised.loc[("a", "b"), "sign"] == -1
    assert revised.loc[("a", "b"), "reference"] == "PMID:2"  # a flipped edge keeps its notes


def test_network_probabilities_enter_the_objective():
    """With no scored label, a confident network alone can call for an edge."""
    genes = ["r", "a"]
    kb = KnowledgeBase.from_edges([], genes=genes)
    data = PerturbationData.from_perturbations(
        genes, [{"r": -1}], [[-2.0, 0.0]], [[-1, 0]], scored=np.zeros((1, 2), dtype=bool)
    )
    proba = np.zeros((1, 2, 3), dtype=np.float32)
    proba[0, :, 1] = 1.0  # unchanged ...
    proba[0, 1] = [0.0, 0.0, 1.0]  # ... except a, surely up
    quiet = abduce(kb, data, k=1, time_limit=30)
    assert quiet.changes.empty
    revision = abduce(
        kb, data, k=1, network_proba=proba, network_weight=2.0, sources="perturbed", time_limit=30
    )
    assert ("r", "a", -1) in revision.revised.edge_tuples()  # r knocked out, a up
    with pytest.raises(InputError, match="network_proba has shape"):
        abduce(kb, data, k=1, network_proba=proba[:, :1], time_limit=30)


def test_zero_confidence_labels_do_not_count():
    genes, truth, data = toy()
    wrong = KnowledgeBase.from_edges([("r", "a", 1), ("a", "b", 1), ("r", "c", -1)], genes=genes)
    weights = np.zeros((len(data), len(genes)), dtype=np.float32)
    revision = abduce(wrong, data, k=3, confidence=weights, time_limit=30)
    assert revision.changes.empty


# ---- bad input ------------------------------------------------------------------------------


def test_bad_input_is_refused_with_one_clear_error(sim):
    data = fitted(sim)
    other = KnowledgeBase.from_edges([("x1", "x2", 1)])
    with pytest.raises(InputError, match="share no gene"):
        abduce(other, data)
    with pytest.raises(InputError, match="k must be"):
        abduce(sim.kb_corrupted, data, k=0)
    with pytest.raises(InputError, match="no condition"):
        abduce(sim.kb_corrupted, data.subset(np.zeros(len(data), dtype=bool)))
    with pytest.raises(InputError, match="unknown solver"):
        abduce(sim.kb_corrupted, data, solver="magic")
    with pytest.raises(InputError, match="edit cost"):
        abduce(sim.kb_corrupted, data, edit_costs={"add": -1})


def test_the_sealed_test_split_is_never_read(sim):
    with pytest.raises(SealedSplitError):
        abduce(sim.kb_corrupted, sim.data)


# ---- files --------------------------------------------------------------------------------


def test_write_revision_writes_every_file(revision, tmp_path):
    out = write_revision(revision, tmp_path / "run")
    for name in (
        "kb/original.tsv",
        "kb/revised.tsv",
        "changes.tsv",
        "rules/revised.pl",
        "rules/revised.lp",
        "abduction.json",
    ):
        assert (out / name).is_file(), name
    assert KnowledgeBase.read(out / "kb" / "revised.tsv").edge_tuples() == (
        revision.revised.edge_tuples()
    )
    changes = pd.read_csv(out / "changes.tsv", sep="\t", keep_default_na=False)
    assert list(changes.columns) == CHANGE_COLUMNS
    assert len(changes) == len(revision.changes)
    summary = json.loads((out / "abduction.json").read_text())
    assert summary["objective_after"] == pytest.approx(revision.objective_after)


def test_write_revision_refuses_a_directory_holding_another_run(revision, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{}")
    with pytest.raises(AlignedError, match="already holds files"):
        write_revision(revision, out)
    assert [p.name for p in out.iterdir()] == ["run.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging directory left


@pytest.mark.skipif(shutil.which("swipl") is None, reason="SWI-Prolog is not installed")
def test_the_revised_rules_load_in_plain_swipl(revision, tmp_path):
    out = write_revision(revision, tmp_path / "run")
    source, target, sign = revision.revised.edge_tuples()[0]
    goal = f'consult("rules/revised.pl"), edge("{source}", "{target}", S), write(S), nl, halt.'
    result = subprocess.run(
        ["swipl", "-q", "-g", goal], cwd=out, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sign)
    assert "Warning" not in result.stderr


def test_the_revised_program_grounds_in_clingo(revision, tmp_path):
    import clingo

    out = write_revision(revision, tmp_path / "run")
    regulator = revision.revised.edge_tuples()[0][0]
    control = clingo.Control(["-c", "k=3"])
    control.load(str(out / "rules" / "revised.lp"))
    control.add("base", [], f'pert(0, "{regulator}", -1).')
    control.ground([("base", [])])
    statuses = []
    control.solve(on_model=lambda model: statuses.extend(model.symbols(shown=True)))
    expected = revision.revised.deduce({regulator: -1}, k=3)
    assert len(statuses) == int((expected["status"] != "none").sum())


# ---- the command line -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulation_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "sim"
    write_simulation(simulate(80, corruption=0.3, protocol="deduction", seed=2), out)
    return out


def abduce_arguments(simulation_dir, out) -> list[str]:
    """``aligned abduce`` on the corrupted KB and data of ``simulation_dir``, into ``out``."""
    kb = simulation_dir / "kb_corrupted.tsv"
    return ["abduce", "--kb", str(kb), "--data", str(simulation_dir), "--out", str(out)]


def test_cli_abduce_writes_a_run_and_prints_json(simulation_dir, tmp_path):
    out = tmp_path / "abduced"
    arguments = abduce_arguments(simulation_dir, out)
    result = runner.invoke(app, [*arguments, "--time-limit", "60", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["objective_after"] <= payload["objective_before"]
    assert (out / "kb" / "revised.tsv").is_file()


def test_cli_abduce_prints_a_summary_table(simulation_dir, tmp_path):
    arguments = abduce_arguments(simulation_dir, tmp_path / "abduced")
    result = runner.invoke(app, [*arguments, "--solver", "greedy"])
    assert result.exit_code == 0, result.output
    assert "Abduction at k = 3" in result.output
    assert "objective" in result.output
    assert "label model" in result.output and "exact" in result.output  # deduction protocol


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--k", "0"], "--k must be at least 1"),
        (["--solver", "magic"], "--solver must be one of"),
        (["--label-model", "fuzzy"], "--label-model must be one of"),
    ],
)
def test_cli_abduce_refuses_bad_options_and_writes_nothing(
    simulation_dir, tmp_path, extra, message
):
    out = tmp_path / "abduced"
    result = runner.invoke(app, abduce_arguments(simulation_dir, out) + extra)
    assert result.exit_code == 1
    assert message in result.output
    assert not out.exists()


def test_cli_abduce_refuses_a_kb_sharing_no_gene(simulation_dir, tmp_path):
    kb = tmp_path / "other.tsv"
    kb.write_text("source\ttarget\tsign\nx1\tx2\t+\n")
    out = tmp_path / "abduced"
    result = run_cli("abduce", "--kb", str(kb), "--data", str(simulation_dir), "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.startswith("aligned: error: ") and "share no gene" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_abduce_refuses_a_directory_holding_another_run(simulation_dir, tmp_path):
    out = tmp_path / "abduced"
    out.mkdir()
    (out / "changes.tsv").write_text("keep me\n")
    result = run_cli(*abduce_arguments(simulation_dir, out))
    assert result.returncode == 1
    assert "already holds files" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (out / "changes.tsv").read_text() == "keep me\n"


# ---- the quality bar (slow: about 10 s per seed) ----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_deduction_benchmark_reaches_signed_edge_f1_093(seed):
    sim = simulate(300, corruption=0.3, protocol="deduction", seed=seed)
    revision = abduce(sim.kb_corrupted, fitted(sim), k=3, time_limit=300)
    before = signed_edge_scores(sim.kb_corrupted, sim.kb_true)["f1"]
    after = signed_edge_scores(revision.revised, sim.kb_true)["f1"]
    assert before == pytest.approx(0.85, abs=0.01)
    assert after >= 0.93, f"seed {seed}: signed-edge F1 {before:.3f} -> {after:.3f}"


@pytest.mark.slow
def test_deduction_benchmark_without_corruption_changes_nothing():
    sim = simulate(300, corruption=0.0, protocol="deduction", seed=0)
    revision = abduce(sim.kb_corrupted, fitted(sim), k=3, time_limit=300)
    assert revision.changes.empty
