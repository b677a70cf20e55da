"""Settings: where the servers are, and each service's own options.

`ServerUrls` reads `REDIS_URL`, `DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS` and
`REDIS_CLUSTER_URL`; what is not set comes from the servers `lab up` recorded, so a
command run after `lab up` needs no configuration. `ServiceSettings` is the base of
every service's settings class, each with its own environment prefix. Both are built
in the app factory or the CLI, never at import.
"""

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from labs.errors import LabError
from labs.paths import state_dir
from labs.servers.state import StateFile

_RECORDED = {
    "redis_url": "redis",
    "database_url": "postgres",
    "kafka_bootstrap_servers": "kafka",
    "redis_cluster_url": "redis-cluster-0",
}
_HOW_TO_SET = {
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "redis_cluster_url": "REDIS_CLUSTER_URL",
}


class ServerUrls(BaseSettings):
    """The addresses of the real servers, from the environment or from `lab up`."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    redis_url: str | None = None
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    redis_cluster_url: str | None = None

    @classmethod
    def discover(cls, directory: Path | None = None) -> Self:
        """Read the environment, filling what it leaves unset from the state file."""
        from_env = cls()
        records = StateFile(directory or state_dir()).load()
        found = {
            field: getattr(from_env, field) or (records[name].url if name in records else None)
            for field, name in _RECORDED.items()
        }
        return cls.model_validate(found)

    def require(self, field: str) -> str:
        """Return the URL in `field`, or explain in one line how to provide it."""
        value: str | None = getattr(self, field)
        if not value:
            cluster = " --cluster" if field == "redis_cluster_url" else ""
            raise LabError(
                f"no {_HOW_TO_SET[field]} and no server recorded: run `lab up{cluster}` "
                f"or set {_HOW_TO_SET[field]}"
            )
        return value


class ServiceSettings(BaseSettings):
    """Options every service has; a service subclasses it with its own `env_prefix`."""

    model_config = SettingsConfigDict(
        env_prefix="LAB_", extra="ignore", frozen=True, populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    admin_token: SecretStr | None = Field(default=None, validation_alias="LAB_ADMIN_TOKEN")
    log_level: str = "INFO"
    key_prefix: str = "lab"
