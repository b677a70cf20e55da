"""Scenario files: one TOML file per figure, naming the faults, the policies and the claims.

A file is either a `contention` scenario (the AWS backoff simulation, virtual time) or
a `chain` scenario (the real processes). A chain scenario has variants — each a set of
faults per hop and policies per edge (`"caller->dependency"`; the load generator is
`client`) — optionally swept over one fault's values, under one of three loads:
`closed` (N requests at a fixed concurrency), `outage` (steady load, a hop goes down
mid-run) or `neighbour` (a slow flow beside a measured one). Claims name a metric, a
variant (and sweep value), an optional variant to divide by, and the bounds the
figure must meet; the runner reports each as met or missed, with the figure.
"""

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from labs.experiments import Size
from labs.failsim.config import EdgePolicy
from labs.failsim.policies import Jitter
from labs.faults import Faults

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Claim(_Strict):
    """A figure a scenario must produce, and its bounds."""

    text: str
    metric: str
    variant: str
    x: float | None = None
    over: str | None = Field(default=None, description="Divide by this variant's figure.")
    at_least: float | None = None
    at_most: float | None = None


class ContentionSize(_Strict):
    """How big a contention run is."""

    clients: list[int]
    trials: int = Field(ge=1)


class ContentionScenario(_Strict):
    """Clients contending for one row under optimistic concurrency (virtual time)."""

    kind: Literal["contention"]
    name: str
    title: str
    jitters: list[Jitter]
    base_ms: float
    cap_ms: float
    network_mean_ms: float
    network_sd_ms: float
    claims: list[Claim]
    sizes: dict[Size, ContentionSize]


class Load(StrEnum):
    """The shape of the traffic a chain scenario sends."""

    CLOSED = "closed"
    OUTAGE = "outage"
    NEIGHBOUR = "neighbour"


class Sweep(_Strict):
    """One fault of one hop, set to each value in turn."""

    hop: str
    fault: str
    values: list[float]


class Variant(_Strict):
    """Faults per hop and policies per edge."""

    label: str
    faults: dict[str, Faults] = Field(default_factory=dict)
    edges: dict[str, EdgePolicy] = Field(default_factory=dict)
    slow: bool = Field(default=False, description="neighbour load: make `slow_hop` slow.")


class ChainSize(_Strict):
    """How big a chain run is."""

    requests: int = Field(default=200, ge=1)
    concurrency: int = Field(default=8, ge=1)
    sweep: list[float] | None = Field(default=None, description="Overrides the sweep's values.")
    duration_s: float = Field(default=5.0, gt=0)
    outage_at_s: float = Field(default=1.0, ge=0)
    slow_ms: int = Field(default=10_000, ge=0)
    slow_rate_per_s: float = Field(default=5.0, gt=0)


class ChainScenario(_Strict):
    """Variants of faults and policies on the real chain, under one load."""

    kind: Literal["chain"]
    name: str
    title: str
    load: Load
    route: list[str]
    deadline_ms: int = 5_000
    sweep: Sweep | None = None
    variants: list[Variant]
    claims: list[Claim]
    sizes: dict[Size, ChainSize]
    breaker_edge: str | None = Field(default=None, description="outage load: the edge to watch.")
    outage_hop: str | None = Field(default=None, description="outage load: the hop that fails.")
    slow_hop: str | None = Field(default=None, description="neighbour load: the slow hop.")
    slow_route: list[str] = Field(default_factory=list)
    slow_deadline_ms: int = 60_000

    def need(self, field: str) -> str:
        """Return the text field `field`, which this scenario's load requires."""
        value = getattr(self, field)
        if not isinstance(value, str) or not value:
            raise ValueError(f"scenario {self.name}: a {self.load} load needs `{field}`")
        return value

    def sweep_values(self, size: Size) -> list[float | None]:
        """Return the sweep's values for `size`, or `[None]` without a sweep."""
        if self.sweep is None:
            return [None]
        return list(self.sizes[size].sweep or self.sweep.values)


Scenario = Annotated[ContentionScenario | ChainScenario, Field(discriminator="kind")]
_SCENARIO: TypeAdapter[Scenario] = TypeAdapter(Scenario)


def load_scenario(path: Path) -> ContentionScenario | ChainScenario:
    """Read and validate one scenario file."""
    with path.open("rb") as file:
        return _SCENARIO.validate_python(tomllib.load(file))


def all_scenarios() -> list[ContentionScenario | ChainScenario]:
    """Return every scenario under `labs/failsim/scenarios`, in file-name order."""
    return [load_scenario(path) for path in sorted(SCENARIOS.glob("*.toml"))]
