"""Refinement sessions: the run directory, its rule files, resuming after SIGKILL, the lock,
and evaluation on the sealed test split."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aligned import KnowledgeBase
from aligned.config import dump_config
from aligned.errors import InputError
from aligned.evaluation import METHODS, evaluate_run
from aligned.session import Session

SIMULATION = {"n_genes": 120, "corruption": 0.3, "protocol": "deduction", "seed": 1, "k": 2}


@pytest.fixture(scope="module")
def simulation_dir(tmp_path_factory) -> Path:
    from aligned.data.simulate import simulate, write_simulation

    out = tmp_path_factory.mktemp("sim") / "sim"
    write_simulation(simulate(**SIMULATION), out)
    return out


def session_config(simulation_dir: Path, iterations: int = 2) -> dict:
    return {
        "data": {"path": str(simulation_dir)},
        "knowledge": {"path": str(simulation_dir / "kb_corrupted.tsv"), "k": 2},
        "predictor": {"preset": "mlp", "device": "cpu"},
        "abduction": {"solver": "greedy", "time_limit": 30.0},
        "session": {"iterations": iterations, "seed": 3},
    }


@pytest.fixture(scope="module")
def finished(simulation_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    result = Session(session_config(simulation_dir), run_dir, quiet=True).run()
    return run_dir, result


RUN_FILES = [
    "run.json",
    "config.toml",
    "metrics.json",
    "splits.tsv",
    "gate.tsv",
    "changes.tsv",
    "kb/original.tsv",
    "kb/revised.tsv",
    "rules/revised.pl",
    "rules/revised.lp",
    "checkpoints/predictor-0.pt",
    "checkpoints/predictor-final.pt",
    "report.html",
]


def test_a_session_leaves_a_complete_run_directory(finished):
    run_dir, result = finished
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["seed"] == 3
    assert "torch" in run["versions"]
    assert isinstance(result.revised, KnowledgeBase)
    assert KnowledgeBase.read(run_dir / "kb" / "revised.tsv") == result.revised
    assert [m["iteration"] for m in result.metrics][0] == 0


def test_revision_moves_the_kb_towards_the_truth(finished, simulation_dir):
    _, result = finished
    first, last = result.metrics[0]["truth"], result.metrics[-1]["truth"]
    assert len(result.changes) > 0
    assert last["f1"] > first["f1"], (first, last)
    assert set(result.changes["iteration"].astype(int)) <= {1, 2}


def test_revised_prolog_file_answers_like_the_python_api_in_plain_swipl(finished):
    run_dir, result = finished
    regulator = result.revised.edges["source"].iloc[0]
    goal = (
        f'deduce(["{regulator}"-(-1)], 2, S), forall(member(G-T, S), '
        "(write(G), write('\\t'), write(T), nl))"
    )
    run = subprocess.run(
        ["swipl", "-q", "-g", goal, "-t", "halt", str(run_dir / "rules" / "revised.pl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and run.stderr == "", run.stderr
    from_prolog = dict(line.split("\t") for line in run.stdout.splitlines())
    expected = result.revised.deduce({regulator: -1}, k=2)["status"]
    assert from_prolog == {gene: s for gene, s in expected.items() if s != "none"}


def test_revised_asp_file_grounds_in_plain_clingo(finished):
    run_dir, _ = finished
    run = subprocess.run(
        [sys.executable, "-m", "clingo", str(run_dir / "rules" / "revised.lp")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode in (0, 10, 30), run.stderr
    assert "SATISFIABLE" in run.stdout and run.stderr == ""


def test_evaluate_reports_every_method_and_the_edges(finished):
    run_dir, _ = finished
    result = evaluate_run(run_dir)
    assert list(result["test"]) == list(METHODS)
    for scores in result["test"].values():
        assert {"data_f1", "kb_f1", "balanced"} <= set(scores)
    assert result["test"]["kb_original"]["kb_f1"] == pytest.approx(1.0)
    assert set(result["edges"]) == {"original", "revised"}
    assert result["edges"]["original"]["added"] == 0


def test_cli_evaluate_saves_the_figures_and_shows_them_in_the_report(finished):
    run_dir, _ = finished
    from typer.testing import CliRunner

    from aligned.cli import app

    assert "Not evaluated" in (run_dir / "report.html").read_text()
    run = CliRunner().invoke(app, ["evaluate", str(run_dir), "--json"])
    assert run.exit_code == 0, run.output
    saved = json.loads((run_dir / "evaluation.json").read_text())
    printed = json.loads(run.stdout)
    assert saved["test"]["integrated"]["data_f1"] == pytest.approx(
        printed["test"]["integrated"]["data_f1"]
    )
    report = (run_dir / "report.html").read_text()
    assert "Not evaluated" not in report
    assert "Evaluation on the sealed test split" in report


def test_a_directory_holding_another_run_is_refused(finished, simulation_dir):
    run_dir, _ = finished
    other = session_config(simulation_dir)
    other["session"]["seed"] = 99
    before = (run_dir / "kb" / "revised.tsv").read_bytes()
    with pytest.raises(InputError, match="holds a run with another configuration"):
        Session(other, run_dir, quiet=True).run()
    assert (run_dir / "kb" / "revised.tsv").read_bytes() == before


def test_a_non_empty_directory_without_a_run_is_refused(tmp_path, simulation_dir):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty and holds no aligned run"):
        Session(session_config(simulation_dir), tmp_path, quiet=True).run()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_second_session_on_the_same_directory_is_refused(tmp_path, simulation_dir):
    import fcntl

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(run_dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(InputError, match="another session is running"):
            Session(session_config(simulation_dir), run_dir, quiet=True).run()


def refine_command(config: Path, run_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from aligned.cli import main; main()",
        "refine",
        "--config",
        str(config),
        "--out",
        str(run_dir),
        "--quiet",
    ]


def test_a_session_killed_mid_iteration_resumes_to_the_uninterrupted_result(
    finished, simulation_dir, tmp_path
):
    reference_dir, _ = finished
    config = tmp_path / "config.toml"
    config.write_text(dump_config(session_config(simulation_dir)))
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        refine_command(config, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    state = run_dir / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists() and "pretrain" in state.read_text():
            break
        time.sleep(0.05)
    assert process.poll() is None, "the session ended before it could be killed"
    time.sleep(0.5)  # inside iteration 1: abduction or retraining
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert "finish" not in state.read_text()

    resumed = subprocess.run(
        refine_command(config, run_dir), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    for name in ("kb/revised.tsv", "changes.tsv", "gate.tsv", "splits.tsv"):
        assert (run_dir / name).read_bytes() == (reference_dir / name).read_bytes(), name
    assert without_timings(run_dir) == without_timings(reference_dir)


def without_timings(run_dir: Path) -> list[dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for entry in metrics:
        entry.get("abduction", {}).pop("seconds", None)
    return metrics


def test_the_session_is_public_and_a_config_file_names_its_run_directory(
    simulation_dir, tmp_path, monkeypatch
):
    import aligned
    from aligned.errors import InputError
    from aligned.session import Session

    assert aligned.Session is Session and aligned.abduce is not None
    config = tmp_path / "my-study.toml"
    config.write_text(
        f'[data]\npath = "{simulation_dir}"\n'
        f'[knowledge]\npath = "{simulation_dir / "kb_corrupted.tsv"}"\n'
    )
    monkeypatch.chdir(tmp_path)
    assert aligned.Session(config).out == Path("runs") / "my-study"
    with pytest.raises(InputError, match="needs an out directory"):
        aligned.Session(session_config(simulation_dir))


def test_pseudo_labels_go_only_to_confirmed_regulators():
    """An unperturbed gene whose out-edges explain observed responses is confirmed by the
    abduction and gets a pseudo-labelled knockout; a source no condition reaches gets none."""
    import numpy as np

    from aligned.abduction import abduce
    from aligned.data import PerturbationData
    from aligned.session import unlabelled_perturbations

    genes = ["r", "m", "a", "b", "c", "lone", "x"]
    kb = KnowledgeBase.from_edges(
        [("r", "m", 1), ("m", "a", 1), ("m", "b", -1), ("m", "c", 1), ("lone", "x", 1)],
        genes=genes,
    )
    labels = np.array([[0, -1, -1, 1, -1, 0, 0]], dtype=np.int8)  # r knocked out
    data = PerturbationData.from_perturbations(
        genes, [{"r": -1}], labels.astype(float), labels, columns={"split": ["train"]}
    )
    revision = abduce(kb, data, k=2, time_limit=10)
    assert revision.regulators_confirmed == ["m"]
    everything = unlabelled_perturbations(kb, data, -1)
    assert everything == [{"m": -1}, {"lone": -1}]
    confirmed = unlabelled_perturbations(kb, data, -1, revision.regulators_confirmed)
    assert confirmed == [{"m": -1}]
