"""One place that builds every Redis key, with a prefix and optional cluster hash tags.

`KeyBuilder("rl").tagged("tenant-7", "bucket", "api")` gives `rl:{tenant-7}:bucket:api`:
keys that share a tag share a Redis Cluster slot, so one Lua script may touch them all
without a CROSSSLOT error. Tests give each builder a unique prefix for isolation.
"""

from dataclasses import dataclass

_SEPARATOR = ":"


@dataclass(frozen=True)
class KeyBuilder:
    """Builds `prefix:part:part` keys."""

    prefix: str

    def __post_init__(self) -> None:
        """Reject prefixes that would make keys ambiguous or cross-slot."""
        if not self.prefix or any(char in self.prefix for char in "{} \n"):
            raise ValueError(f"invalid key prefix {self.prefix!r}")

    def key(self, *parts: str | int) -> str:
        """Return `prefix:parts...`."""
        return _SEPARATOR.join((self.prefix, *map(str, parts)))

    def tagged(self, tag: str | int, *parts: str | int) -> str:
        """Return `prefix:{tag}:parts...`, so keys with one tag share a cluster slot."""
        return _SEPARATOR.join((self.prefix, f"{{{tag}}}", *map(str, parts)))

    def child(self, *parts: str | int) -> "KeyBuilder":
        """Return a builder whose prefix extends this one (for per-test isolation)."""
        return KeyBuilder(self.key(*parts))
