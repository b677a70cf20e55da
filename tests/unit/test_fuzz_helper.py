"""The fuzz helper finds what it promises to find: 5xx, and 2xx bodies off their schema.

Each test fuzzes a tiny app from the real app factory (problem+json errors, admin
token), served over loopback HTTP; no Redis, PostgreSQL or Kafka is involved.
"""

from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretStr

from labs.settings import ServiceSettings
from labs.testing.fuzz import FuzzFailedError, fuzz_app
from labs.web import AdminDep, ProblemError, create_service_app

TOKEN = "fuzz-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
EVERY_OPERATION = {
    "GET /healthz",
    "GET /metrics",
    "GET /divide",
    "POST /items",
    "GET /items/latest",
    "POST /admin/reset",
}


class Item(BaseModel):
    """A body FastAPI validates: a wrong one is a 422 problem+json, never a 5xx."""

    name: str
    amount: int


def build_app(*, buggy: bool) -> FastAPI:
    """Routes that 422, 400 and 401 by design; when `buggy`, three of them fail."""
    router = APIRouter()

    @router.get("/divide")
    async def divide(a: int, b: Annotated[int, Query()]) -> dict[str, int]:
        if b == 0 and not buggy:
            raise ProblemError(400, "Division by zero", "b must not be 0")
        return {"quotient": a // b}  # buggy: ZeroDivisionError, answered 500

    @router.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    @router.get("/items/latest", response_model=Item)
    async def latest_item() -> JSONResponse:
        # A handler that bypasses its response model: the 200 body is not an Item.
        body = {"name": "pen", "amount": "many" if buggy else 3}
        return JSONResponse(body)

    @router.post("/admin/reset")
    async def reset(_: AdminDep) -> dict[str, bool]:
        if buggy:
            raise RuntimeError("reset is broken")
        return {"reset": True}

    settings = ServiceSettings(admin_token=SecretStr(TOKEN))
    return create_service_app("fuzz-target", settings, routers=[router])


def test_a_sound_app_passes_and_every_operation_is_fuzzed() -> None:
    """422/400/401 problem+json answers are not failures; each operation gets requests."""
    report = fuzz_app(build_app(buggy=False), headers=ADMIN)
    assert report.operations == EVERY_OPERATION
    assert all(count >= 1 for count in report.requests.values())
    assert report.requests["GET /divide"] > 10  # parameters: many distinct requests


@pytest.mark.parametrize(
    ("headers", "failing"),
    [
        (ADMIN, {"GET /divide", "GET /items/latest", "POST /admin/reset"}),
        # Without the token the admin route only ever answers 401: its 500 stays hidden.
        (None, {"GET /divide", "GET /items/latest"}),
    ],
    ids=["with-admin-token", "without-token"],
)
def test_a_5xx_or_a_2xx_off_its_schema_fails_naming_the_operation(
    headers: dict[str, str] | None, failing: set[str]
) -> None:
    """An unexpected exception (500 problem+json) fails the run, shrunk and reproducible."""
    with pytest.raises(FuzzFailedError) as caught:
        fuzz_app(build_app(buggy=True), headers=headers)
    failure = caught.value
    assert set(failure.failures) == failing
    assert failure.report.operations == EVERY_OPERATION
    division = failure.failures["GET /divide"]
    assert "Server error" in division
    assert "500" in division
    assert "b=0" in division  # shrunk to the request that divides by zero
    assert "curl" in division
    assert "Response violates schema" in failure.failures["GET /items/latest"]
    assert "GET /divide" in str(failure)
