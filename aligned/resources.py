"""Where the shipped folders (``knowledge/``, ``rules/``, ``neural/``) live.

In an installed wheel they sit inside the package; in a source checkout they sit beside it.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the directory of a shipped resource folder (``"rules"``, ``"knowledge"``, ...).

    Raises
    ------
    FileNotFoundError
        If the folder is neither inside the installed package nor beside it.
    """
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"aligned: the shipped folder {name!r} is missing from the installation"
    )


def resource_path(name: str, filename: str) -> Path:
    """Return the path of one shipped file, e.g. ``resource_path("rules", "deduce.pl")``."""
    path = resource_dir(name) / filename
    if not path.is_file():
        raise FileNotFoundError(f"aligned: shipped file {name}/{filename} is missing")
    return path
