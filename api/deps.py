"""FastAPI dependencies: settings, a database session per request, the authenticated user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
from taskplatform.api.errors import unauthorized
from taskplatform.api.security import TokenClaims
from taskplatform.api.services import auth as auth_service

API_PREFIX = "/api/v1"

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/login", auto_error=False)


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # The gate's slot is held for the session's life: the session holds its pooled connection that long.
    async with (
        request.app.state.pool_gate.slot(),
        AsyncSession(request.app.state.engine, expire_on_commit=False) as session,
    ):
        yield session


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_access_context(
    request: Request, session: SessionDep, settings: SettingsDep, token: str | None = Depends(oauth2_scheme)
) -> auth_service.AccessContext:
    if not token:
        raise unauthorized()
    context = await auth_service.authenticate_access_token(session, settings, token)
    request.state.user_id = context.user_id  # for the access log line
    return context


async def get_access_claims(
    request: Request, settings: SettingsDep, token: str | None = Depends(oauth2_scheme)
) -> TokenClaims:
    """A verified access token, not yet checked against revocation: for a route whose own query folds that
    check in (one round trip instead of two). Such a route must call auth_service.check_access itself."""
    if not token:
        raise unauthorized()
    claims = auth_service.verify_access_token(settings, token)
    request.state.user_id = claims.sub  # for the access log line
    return claims


async def get_current_user_id(context: Annotated[auth_service.AccessContext, Depends(get_access_context)]) -> int:
    return context.user_id


AccessAuth = Annotated[auth_service.AccessContext, Depends(get_access_context)]
UncheckedAccessClaims = Annotated[TokenClaims, Depends(get_access_claims)]
# The authenticated user's id: all that task routes need, without loading the user row.
CurrentUserId = Annotated[int, Depends(get_current_user_id)]
