"""The delay proxy: Redis through it answers, one round trip later by two delays."""

import time

from labs.clients import redis_client
from labs.netem import delayed
from labs.settings import ServerUrls


async def test_round_trip_through_the_proxy_costs_two_one_way_delays(lab_urls: ServerUrls) -> None:
    """PING through a 30 ms proxy takes at least 60 ms, and answers correctly."""
    url = lab_urls.require("redis_url")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    async with delayed("127.0.0.1", port, 0.030) as proxy:
        client = redis_client(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=5)
        try:
            await client.ping()  # connect first: the handshake also pays the delay
            started = time.perf_counter()
            assert await client.echo("across the ocean") == b"across the ocean"
            elapsed = time.perf_counter() - started
        finally:
            await client.aclose()
    assert elapsed >= 0.060
