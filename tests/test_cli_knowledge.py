"""The knowledge-base commands: tables, JSON, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aligned.resources import resource_path

TOY = str(resource_path("knowledge", "toy.tsv"))


def aligned(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from aligned.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_deduce_prints_json_per_gene():
    run = aligned("deduce", TOY, "--perturb", "hns=-1", "--k", "2", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["osmY"] == {"label": 0, "status": "conflict"}
    assert result["rpoS"] == {"label": 1, "status": "up"}


def test_explain_lists_walks_shortest_first():
    run = aligned("explain", TOY, "--perturb", "hns=-1", "--gene", "osmY", "--k", "2", "--json")
    assert run.returncode == 0, run.stderr
    walks = json.loads(run.stdout)["walks"]
    assert [w["genes"] for w in walks] == [["hns", "osmY"], ["hns", "rpoS", "osmY"]]


def test_query_returns_solutions_as_json():
    run = aligned("query", TOY, 'edge(S, "osmY", Sign)', "--json")
    assert run.returncode == 0, run.stderr
    assert sorted((s["S"], s["Sign"]) for s in json.loads(run.stdout)) == [
        ("hns", 1),
        ("rpoS", 1),
    ]


def test_unsafe_query_is_refused_with_one_line(tmp_path):
    marker = tmp_path / "marker"
    run = aligned("query", TOY, f"shell('touch {marker}')")
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("aligned: error:")
    assert not marker.exists()


def test_diff_reports_a_flipped_edge(tmp_path):
    changed = tmp_path / "changed.tsv"
    changed.write_text(open(TOY).read().replace("hns\tosmY\t+", "hns\tosmY\t-"))
    run = aligned("diff", TOY, str(changed), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [
        {"change": "flipped", "source": "hns", "target": "osmY", "old_sign": 1, "new_sign": -1}
    ]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["deduce", "missing.tsv", "--perturb", "a=-1"], "missing.tsv: file not found"),
        (["deduce", TOY, "--perturb", "hns=2"], "--perturb expects GENE=-1 or GENE=+1"),
        (["deduce", TOY, "--perturb", "hns=-1", "--k", "0"], "k must be an integer >= 1"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(args, expected):
    run = aligned(*args)
    assert run.returncode != 0
    assert expected in run.stderr
    assert run.stderr.strip().count("\n") == 0, run.stderr
    assert "Traceback" not in run.stderr


def test_bad_table_line_is_named(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("source\ttarget\tsign\na\tb\t+\nb\tc\tmaybe\n")
    run = aligned("deduce", str(bad), "--perturb", "a=-1")
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"aligned: error: {bad}:3: unknown sign 'maybe' (use + - ? +-, 1 -1 0, or activation "
        "repression unknown dual)"
    )


def test_walkthrough_refuses_a_non_empty_output_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    run = aligned("walkthrough", "--out", str(tmp_path))
    assert run.returncode == 1
    assert "not empty" in run.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
