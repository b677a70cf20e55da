"""Registries name their entries by import path (`package.module:attribute`).

Listing the demos, experiments or services then imports none of them, and the lab's
runtime never imports a service package until that service is asked for.
"""

import importlib
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def load_target(target: str) -> Any:
    """Import `package.module:attribute` and return the attribute."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class LazyEntry(Generic[T]):
    """A registry entry: a name, the import path of what it runs, and a one-line summary.

    Demos, experiments and benchmark targets subclass it with what else they need.
    """

    name: str
    target: str
    summary: str

    def load(self) -> T:
        """Import and return the entry's target."""
        loaded: T = load_target(self.target)
        return loaded
