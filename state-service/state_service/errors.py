"""Errors a user can act on, and error text that is safe to print and to store."""

from __future__ import annotations


class StateServiceError(Exception):
    """An error a user can act on; the CLI prints it as one line and exits 3."""


class DatabaseUnavailable(StateServiceError):
    """The state database could not be used; ``transient`` faults are worth a retry."""

    def __init__(self, database: str, reason: str, transient: bool) -> None:
        super().__init__(f"state database {database}: {reason}")
        self.database, self.reason, self.transient = database, reason, transient


def describe_error(exc: BaseException) -> str:
    """Error class and the first line of its message: never the SQL statement or parameters
    SQLAlchemy appends (state values can be sensitive)."""
    if isinstance(exc, StateServiceError):
        return str(exc)
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else '(no message)'}"
