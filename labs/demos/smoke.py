"""Smoke demo: one real write and read on Redis, PostgreSQL and Kafka.

Guarantee shown: the three servers are real, reachable and behave as servers do: a
Redis Lua script runs by SHA and reads the server's clock, PostgreSQL commits and
reads back a row, and Kafka delivers every produced message to a consumer group that
commits its offset. Each step's round trip is timed.
"""

import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from labs import lua
from labs.clients import kafka_consumer, kafka_producer, redis_client, sql_engine
from labs.demos import DemoContext, DemoFailedError, DemoOutcome

_MESSAGES = 10
_SERVER_TIME = lua.load("labs.demos", "server_time")


async def _timed(step: Callable[[], Awaitable[str]]) -> tuple[str, float]:
    started = time.perf_counter()
    result = await step()
    return result, (time.perf_counter() - started) * 1000


async def redis_round_trip(url: str, run_id: str) -> str:
    """SET, GET and run a Lua script by SHA; return what was checked."""
    client = redis_client(url)
    try:
        key = f"lab:smoke:{run_id}"
        await client.set(key, run_id, px=60_000)
        if (await client.get(key)) != run_id.encode():
            raise DemoFailedError("Redis returned a different value")
        seconds, _micros = await _SERVER_TIME(client)
        if abs(int(seconds) - time.time()) > 60:  # noqa: PLR2004 - a sanity bound, not a skew claim
            raise DemoFailedError("Redis TIME is far from this host's clock")
    finally:
        await client.aclose()
    return "SET/GET and Lua TIME"


async def postgres_round_trip(url: str, run_id: str) -> str:
    """Insert a row in a transaction and read it back."""
    engine = sql_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS lab_smoke"
                    " (id text PRIMARY KEY, at timestamptz DEFAULT now())"
                )
            )
            await conn.execute(text("INSERT INTO lab_smoke (id) VALUES (:id)"), {"id": run_id})
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM lab_smoke WHERE id = :id"), {"id": run_id}
            )
        if found != 1:
            raise DemoFailedError("PostgreSQL did not return the committed row")
    finally:
        await engine.dispose()
    return "committed and read a row"


async def kafka_round_trip(bootstrap: str, run_id: str) -> str:
    """Produce messages to a fresh topic and consume them all through a consumer group."""
    topic = f"lab-smoke-{run_id}"
    producer = kafka_producer(bootstrap)
    await producer.start()
    try:
        for index in range(_MESSAGES):
            await producer.send_and_wait(topic, f"{index}".encode(), key=run_id.encode())
    finally:
        await producer.stop()
    consumer = kafka_consumer(bootstrap, topic, group_id=f"lab-smoke-{run_id}")
    await consumer.start()
    try:
        received: list[bytes] = []
        while len(received) < _MESSAGES:
            batches = await consumer.getmany(timeout_ms=5_000)
            if not batches:
                raise DemoFailedError(f"Kafka delivered {len(received)} of {_MESSAGES} messages")
            received += [
                message.value
                for messages in batches.values()
                for message in messages
                if message.value
            ]
        await consumer.commit()
    finally:
        await consumer.stop()
    if received != [f"{index}".encode() for index in range(_MESSAGES)]:
        raise DemoFailedError("Kafka delivered the messages out of order")
    return f"{_MESSAGES}/{_MESSAGES} messages in order via a consumer group"


async def run(context: DemoContext) -> DemoOutcome:
    """Run one round trip on each server and report the times."""
    urls = context.urls
    run_id = uuid.uuid4().hex[:12]
    steps = {
        "Redis": lambda: redis_round_trip(urls.require("redis_url"), run_id),
        "PostgreSQL": lambda: postgres_round_trip(urls.require("database_url"), run_id),
        "Kafka": lambda: kafka_round_trip(urls.require("kafka_bootstrap_servers"), run_id),
    }
    parts = []
    for name, step in steps.items():
        context.progress(f"{name}...")
        try:
            what, millis = await _timed(step)
        except DemoFailedError as exc:
            return DemoOutcome(proved=False, summary=f"{name} failed: {exc}")
        parts.append(f"{name} {what} ({millis:.1f} ms)")
    return DemoOutcome(proved=True, summary="real servers answer: " + "; ".join(parts))
