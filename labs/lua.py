"""Lua scripts for Redis: one `.lua` file per script, called by SHA, reloaded on NOSCRIPT.

Pattern: a script's text is read once and its SHA1 computed locally; each call is one
EVALSHA round trip. A server that lost its script cache (restart, failover, SCRIPT
FLUSH, another cluster node) answers NOSCRIPT, and the call falls back to EVAL, which
also caches the script again. Every file must open with a header that states its
contract (`-- KEYS[1]`, `-- ARGV[1]`, `-- returns`), which `load` checks.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, TypeAlias

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError

RedisLike: TypeAlias = Redis | RedisCluster
ScriptArg: TypeAlias = str | int | float | bytes

_HEADER_FIELDS = ("KEYS", "ARGV", "return")


@dataclass(frozen=True)
class LuaScript:
    """A Lua script with its SHA1, callable on any Redis or Redis Cluster client."""

    name: str
    source: str

    @cached_property
    def sha(self) -> str:
        """Return the SHA1 that EVALSHA uses (computed once)."""
        return hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(
        self, client: RedisLike, keys: Sequence[str] = (), args: Sequence[ScriptArg] = ()
    ) -> Any:
        """Run the script atomically on the server that owns `keys`."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


def header_problems(source: str) -> list[str]:
    """Return what the script's leading comment block fails to document."""
    header = []
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    text = "\n".join(header)
    return [f"no `{field}` in the header" for field in _HEADER_FIELDS if field not in text]


def load(package: str, name: str) -> LuaScript:
    """Read `<name>.lua` from `package`, refusing a script without a contract header."""
    source = resources.files(package).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    problems = header_problems(source)
    if problems:
        raise ValueError(f"{package}/{name}.lua: {'; '.join(problems)}")
    return LuaScript(name=name, source=source)
