"""Errors the lab reports to a person: one line that says what happened and what to do.

Every failure a user can cause or meet (a port taken, a server that dies at start,
nothing running) is raised as a `LabError`; the CLI prints its message on one line
and exits non-zero, never with a traceback.
"""


class LabError(Exception):
    """A failure with a one-line, actionable message for the person running the lab."""


def describe(exc: BaseException) -> str:
    """Return an exception's message, or its type's name when it has none."""
    return str(exc) or type(exc).__name__


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (drivers' messages run long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
