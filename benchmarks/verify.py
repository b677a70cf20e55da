"""`lab verify`: run what measures each claim, read the figures, and judge them.

For every claim asked for, each active measure's command runs once (measures that
share a command share its run): as a real `lab` process, quick unless `full`, with
`--out` into this verify run's own folder, so a quick check never overwrites the
results the READMEs quote. `recorded` runs nothing and judges the results files
already in place (the ones the READMEs quote). Each measure then gets a verdict: met,
NOT MET (with the figure), not measurable yet (with why: not built, not registered,
or no such figure in the results), or run failed (its command crashed). The verdicts,
the figures and each results file's own machine, commit and date go to
`benchmarks/results/verify/<timestamp>.json`; a command that crashed makes the whole
verify fail afterwards, since its claims were not checked.
"""

import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from benchmarks.claims import Claim, Command, Measure, MetricMissingError, figure
from benchmarks.report import header, load, row
from labs.paths import project_root
from labs.progress import Progress
from labs.results import save_results
from labs.settings import ServerUrls

VERIFY_DIR = Path(__file__).parent / "results" / "verify"
_TAIL_LINES = 5


class Mode(StrEnum):
    """How the figures are obtained."""

    QUICK = "quick"
    FULL = "full"
    RECORDED = "recorded"
    """Run nothing: judge the results files in place."""


class Verdict(StrEnum):
    """A measure's verdict; only MET counts towards a claim."""

    MET = "met"
    NOT_MET = "NOT MET"
    NOT_MEASURABLE = "not measurable yet"
    FAILED = "run failed"


@dataclass(frozen=True)
class CommandRun:
    """One command run by a verify: where its results went, and how it ended."""

    command: Command
    out: Path
    exit_code: int
    seconds: float
    log: Path

    def record(self) -> dict[str, Any]:
        """The run as the verify file records it."""
        return {
            "command": self.command.text,
            "exit_code": self.exit_code,
            "seconds": self.seconds,
            "out": _relative(self.out),
            "log": _relative(self.log),
        }


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def commands_to_run(claims: Iterable[Claim]) -> list[Command]:
    """Return each active measure's command once, in the claims file's order."""
    seen: dict[str, Command] = {}
    for claim in claims:
        for measure in claim.measures:
            if measure.active and measure.command is not None:
                seen.setdefault(measure.command.text, measure.command)
    return list(seen.values())


def run_command(command: Command, out: Path, *, full: bool, progress: Progress) -> CommandRun:
    """Run `command` as a real `lab` process, its results in `out`, its output in a log."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "command.log"
    started = time.monotonic()
    argv = [sys.executable, "-m", "labs", *command.argv(out, full=full)]
    with (
        log.open("w") as handle,
        subprocess.Popen(  # noqa: S603 - the lab's own command
            argv, stdout=handle, stderr=subprocess.PIPE, text=True, cwd=project_root()
        ) as child,
    ):
        assert child.stderr is not None  # noqa: S101 - set by stderr=PIPE
        for line in child.stderr:
            handle.write(line)
            progress(f"{command.text}: {line.strip().removeprefix('.. ')}")
    return CommandRun(command, out, child.returncode, round(time.monotonic() - started, 1), log)


def _last_lines(path: Path) -> str:
    try:
        lines = path.read_text().strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-_TAIL_LINES:])


def _newest(directory: Path, pattern: str) -> Path | None:
    files = sorted(directory.glob(pattern))
    return files[-1] if files else None


def _context(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    info = document.get("machine", {})
    profile = document.get("profile", {})
    return {
        "results_file": _relative(path),
        "commit": document.get("commit"),
        "date": document.get("generated_at"),
        "machine": f"{info.get('cores')} x {info.get('cpu')}" if info else None,
        "size": document.get("size") or profile.get("name"),
    }


def judge(
    measure: Measure, directory: Path | None, run: CommandRun | None = None
) -> dict[str, Any]:
    """Return the measure's verdict, figure and provenance, reading results in `directory`."""
    outcome: dict[str, Any] = {
        "claim": measure.claim,
        "what": measure.what,
        "command": measure.command.text if measure.command else None,
        "metric": measure.metric,
        "threshold": measure.threshold_text,
        "unit": measure.unit,
        "note": measure.note,
        "value": None,
    }

    def verdict(kind: Verdict, reason: str = "") -> dict[str, Any]:
        return {**outcome, "verdict": str(kind), "reason": reason}

    if not measure.active or measure.command is None:
        why = measure.why or "its command is not registered yet"
        return verdict(Verdict.NOT_MEASURABLE, why)
    if run is not None and run.exit_code != 0:
        return verdict(
            Verdict.FAILED,
            f"`{run.command.text}` exited with {run.exit_code}: "
            f"{_last_lines(run.log)} [log: {_relative(run.log)}]",
        )
    path = _newest(directory, measure.results or "") if directory else None
    if path is None:
        where = _relative(directory) if directory else "?"
        return verdict(Verdict.NOT_MEASURABLE, f"no {measure.results} in {where} yet")
    document = load(path)
    outcome |= _context(path, document)
    try:
        outcome["value"] = measure.value(document)
    except MetricMissingError:
        return verdict(Verdict.NOT_MEASURABLE, f"{path.name} has no figure at {measure.metric}")
    met = measure.met(outcome["value"])
    return verdict(Verdict.MET if met else Verdict.NOT_MET)


def claim_status(verdicts: Sequence[str]) -> str:
    """Roll a claim's measure verdicts up: met only when every measure is met."""
    if Verdict.FAILED in verdicts:
        return "run failed"
    if Verdict.NOT_MET in verdicts:
        return "not met"
    if all(verdict == Verdict.MET for verdict in verdicts):
        return "met"
    if Verdict.MET in verdicts:
        return "partly measured"
    return "not measurable yet"


def judge_claims(
    claims: Sequence[Claim], locate: Callable[[Command], Path], runs: dict[str, CommandRun]
) -> list[dict[str, Any]]:
    """Judge every measure of every claim; `locate(command)` says where its results are."""
    judged = []
    for claim in claims:
        measures = []
        for measure in claim.measures:
            command = measure.command
            directory = locate(command) if command is not None and measure.active else None
            measures.append(judge(measure, directory, runs.get(command.text) if command else None))
        judged.append(
            {
                "id": claim.id,
                "part": claim.part,
                "quote": claim.quote,
                "status": claim_status([m["verdict"] for m in measures]),
                "measures": measures,
            }
        )
    return judged


def run_verify(
    claims: Sequence[Claim],
    mode: Mode,
    *,
    progress: Progress,
    verify_dir: Path = VERIFY_DIR,
    urls: ServerUrls | None = None,
) -> Path:
    """Run (unless recorded), judge and write `<verify_dir>/<stamp>.json`; return its path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs: dict[str, CommandRun] = {}
    run_root = verify_dir / "raw" / stamp
    started = time.monotonic()
    if mode is not Mode.RECORDED:
        for command in commands_to_run(claims):
            progress(f"{command.text}: starting ({mode})")
            run = run_command(
                command, run_root / command.slug, full=mode is Mode.FULL, progress=progress
            )
            runs[command.text] = run

    def locate(command: Command) -> Path:
        if mode is Mode.RECORDED:
            return command.default_dir(project_root())
        return run_root / command.slug

    judged = judge_claims(claims, locate, runs)
    return save_results(
        verify_dir,
        stamp,
        {
            "claims": judged,
            "runs": [run.record() for run in runs.values()],
            "seconds": round(time.monotonic() - started, 1),
        },
        servers=urls,
        mode=str(mode),
    )


def failed_runs(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the runs of a verify document whose command did not exit 0."""
    return [run for run in document["results"]["runs"] if run["exit_code"] != 0]


def render_table(document: dict[str, Any]) -> str:
    """Return a verify document as Markdown: a context line, then one row per measure."""
    results = document["results"]
    info = document.get("machine", {})
    context = (
        f"`lab verify` `{document['name']}` ({document.get('mode')}), commit "
        f"{document.get('commit')}, {info.get('cores')} x {info.get('cpu')}; each row's "
        "machine is the one its results file was measured on"
    )
    columns = ["claim", "measure", "measured", "threshold", "verdict", "machine"]
    lines = [context, "", *header(columns, right={2, 3})]
    for claim in results["claims"]:
        for measure in claim["measures"]:
            verdict = measure["verdict"]
            shown = f"**{verdict}**" if verdict in {Verdict.NOT_MET, Verdict.FAILED} else verdict
            if measure["reason"]:
                shown = f"{shown}: {measure['reason']}"
            lines.append(
                row(
                    [
                        claim["id"],
                        measure["what"],
                        figure(measure["value"], measure["unit"]),
                        measure["threshold"],
                        shown,
                        measure.get("machine") or "-",
                    ]
                )
            )
    return "\n".join(lines) + "\n"
