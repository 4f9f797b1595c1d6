"""FastAPI dependencies: the settings, the database, the caller.

No postponed annotations here: older FastAPI (0.115, the lowest allowed) reads a callable instance's
(VerifiedAccessToken's) parameter annotations without its module's names.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from taskplatform.api.config import Settings
from taskplatform.api.db import Database
from taskplatform.api.errors import unauthorized
from taskplatform.api.services import access as access_service
from taskplatform.api.services.access import CheckedAccess, UncheckedAccess

API_PREFIX = "/api/v1"


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]


class VerifiedAccessToken(OAuth2PasswordBearer):
    """The bearer token, verified (signature, expiry, type) but not yet checked against revocation: an
    UncheckedAccess, which only the services' check makes a caller (services.access). The security scheme and
    the verification in one dependency, where a scheme plus a dependency on it cost FastAPI's solver a level
    more per request on the hottest routes."""

    async def __call__(self, request: Request) -> UncheckedAccess:  # type: ignore[override]
        token = await super().__call__(request)
        if not token:
            raise unauthorized()
        claims = access_service.verify(request.app.state.settings, token)
        request.state.user_id = claims.sub  # for the access log line
        return UncheckedAccess(claims)


verified_access_token = VerifiedAccessToken(
    tokenUrl=f"{API_PREFIX}/auth/login", scheme_name=OAuth2PasswordBearer.__name__, auto_error=False
)
# The caller's token, for a service that checks it against revocation itself (in its own statement, as a rule).
Access = Annotated[UncheckedAccess, Depends(verified_access_token)]


async def checked_access(access: Access, db: DatabaseDep) -> CheckedAccess:
    """The caller, its token checked against revocation in a round trip of its own, before the route runs."""
    return await access_service.check(db, access)


Caller = Annotated[CheckedAccess, Depends(checked_access)]
