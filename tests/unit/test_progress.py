"""Progress: one live line per step on a terminal, plain lines anywhere else."""

import io
import re

import pytest
from rich.console import Console

from labs.progress import progress_display

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def test_a_terminal_keeps_the_last_line_of_each_step() -> None:
    """Messages of one step replace each other; a new step leaves the old one's last line."""
    screen = io.StringIO()
    with progress_display(Console(file=screen, force_terminal=True, width=80)) as progress:
        for message in ("a: 1/3 [bold]", "a: 2/3 [bold]", "b: start", "b: done"):
            progress(message)
    kept = [line for line in ANSI.sub("", screen.getvalue()).splitlines() if ".. " in line]
    assert kept == ["  .. a: 2/3 [bold]", "  .. b: done"]


def test_elsewhere_every_message_is_a_plain_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Piped output gets each message on its own line, with no control characters."""
    with progress_display(Console(file=io.StringIO(), force_terminal=False)) as progress:
        progress("a: 1/3")
        progress("a: 2/3")
    assert capsys.readouterr().err == "  .. a: 1/3\n  .. a: 2/3\n"
