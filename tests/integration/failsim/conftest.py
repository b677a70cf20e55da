"""One chain of real hop processes for the module (its ledger on a schema of its own)."""

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from labs.failsim.chain.processes import ChainUrls, running_chain
from labs.failsim.experiments.driver import ChainDriver, driving
from labs.settings import ServerUrls


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain(lab_urls: ServerUrls) -> AsyncIterator[ChainUrls]:
    """gateway, orders, payments and catalog as processes, stopped after the module."""
    async with running_chain(lab_urls, uuid.uuid4().hex) as urls:
        yield urls


@pytest_asyncio.fixture(loop_scope="module")
async def driver(chain: ChainUrls) -> AsyncIterator[ChainDriver]:
    """A driver of the module's chain."""
    async with driving(chain) as each:
        yield each
