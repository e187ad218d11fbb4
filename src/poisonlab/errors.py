"""Errors a user can act on.

Every problem with user input becomes an :class:`InputError` that names the
file, the line and the field, so the CLI can print one line and exit with 2.
"""

from __future__ import annotations

from pathlib import Path


class PoisonlabError(Exception):
    """Base class for errors poisonlab raises on purpose."""


class InputError(PoisonlabError, ValueError):
    """Bad user input: a data file, a config, a flag. The CLI exits with status 2."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self.describe())

    def describe(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"field '{self.field}': " if self.field else ""
        return f"{where}{field}{self.message}"
