"""FastAPI dependencies: settings, a database session per request, the authenticated user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
from taskplatform.api.db import Database
from taskplatform.api.errors import unauthorized
from taskplatform.api.security import TokenClaims
from taskplatform.api.services import auth as auth_service

API_PREFIX = "/api/v1"

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/login", auto_error=False)


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.database.session() as session:
        yield session


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
DatabaseDep = Annotated[Database, Depends(get_database)]


async def get_access_context(
    request: Request, session: SessionDep, settings: SettingsDep, token: str | None = Depends(oauth2_scheme)
) -> auth_service.AccessContext:
    if not token:
        raise unauthorized()
    context = await auth_service.authenticate_access_token(session, settings, token)
    request.state.user_id = context.user_id  # for the access log line
    return context


class VerifiedAccessToken(OAuth2PasswordBearer):
    """The bearer token, verified (signature, expiry, type) but not yet checked against revocation: for a
    route whose own statement folds that check in (one round trip instead of two); such a route must call
    auth_service.check_access itself. The security scheme and the verification in one dependency, where a
    scheme plus a dependency on it cost FastAPI's solver a level more per request on the hottest routes;
    the published scheme is the same (same name, same token URL)."""

    async def __call__(self, request: Request) -> TokenClaims:  # type: ignore[override]
        token = await super().__call__(request)
        if not token:
            raise unauthorized()
        claims = auth_service.verify_access_token(request.app.state.settings, token)
        request.state.user_id = claims.sub  # for the access log line
        return claims


verified_access_token = VerifiedAccessToken(
    tokenUrl=f"{API_PREFIX}/auth/login", scheme_name=type(oauth2_scheme).__name__, auto_error=False
)


async def get_current_user_id(context: Annotated[auth_service.AccessContext, Depends(get_access_context)]) -> int:
    return context.user_id


AccessAuth = Annotated[auth_service.AccessContext, Depends(get_access_context)]
UncheckedAccessClaims = Annotated[TokenClaims, Depends(verified_access_token)]
# The authenticated user's id: all that task routes need, without loading the user row.
CurrentUserId = Annotated[int, Depends(get_current_user_id)]
