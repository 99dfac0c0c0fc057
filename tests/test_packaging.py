"""The wheel carries knowledge/, rules/ and neural/, and the installed package finds them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("aligned-*.whl")
    return path


def test_wheel_ships_the_resource_folders(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("rules", "knowledge", "neural"):
        shipped = {name for name in names if name.startswith(f"aligned/{folder}/")}
        on_disk = {
            f"aligned/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert on_disk and on_disk <= shipped, f"{folder}/ missing from the wheel"


def test_installed_wheel_runs_the_cli_away_from_the_source_tree(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = (
        "import aligned, sys; from aligned.cli import main; "
        "assert aligned.__file__.startswith(sys.argv[1]), aligned.__file__; "
        "sys.argv = ['aligned', 'walkthrough', '--out', 'walkthrough']; main()"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(site)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "tensor, Prolog and ASP agree" in run.stdout
    assert (tmp_path / "walkthrough" / "toy.pl").is_file()
