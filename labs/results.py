"""Results files: every number a README quotes comes from one of these.

`save_results` writes `<name>.json` with the measured payload and the context needed
to judge it: the machine (CPU model, cores, memory, OS), the versions (Python, the
servers, the lab's commit), the seed and the size of the run. Machines like the
shared 2-core ones here drift from run to run, which is why experiments compare
peers within one run and report ratios; the machine record says where they ran.
"""

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from labs.paths import project_root


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, read-only
            cwd=project_root(),
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=project_root(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip() + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """Describe the machine a measurement ran on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def save_results(directory: Path, name: str, payload: dict[str, Any], **context: Any) -> Path:
    """Write `<directory>/<name>.json`: the payload plus machine, commit, time and `context`."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": machine(),
        **context,
        "results": payload,
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
