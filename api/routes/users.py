from __future__ import annotations

from fastapi import APIRouter, Request, Response

from taskplatform.api.deps import API_PREFIX, Access, Caller, DatabaseDep, SettingsDep
from taskplatform.api.models import User
from taskplatform.api.routes.auth import client_address
from taskplatform.api.routes.common import problems
from taskplatform.api.schemas import PasswordChange, UserPublic
from taskplatform.api.services import auth as auth_service

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])


@router.get("/me", response_model=UserPublic, responses=problems(401))
async def read_me(caller: Caller, db: DatabaseDep) -> User:
    return await auth_service.current_user(db, caller)


@router.patch("/me/password", status_code=204, responses=problems(401, 403, 409, 422, 429))
async def change_password(
    data: PasswordChange, access: Access, db: DatabaseDep, settings: SettingsDep, request: Request
) -> Response:
    """Set a new password, proved by the current one (403 if wrong; throttled like a login). Every other
    session of the account ends, on every replica; the one making the change goes on."""
    await auth_service.change_password(
        db, settings, access, data.current_password, data.new_password, client_address(request)
    )
    return Response(status_code=204)


@router.delete("/me", status_code=204, responses=problems(401))
async def delete_me(caller: Caller, db: DatabaseDep) -> Response:
    """Delete the account with all its tasks; every token it had is refused from then on."""
    await auth_service.delete_account(db, caller)
    return Response(status_code=204)
