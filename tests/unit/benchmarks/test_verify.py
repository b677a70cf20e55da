"""Verdicts on hand-built results: met, NOT MET, not measurable, run failed, never a false met."""

import json
from pathlib import Path
from typing import Any

from benchmarks.claims import Command, parse_claims
from benchmarks.verify import CommandRun, Verdict, claim_status, judge_claims, render_table


def claims_file(*measures: dict[str, Any]) -> dict[str, Any]:
    """A claims document with one claim holding `measures`."""
    return {
        "schema": 1,
        "claims": [{"id": "c1", "part": "latency", "quote": "Fast.", "measures": list(measures)}],
    }


def p99_below(threshold: float, command: str = "lab bench rate-limiter") -> dict[str, Any]:
    """A measurable measure: p99 of the `ours` run below `threshold` ms."""
    return {
        "what": "p99",
        "status": "measurable",
        "command": command,
        "results": "t/*.json",
        "metric": "results.runs.ours.latency_ms.p99",
        "compare": "<",
        "threshold": threshold,
        "unit": "ms",
    }


def write_results(directory: Path, name: str, p99: float | None) -> Path:
    """A results file as a bench target writes it, with only what the verdict reads."""
    path = directory / "t" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "generated_at": "2026-01-01T00:00:00+00:00",
        "commit": "abc1234",
        "machine": {"cores": 2, "cpu": "Test CPU"},
        "profile": {"name": "quick"},
        "results": {"runs": {"ours": {"latency_ms": {"p99": p99}}}},
    }
    path.write_text(json.dumps(document))
    return path


def judged(tmp_path: Path, *measures: dict[str, Any], runs: Any = None) -> list[dict[str, Any]]:
    """Judge the measures against results in `tmp_path`."""
    claims = parse_claims(claims_file(*measures))
    return judge_claims(claims, lambda _command: tmp_path, runs or {})


def test_the_newest_results_file_decides_met_or_not_met(tmp_path: Path) -> None:
    """The newest file's p99 against the threshold; provenance comes from that file."""
    write_results(tmp_path, "20260101T000000Z", 500.0)
    write_results(tmp_path, "20260102T000000Z", 150.0)
    (claim,) = judged(tmp_path, p99_below(200), p99_below(100))
    met, missed = claim["measures"]
    assert (met["verdict"], met["value"]) == (Verdict.MET, 150.0)
    assert (missed["verdict"], missed["value"]) == (Verdict.NOT_MET, 150.0)
    assert met["results_file"].endswith("20260102T000000Z.json")
    assert (met["machine"], met["commit"], met["size"]) == ("2 x Test CPU", "abc1234", "quick")
    assert claim["status"] == "not met"


def test_no_results_or_no_figure_is_not_measurable_never_met(tmp_path: Path) -> None:
    """No file yet, or a null figure where the metric should be: not measurable yet."""
    (claim,) = judged(tmp_path, p99_below(200))
    assert claim["measures"][0]["verdict"] == Verdict.NOT_MEASURABLE
    write_results(tmp_path, "20260101T000000Z", None)
    (claim,) = judged(tmp_path, {**p99_below(200), "metric": "results.runs.theirs.latency_ms.p99"})
    assert claim["measures"][0]["verdict"] == Verdict.NOT_MEASURABLE
    assert "has no figure" in claim["measures"][0]["reason"]
    assert claim["status"] == "not measurable yet"


def test_a_waiting_measure_is_not_measurable_and_the_claim_only_partly_measured(
    tmp_path: Path,
) -> None:
    """A `not yet` measure next to a met one: the claim is partly measured, not met."""
    write_results(tmp_path, "20260101T000000Z", 10.0)
    waiting = {
        **p99_below(200, "lab experiment not-built-yet"),
        "status": "not yet",
        "why": "needs its lab",
    }
    stance = {"what": "a stance", "status": "not yet", "why": "no figure"}
    (claim,) = judged(tmp_path, p99_below(200), waiting, stance)
    verdicts = [measure["verdict"] for measure in claim["measures"]]
    assert verdicts == [Verdict.MET, Verdict.NOT_MEASURABLE, Verdict.NOT_MEASURABLE]
    assert claim["measures"][1]["reason"] == "needs its lab"
    assert claim["status"] == "partly measured"


def test_a_crashed_command_fails_its_measures_even_with_old_results(tmp_path: Path) -> None:
    """An older results file never stands in for a run that crashed."""
    write_results(tmp_path, "20260101T000000Z", 10.0)
    log = tmp_path / "command.log"
    log.write_text("  .. starting\nlab: experiment failed: boom\n")
    command = Command.parse("lab bench rate-limiter")
    runs = {command.text: CommandRun(command, tmp_path, 1, 0.5, log)}
    (claim,) = judged(tmp_path, p99_below(200), runs=runs)
    assert claim["measures"][0]["verdict"] == Verdict.FAILED
    assert "boom" in claim["measures"][0]["reason"]
    assert claim["status"] == "run failed"


def test_claim_status_is_met_only_when_every_measure_is() -> None:
    """Any miss is not met, a crash wins, anything unmeasured keeps it from met."""
    met, missed, waiting, failed = (str(v) for v in Verdict)
    assert claim_status([met, met]) == "met"
    assert claim_status([met, missed]) == "not met"
    assert claim_status([met, waiting]) == "partly measured"
    assert claim_status([waiting]) == "not measurable yet"
    assert claim_status([missed, failed]) == "run failed"


def test_the_table_shows_figures_thresholds_and_every_verdict(tmp_path: Path) -> None:
    """One row per measure with the figure, the threshold, the verdict and the machine."""
    write_results(tmp_path, "20260101T000000Z", 250.0)
    claims = judged(tmp_path, p99_below(200), {"what": "tls", "status": "not yet", "why": "out"})
    document = {
        "name": "20260101T000000Z",
        "mode": "recorded",
        "commit": "abc1234",
        "machine": {"cores": 2, "cpu": "Test CPU"},
        "results": {"claims": claims, "runs": []},
    }
    table = render_table(document)
    assert "| c1 | p99 | 250 ms | < 200 ms | **NOT MET** | 2 x Test CPU |" in table
    assert "| c1 | tls | - | - | not measurable yet: out | - |" in table
    assert "(recorded)" in table
    assert "| met |" not in table
