"""The one error type users see.

Anything a user can fix (a bad file, a wrong flag, a mismatched checkpoint) raises
:class:`PlmError` with the file, line and field where known. The CLI prints it as one line
and exits with code 2; any other exception is a bug in plmkit.
"""

from __future__ import annotations

from pathlib import Path


class PlmError(Exception):
    """An error the user can act on.

    Args:
        message: what is wrong and, where possible, what to do about it.
        path: the file or folder concerned.
        line: 1-based line number inside ``path``.
        field: the config key, column or tensor name concerned.
        suggest: a command-line flag that would get past the error (e.g. ``"--errors replace"``).
            The library cannot know which command is running, so the CLI prints it only when the
            running command has that flag; a command without it must not suggest it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        suggest: str | None = None,
    ) -> None:
        self.message = message
        self.suggest = suggest
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "")
        if self.field is not None:
            where = f"{where} [{self.field}]" if where else f"[{self.field}]"
        return f"{where}: {self.message}" if where else self.message
