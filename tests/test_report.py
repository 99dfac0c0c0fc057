"""The HTML run report: written by the session, self-contained, escaped, and honest about
runs without edits, unfinished runs and directories that hold no run."""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aligned import KnowledgeBase
from aligned.errors import InputError
from aligned.report import read_changes, top_edits, write_report
from aligned.session import Session

SIMULATION = {"n_genes": 60, "corruption": 0.3, "protocol": "deduction", "seed": 2, "k": 2}
# a small, quick MLP: the report needs a real run, not a good network
FAST_MLP = """
[model]
kind = "mlp"
hidden = 32
layers = 1
dropout = 0.0

[training]
epochs = 8
patience = 3
"""
# quotes, markup, an ampersand, unbalanced mathtext and non-ASCII in one gene name
HOSTILE = '<script>alert("x")</script> & \'$\\bad{$ \u00e9'
PNG_IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished one-iteration session on 60 simulated genes."""
    from aligned.data.simulate import simulate, write_simulation

    base = tmp_path_factory.mktemp("report")
    write_simulation(simulate(**SIMULATION), base / "sim")
    (base / "fast_mlp.toml").write_text(FAST_MLP)
    config = {
        "data": {"path": str(base / "sim")},
        "knowledge": {"path": str(base / "sim" / "kb_corrupted.tsv"), "k": 2},
        "predictor": {"preset": str(base / "fast_mlp.toml"), "device": "cpu"},
        "abduction": {"solver": "greedy", "time_limit": 30.0},
        "session": {"iterations": 1, "seed": 0},
    }
    out = base / "run"
    Session(config, out, quiet=True).run()
    return out


def copy_run(run_dir: Path, destination: Path) -> Path:
    """A copy of the run's text files (checkpoints left out: the report never reads them)."""
    return Path(
        shutil.copytree(run_dir, destination, ignore=shutil.ignore_patterns("*.pt", ".lock"))
    )


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in PNG_IMAGE.findall(page)]


def test_a_finished_session_writes_a_report_with_its_figures(run_dir):
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    pngs = images(page)
    # metrics, edits per iteration, neighbourhood, gate
    assert len(pngs) == 4, f"expected 4 embedded figures, found {len(pngs)}"
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs)
    for heading in ("Metrics per iteration", "Edits per iteration", "Adaptor gate", "Top edits"):
        assert heading in page
    assert "Unfinished run" not in page


def test_the_edit_table_lists_the_best_supported_edit_with_its_conditions(run_dir):
    changes = read_changes(run_dir / "changes.tsv")
    assert len(changes) > 0, "the fixture run should accept edits"
    best = top_edits(changes, 1).iloc[0]
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f"{html.escape(best.source)} \u2192 {html.escape(best.target)}" in page
    first_supporting = best.supporting.split(";")[0]
    assert first_supporting and html.escape(first_supporting) in page


def test_the_report_loads_nothing_from_outside_the_file(run_dir):
    page = (run_dir / "report.html").read_text(encoding="utf-8").lower()
    for outside in ('src="http', "href=", "<script", "@import", "@font-face", "url(", "<link"):
        assert outside not in page, f"the report references an outside resource: {outside}"


def rename_gene(run_dir: Path, old: str, new: str) -> None:
    """Rename a gene in every KB, gate and change table of a run directory."""
    for path in [*run_dir.glob("kb/*.tsv")]:
        kb = KnowledgeBase.read(path)
        edges = kb.edges.replace({"source": {old: new}, "target": {old: new}})
        KnowledgeBase(edges).write(path)
    for path in [run_dir / "gate.tsv", *run_dir.glob("gates/*.tsv")]:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        table["gene"] = table["gene"].replace(old, new)
        table.to_csv(path, sep="\t", index=False)
    path = run_dir / "changes.tsv"
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    for column in ("source", "target"):
        table[column] = table[column].replace(old, new)
    table.to_csv(path, sep="\t", index=False)


def test_gene_names_are_html_escaped_and_drawn_verbatim(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    best = top_edits(read_changes(run / "changes.tsv"), 1).iloc[0]
    rename_gene(run, best.source, HOSTILE)
    page = write_report(run).read_text(encoding="utf-8")
    assert HOSTILE not in page and "<script>" not in page
    assert f"{html.escape(HOSTILE)} \u2192 {html.escape(best.target)}" in page
    assert len(images(page)) == 4  # the drawing survives "$" (no mathtext) and the markup


def test_a_run_without_edits_gets_a_report_saying_so(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    header = (run / "changes.tsv").read_text(encoding="utf-8").splitlines()[0]
    (run / "changes.tsv").write_text(header + "\n", encoding="utf-8")
    shutil.copyfile(run / "kb" / "original.tsv", run / "kb" / "revised.tsv")
    page = write_report(run).read_text(encoding="utf-8")
    assert "No edit was accepted" in page
    assert "0 added, 0 removed, 0 flipped" in page
    assert len(images(page)) == 2  # metrics and gate; no edit to count or draw


def test_an_unfinished_run_is_reported_as_far_as_it_got(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    for name in ("gate.tsv", "kb/revised.tsv", "report.html"):
        (run / name).unlink()
    status = json.loads((run / "run.json").read_text())
    status["status"] = "running"
    (run / "run.json").write_text(json.dumps(status))
    last = max(int(path.stem.split("-")[1]) for path in run.glob("kb/iteration-*.tsv"))
    original = KnowledgeBase.read(run / "kb" / "original.tsv")
    latest = KnowledgeBase.read(run / "kb" / f"iteration-{last}.tsv")
    page = write_report(run).read_text(encoding="utf-8")
    assert "Unfinished run" in page
    assert f"{len(original)} original \u2192 {len(latest)} after iteration {last}" in page
    assert f"The gate after iteration {last}" in page


def test_a_run_that_has_only_started_is_reported_without_figures(run_dir, tmp_path):
    started = tmp_path / "started"
    started.mkdir()
    for name in ("run.json", "config.toml"):
        shutil.copyfile(run_dir / name, started / name)
    status = json.loads((started / "run.json").read_text())
    status["status"] = "running"
    (started / "run.json").write_text(json.dumps(status))
    page = write_report(started).read_text(encoding="utf-8")
    assert "Unfinished run" in page and "No iteration has been recorded yet" in page
    assert images(page) == []


def test_a_directory_without_a_run_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    with pytest.raises(InputError, match="is not an aligned run directory"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_the_cli_writes_the_report_where_asked(run_dir, tmp_path):
    from typer.testing import CliRunner

    from aligned.cli import app

    out = tmp_path / "elsewhere.html"
    written = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert str(out) in written.output and len(images(out.read_text(encoding="utf-8"))) == 4


def test_the_cli_refuses_a_directory_without_a_run_in_one_line(tmp_path):
    # a real process: the one-line error and the exit status come from the console script
    refused = subprocess.run(
        [sys.executable, "-c", "from aligned.cli import main; main()", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0], refused.stderr
    assert "not an aligned run directory" in lines[0]


def test_a_failing_report_does_not_fail_the_session(run_dir, monkeypatch, caplog):
    import aligned.report

    def broken(*args, **kwargs):
        raise RuntimeError("no figures today")

    monkeypatch.setattr(aligned.report, "write_report", broken)
    session = Session(run_dir / "config.toml", run_dir, quiet=True)
    with caplog.at_level(logging.WARNING, logger="aligned.session"):
        session.write_report()
    assert "no figures today" in caplog.text
