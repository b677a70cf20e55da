"""Progress of a long run: a live line on a terminal, plain lines everywhere else.

`progress_display()` yields the `progress(message)` callback that benchmarks and
experiments call as they go. On a terminal it is one live status line (rich) that each
message replaces; when a message starts a new step (the text before its first colon
changes) the last message of the previous step stays printed above it, so the
terminal keeps one line per step and the running figures of the current one. Piped
into a file or a CI log, every message is a plain line on stderr (`  .. message`), so
nothing is lost and no control characters are written.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.markup import escape

Progress = Callable[[str], None]


def plain(message: str) -> None:
    """Print `message` as one line on stderr."""
    click.echo(f"  .. {message}", err=True)


def _step(message: str) -> str:
    return message.split(":", 1)[0]


@contextmanager
def progress_display(console: Console | None = None) -> Iterator[Progress]:
    """Yield a progress callback: a live line on a terminal, else `plain` lines."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield plain
        return
    last: list[str] = []
    with console.status("", spinner="dots") as status:

        def show(message: str) -> None:
            if last and _step(last[0]) != _step(message):
                console.print(f"  .. {escape(last[0])}", highlight=False)
            last[:] = [message]
            status.update(escape(message))

        try:
            yield show
        finally:
            if last:
                console.print(f"  .. {escape(last[0])}", highlight=False)
