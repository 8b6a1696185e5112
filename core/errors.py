"""The pure core's exception family."""

from __future__ import annotations


class CoreError(Exception):
    """Base of every error raised by the pure core."""


class SourceError(CoreError):
    """A problem in a user's file; the message names file, line and field, and says what to do."""

    def __init__(self, path: str, line: int | None, field: str, message: str) -> None:
        where = f"{path}:{line}" if line else path
        prefix = f"{where}: {field}: " if field else f"{where}: "
        super().__init__(prefix + message)
        self.path, self.line, self.field, self.message = path, line, field, message
