"""The pure domain: fingerprints, scoped keys, the one decision on a key record, refunds."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from idempotency.domain import (
    Action,
    KeyInFlightError,
    KeyRecord,
    KeyReusedError,
    PaymentRequest,
    RecordState,
    RefundTooLargeError,
    ScopedKey,
    StoredResponse,
    check_refund,
    decide,
    fingerprint,
    parse_key,
)
from idempotency.settings import parse_api_keys
from idempotency.strategies.redis_lock import held_record

REQUEST = PaymentRequest(amount=500, currency="EUR", customer="cus_1")
STORED = StoredResponse(201, {"id": "pay_1"}, {})


def test_the_fingerprint_ignores_key_order_and_whitespace_but_not_values() -> None:
    """The fingerprint ignores key order and whitespace but not values."""
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint({"a": 1}) != fingerprint({"a": "1"})


def test_a_default_description_and_an_explicit_empty_one_are_the_same_request() -> None:
    """A default description and an explicit empty one are the same request."""
    explicit = PaymentRequest(amount=500, currency="EUR", customer="cus_1", description="")
    assert REQUEST.fingerprint() == explicit.fingerprint()
    assert REQUEST.fingerprint() != REQUEST.model_copy(update={"amount": 501}).fingerprint()


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "currency": "EUR", "customer": "c"},
        {"amount": 100_000_000, "currency": "EUR", "customer": "c"},
        {"amount": 5, "currency": "eur", "customer": "c"},
        {"amount": 5, "currency": "EUR", "customer": ""},
        {"amount": 5, "currency": "EUR", "customer": "c", "tip": 1},
    ],
)
def test_invalid_payment_requests_are_refused(body: dict[str, object]) -> None:
    """Invalid payment requests are refused."""
    with pytest.raises(ValidationError):
        PaymentRequest.model_validate(body)


def test_a_key_may_be_bare_or_an_sf_string() -> None:
    """A key may be bare or an sf-string."""
    assert parse_key('"8e03978e"') == parse_key("8e03978e") == "8e03978e"
    assert parse_key('"') == '"'


def test_keys_are_scoped_to_principal_and_route_and_derive_stable_downstream_keys() -> None:
    """Keys are scoped to principal and route and derive stable downstream keys."""
    route = "POST /v1/db-unique/payments"
    alice = ScopedKey("alice", route, "k1")
    assert alice.downstream() == ScopedKey("alice", route, "k1").downstream()
    others = {
        ScopedKey("bob", alice.route, "k1"),
        ScopedKey("alice", "POST /v1/redis-lock/payments", "k1"),
        ScopedKey("alice", alice.route, "k2"),
    }
    assert alice.downstream() not in {other.downstream() for other in others}
    assert len(alice.downstream()) <= 255


def test_no_record_means_a_new_request() -> None:
    """No record means a new request."""
    assert decide(None, REQUEST.fingerprint()).action is Action.NEW


@pytest.mark.parametrize("state", list(RecordState))
def test_another_payload_is_refused_whatever_the_state(state: RecordState) -> None:
    """Another payload is refused whatever the state."""
    with pytest.raises(KeyReusedError):
        decide(KeyRecord("other", state, STORED), REQUEST.fingerprint())


def test_a_finished_record_is_replayed_one_in_flight_refused_one_abandoned_resumed() -> None:
    """A finished record is replayed, one in flight refused, one abandoned resumed."""
    mine = REQUEST.fingerprint()
    replay = decide(KeyRecord(mine, RecordState.FINISHED, STORED), mine)
    assert (replay.action, replay.response) == (Action.REPLAY, STORED)
    with pytest.raises(KeyInFlightError) as refused:
        decide(KeyRecord(mine, RecordState.IN_FLIGHT, retry_after_s=7), mine)
    assert refused.value.retry_after_s == 7
    assert decide(KeyRecord(mine, RecordState.ABANDONED), mine).action is Action.RESUME


@given(
    captured=st.integers(1, 10_000),
    refunds=st.lists(st.integers(1, 5_000), max_size=10),
)
def test_refunds_that_pass_the_check_never_add_up_to_more_than_the_capture(
    captured: int, refunds: list[int]
) -> None:
    """Refunds that pass the check never add up to more than the capture."""
    refunded = 0
    for amount in refunds:
        try:
            check_refund(captured, refunded, amount)
        except RefundTooLargeError:
            assert refunded + amount > captured
        else:
            refunded += amount
    assert refunded <= captured


def test_api_keys_parse_into_principals_and_malformed_lists_are_refused() -> None:
    """Api keys parse into principals and malformed lists are refused."""
    assert parse_api_keys("alice:k1, bob:k2") == {"k1": "alice", "k2": "bob"}
    for bad in ("", "alice", "alice:", ":k1", "alice:k1,bob:k1"):
        with pytest.raises(ValueError, match="principal"):
            parse_api_keys(bad)


def test_the_redis_lock_reply_becomes_a_key_record() -> None:
    """The redis-lock reply becomes a key record."""
    assert held_record([]) is None
    in_flight = held_record([b"in_flight", b"fp", b"", 1_500])
    assert in_flight == KeyRecord("fp", RecordState.IN_FLIGHT, None, retry_after_s=2)
    finished = held_record([b"finished", b"fp", b'{"status": 201, "body": {}, "headers": {}}', 9])
    assert finished is not None
    assert finished.response == StoredResponse(201, {}, {})
