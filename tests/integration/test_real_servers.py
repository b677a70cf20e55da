"""Each real server answers, and the lab's client factories and Lua loader work on it."""

from collections.abc import Callable

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from labs.clients import kafka_consumer, kafka_producer, redis_cluster_client
from labs.keys import KeyBuilder
from labs.lua import LuaScript, load
from labs.settings import ServerUrls

SERVER_TIME = load("labs.demos", "server_time")
INCR_ALL = LuaScript(
    "incr_all",
    "-- KEYS: the counters\n-- ARGV: none\n-- returns the new values\n"
    "local out = {}\n"
    "for i, key in ipairs(KEYS) do out[i] = redis.call('INCR', key) end\n"
    "return out\n",
)


async def test_redis_is_valkey_and_isolated_by_prefix(redis: Redis, keys: KeyBuilder) -> None:
    """The server is a real Valkey; the test's keys live under its own prefix."""
    info = await redis.info("server")
    assert info["valkey_version"].startswith("9.")
    await redis.set(keys.key("greeting"), "hello")
    assert await redis.get(keys.key("greeting")) == b"hello"
    assert await redis.keys(f"{keys.prefix}:*") == [keys.key("greeting").encode()]


async def test_lua_script_reloads_itself_after_the_cache_is_flushed(redis: Redis) -> None:
    """EVALSHA fails with NOSCRIPT after SCRIPT FLUSH; the loader falls back and caches it again."""
    await SERVER_TIME(redis)
    await redis.script_flush()
    assert await redis.script_exists(SERVER_TIME.sha) == [False]
    seconds, micros = await SERVER_TIME(redis)
    assert int(seconds) > 1_700_000_000
    assert 0 <= int(micros) < 1_000_000
    assert await redis.script_exists(SERVER_TIME.sha) == [True]


async def test_postgres_schema_isolates_the_test(db: AsyncEngine, db_schema: str) -> None:
    """Tables created by the test land in its own schema on PostgreSQL 18."""
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (id int PRIMARY KEY, body text)"))
        await conn.execute(text("INSERT INTO notes VALUES (1, 'kept')"))
    async with db.connect() as conn:
        version = await conn.scalar(text("SHOW server_version"))
        where = await conn.scalar(
            text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'notes'")
        )
        body = await conn.scalar(text("SELECT body FROM notes WHERE id = 1"))
    assert str(version).startswith("18")
    assert where == db_schema
    assert body == "kept"


async def test_kafka_consumer_group_resumes_from_its_committed_offset(
    lab_urls: ServerUrls, topic_name: Callable[[str], str]
) -> None:
    """A second consumer in the group starts after what the first one committed."""
    bootstrap = lab_urls.require("kafka_bootstrap_servers")
    topic, group = topic_name("orders"), topic_name("group")
    producer = kafka_producer(bootstrap)
    await producer.start()
    for index in range(6):
        await producer.send_and_wait(topic, str(index).encode(), key=b"same-key")
    await producer.stop()

    first = kafka_consumer(bootstrap, topic, group_id=group, max_poll_records=3)
    await first.start()
    batch = await first.getmany(timeout_ms=10_000, max_records=3)
    taken = [m.value for messages in batch.values() for m in messages]
    await first.commit()
    await first.stop()

    second = kafka_consumer(bootstrap, topic, group_id=group)
    await second.start()
    rest: list[bytes | None] = []
    while len(rest) < 6 - len(taken):
        batch = await second.getmany(timeout_ms=10_000)
        assert batch, "the broker delivered nothing"
        rest += [m.value for messages in batch.values() for m in messages]
    await second.stop()
    assert taken + rest == [str(i).encode() for i in range(6)]


async def test_cluster_runs_one_script_across_hash_tagged_keys(
    redis_cluster_url: str, keys: KeyBuilder
) -> None:
    """On the 3-master cluster, keys with one hash tag share a slot; one script updates them all."""
    cluster = redis_cluster_client(redis_cluster_url)
    try:
        _ = await cluster.initialize()
        assert len(cluster.get_nodes()) == 3
        tagged = [keys.tagged("tenant-1", "second"), keys.tagged("tenant-1", "day")]
        assert len({cluster.keyslot(key) for key in tagged}) == 1
        assert await INCR_ALL(cluster, keys=tagged) == [1, 1]
        assert await INCR_ALL(cluster, keys=tagged) == [2, 2]
        await cluster.delete(*tagged)
    finally:
        await cluster.aclose()
