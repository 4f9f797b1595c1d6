from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from taskplatform.api.deps import API_PREFIX, AccessAuth, SessionDep, SettingsDep
from taskplatform.api.models import User
from taskplatform.api.routes.common import problems
from taskplatform.api.schemas import RefreshRequest, TokenPair, UserCreate, UserPublic
from taskplatform.api.services import auth as auth_service

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])


@router.post("/register", status_code=201, response_model=UserPublic, responses=problems(409, 422))
async def register(data: UserCreate, session: SessionDep, settings: SettingsDep, response: Response) -> User:
    user = await auth_service.register(session, settings, data)
    response.headers["Location"] = f"{API_PREFIX}/users/me"
    return user


@router.post("/login", response_model=TokenPair, responses=problems(401, 422, 429))
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep, request: Request
) -> TokenPair:
    """OAuth2 password flow: `username` is the email. Repeated failures for one account or from one client
    address are slowed down: 429 with Retry-After (see LOGIN_* settings)."""
    client_host = request.client.host if request.client else None
    user = await auth_service.authenticate(session, settings, form.username, form.password, client_host)
    return await auth_service.login(session, settings, user)


@router.post("/refresh", response_model=TokenPair, responses=problems(401, 422))
async def refresh(data: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    """Rotate a refresh token. Presenting an already-rotated token revokes the whole session."""
    return await auth_service.rotate_refresh_token(session, settings, data.refresh_token)


@router.post("/logout", status_code=204, responses=problems(401))
async def logout(auth: AccessAuth, session: SessionDep, settings: SettingsDep) -> Response:
    """Revoke the presented access token and its session's refresh tokens, on every replica."""
    await auth_service.logout(session, settings, auth.claims)
    return Response(status_code=204)
