"""Where the lab keeps its state: `.lab/` at the project root, or `LAB_STATE_DIR`.

The state directory holds each embedded server's data, logs and the state file that
lets every later `lab` command find the running servers by itself.
"""

import os
from pathlib import Path

STATE_DIR_ENV = "LAB_STATE_DIR"
_MARKER = "pyproject.toml"


def project_root(start: Path | None = None) -> Path:
    """Return the nearest directory at or above `start` that holds the lab's pyproject."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / _MARKER).is_file() and (candidate / "labs").is_dir():
            return candidate
    return here


def state_dir() -> Path:
    """Return the lab's state directory (not created here)."""
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured).resolve()
    return project_root() / ".lab"
