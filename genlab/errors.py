"""One-line errors: where genlab reports a failure (a run's status, the CLI, a page), it
says the first line of the exception's message, or the exception's type when the message
is empty; never a traceback."""
from __future__ import annotations


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first non-empty line of ``str(e)`` (at most ``limit`` characters), else the
    name of ``e``'s type."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    line = lines[0] if lines else type(e).__name__
    return line[:limit] if limit else line
