"""The payments API's HTTP contract: the IETF Idempotency-Key semantics for every strategy.

- `POST /v1/{strategy}/payments` with `X-Api-Key` (401 without a known one) and, for
  a strategy that takes one, `Idempotency-Key` (1..255 characters, bare or as an
  sf-string; missing or malformed: 400). 201 with the payment (`outbox`: 202, status
  `pending`, `Location: /v1/payments/{id}`; `natural-key` merging a repeat: 200). The
  same key with another payload: 422; while the first is in flight: 409 with
  `Retry-After`; a replay: the original status and body with `Idempotent-Replayed:
  true`. Keys are scoped to the principal and the route. The provider unreachable or
  giving no definitive answer: 502, safe to retry with the same key.
- `GET /v1/payments/{id}`: the caller's own payments (others: 404).
- `POST /v1/payments/{id}/refunds` `{"amount"}`: 201; more than the capture minus the
  refunds so far (or a payment that captured nothing): 422.
- `GET /v1/strategies`: each strategy, whether it takes a key, and the key's expiry.
Errors are problem+json. Validation runs before any key is looked at, so a rejected
request is never cached; only 2xx answers are stored for replay (decision 0011).
"""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from idempotency.domain import (
    MAX_KEY_LENGTH,
    KeyInFlightError,
    KeyReusedError,
    PaymentRequest,
    PaymentStatus,
    RefundTooLargeError,
    ScopedKey,
    StrategyName,
    check_refund,
    parse_key,
)
from idempotency.metrics import IdempotencyMetrics
from idempotency.models import PaymentOut, RefundIn, RefundOut, StrategiesOut, StrategyOut
from idempotency.provider_client import ProviderUnavailableError
from idempotency.strategies.base import PaymentCommand, Strategy
from idempotency.toolkit import Toolkit
from labs.web import ProblemError

router = APIRouter(prefix="/v1", tags=["payments"])
_api_key = APIKeyHeader(name="X-Api-Key", auto_error=False, description="Names the principal.")
PaymentId = Annotated[str, Path(min_length=1, max_length=64)]


@dataclass(frozen=True)
class PaymentsApi:
    """What the routes work with, built by the app's lifespan."""

    kit: Toolkit
    strategies: dict[StrategyName, Strategy]
    principals: dict[str, str]
    metrics: IdempotencyMetrics


async def get_api(request: Request) -> PaymentsApi:
    """Return the app's wiring (built in the lifespan)."""
    api: PaymentsApi = request.app.state.payments
    return api


ApiDep = Annotated[PaymentsApi, Depends(get_api)]


async def get_principal(
    api: ApiDep, api_key: Annotated[str | None, Depends(_api_key)] = None
) -> str:
    """Return who is calling, from `X-Api-Key`; 401 when it is missing or unknown."""
    principal = api.principals.get(api_key or "")
    if principal is None:
        raise ProblemError(
            401,
            "Unauthorized",
            "a known X-Api-Key is required",
            headers={"WWW-Authenticate": 'ApiKey header="X-Api-Key"'},
        )
    return principal


PrincipalDep = Annotated[str, Depends(get_principal)]
_KEY_RULES = f"the Idempotency-Key header (1..{MAX_KEY_LENGTH} characters)"
_PAYMENT_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"description": "natural-key: a repeat merged into an earlier payment"},
    202: {"description": "outbox: accepted, charged asynchronously", "model": PaymentOut},
    400: {"description": f"Missing or malformed {_KEY_RULES}"},
    401: {"description": "Missing or unknown X-Api-Key"},
    409: {"description": "A request with this key is in flight; see Retry-After"},
    422: {"description": "Invalid body, or the key was used with another payload"},
    502: {"description": "The provider gave no definitive answer; retry with the same key"},
}


def as_problem(exc: Exception) -> ProblemError:
    """Return the problem+json answer for a refusal a strategy or the provider raised."""
    if isinstance(exc, KeyInFlightError):
        return ProblemError(
            409,
            "Request in flight",
            "a request with this Idempotency-Key is being processed; retry later",
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if isinstance(exc, KeyReusedError):
        return ProblemError(422, "Idempotency-Key reused", str(exc))
    if isinstance(exc, RefundTooLargeError):
        return ProblemError(422, "Refund exceeds the capture", str(exc))
    return ProblemError(
        502, "Payment provider unavailable", f"{exc}; retry with the same Idempotency-Key"
    )


def _scoped_key(
    strategy: Strategy, principal: str, route: str, header: str | None
) -> ScopedKey | None:
    if not strategy.takes_key:
        return None
    key = parse_key(header or "")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ProblemError(400, "Idempotency-Key required", f"{strategy.name} needs {_KEY_RULES}")
    return ScopedKey(principal, route, key)


@router.post(
    "/{strategy}/payments",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentOut,
    responses=_PAYMENT_ERRORS,
    summary="Create a payment under one idempotency strategy",
)
async def create_payment(
    strategy: StrategyName,
    body: PaymentRequest,
    api: ApiDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Charge the customer once per key, as the chosen strategy manages it."""
    chosen = api.strategies[strategy]
    route = f"POST /v1/{strategy}/payments"
    command = PaymentCommand(
        principal, strategy, body, _scoped_key(chosen, principal, route, idempotency_key)
    )
    try:
        answer = await chosen.create_payment(command)
    except (KeyReusedError, KeyInFlightError, ProviderUnavailableError) as exc:
        api.metrics.refused(strategy, exc)
        raise as_problem(exc) from None
    api.metrics.answered(strategy, answer)
    return JSONResponse(answer.body, answer.status, answer.headers)


@router.get(
    "/payments/{payment_id}",
    responses={401: {"description": "Missing or unknown X-Api-Key"}, 404: {"description": "None"}},
    summary="Read one of your payments",
)
async def read_payment(payment_id: PaymentId, api: ApiDep, principal: PrincipalDep) -> PaymentOut:
    """The payment, if it is the caller's."""
    async with api.kit.engine.connect() as conn:
        payment = await api.kit.store.find_payment(conn, payment_id, principal=principal)
    if payment is None:
        raise ProblemError(404, "Unknown payment", f"you have no payment {payment_id!r}")
    return PaymentOut.of(payment)


@router.post(
    "/payments/{payment_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    responses={
        401: {"description": "Missing or unknown X-Api-Key"},
        404: {"description": "No such payment of yours"},
        422: {"description": "Invalid, or more than is left to refund"},
        502: {"description": "The provider gave no definitive answer"},
    },
    summary="Refund part of a payment",
)
async def refund_payment(
    payment_id: PaymentId, body: RefundIn, api: ApiDep, principal: PrincipalDep
) -> RefundOut:
    """Refund `amount`, never more than was captured minus the refunds so far.

    The payment's row stays locked from the check to the commit, so concurrent refunds
    are checked one after the other.
    """
    kit = api.kit
    async with kit.engine.begin() as conn:
        payment = await kit.store.lock_payment(conn, payment_id, principal)
        if payment is None:
            raise ProblemError(404, "Unknown payment", f"you have no payment {payment_id!r}")
        if payment.status is not PaymentStatus.SUCCEEDED or payment.charge_id is None:
            raise ProblemError(422, "Nothing captured", f"the payment is {payment.status}")
        try:
            check_refund(payment.request.amount, payment.refunded, body.amount)
            provider_id = await kit.provider.refund(payment.charge_id, body.amount)
        except (RefundTooLargeError, ProviderUnavailableError) as exc:
            raise as_problem(exc) from None
        row = await kit.store.add_refund(conn, payment, body.amount, provider_id, kit.now())
    return RefundOut.model_validate(dict(row))


@router.get("/strategies", summary="The strategies, and how long each keeps a key")
async def list_strategies(api: ApiDep) -> StrategiesOut:
    """Each strategy's name, whether it takes a key, the key's expiry and a summary."""
    ttl = api.kit.settings.key_ttl_s
    return StrategiesOut(
        strategies=[
            StrategyOut(
                name=name,
                takes_key=strategy.takes_key,
                key_ttl_s=ttl if strategy.takes_key else None,
                summary=strategy.summary,
            )
            for name, strategy in api.strategies.items()
        ]
    )
