"""The rate-limit service over real HTTP on real Redis: the contract other tools rely on."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from labs.clock import ManualClock
from labs.keys import KeyBuilder
from labs.settings import ServerUrls
from labs.testing.pytest_plugin import DisposableRedis
from labs.web.serve import serve_in_thread
from rate_limiter.app import RateLimiterSettings, create_app

TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
HOUR_MS = 3_600_000


def settings(keys: KeyBuilder, **extra: object) -> RateLimiterSettings:
    """Settings with the test's own key prefix and a known admin token."""
    fields = {"admin_token": SecretStr(TOKEN), "key_prefix": keys.prefix} | extra
    return RateLimiterSettings.model_validate(fields)


@pytest.fixture
def api(lab_urls: ServerUrls, keys: KeyBuilder) -> Iterator[httpx.Client]:
    """The service on the session's Redis, as a client sees it."""
    app = create_app(settings(keys), urls=lab_urls, clock=ManualClock())
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


def put_rule(api: httpx.Client, name: str, **spec: object) -> httpx.Response:
    """Create or replace a rule with the admin token."""
    return api.put(f"/v1/rules/{name}", json=spec, headers=ADMIN)


def test_allowed_then_denied_with_headers_and_retry_after(api: httpx.Client) -> None:
    """Three of three pass with falling RateLimit; the fourth is a 429 with Retry-After."""
    assert (
        put_rule(api, "login", algorithm="fixed_window", limit=3, period_ms=HOUR_MS).status_code
        == 201
    )
    answers = [api.post("/v1/check", json={"rule": "login", "key": "alice"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.json()["remaining"] for a in answers] == [2, 1, 0, 0]
    assert answers[0].headers["RateLimit-Policy"] == '"login";q=3;w=3600'
    assert answers[2].headers["RateLimit"].startswith('"login";r=0;t=')
    denied = answers[3]
    assert denied.json()["allowed"] is False
    assert denied.json()["decided_by"] == "redis"
    assert int(denied.headers["Retry-After"]) >= 1
    assert denied.json()["retry_after_ms"] > 0


@pytest.mark.parametrize(
    "algorithm", ["token_bucket", "gcra", "sliding_log", "sliding_window", "fixed_window"]
)
def test_every_algorithm_serves_the_same_contract(api: httpx.Client, algorithm: str) -> None:
    """Each algorithm admits its capacity for a fresh key, then denies, with the same body shape."""
    assert put_rule(api, "r", algorithm=algorithm, limit=2, period_ms=HOUR_MS).status_code == 201
    codes = [api.post("/v1/check", json={"rule": "r", "key": "k"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    body = api.post("/v1/check", json={"rule": "r", "key": "k"}).json()
    assert set(body) == {
        "allowed",
        "limit",
        "remaining",
        "reset_after_ms",
        "retry_after_ms",
        "rule",
        "algorithm",
        "decided_by",
        "shadow",
    }
    assert body["algorithm"] == algorithm


def test_batch_is_all_or_nothing(api: httpx.Client) -> None:
    """A batch denied by one limit charges none of the others."""
    put_rule(api, "per-second", algorithm="token_bucket", limit=10, period_ms=1000)
    put_rule(api, "per-day", algorithm="fixed_window", limit=1, period_ms=24 * HOUR_MS)
    batch = {
        "checks": [{"rule": "per-second", "key": "{t1}"}, {"rule": "per-day", "key": "{t1}:u1"}]
    }
    first, second = api.post("/v1/check/batch", json=batch), api.post("/v1/check/batch", json=batch)
    assert (first.status_code, second.status_code) == (200, 429)
    assert [r["allowed"] for r in second.json()["results"]] == [True, False]
    peek_free = api.post("/v1/check", json={"rule": "per-second", "key": "{t1}"}).json()
    assert peek_free["remaining"] == 10 - 2  # the denied batch took nothing


def test_batch_keys_must_share_a_hash_tag(api: httpx.Client) -> None:
    """Keys in different cluster slots cannot be decided in one script: 422 problem."""
    put_rule(api, "r", algorithm="fixed_window", limit=5, period_ms=1000)
    batch = {"checks": [{"rule": "r", "key": "alice"}, {"rule": "r", "key": "bob"}]}
    answer = api.post("/v1/check/batch", json=batch)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "hash tag" in answer.json()["detail"]


def test_unknown_rule_invalid_body_and_impossible_cost_are_problems(api: httpx.Client) -> None:
    """404 for an unknown rule; 422 for a bad body or a cost above what the rule can ever allow."""
    put_rule(api, "small", algorithm="token_bucket", limit=5, period_ms=1000)
    unknown = api.post("/v1/check", json={"rule": "nope", "key": "k"})
    invalid = api.post("/v1/check", json={"rule": "small", "key": "", "cost": 0})
    too_costly = api.post("/v1/check", json={"rule": "small", "key": "k", "cost": 6})
    assert unknown.status_code == 404
    assert invalid.status_code == 422
    assert too_costly.status_code == 422
    assert "can ever allow" in too_costly.json()["detail"]
    for answer in (unknown, invalid, too_costly):
        assert answer.headers["content-type"] == "application/problem+json"


def test_rules_crud_needs_the_admin_token(api: httpx.Client) -> None:
    """Reads are open; writes need the token; PUT creates then replaces; DELETE removes."""
    spec = {"algorithm": "gcra", "limit": 5, "period_ms": 1000, "burst": 2}
    assert api.put("/v1/rules/r", json=spec).status_code == 401
    assert (
        api.put("/v1/rules/r", json=spec, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert put_rule(api, "r", **spec).status_code == 201
    assert put_rule(api, "r", **(spec | {"limit": 6})).status_code == 200
    assert api.get("/v1/rules/r").json()["limit"] == 6
    assert [rule["name"] for rule in api.get("/v1/rules").json()] == ["r"]
    assert api.delete("/v1/rules/r").status_code == 401
    assert api.delete("/v1/rules/r", headers=ADMIN).status_code == 204
    assert api.get("/v1/rules/r").status_code == 404
    assert api.delete("/v1/rules/r", headers=ADMIN).status_code == 404
    assert (
        put_rule(api, "bad", algorithm="sliding_log", limit=5, period_ms=1000, burst=3).status_code
        == 422
    )


def test_shadow_rule_reports_but_never_denies(api: httpx.Client) -> None:
    """A shadow rule says what it would have done and lets the request through."""
    put_rule(api, "trial", algorithm="fixed_window", limit=1, period_ms=HOUR_MS, shadow=True)
    api.post("/v1/check", json={"rule": "trial", "key": "k"})
    second = api.post("/v1/check", json={"rule": "trial", "key": "k"})
    assert second.status_code == 200
    assert second.json()["shadow"] is True
    assert second.json()["remaining"] == 0


def test_override_gives_a_tenant_its_own_limit(api: httpx.Client) -> None:
    """The override's key gets its own limit; others the rule's."""
    put_rule(
        api,
        "plan",
        algorithm="fixed_window",
        limit=1,
        period_ms=HOUR_MS,
        overrides={"{gold}": {"limit": 3, "period_ms": HOUR_MS}},
    )
    gold = [
        api.post("/v1/check", json={"rule": "plan", "key": "{gold}"}).status_code for _ in range(4)
    ]
    free = [
        api.post("/v1/check", json={"rule": "plan", "key": "{free}"}).status_code for _ in range(2)
    ]
    assert gold == [200, 200, 200, 429]
    assert free == [200, 429]


def test_rules_file_loads_at_start(lab_urls: ServerUrls, keys: KeyBuilder, tmp_path: Path) -> None:
    """Rules in the TOML file are served from the first request."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[rules.search]\nalgorithm = "sliding_log"\nlimit = 2\nperiod_ms = 60000\n')
    app = create_app(settings(keys, rules_file=rules), urls=lab_urls, clock=ManualClock())
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as client:
        assert client.get("/v1/rules/search").json()["algorithm"] == "sliding_log"
        codes = [
            client.post("/v1/check", json={"rule": "search", "key": "k"}).status_code
            for _ in range(3)
        ]
    assert codes == [200, 200, 429]


@pytest.mark.parametrize(
    ("fail_mode", "outage_codes", "decided_by"),
    [
        ("closed", [429, 429], "fail_closed"),
        ("open", [200, 200], "fail_open"),
        ("local", [200, 429], "local"),
    ],
)
def test_fail_mode_decides_while_redis_is_killed_and_redis_decides_again_after(
    disposable_redis: DisposableRedis,
    keys: KeyBuilder,
    fail_mode: str,
    outage_codes: list[int],
    decided_by: str,
) -> None:
    """SIGKILL Redis mid-run: the rule's fail mode answers; restart it: Redis decides again."""
    clock = ManualClock()
    urls = ServerUrls(redis_url=disposable_redis.url)
    app = create_app(settings(keys, outage_window_ms=500), urls=urls, clock=clock)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url) as api:
        put_rule(
            api, "r", algorithm="fixed_window", limit=1, period_ms=HOUR_MS, fail_mode=fail_mode
        )
        assert api.post("/v1/check", json={"rule": "r", "key": "k"}).json()["decided_by"] == "redis"

        disposable_redis.kill()
        during = [api.post("/v1/check", json={"rule": "r", "key": "k2"}) for _ in range(2)]
        assert [a.status_code for a in during] == outage_codes
        assert {a.json()["decided_by"] for a in during} == {decided_by}
        assert api.get("/healthz").status_code == 503
        metrics = api.get("/metrics").text
        assert f'decided_by="{decided_by}"' in metrics

        asyncio.run(disposable_redis.start())
        clock.advance(0.5)  # the outage window passes; Redis is tried again
        after = api.post("/v1/check", json={"rule": "r", "key": "k3"})
        assert after.json()["decided_by"] == "redis"
        assert api.get("/healthz").status_code == 200
