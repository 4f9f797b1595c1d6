from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from taskplatform.api.deps import API_PREFIX, Caller, DatabaseDep, SettingsDep
from taskplatform.api.models import User
from taskplatform.api.routes.common import problems
from taskplatform.api.schemas import LoginForm, RefreshRequest, TokenPair, UserCreate, UserPublic
from taskplatform.api.services import auth as auth_service

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])

# RFC 6749 §5.1: a response carrying tokens is never stored by a cache, the browser's included.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def client_address(request: Request) -> str | None:
    """The client as the server sees it: behind TRUSTED_PROXIES, the right-most forwarded address that is not
    one of them (uvicorn's proxy headers middleware), else the peer itself."""
    return request.client.host if request.client else None


@router.post("/register", status_code=201, response_model=UserPublic, responses=problems(409, 422))
async def register(data: UserCreate, db: DatabaseDep, settings: SettingsDep, response: Response) -> User:
    user = await auth_service.register(db, settings, data)
    response.headers["Location"] = f"{API_PREFIX}/users/me"
    return user


@router.post("/login", response_model=TokenPair, responses=problems(401, 422, 429))
async def login(
    form: Annotated[LoginForm, Depends()],
    db: DatabaseDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> TokenPair:
    """OAuth2 password flow: `username` is the email. Repeated failures for one account from one client, from
    one client for any account, or for one account from anywhere are slowed down: 429 with Retry-After (see
    LOGIN_* settings)."""
    verified = await auth_service.verify_credentials(
        db, settings, form.username, form.password, client_address(request)
    )
    response.headers.update(NO_STORE)
    return await auth_service.login(db, settings, verified)


@router.post("/refresh", response_model=TokenPair, responses=problems(401, 422))
async def refresh(data: RefreshRequest, db: DatabaseDep, settings: SettingsDep, response: Response) -> TokenPair:
    """Rotate a refresh token. Presenting an already-rotated token revokes the whole session; no refresh
    outlives the session's absolute lifetime (REFRESH_TOKEN_TTL_S from login)."""
    response.headers.update(NO_STORE)
    return await auth_service.rotate_refresh_token(db, settings, data.refresh_token)


@router.post("/logout", status_code=204, responses=problems(401))
async def logout(caller: Caller, db: DatabaseDep) -> Response:
    """Revoke the presented access token and its session's refresh tokens, on every replica."""
    await auth_service.logout(db, caller)
    return Response(status_code=204)


@router.post("/logout-all", status_code=204, responses=problems(401))
async def logout_all(caller: Caller, db: DatabaseDep) -> Response:
    """End every session of the caller's, on every device: all their access and refresh tokens are refused."""
    await auth_service.logout_all(db, caller)
    return Response(status_code=204)
