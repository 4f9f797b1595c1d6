"""JWT key rotation: each phase decided from (desired key, the credentials Secret's state, whether the API
Deployment has rolled that state out, the clock), without a cluster; and the pass that stores the decision."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers.secretskube import SecretsKube, decoded, secret

from taskplatform.operator import jwtkeys
from taskplatform.operator.dbroles import ROLES
from taskplatform.operator.jwtkeys import ADDITIONAL_KEY, ROTATION_KEY, SIGNING_KEY, JwtKeys, Phase, Retiring, plan
from taskplatform.operator.kinds import TASK_PLATFORM
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.platform import Result, ensure_credentials
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import Credentials, credentials_secret
from taskplatform.operator.status import PlatformObservation, rolled_out

OLD, NEW, THIRD = "o" * 48, "n" * 48, "t" * 48
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = 14 * 86400  # the longest token lifetime: the refresh token's by default


def stored(keys: JwtKeys) -> JwtKeys:
    """The state as the next pass reads it back from the Secret."""
    read = JwtKeys.from_secret_data(keys.secret_data())
    assert read == keys
    return read


def step(desired: str, keys: JwtKeys, rolled: bool, now: datetime) -> jwtkeys.KeyPlan:
    decided = plan(desired, keys, rolled, now, TTL)
    stored(decided.keys)
    return decided


def test_a_platform_from_before_rotations_is_taken_over_with_its_key_signing() -> None:
    old_secret = {"postgres-password": "p" * 24, "database-url": "postgresql://…", "jwt-secret": OLD}
    assert JwtKeys.from_secret_data(old_secret) is None
    taken = plan(OLD, None, rolled_out=False, now=T0, max_token_ttl_s=TTL)
    assert taken.keys == JwtKeys(OLD) and taken.keys.additional == [] and taken.events == ()
    assert plan(OLD, taken.keys, True, T0, TTL).keys == taken.keys  # steady: nothing more happens


def test_a_rotation_goes_through_its_phases_as_rollouts_complete_and_the_clock_moves() -> None:
    keys = JwtKeys(OLD)

    # 1. The new key is given to every pod as a verify-only key; the old one still signs.
    first = step(NEW, keys, True, T0)
    assert (first.keys.signing, first.keys.additional, first.keys.phase) == (OLD, [NEW], Phase.DISTRIBUTING)
    assert [e.reason for e in first.events] == ["JWTKeyRotating"] and "1/3" in first.events[0].message
    # ... and stays so while that rollout is under way, however long it takes.
    assert step(NEW, first.keys, False, T0 + timedelta(hours=5)).keys == first.keys

    # 2. Once every pod accepts it, the new key signs and the old one is kept as additional.
    second = step(NEW, first.keys, True, T0 + timedelta(minutes=5))
    assert (second.keys.signing, second.keys.additional, second.keys.phase) == (NEW, [OLD], Phase.SWITCHING)
    assert "2/3" in second.events[0].message
    # The old key's clock does not start while pods that sign with it may still run.
    waiting = step(NEW, second.keys, False, T0 + timedelta(days=30))
    assert waiting.keys == second.keys and waiting.recheck_after_s is None

    # 3. That rollout complete: the old key is accepted until its longest token has expired.
    switched = T0 + timedelta(minutes=9)
    third = step(NEW, second.keys, True, switched)
    assert third.keys.retiring == (Retiring(OLD, switched + timedelta(seconds=TTL)),)
    assert third.keys.phase == Phase.RETIRING and third.recheck_after_s == TTL
    assert "3/3" in third.events[0].message and "2026-03-15T12:09:00Z" in third.events[0].message
    almost = step(NEW, third.keys, True, switched + timedelta(seconds=TTL - 1))
    assert almost.keys == third.keys and almost.recheck_after_s == 1 and almost.events == ()

    # ... then dropped.
    done = step(NEW, third.keys, True, switched + timedelta(seconds=TTL))
    assert done.keys == JwtKeys(NEW) and done.keys.phase == Phase.STEADY
    assert [e.reason for e in done.events] == ["JWTKeyRetired"] and done.recheck_after_s is None


def test_the_old_keys_deadline_counts_from_when_the_last_pod_signing_with_it_went() -> None:
    """Not from the switch's decision: pods of phase 1 go on signing with it until phase 2 has rolled out."""
    second = plan(NEW, plan(NEW, JwtKeys(OLD), True, T0, TTL).keys, True, T0, TTL).keys
    late = T0 + timedelta(hours=2)  # a slow rollout
    (retiring,) = plan(NEW, second, True, late, TTL).keys.retiring
    assert retiring.until == late + timedelta(seconds=TTL)


def test_a_new_key_withdrawn_before_it_signs_is_dropped_at_once() -> None:
    first = plan(NEW, JwtKeys(OLD), True, T0, TTL).keys
    back = plan(OLD, first, False, T0, TTL)
    assert back.keys == JwtKeys(OLD)  # it never signed a token: nothing to keep it for
    assert "withdrawn" in back.events[0].message


def test_a_rotation_during_the_previous_ones_retirement_keeps_each_deadline() -> None:
    deadline = T0 + timedelta(days=10)
    retiring = JwtKeys(NEW, retiring=(Retiring(OLD, deadline),))
    first = step(THIRD, retiring, True, T0)
    assert (first.keys.signing, first.keys.additional) == (NEW, [THIRD, OLD])
    second = step(THIRD, first.keys, True, T0 + timedelta(minutes=5))
    assert second.keys == JwtKeys(THIRD, retiring=(Retiring(NEW), Retiring(OLD, deadline)))
    assert second.recheck_after_s == (deadline - T0 - timedelta(minutes=5)).total_seconds()
    third = step(THIRD, second.keys, True, T0 + timedelta(minutes=9))
    assert third.keys.retiring == (Retiring(NEW, T0 + timedelta(minutes=9, seconds=TTL)), Retiring(OLD, deadline))
    after_old = step(THIRD, third.keys, False, deadline)  # a deadline passes during any rollout
    assert after_old.keys.additional == [NEW]


def test_going_back_to_a_key_still_accepted_is_a_rotation_like_any_other() -> None:
    retiring = JwtKeys(NEW, retiring=(Retiring(OLD, T0 + timedelta(days=3)),))
    first = step(OLD, retiring, True, T0).keys
    assert (first.signing, first.pending, first.retiring) == (NEW, OLD, ())  # accepted all along
    second = step(OLD, first, True, T0).keys
    assert second == JwtKeys(OLD, retiring=(Retiring(NEW),))


def test_bookkeeping_names_keys_by_fingerprint_and_survives_hand_edits() -> None:
    keys = JwtKeys(NEW, pending=THIRD, retiring=(Retiring(OLD, T0),))
    data = keys.secret_data()
    assert json.loads(data[ADDITIONAL_KEY]) == [THIRD, OLD]
    rotation = json.loads(data[ROTATION_KEY])
    assert rotation == {
        "pending": jwtkeys.fingerprint(THIRD),
        "retiring": [{"fingerprint": jwtkeys.fingerprint(OLD), "until": "2026-03-01T12:00:00Z"}],
    }
    assert not {OLD, NEW, THIRD} & set(data[ROTATION_KEY].split('"'))
    # A key added by hand is kept like a previous one (its clock starts once rolled out); garbage is ignored.
    edited = {**data, ADDITIONAL_KEY: json.dumps([THIRD, OLD, "h" * 40, 7, NEW]), ROTATION_KEY: "{not json"}
    read = JwtKeys.from_secret_data(edited)
    assert read == JwtKeys(NEW, retiring=(Retiring(THIRD), Retiring(OLD), Retiring("h" * 40)))
    assert JwtKeys.from_secret_data({SIGNING_KEY: NEW, ADDITIONAL_KEY: "{}"}) == JwtKeys(NEW)


def test_no_key_shows_in_reprs_events_or_conditions() -> None:
    keys = JwtKeys(OLD)
    texts = [repr(keys), repr(Credentials("p" * 24, NEW, keys, {"api": "a" * 24}))]
    for desired, rolled in ((NEW, True), (NEW, True), (NEW, True), (NEW, True)):
        decided = plan(desired, keys, rolled, T0, TTL)
        keys = decided.keys
        texts += [repr(keys), *(e.message for e in decided.events), jwtkeys.condition(keys).message]
    assert not any(key in text for key in (OLD, NEW) for text in texts)


@pytest.mark.parametrize(
    ("keys", "status", "reason"),
    [
        (JwtKeys(OLD), "True", "Current"),
        (JwtKeys(OLD, pending=NEW), "False", "JWTKeyRotating"),
        (JwtKeys(NEW, retiring=(Retiring(OLD),)), "False", "JWTKeyRotating"),
        (JwtKeys(NEW, retiring=(Retiring(OLD, T0),)), "True", "RetiringPreviousKey"),
        (None, "Unknown", "DesiredKeyUnknown"),
    ],
)
def test_the_phase_shows_as_the_jwt_key_current_condition(keys: JwtKeys | None, status: str, reason: str) -> None:
    observation = jwtkeys.condition(keys)
    assert (observation.type, observation.status, observation.reason) == ("JWTKeyCurrent", status, reason)


# --- whether the Deployment has rolled a state out (status.rolled_out) --------------------------------------


def deployment(digest: str = "d1", replicas: int = 3, **status: int) -> dict[str, Any]:
    observed = {"observedGeneration": 7, "replicas": replicas, "updatedReplicas": replicas,
                "availableReplicas": replicas, **status}  # fmt: skip
    return {
        "metadata": {"generation": 7},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"annotations": {"taskplatform.io/credentials-digest": digest}}},
        },
        "status": observed,
    }


@pytest.mark.parametrize(
    ("obj", "done"),
    [
        (deployment(), True),
        (None, True),  # no pods at all
        (deployment(replicas=0), True),
        (deployment(digest="d0"), False),  # another state's template
        (deployment(observedGeneration=6), False),  # the controller has not seen the template yet
        (deployment(replicas=4, updatedReplicas=3), False),  # an old pod left
        (deployment(updatedReplicas=2), False),
        (deployment(availableReplicas=2), False),  # an updated pod not available
        (deployment(terminatingReplicas=1), False),  # an old pod still serving while it stops
    ],
)
def test_a_state_is_rolled_out_once_every_pod_runs_it(obj: dict[str, Any] | None, done: bool) -> None:
    assert rolled_out(obj, "d1") is done


# --- the pass: the state read from and written to the credentials Secret (platform.ensure_credentials) --------

OWNER = Owner(TASK_PLATFORM, "demo", "apps", "u-1")


def run(kube: SecretsKube, spec: dict[str, Any], deploy: dict[str, Any] | None) -> Result:
    result, observed = Result(), PlatformObservation()
    ensure_credentials(kube, OWNER, TaskPlatformSpec.model_validate(spec), deploy, observed, result, T0)  # type: ignore[arg-type]
    return result


def test_a_secret_from_todays_operator_is_taken_over_and_its_key_keeps_signing() -> None:
    kube = SecretsKube(secret("demo-credentials", postgres_password="p" * 24, jwt_secret=OLD))
    run(kube, {}, deployment(digest="from-the-old-operator"))
    data = decoded(kube)
    assert (data["jwt-signing"], json.loads(data["jwt-additional"]), data["jwt-secret"]) == (OLD, [], OLD)
    (write,) = kube.applied
    assert write["metadata"]["resourceVersion"] == "5"  # an edit made meanwhile fails the write, not lost


def test_a_referenced_secret_drives_the_rotation_through_the_credentials_secret() -> None:
    creds = secret("demo-credentials", postgres_password="p" * 24, jwt_secret="g" * 64)
    kube = SecretsKube(creds, secret("company-jwt", jwt_secret=OLD))
    spec = {"auth": {"secretRef": {"name": "company-jwt"}}}
    result = run(kube, spec, None)
    assert decoded(kube)["jwt-signing"] == OLD and result.jwt_source == ("company-jwt", jwtkeys.fingerprint(OLD))

    kube.secrets["company-jwt"] = secret("company-jwt", jwt_secret=NEW)
    api = {"api": decoded(kube)["api-password"]}  # what the API pods read besides the keys
    in_effect = Credentials("p" * 24, "g" * 64, JwtKeys(OLD), api).api_digest
    result = run(kube, spec, deployment(digest=in_effect))
    assert (decoded(kube)["jwt-signing"], json.loads(decoded(kube)["jwt-additional"])) == (OLD, [NEW])
    assert [e.reason for e in result.events] == ["JWTKeyRotating"]
    writes = len(kube.applied)
    run(kube, spec, deployment(digest=in_effect))  # the Deployment has not rolled phase 1 out yet
    assert len(kube.applied) == writes  # nothing to write

    phase_one = Credentials("p" * 24, "g" * 64, JwtKeys(OLD, pending=NEW), api).api_digest
    run(kube, spec, deployment(digest=phase_one))
    assert (decoded(kube)["jwt-signing"], json.loads(decoded(kube)["jwt-additional"])) == (NEW, [OLD])


def test_an_unusable_desired_key_leaves_the_key_in_effect_signing_and_degrades() -> None:
    creds = secret("demo-credentials", postgres_password="p" * 24, jwt_secret=OLD)
    kube = SecretsKube(creds, secret("company-jwt", jwt_secret="short"))
    result, observed = Result(), PlatformObservation()
    spec = TaskPlatformSpec.model_validate({"auth": {"secretRef": {"name": "company-jwt"}}})
    credentials = ensure_credentials(kube, OWNER, spec, None, observed, result, T0)  # type: ignore[arg-type]
    assert credentials.jwt_keys is None  # no key known: no API pod is started with a key nobody chose
    (problem,) = observed.problems
    assert problem.reason == "SecretRefInvalid" and "fewer than 32 characters" in problem.message
    assert "short" not in problem.message and result.recheck_soon
    assert observed.jwt is not None and observed.jwt.status == "Unknown"


def test_a_removed_jwt_secret_comes_back_as_the_signing_key_not_as_a_new_one() -> None:
    keys = JwtKeys(OLD)
    manifest = credentials_secret(OWNER, Credentials("p" * 24, OLD, keys, {role.key: "r" * 24 for role in ROLES}))
    del manifest["data"]["jwt-secret"]
    manifest["metadata"]["resourceVersion"] = "9"
    kube = SecretsKube(manifest)
    result = run(kube, {}, None)
    assert decoded(kube)["jwt-secret"] == OLD and decoded(kube)["jwt-signing"] == OLD
    assert [e.reason for e in result.events] == ["CredentialsRepaired"]
