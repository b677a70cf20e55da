"""Picking an entry from a registry by name: listing it, or one line naming the choices."""

from collections.abc import Mapping
from typing import Protocol, TypeVar

import click

from labs.errors import LabError


class Named(Protocol):
    """A registry entry: a name and a one-line summary."""

    @property
    def name(self) -> str:
        """The entry's name."""
        ...

    @property
    def summary(self) -> str:
        """What the entry does, in one line."""
        ...


EntryT = TypeVar("EntryT", bound=Named)


def list_entries(registry: Mapping[str, Named]) -> None:
    """Print each entry's name and summary."""
    for entry in registry.values():
        click.echo(f"{entry.name:16} {entry.summary}")


def pick(registry: Mapping[str, EntryT], name: str, kind: str) -> EntryT:
    """Return the entry called `name`, or fail in one line naming the choices."""
    entry = registry.get(name)
    if entry is None:
        raise LabError(f"unknown {kind} {name!r}: choose one of {', '.join(registry)}")
    return entry
