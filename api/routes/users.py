from __future__ import annotations

from fastapi import APIRouter

from taskplatform.api.deps import API_PREFIX, CurrentUserId, SessionDep
from taskplatform.api.errors import unauthorized
from taskplatform.api.models import User
from taskplatform.api.routes.common import problems
from taskplatform.api.schemas import UserPublic

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])


@router.get("/me", response_model=UserPublic, responses=problems(401))
async def read_me(user_id: CurrentUserId, session: SessionDep) -> User:
    user = await session.get(User, user_id)
    if user is None:  # deleted between the token check and this read
        raise unauthorized("Invalid or expired access token.")
    return user
