"""The credentials Secret `<platform>-credentials`: the bootstrap superuser's password (the database pod's alone),
a password and a database URL per database role (dbroles.py), the desired JWT key and the JWT keys in effect
(jwtkeys.py). Generated once and kept (platform.ensure_credentials); every workload reads its own keys from it
through `secretKeyRef`, so no value appears in any other manifest.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from taskplatform.operator.dbroles import API_ROLE, ROLES, DatabaseRole
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import SECRET, Manifest
from taskplatform.operator.specs.common import Owner, metadata
from taskplatform.operator.specs.names import DB_NAME, DB_PORT, Names

CREDENTIALS_COMPONENT = "credentials"
# The keys of the credentials Secret (a user's own JWT Secret uses JWT_SECRET_KEY too). PASSWORD_KEY is the
# bootstrap superuser's password (the database pod's alone); each database role has `<role>-password` and
# `<role>-database-url` (dbroles.py). JWT_SECRET_KEY is the key that should sign; the API pods use the keys of
# jwtkeys.py (SIGNING_KEY, ADDITIONAL_KEY), which follow it.
PASSWORD_KEY, JWT_SECRET_KEY = "postgres-password", "jwt-secret"
# The superuser's URL, which operators from before the database roles wrote and their pods used: removed once the
# API runs on its own role (platform.py), so that an old pod restarting meanwhile still finds it.
LEGACY_DATABASE_URL_KEY = "database-url"
# On the pod templates of the database and the API: a digest of the credentials their pods read, so that changing
# them rolls those pods (and nothing else).
CREDENTIALS_ANNOTATION = "taskplatform.io/credentials-digest"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Generated once and kept in the Secret; the handlers read them back instead of regenerating."""

    db_password: str = field(repr=False)  # the bootstrap superuser's: only the database pod gets it
    jwt_secret: str = field(repr=False)  # the generated (or user-edited) desired JWT key
    jwt_keys: JwtKeys | None = None  # what the API pods sign with and accept; None: jwt_secret alone signs
    role_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)  # DatabaseRole.key -> password

    @property
    def keys(self) -> JwtKeys:
        return self.jwt_keys or JwtKeys(self.jwt_secret)

    def password(self, role: DatabaseRole) -> str:
        return self.role_passwords[role.key]

    @property
    def digest(self) -> str:
        """Stamped on the database's pod template: what its pod reads from the Secret (every role's password, which
        its postStart hook sets), so changing any of them rolls it."""
        material = json.dumps([self.db_password, *(self.password(role) for role in ROLES)])
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    @property
    def api_digest(self) -> str:
        """Stamped on the API's pod template: what its pods read from the Secret (the API role's password and the
        JWT keys in effect), so each change of them, and each rotation phase, is one rollout."""
        keys = self.keys
        material = json.dumps([self.password(API_ROLE), keys.signing, keys.additional])
        return hashlib.sha256(material.encode()).hexdigest()[:16]


def database_url(owner: Owner, user: str, password: str) -> str:
    """The password percent-encoded: a user-provided one may hold `@`, `:`, `/`, `%` or a space."""
    host = f"{Names(owner.name).database}.{owner.namespace}.svc"
    return f"postgresql://{user}:{quote(password, safe='')}@{host}:{DB_PORT}/{DB_NAME}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def credentials_secret(owner: Owner, credentials: Credentials, legacy_url: str | None = None) -> Manifest:
    """The superuser's password (no URL: no client connects as it), and each role's password and URL.
    `legacy_url`: the superuser's URL an operator from before the roles wrote, kept while its pods may use it."""
    roles: dict[str, str] = {}
    for role in ROLES:
        password = credentials.password(role)
        roles[role.password_key] = password
        roles[role.url_key] = database_url(owner, role.name, password)
    data = {
        PASSWORD_KEY: credentials.db_password,
        **roles,
        JWT_SECRET_KEY: credentials.jwt_secret,
        **(credentials.jwt_keys.secret_data() if credentials.jwt_keys is not None else {}),
        **({LEGACY_DATABASE_URL_KEY: legacy_url} if legacy_url is not None else {}),
    }
    return {
        **SECRET.type_meta(),
        "metadata": metadata(owner, Names(owner.name).secret, CREDENTIALS_COMPONENT),
        "type": "Opaque",
        "data": {key: _b64(value) for key, value in data.items()},
    }
