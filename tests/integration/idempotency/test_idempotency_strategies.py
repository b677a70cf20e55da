"""What each strategy survives and what it does not, shown on real servers, no sleeps.

redis-lock charges twice when its lock's TTL runs out under a slow provider, and when
its record is lost (evicted); recovery-points' completer finishes a key whose request
died; natural-key merges genuine repeat orders; a declined card is a stored `failed`.
"""

import asyncio
import time

import httpx
from redis.asyncio import Redis

from idempotency.domain import PaymentRequest, ScopedKey, StrategyName
from idempotency.provider.admin import ProviderAdmin
from idempotency.strategies.base import PaymentCommand
from idempotency.strategies.recovery_points import Completer, RecoveryPoints
from idempotency.strategies.redis_lock import RedisLock
from idempotency.testing import ApiFactory, RunningApi
from labs.clock import ManualClock
from labs.testing.waiting import until_awaited

BODY = {"amount": 1_250, "currency": "EUR", "customer": "cus_42", "description": "order 1"}
NO_COMPLETER = {"completer_interval_s": 3_600}
"""The app's own completer stays asleep: a test that runs one races no other."""
LOCK_TIMEOUT_S = 30.0


async def holds(api: RunningApi, key: str) -> bool:
    """Whether a recovery-points request holds `key` now."""
    kit = api.payments.kit
    scope = ScopedKey("alice", "POST /v1/recovery-points/payments", key)
    async with kit.engine.connect() as conn:
        return await kit.store.read_key(conn, scope, kit.now()) is not None


async def test_redis_lock_charges_twice_when_the_lock_expires_under_a_slow_provider(
    payments_api: ApiFactory, provider: ProviderAdmin
) -> None:
    """A charge slower than the lock's TTL lets the retry in: two charges for one key."""
    async with payments_api(lock_ttl_ms=50) as api:
        await provider.set_faults(latency_ms=1_500)

        async def client_retrying_while_409() -> httpx.Response:
            while (answer := await api.pay("redis-lock", BODY, "slow")).status_code == 409:
                pass  # the other holds the lock until its TTL ends, not until it is done
            return answer

        answers = await asyncio.gather(client_retrying_while_409(), client_retrying_while_409())
        metrics = await api.http.get("/metrics")
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[0].json()["id"] != answers[1].json()["id"]
    assert len(await provider.charges()) == 2
    assert "idempotency_redis_locks_lost_total 2.0" in metrics.text  # neither cached anything


async def test_redis_lock_charges_again_once_its_record_is_evicted(
    payments_api: ApiFactory, provider: ProviderAdmin, redis: Redis
) -> None:
    """Once Redis loses a finished key's record (eviction, restart), a retry charges again."""
    async with payments_api() as api:
        first = await api.pay("redis-lock", BODY, "evicted")
        replay = await api.pay("redis-lock", BODY, "evicted")
        strategy = api.payments.strategies[StrategyName.REDIS_LOCK]
        assert isinstance(strategy, RedisLock)
        command = PaymentCommand(
            "alice",
            StrategyName.REDIS_LOCK,
            PaymentRequest.model_validate(BODY),
            ScopedKey("alice", "POST /v1/redis-lock/payments", "evicted"),
        )
        assert await redis.delete(strategy.record_key(command)) == 1  # what eviction does
        after = await api.pay("redis-lock", BODY, "evicted")
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in after.headers
    assert after.json()["id"] != first.json()["id"]
    assert len(await provider.charges()) == 2


async def test_the_completer_finishes_a_key_whose_request_died_once_its_lock_times_out(
    payments_api: ApiFactory, provider: ProviderAdmin
) -> None:
    """A request that dies mid-charge is finished by the completer, once, with one charge."""
    clock = ManualClock(start=time.time())
    settings = NO_COMPLETER | {"recovery_lock_timeout_s": LOCK_TIMEOUT_S}
    async with payments_api(clock, **settings) as api:
        await provider.set_faults(hang=True)
        dying = asyncio.create_task(api.pay("recovery-points", BODY, "abandoned"))
        await until_awaited(lambda: holds(api, "abandoned"), "the request to take the key")
        retry = await api.pay("recovery-points", BODY, "abandoned")
        dying.cancel()  # it dies holding the lock, at recovery point `started`
        await provider.set_faults()
        runs: list[str] = []
        completer = Completer(RecoveryPoints(api.payments.kit), api.payments.kit, runs.append)
        too_soon = await completer.complete_once()
        clock.advance(LOCK_TIMEOUT_S + 1)
        finished = await completer.complete_once()
        replay = await api.pay("recovery-points", BODY, "abandoned")
    assert dying.cancelled()
    assert int(retry.headers["retry-after"]) == LOCK_TIMEOUT_S
    assert too_soon == []
    assert [scope.key for scope in finished] == ["abandoned"]
    assert runs == ["finished"]
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (201, "true")
    charges = await provider.charges()
    assert [charge["reference"] for charge in charges] == [replay.json()["id"]]
    assert charges[0]["idempotency_key"] is not None


async def test_recovery_points_resumes_after_a_provider_failure_without_a_second_charge(
    payments_api: ApiFactory, provider: ProviderAdmin
) -> None:
    """A lost provider answer (charge then drop) is resumed with the same downstream key."""
    async with payments_api(**NO_COMPLETER) as api:
        await provider.set_faults(drop_response_rate=1.0)
        lost = await api.pay("recovery-points", BODY, "dropped")
        await provider.set_faults()
        retried = await api.pay("recovery-points", BODY, "dropped")
    assert lost.status_code == 502
    assert retried.status_code == 201
    assert len(await provider.charges()) == 1


async def test_db_unique_charges_twice_when_the_provider_answer_is_lost(
    payments_api: ApiFactory, provider: ProviderAdmin
) -> None:
    """Without a downstream key, a retry after a lost provider answer charges again."""
    async with payments_api() as api:
        await provider.set_faults(drop_response_rate=1.0)
        lost = await api.pay("db-unique", BODY, "dropped")
        await provider.set_faults()
        retried = await api.pay("db-unique", BODY, "dropped")
    assert (lost.status_code, retried.status_code) == (502, 201)
    assert len(await provider.charges()) == 2


async def test_natural_key_merges_genuine_repeat_orders_within_its_window(
    payments_api: ApiFactory, provider: ProviderAdmin
) -> None:
    """Two real orders that look alike are merged; after the window they are not."""
    clock = ManualClock(start=time.time())
    async with payments_api(clock, natural_key_window_s=600) as api:
        together = await asyncio.gather(*(api.pay("natural-key", BODY) for _ in range(8)))
        clock.advance(60)
        second_order = await api.pay("natural-key", BODY | {"description": "order 2"})
        clock.advance(600)
        next_week = await api.pay("natural-key", BODY)
    ids = {answer.json()["id"] for answer in together}
    assert len(ids) == 1
    assert sorted(answer.status_code for answer in together) == [200] * 7 + [201]
    assert (second_order.status_code, second_order.json()["id"]) == (200, ids.pop())
    assert second_order.json()["description"] == "order 1"  # the second order is lost
    assert next_week.status_code == 201
    assert len(await provider.charges()) == 2


async def test_a_declined_card_is_a_failed_payment_replayed_like_any_other(
    payments_api: ApiFactory, provider: ProviderAdmin
) -> None:
    """A declined card is a failed payment, replayed like any other."""
    declined = BODY | {"customer": "declined_card"}
    async with payments_api() as api:
        first = await api.pay("recovery-points", declined, "d")
        again = await api.pay("recovery-points", declined, "d")
        read = await api.http.get(f"/v1/payments/{first.json()['id']}")
    assert (first.status_code, first.json()["status"]) == (201, "failed")
    assert (again.content, again.headers["idempotent-replayed"]) == (first.content, "true")
    assert read.json()["status"] == "failed"
    assert await provider.charges() == []
