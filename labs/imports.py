"""Registries name their entries by import path (`package.module:attribute`).

Listing the demos, experiments or services then imports none of them, and the lab's
runtime never imports a service package until that service is asked for.
"""

import importlib
from typing import Any


def load_target(target: str) -> Any:
    """Import `package.module:attribute` and return the attribute."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
