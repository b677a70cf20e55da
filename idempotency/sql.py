"""PostgreSQL plumbing the API, the charger and the provider share: a schema each, and a ping.

Each process keeps its tables in a schema of its own (`IDEMPOTENCY_DB_SCHEMA`,
`PAYMENT_PROVIDER_DB_SCHEMA`), set as its connections' search path, so the provider's
ledger of truth and the API's records never share a table, and a test or an
experiment gets a clean pair by naming new schemas. Tables are created at start under
an advisory lock: processes starting together (an API, its provider and chargers) must
not race `CREATE TABLE IF NOT EXISTS`.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import MetaData, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import CreateSchema

from labs.clients import sql_engine

_SCHEMA_LOCK = 0x1DE4_9071
"""Advisory lock key held while a process creates its schema and tables."""
Creator = Callable[[AsyncConnection], Awaitable[None]]


def engine_in_schema(database_url: str, schema: str, **options: Any) -> AsyncEngine:
    """Return an engine whose connections find their tables in `schema`."""
    return sql_engine(
        database_url, connect_args={"server_settings": {"search_path": schema}}, **options
    )


async def create_tables(
    engine: AsyncEngine, schema: str, metadata: MetaData, *also: Creator
) -> None:
    """Create `schema`, `metadata`'s tables and whatever `also` creates, unless they exist."""
    async with engine.begin() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
        await conn.execute(CreateSchema(schema, if_not_exists=True))
        await conn.run_sync(metadata.create_all)
        for create in also:
            await create(conn)


async def ping(engine: AsyncEngine) -> None:
    """Make one round trip to PostgreSQL."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
