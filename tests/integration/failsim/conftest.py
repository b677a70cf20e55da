"""One chain of real hop processes for the module, on a PostgreSQL schema of its own."""

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy import text

from labs.clients import sql_engine
from labs.failsim.chain.processes import ChainUrls, running_chain
from labs.failsim.experiments.driver import ChainDriver, driving
from labs.settings import ServerUrls


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain(lab_urls: ServerUrls) -> AsyncIterator[ChainUrls]:
    """gateway, orders, payments and catalog as processes; their ledger schema dropped after."""
    schema = f"failsim_{uuid.uuid4().hex[:10]}"
    admin = sql_engine(lab_urls.require("database_url"), pool_size=1, max_overflow=0)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        async with running_chain(lab_urls, schema, uuid.uuid4().hex) as urls:
            yield urls
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest_asyncio.fixture(loop_scope="module")
async def driver(chain: ChainUrls) -> AsyncIterator[ChainDriver]:
    """A driver of the module's chain."""
    async with driving(chain) as each:
        yield each
