"""Errors of the sidecar: one class per kind of failure, each with its exit code.

Database errors are mapped by SQLSTATE (class first, then the exact code), so
the command line prints one line and exits with a code a script can test.
"""
from __future__ import annotations

import psycopg

__all__ = [
    "EXIT_ACCESS",
    "EXIT_CONNECTION",
    "EXIT_ERROR",
    "EXIT_INVALID",
    "EXIT_NOT_FOUND",
    "EXIT_NO_PATTERNS",
    "EXIT_USAGE",
    "AccessDenied",
    "CiError",
    "ConnectionFailed",
    "InvalidInput",
    "NoPatterns",
    "NotFound",
    "from_psycopg",
]

EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own
EXIT_CONNECTION = 3
EXIT_NOT_FOUND = 4
EXIT_NO_PATTERNS = 5
EXIT_ACCESS = 6
EXIT_INVALID = 7


class CiError(Exception):
    """Any failure the sidecar reports; ``exit_code`` is what the CLI exits with."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate

    def __str__(self) -> str:
        return self.message


class ConnectionFailed(CiError):
    """The connection URL is malformed, or the server cannot be reached or refuses the login."""

    exit_code = EXIT_CONNECTION


class NotFound(CiError):
    """Unknown client or lead (SQLSTATE P0002 no_data_found)."""

    exit_code = EXIT_NOT_FOUND


class NoPatterns(CiError):
    """The client exists but has no stored pattern yet (run a refresh first)."""

    exit_code = EXIT_NO_PATTERNS


class AccessDenied(CiError):
    """The caller may not see or write this client (SQLSTATE class 42501 / 28)."""

    exit_code = EXIT_ACCESS


class InvalidInput(CiError):
    """An argument the database rejected (SQLSTATE class 22: not a UUID, bad tier, bad weights)."""

    exit_code = EXIT_INVALID


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def from_psycopg(exc: psycopg.Error) -> CiError:
    """The sidecar's error for a psycopg error, by SQLSTATE."""
    state = exc.sqlstate
    message = _first_line(exc)
    if state is None:
        # No SQLSTATE: the client library failed (bad URL, unreachable server).
        if isinstance(exc, psycopg.OperationalError | psycopg.ProgrammingError | psycopg.InterfaceError):
            return ConnectionFailed(f"cannot connect: {message}")
        return CiError(message)
    if state == "42501":
        return AccessDenied(message, state)
    if state == "P0002":
        return NotFound(message, state)
    if state[:2] in ("08", "28", "3D"):
        return ConnectionFailed(f"cannot connect: {message}", state)
    if state[:2] == "22" or state == "23502":
        return InvalidInput(message, state)
    return CiError(message, state)
