"""Client factories for the real servers, called from app lifespans, never at import.

Each factory returns an unconnected client configured the same way across the lab:
redis-py's asyncio client (hiredis parser when installed), SQLAlchemy's async engine
on asyncpg, aiokafka producers and consumers, and httpx for outgoing HTTP calls. The
caller owns the client and closes it when its lifespan ends.
"""

from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from labs.urls import sqlalchemy_url

_REDIS_TIMEOUT_S = 2.0
_HTTP_TIMEOUT_S = 10.0
_HTTP_CONNECT_TIMEOUT_S = 2.0


def redis_client(url: str, *, wait_for_connection: bool = False, **options: Any) -> Redis:
    """Return an asyncio Redis client for `url` with bounded timeouts.

    With `wait_for_connection`, a command that finds every pooled connection
    (`max_connections`) busy waits for one instead of raising: for a load generator whose
    bursts may outrun the server for a moment.
    """
    settings: dict[str, Any] = {
        "socket_timeout": _REDIS_TIMEOUT_S,
        "socket_connect_timeout": _REDIS_TIMEOUT_S,
        "health_check_interval": 30,
    } | options
    if wait_for_connection:
        return Redis.from_pool(BlockingConnectionPool.from_url(url, timeout=None, **settings))
    return Redis.from_url(url, **settings)


def redis_cluster_client(url: str, **options: Any) -> RedisCluster:
    """Return an asyncio Redis Cluster client that discovers every node from `url`."""
    defaults: dict[str, Any] = {
        "socket_timeout": _REDIS_TIMEOUT_S,
        "socket_connect_timeout": _REDIS_TIMEOUT_S,
    }
    return RedisCluster.from_url(url, **(defaults | options))


def sql_engine(url: str, **options: Any) -> AsyncEngine:
    """Return an async SQLAlchemy engine on asyncpg for any PostgreSQL URL form."""
    defaults: dict[str, Any] = {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}
    return create_async_engine(sqlalchemy_url(url), **(defaults | options))


def kafka_producer(bootstrap_servers: str, **options: Any) -> AIOKafkaProducer:
    """Return an aiokafka producer that waits for all in-sync replicas (not started)."""
    defaults: dict[str, Any] = {"acks": "all", "linger_ms": 5}
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **(defaults | options))


def kafka_consumer(
    bootstrap_servers: str, *topics: str, group_id: str | None, **options: Any
) -> AIOKafkaConsumer:
    """Return an aiokafka consumer with manual commits, reading from the start (not started).

    The session timeout is short (3 s) so that a killed consumer's partitions move
    quickly; the embedded broker also delays a group join by about half of it.
    """
    defaults: dict[str, Any] = {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 3_000,
        "heartbeat_interval_ms": 500,
    }
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap_servers, group_id=group_id, **(defaults | options)
    )


def http_client(*, max_connections: int = 100, **options: Any) -> httpx.AsyncClient:
    """Return a pooled asyncio HTTP client with bounded timeouts that follows no redirects.

    One client per process: its pool keeps up to `max_connections` connections, all
    kept alive, so repeated calls to a host skip the TCP and TLS handshakes. A call
    may pass its own `timeout`.
    """
    defaults: dict[str, Any] = {
        "timeout": httpx.Timeout(_HTTP_TIMEOUT_S, connect=_HTTP_CONNECT_TIMEOUT_S),
        "limits": httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        "follow_redirects": False,
        "headers": {"User-Agent": "systems-lab"},
    }
    return httpx.AsyncClient(**(defaults | options))
