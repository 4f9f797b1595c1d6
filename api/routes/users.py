from __future__ import annotations

from fastapi import APIRouter, Request, Response

from taskplatform.api.deps import (
    API_PREFIX,
    AccessAuth,
    CurrentUserId,
    DatabaseDep,
    SessionDep,
    SettingsDep,
    UncheckedAccessClaims,
)
from taskplatform.api.errors import unauthorized
from taskplatform.api.models import User
from taskplatform.api.routes.auth import client_address
from taskplatform.api.routes.common import problems
from taskplatform.api.schemas import PasswordChange, UserPublic
from taskplatform.api.services import auth as auth_service

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])


@router.get("/me", response_model=UserPublic, responses=problems(401))
async def read_me(user_id: CurrentUserId, session: SessionDep) -> User:
    user = await session.get(User, user_id)
    if user is None:  # deleted between the token check and this read
        raise unauthorized("Invalid or expired access token.")
    return user


@router.patch("/me/password", status_code=204, responses=problems(401, 403, 409, 422, 429))
async def change_password(
    data: PasswordChange, claims: UncheckedAccessClaims, db: DatabaseDep, settings: SettingsDep, request: Request
) -> Response:
    """Set a new password, proved by the current one (403 if wrong; throttled like a login). Every other
    session of the account ends, on every replica; the one making the change goes on."""
    await auth_service.change_password(
        db, settings, claims, data.current_password, data.new_password, client_address(request)
    )
    return Response(status_code=204)


@router.delete("/me", status_code=204, responses=problems(401))
async def delete_me(auth: AccessAuth, session: SessionDep) -> Response:
    """Delete the account with all its tasks; every token it had is refused from then on."""
    await auth_service.delete_account(session, auth.claims)
    return Response(status_code=204)
