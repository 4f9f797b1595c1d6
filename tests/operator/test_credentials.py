"""The credentials Secret through platform.ensure_credentials: a password per database role, their URLs following
the passwords, a Secret from an operator before the roles taken over (its superuser's URL dropped once no API pod
uses it), a rotation by editing a password, a removed key put back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from helpers.secretskube import SecretsKube, decoded, secret

from taskplatform.operator.dbroles import API_ROLE, OWNER_ROLE, ROLES
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import TASK_PLATFORM
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.platform import Result, ensure_credentials
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import CREDENTIALS_ANNOTATION, LEGACY_DATABASE_URL_KEY, Credentials
from taskplatform.operator.status import PlatformObservation

OWNER = Owner(TASK_PLATFORM, "demo", "apps", "u-1")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "k" * 48


def run(kube: SecretsKube, deployment: dict[str, Any] | None = None) -> tuple[Credentials, Result]:
    result = Result()
    credentials = ensure_credentials(kube, OWNER, TaskPlatformSpec(), deployment, PlatformObservation(), result, T0)  # type: ignore[arg-type]
    return credentials, result


def rolled_out(digest: str) -> dict[str, Any]:
    """An API Deployment whose every pod runs the template stamped with `digest`."""
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2, "template": {"metadata": {"annotations": {CREDENTIALS_ANNOTATION: digest}}}},
        "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    }


def previous_operators_secret() -> dict[str, Any]:
    """What the operator before the database roles wrote: one superuser, whose URL every pod used."""
    return secret(
        "demo-credentials",
        postgres_password="superuser-pw",
        database_url="postgresql://taskplatform:superuser-pw@demo-db.apps.svc:5432/taskplatform",
        jwt_secret=KEY,
        jwt_signing=KEY,
        jwt_additional="[]",
    )


def test_a_new_secret_has_a_distinct_password_and_a_url_per_role_and_no_superuser_url() -> None:
    kube = SecretsKube()
    credentials, result = run(kube)
    data = decoded(kube)
    passwords = [data[role.password_key] for role in ROLES] + [data["postgres-password"]]
    assert len(set(passwords)) == len(passwords)
    for role in ROLES:
        url = sa.engine.make_url(data[role.url_key])
        assert (url.username, url.password, url.host) == (role.name, data[role.password_key], "demo-db.apps.svc")
        assert credentials.password(role) == data[role.password_key]
    assert LEGACY_DATABASE_URL_KEY not in data
    assert [e.reason for e in result.events] == ["CredentialsGenerated"]


def test_a_secret_from_before_the_roles_gains_them_and_loses_the_superuser_url_once_the_api_moved() -> None:
    kube = SecretsKube(previous_operators_secret())
    old_api = rolled_out("the previous operator's digest")
    credentials, result = run(kube, old_api)
    data = decoded(kube)
    assert data["postgres-password"] == "superuser-pw"  # kept: the database's superuser keeps its password
    assert all(data[role.password_key] for role in ROLES)
    assert [e.reason for e in result.events] == ["DatabaseRolesAdded"]
    # The old API pods still run, and one that restarts now still finds the URL it was started with.
    assert LEGACY_DATABASE_URL_KEY in data and kube.patched == []
    assert run(kube, old_api)[0] == credentials and len(kube.applied) == 1  # nothing more to write

    # The API's pods all run on its role now: the superuser's URL goes, and nothing else.
    _, result = run(kube, rolled_out(credentials.api_digest))
    assert kube.patched == [{"data": {LEGACY_DATABASE_URL_KEY: None}}]
    assert [e.reason for e in result.events] == ["SuperuserUrlRemoved"]
    assert decoded(kube) == {k: v for k, v in data.items() if k != LEGACY_DATABASE_URL_KEY}
    run(kube, rolled_out(credentials.api_digest))
    assert len(kube.patched) == 1 and len(kube.applied) == 1


def test_editing_a_roles_password_rotates_it_and_its_url_follows() -> None:
    """The rotation path: a person (or their secret manager) writes a new password, of any characters."""
    kube = SecretsKube()
    before, _ = run(kube)
    edited = {**kube.secrets["demo-credentials"]}
    awkward = "n'ew p@ss:/%\""
    edited["data"] = {**edited["data"], **secret("x", owner_password=awkward)["data"]}
    kube.secrets["demo-credentials"] = edited
    after, result = run(kube)
    data = decoded(kube)
    assert sa.engine.make_url(data[OWNER_ROLE.url_key]).password == awkward
    assert after.password(OWNER_ROLE) == awkward
    assert after.password(API_ROLE) == before.password(API_ROLE) and after.db_password == before.db_password
    assert after.digest != before.digest and after.api_digest == before.api_digest  # the database pod rolls
    assert result.events == []  # an edit, not a repair


def test_a_removed_role_password_is_put_back_and_the_others_are_kept() -> None:
    kube = SecretsKube()
    before, _ = run(kube)
    stored = kube.secrets["demo-credentials"]
    stored["data"] = {k: v for k, v in stored["data"].items() if k != API_ROLE.password_key}
    after, result = run(kube)
    assert after.password(API_ROLE) != before.password(API_ROLE)  # a new one: the database pod sets it on start
    assert {role.key: after.password(role) for role in ROLES if role is not API_ROLE} == {
        role.key: before.password(role) for role in ROLES if role is not API_ROLE
    }
    assert sa.engine.make_url(decoded(kube)[API_ROLE.url_key]).password == after.password(API_ROLE)
    assert [e.reason for e in result.events] == ["CredentialsRepaired"]
    assert JwtKeys.from_secret_data(decoded(kube)) == JwtKeys(before.jwt_secret)
