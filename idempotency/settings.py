"""Settings of the idempotency API and its charger processes (`IDEMPOTENCY_*`).

One class for both, so an API and the chargers it starts (or that compose runs next
to it) agree on the schema, the topic, the Redis prefix and the provider.
"""

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from labs.faults import Faults
from labs.settings import ServiceSettings

DEFAULT_API_KEYS = "alice:sk_test_alice,bob:sk_test_bob"


class IdempotencySettings(ServiceSettings):
    """Options of the idempotency API and its chargers (`IDEMPOTENCY_*`)."""

    model_config = SettingsConfigDict(env_prefix="IDEMPOTENCY_", extra="ignore", frozen=True)

    port: int = 8104
    key_prefix: str = Field(default="idem", description="Redis key prefix; names the group.")
    provider_url: str | None = Field(
        default=None, description="The provider; when unset, `lab serve` starts one."
    )
    provider_timeout_s: float = Field(default=5.0, gt=0, description="Per provider call.")
    chargers: int = Field(default=1, ge=0, description="Charger children `lab serve` starts.")
    db_schema: str = Field(default="idempotency", min_length=1)
    key_ttl_s: int = Field(default=86_400, ge=1, description="How long a key is remembered.")
    lock_ttl_ms: int = Field(default=10_000, ge=1, description="redis-lock's lock TTL.")
    recovery_lock_timeout_s: float = Field(
        default=30.0, gt=0, description="recovery-points: a lock older than this is abandoned."
    )
    completer_interval_s: float = Field(
        default=1.0, gt=0, description="recovery-points: how often the completer looks."
    )
    natural_key_window_s: float = Field(
        default=600.0, gt=0, description="natural-key: repeats within this are one payment."
    )
    topic: str = Field(default="idempotency.payments", min_length=1, description="The outbox's.")
    faults: Faults = Field(default_factory=Faults, description="The fault plan at start (JSON).")
    seed: int = Field(default=0, description="Seed of the fault draws, restarted per plan.")
    api_keys: str = Field(
        default=DEFAULT_API_KEYS, description="`principal:key,...`: who may call the API."
    )

    @field_validator("api_keys")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @property
    def principals(self) -> dict[str, str]:
        """Return each API key's principal."""
        return parse_api_keys(self.api_keys)

    @property
    def charger_group(self) -> str:
        """Return the Kafka consumer group every charger of this API joins."""
        return f"{self.key_prefix}-charger"


def parse_api_keys(text: str) -> dict[str, str]:
    """Parse `principal:key,...` into {key: principal}."""
    keys: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        principal, colon, key = entry.partition(":")
        if not (colon and principal and key) or key in keys:
            raise ValueError(f"bad API key entry {entry!r}: want a unique `principal:key`")
        keys[key] = principal
    if not keys:
        raise ValueError("at least one `principal:key` is needed")
    return keys
