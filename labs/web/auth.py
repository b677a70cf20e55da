"""Bearer-token guard for mutating admin endpoints.

The token comes from `LAB_ADMIN_TOKEN` (the `lab` command generates and prints one
when none is set). Missing or wrong token: 401 problem+json with `WWW-Authenticate`.
A service started without any token refuses every admin call rather than allowing it.
Tokens are compared in constant time.
"""

import hmac
from typing import Annotated

from fastapi import Depends, Request

from labs.web.problems import ProblemError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="lab-admin"'}


async def require_admin(request: Request) -> None:
    """Pass when the request carries `Authorization: Bearer <the admin token>`."""
    expected: str | None = request.app.state.admin_token
    if expected is None:
        raise ProblemError(
            401,
            "Admin endpoints are disabled",
            "set LAB_ADMIN_TOKEN and restart",
            headers=_CHALLENGE,
        )
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        raise ProblemError(
            401, "Unauthorized", "a valid admin bearer token is required", headers=_CHALLENGE
        )


AdminDep = Annotated[None, Depends(require_admin)]
