"""Health probes: one real round trip to each kind of server, returning its version.

The same probes serve the embedded servers and servers given by URL (compose, CI
services), so `lab status` and `/healthz` mean the same thing everywhere.
"""

import asyncio

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaClient

from labs.urls import asyncpg_dsn

_PROBE_TIMEOUT_S = 3.0


async def probe_redis(url: str) -> str:
    """PING the server at `url` and return its version (Valkey's, where it is Valkey).

    PING, unlike INFO, fails while the server is still loading its data from disk.
    """
    client = aioredis.Redis.from_url(url, socket_timeout=_PROBE_TIMEOUT_S)
    try:
        await client.ping()
        info = await client.info("server")
    finally:
        await client.aclose()
    valkey = info.get("valkey_version")
    return f"valkey {valkey}" if valkey else f"redis {info['redis_version']}"


async def probe_postgres(url: str) -> str:
    """Run `SHOW server_version` on the database at `url`."""
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=_PROBE_TIMEOUT_S)
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return f"postgresql {version}"


async def probe_kafka(bootstrap_servers: str) -> str:
    """Fetch cluster metadata from the broker and report how many brokers it has."""
    host, _, port = bootstrap_servers.split(",", maxsplit=1)[0].strip().rpartition(":")
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), _PROBE_TIMEOUT_S)
    writer.close()  # the broker listens: now a real metadata round trip
    await writer.wait_closed()
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(_PROBE_TIMEOUT_S * 1000),
    )
    try:
        await asyncio.wait_for(client.bootstrap(), _PROBE_TIMEOUT_S)
        brokers = len(client.cluster.brokers())
    finally:
        await client.close()
    return f"kafka protocol, {brokers} broker(s)"
