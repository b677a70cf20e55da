"""`lab test`: the whole check a change must pass, the same in CI and on a laptop.

ruff (lint and format), mypy --strict, then pytest; it stops at the first that fails.
"""

import subprocess
import sys

import click

from labs.paths import project_root

_CHECKS = (
    ("ruff", ["-m", "ruff", "check", "."]),
    ("ruff format", ["-m", "ruff", "format", "--check", "."]),
    ("mypy", ["-m", "mypy", "."]),
)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--fast", is_flag=True, help="Skip ruff and mypy; run pytest only.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def test(fast: bool, pytest_args: tuple[str, ...]) -> None:  # noqa: FBT001
    """Run ruff, mypy --strict and every test (extra arguments go to pytest)."""
    root = project_root()
    checks = () if fast else _CHECKS
    for name, args in (*checks, ("pytest", ["-m", "pytest", *pytest_args])):
        click.echo(f"==> {name}", err=True)
        code = subprocess.run([sys.executable, *args], cwd=root, check=False).returncode  # noqa: S603
        if code != 0:
            click.echo(f"lab: {name} failed (exit {code})", err=True)
            sys.exit(code)
