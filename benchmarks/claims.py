"""The claims file: every portfolio claim, the command that measures it, and its verdict.

`benchmarks/claims.toml` quotes each claim word for word and gives each of its
measures a command (`lab experiment ...` or `lab bench ...`), the results file that
command writes, a metric path into that JSON, and the comparison and threshold the
claim states. `load_claims` reads and validates it (a malformed entry is one line
naming it); `Measure.value` reads a measure's figure from a results document, and
`Measure.met` compares it. A measure is *active* when the lab can measure it now: it
is marked measurable, or it names a command that has since been registered. Nothing
here ever turns a missing figure into a met claim: a path that matches nothing is
`MetricMissingError`, and the caller reports the measure as not measurable.
"""

import operator
import re
import shlex
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from labs.errors import LabError

CLAIMS_FILE = Path(__file__).parent / "claims.toml"
PARTS = ("rate-limiter", "idempotency", "scheduler", "cache", "failure-sim", "events", "latency")
STATUSES = ("measurable", "not yet")
COMPARES: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
AGGREGATES: dict[str, Callable[[list[Any]], Any]] = {"max": max, "min": min}
"""Besides these, `count`: the length of the one list or table matched, or the matches."""


class MetricMissingError(LookupError):
    """The metric path matches nothing in the results document."""


_TOKEN = re.compile(r'\.?(?:"(?P<quoted>[^"]+)"|(?P<name>[^.\[\]"]+)|\[(?P<selector>[^\]]*)\])')


def _step(values: list[Any], token: re.Match[str]) -> list[Any]:
    key = token["quoted"] or token["name"]
    if key is not None:
        return [value[key] for value in values if isinstance(value, dict) and key in value]
    selector = token["selector"]
    items = [item for value in values if isinstance(value, list) for item in value]
    if selector == "*":
        return items
    if selector.isdigit():
        index = int(selector)
        return [value[index] for value in values if isinstance(value, list) and index < len(value)]
    field, _, wanted = selector.partition("=")
    return [item for item in items if isinstance(item, dict) and str(item.get(field)) == wanted]


def resolve(document: Any, path: str) -> list[Any]:
    """Return every value `path` reaches in `document` (see the claims file's header)."""
    tokens = list(_TOKEN.finditer(path))
    if "".join(token[0] for token in tokens) != path:
        raise LabError(f"metric path {path!r} does not parse")
    values = [document]
    for token in tokens:
        values = _step(values, token)
    return values


@dataclass(frozen=True)
class Command:
    """A measuring command from the claims file: `lab experiment <name>` or `lab bench <target>`."""

    text: str
    kind: Literal["experiment", "bench"]
    name: str
    args: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "Command":
        """Parse `lab experiment|bench <name> [args]`."""
        words = shlex.split(text)
        if len(words) < 3 or words[0] != "lab" or words[1] not in {"experiment", "bench"}:  # noqa: PLR2004 - lab, kind, name
            raise LabError(
                f"command {text!r} is not `lab experiment <name>` or `lab bench <target>`"
            )
        kind: Literal["experiment", "bench"] = "experiment" if words[1] == "experiment" else "bench"
        return cls(text, kind, words[2], tuple(words[3:]))

    def registered(self) -> bool:
        """Return whether the lab has this experiment or bench target today."""
        if self.kind == "experiment":
            from labs.experiments import EXPERIMENTS  # noqa: PLC0415 - registries load on demand

            return self.name in EXPERIMENTS
        from benchmarks.targets import TARGETS  # noqa: PLC0415

        return self.name in TARGETS

    def default_dir(self, root: Path) -> Path:
        """Return where the command writes its results when not told otherwise."""
        if self.kind == "experiment":
            from labs.experiments import EXPERIMENTS  # noqa: PLC0415

            return root / EXPERIMENTS[self.name].results
        return Path(__file__).parent / "results"

    def argv(self, out: Path, *, full: bool) -> list[str]:
        """Return the `lab` arguments that run it with its results in `out`."""
        return [self.kind, self.name, *self.args, "--out", str(out), *(["--full"] if full else [])]

    @property
    def slug(self) -> str:
        """A file name for this command's own folder in a verify run."""
        return re.sub(r"[^A-Za-z0-9]+", "-", self.text).strip("-")


def figure(value: Any, unit: str = "") -> str:
    """Format a measured value for a table: `63.01 ms`, `5,781 decisions/s`, `true`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"  # noqa: PLR2004 - digits
    else:
        text = str(value)
    return f"{text} {unit}".strip()


@dataclass(frozen=True)
class Measure:
    """One measurable part of a claim: what, which command, which figure, which threshold."""

    claim: str
    what: str
    status: str
    command: Command | None = None
    results: str | None = None
    metric: str | None = None
    aggregate: str | None = None
    compare: str | None = None
    threshold: float | bool | None = None
    unit: str = ""
    note: str = ""
    why: str = ""

    @property
    def active(self) -> bool:
        """Whether the lab can measure it now (marked so, or its command has landed)."""
        if self.command is None:
            return False
        return self.status == "measurable" or self.command.registered()

    def value(self, document: dict[str, Any]) -> Any:
        """Return the measure's figure in a results document.

        Raises MetricMissingError when the path matches nothing, when it matches
        several values and no aggregate says how to combine them, or when a value to
        combine is null (a figure not measured is not a figure).
        """
        values = resolve(document, self.metric or "")
        if not values or (self.aggregate is None and len(values) != 1):
            raise MetricMissingError(self.metric)
        if self.aggregate == "count":
            only = values[0]
            return len(only) if len(values) == 1 and isinstance(only, list | dict) else len(values)
        if self.aggregate is not None:
            if any(value is None for value in values):
                raise MetricMissingError(self.metric)
            return AGGREGATES[self.aggregate](values)
        return values[0]

    def met(self, value: Any) -> bool:
        """Whether `value` meets the threshold (a missing or mistyped figure never does)."""
        if (
            value is None
            or self.compare is None
            or isinstance(value, bool) != isinstance(self.threshold, bool)
        ):
            return False
        if not isinstance(value, int | float):
            return False
        return COMPARES[self.compare](value, self.threshold)

    @property
    def threshold_text(self) -> str:
        """The comparison as a reader reads it: `< 200 ms`, `== true`."""
        if self.compare is None:
            return "-"
        threshold = (
            str(self.threshold).lower() if isinstance(self.threshold, bool) else self.threshold
        )
        return f"{self.compare} {threshold}{f' {self.unit}' if self.unit else ''}"


@dataclass(frozen=True)
class Claim:
    """A portfolio claim, quoted, and the measures that back it."""

    id: str
    part: str
    quote: str
    measures: tuple[Measure, ...]


def _measure(claim: str, raw: dict[str, Any]) -> Measure:
    where = f"claim {claim}, measure {raw.get('what')!r}"
    status = raw.get("status")
    if status not in STATUSES:
        raise LabError(f"{where}: status must be one of {', '.join(STATUSES)}, not {status!r}")
    if status == "not yet" and not raw.get("why"):
        raise LabError(f"{where}: a `not yet` measure says why")
    if status == "measurable" or "command" in raw:
        missing = [
            k for k in ("command", "results", "metric", "compare", "threshold") if k not in raw
        ]
        if missing:
            raise LabError(f"{where}: a measure with a command needs {', '.join(missing)}")
        if raw["compare"] not in COMPARES:
            raise LabError(f"{where}: compare must be one of {', '.join(COMPARES)}")
        if raw.get("aggregate") not in {None, "count", *AGGREGATES}:
            raise LabError(f"{where}: aggregate must be max, min or count")
    unknown = set(raw) - {f for f in Measure.__dataclass_fields__ if f != "claim"}
    if unknown:
        raise LabError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    command = Command.parse(raw["command"]) if "command" in raw else None
    return Measure(claim=claim, **{**raw, "command": command})


def parse_claims(document: dict[str, Any]) -> list[Claim]:
    """Validate a parsed claims file and return its claims."""
    if document.get("schema") != 1:
        raise LabError("the claims file must say `schema = 1`")
    claims, seen = [], set()
    for raw in document.get("claims", []):
        claim_id = raw.get("id")
        if not claim_id or claim_id in seen:
            raise LabError(f"claim id {claim_id!r} is missing or used twice")
        seen.add(claim_id)
        if raw.get("part") not in PARTS:
            raise LabError(f"claim {claim_id}: part must be one of {', '.join(PARTS)}")
        if not raw.get("quote", "").strip():
            raise LabError(f"claim {claim_id}: quote the claim word for word")
        if not raw.get("measures"):
            raise LabError(f"claim {claim_id}: give it at least one measure")
        measures = tuple(_measure(claim_id, measure) for measure in raw["measures"])
        claims.append(Claim(claim_id, raw["part"], raw["quote"], measures))
    return claims


def load_claims(path: Path = CLAIMS_FILE) -> list[Claim]:
    """Read and validate the claims file."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LabError(f"cannot read the claims file {path}: {exc}") from None
    return parse_claims(document)


def select(claims: Sequence[Claim], ids: Sequence[str]) -> list[Claim]:
    """Return the claims named by `ids` (all when none), or fail naming the choices."""
    if not ids:
        return list(claims)
    known = {claim.id: claim for claim in claims}
    unknown = [claim_id for claim_id in ids if claim_id not in known]
    if unknown:
        raise LabError(f"unknown claim(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    return [known[claim_id] for claim_id in ids]
