"""The state file: which servers the lab started, where they listen, and their pids.

It lives at `<state dir>/servers.json` and is rewritten atomically under an exclusive
lock, so two `lab up` at once cannot both start a server.
"""

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from labs.errors import LabError

STATE_FILE = "servers.json"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class ServerRecord:
    """One server the lab knows: embedded (with a pid) or external (given by URL)."""

    name: str
    url: str
    version: str
    managed: bool
    pid: int | None = None
    started_at: float | None = None
    log: str | None = None


class StateFile:
    """Reads and writes the records of running servers under one state directory."""

    def __init__(self, directory: Path) -> None:
        """Keep the state under `directory`, which is created on first write."""
        self.directory = directory
        self.path = directory / STATE_FILE

    def load(self) -> dict[str, ServerRecord]:
        """Return the recorded servers by name (empty when nothing was recorded)."""
        try:
            raw = json.loads(self.path.read_text())
            return {name: ServerRecord(**fields) for name, fields in raw["servers"].items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError) as exc:
            raise LabError(
                f"the state file {self.path} is unreadable ({exc}): "
                "stop any lab servers by hand, then delete it"
            ) from None

    def save(self, records: dict[str, ServerRecord]) -> None:
        """Replace the recorded servers with `records`, atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {"servers": {name: asdict(record) for name, record in records.items()}}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(payload, indent=2) + "\n")
        temporary.replace(self.path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state directory's exclusive lock for the duration of the block."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / LOCK_FILE).open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
