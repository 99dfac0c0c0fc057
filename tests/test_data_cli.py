"""`aligned simulate` and `aligned data ecoli` from the command line."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

from typer.testing import CliRunner

from aligned.cli import app
from aligned.data import PerturbationData, load_data, load_simulation

FIXTURE = Path(__file__).parent / "fixtures" / "pymodulon_ecoli_small.zip"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the console entry point in a fresh interpreter, as a user would."""
    command = [sys.executable, "-c", "from aligned.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_simulate_writes_a_dataset_that_loads(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(
        app, ["simulate", "--genes", "60", "--corruption", "0.2", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "true edges" in result.output
    sim = load_simulation(out)
    assert sim.params["n_genes"] == 60 and sim.params["seed"] == 3
    assert sim.params["corruption"] == 0.2
    assert load_data(out) == PerturbationData.load(out / "data")


def test_simulate_deduction_protocol(tmp_path):
    out = tmp_path / "sim"
    args = ["simulate", "--genes", "40", "--protocol", "deduction", "--k", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rule = load_data(out).label_rule
    assert rule["rule"] == "deduction" and rule["k"] == 2


def test_bad_input_exits_non_zero_with_one_line(tmp_path):
    result = run_cli(
        "simulate", "--genes", "40", "--corruption", "1.5", "--out", str(tmp_path / "x")
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "aligned: error: simulate: corruption must be in [0, 1], got 1.5"
    ]
    assert not (tmp_path / "x").exists()


def test_existing_output_is_never_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli("simulate", "--genes", "40", "--out", str(tmp_path))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "already holds files" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_data_ecoli_from_a_given_wheel(tmp_path):
    out = tmp_path / "ecoli"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small zip lacks most of the 40 knockouts
        result = CliRunner().invoke(
            app, ["data", "ecoli", "--source", str(FIXTURE), "--out", str(out)]
        )
    assert result.exit_code == 0, result.output
    assert "4 knockouts (36 excluded)" in result.output
    assert len(load_data(out)) == 4


def test_data_ecoli_with_a_missing_wheel_is_one_line(tmp_path):
    result = run_cli(
        "data", "ecoli", "--source", str(tmp_path / "none.whl"), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 1
    missing = tmp_path / "none.whl"
    assert result.stderr.strip().splitlines() == [
        f"aligned: error: {missing}: file not found (expected the pymodulon-0.2.1 wheel)"
    ]
