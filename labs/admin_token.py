"""The admin token that guards every mutating admin endpoint.

`LAB_ADMIN_TOKEN` wins; otherwise the lab generates one on first use and keeps it in
`<state dir>/admin-token` (mode 0600) so every service and command agrees on it.
"""

import os
import secrets
from pathlib import Path

ENV_VAR = "LAB_ADMIN_TOKEN"
_FILE = "admin-token"


def admin_token(directory: Path) -> tuple[str, bool]:
    """Return the admin token and whether the lab generated it (rather than the environment)."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return configured, False
    path = directory / _FILE
    if path.exists():
        return path.read_text().strip(), True
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, True
