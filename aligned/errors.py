"""Errors raised at the boundaries (files, configuration, command line)."""

from __future__ import annotations


class AlignedError(Exception):
    """Base class: the message is one line a user can act on; the CLI prints it and exits 1."""


class InputError(AlignedError, ValueError):
    """A file or argument is malformed.  The message names the file, the line and the problem."""

    def __init__(self, problem: str, path: object = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + problem)
        self.path = path
        self.line = line
        self.problem = problem


class BackendUnavailable(AlignedError, RuntimeError):
    """A reasoning backend's engine (SWI-Prolog, clingo) is not installed or cannot start."""


class UnsafeGoal(AlignedError, PermissionError):
    """A Prolog goal was refused by the sandbox."""
