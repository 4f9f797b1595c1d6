"""JWT signing keys: the one key the API pods sign with, the keys they also accept, and how a new key replaces
the signing one without logging anybody out. Pure: platform.py reads the state from the credentials Secret and
writes it back, the rollout state comes from the API Deployment (status.rolled_out), the clock is a parameter.

The API pods take the keys from the credentials Secret (`jwt-signing` as JWT_SECRET, `jwt-additional` as
JWT_ADDITIONAL_SECRETS, a JSON list) and their pod template carries a digest of them, so each change below is
one rolling update. A rotation from the signing key S to a new desired key D goes in three phases:

1. Distributing: D is added as a verify-only key, S still signs. During the rollout every pod, old or new,
   signs with S: each accepts the other's tokens.
2. Switching, once every pod accepts D: D signs, S stays verify-only. Pods of phase 1 (sign S, accept D) and
   of phase 2 (sign D, accept S) accept each other's tokens.
3. Retiring, once no pod signs with S any more: S is accepted until the longest token it signed has expired
   (that moment plus the longer of the access and refresh token lifetimes), then dropped (a last rollout).

A rotation started during another one (a third key) goes the same way; every previous key keeps its own
deadline. Going back to a key that is still accepted is a rotation like any other.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from taskplatform.operator.conditions import ConditionType, Event, EventReason, Observation, Reason, rfc3339

# Keys of the credentials Secret: what the API pods use, and the rotation's bookkeeping (no key in it, only
# fingerprints and times: nothing of it goes into status, events, logs or arguments).
SIGNING_KEY, ADDITIONAL_KEY, ROTATION_KEY = "jwt-signing", "jwt-additional", "jwt-rotation"


class Phase(enum.StrEnum):
    STEADY = "Steady"
    DISTRIBUTING = "Distributing"
    SWITCHING = "Switching"
    RETIRING = "Retiring"


def fingerprint(key: str) -> str:
    """Names a key in the bookkeeping and tells a changed key from an unchanged one, without being it."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Retiring:
    """A previous signing key, still accepted."""

    key: str = field(repr=False)
    # When it may go. None while pods that sign with it may still run: the clock starts once none does.
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class JwtKeys:
    signing: str = field(repr=False)
    pending: str | None = field(default=None, repr=False)  # phase 1: the next key, verify-only for now
    retiring: tuple[Retiring, ...] = ()

    @property
    def additional(self) -> list[str]:
        """JWT_ADDITIONAL_SECRETS: every key accepted besides the signing one."""
        return ([self.pending] if self.pending is not None else []) + [r.key for r in self.retiring]

    @property
    def phase(self) -> Phase:
        if self.pending is not None:
            return Phase.DISTRIBUTING
        if any(r.until is None for r in self.retiring):
            return Phase.SWITCHING
        return Phase.RETIRING if self.retiring else Phase.STEADY

    def secret_data(self) -> dict[str, str]:
        rotation: dict[str, Any] = {
            "pending": fingerprint(self.pending) if self.pending is not None else None,
            "retiring": [
                {"fingerprint": fingerprint(r.key), "until": rfc3339(r.until) if r.until else None}
                for r in self.retiring
            ],
        }
        return {
            SIGNING_KEY: self.signing,
            ADDITIONAL_KEY: json.dumps(self.additional),
            ROTATION_KEY: json.dumps(rotation, sort_keys=True),
        }

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str]) -> JwtKeys | None:
        """The state as written by secret_data; None when there is no signing key (a Secret from before
        rotations existed, or one whose key was removed). A key listed as additional that the bookkeeping does
        not know (added by hand) is treated as a previous key: accepted for one more token lifetime."""
        signing = data.get(SIGNING_KEY)
        if not signing:
            return None
        additional = _json(data.get(ADDITIONAL_KEY), list)
        rotation = _json(data.get(ROTATION_KEY), dict)
        pending_print = rotation.get("pending")
        deadlines = {
            entry.get("fingerprint"): _time(entry.get("until"))
            for entry in rotation.get("retiring") or []
            if isinstance(entry, dict)
        }
        pending, retiring, seen = None, [], {signing}
        for key in additional:
            if not isinstance(key, str) or not key or key in seen:
                continue
            seen.add(key)
            if pending is None and fingerprint(key) == pending_print:
                pending = key
            else:
                retiring.append(Retiring(key, deadlines.get(fingerprint(key))))
        return cls(signing, pending, tuple(retiring))


def _json(text: str | None, kind: type) -> Any:
    try:
        value = json.loads(text) if text else kind()
    except ValueError:
        return kind()
    return value if isinstance(value, kind) else kind()


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class KeyPlan:
    keys: JwtKeys
    events: tuple[Event, ...] = ()
    recheck_after_s: float | None = None  # the next previous key may be dropped then


def plan(desired: str, current: JwtKeys | None, rolled_out: bool, now: datetime, max_token_ttl_s: int) -> KeyPlan:
    """The keys the API pods should have now.

    `desired`: the key that should sign (the referenced Secret's, or the credentials Secret's `jwt-secret`).
    `current`: the state in the credentials Secret. `rolled_out`: every API pod runs with `current` (the
    Deployment's template carries its digest, and its updated replicas are all there and available, with no old
    pod left), or there is no API pod at all. `max_token_ttl_s`: the longest token lifetime.
    """
    if current is None:
        # A new platform, or one from before rotations: the key its pods use goes on signing.
        return KeyPlan(JwtKeys(desired))
    events: list[Event] = []
    signing, pending, retiring = current.signing, current.pending, list(current.retiring)
    if rolled_out and any(r.until is None for r in retiring):
        # No pod signs with a previous key any more, so none of its tokens is newer than now.
        until = now + timedelta(seconds=max_token_ttl_s)
        retiring = [r if r.until is not None else Retiring(r.key, until) for r in retiring]
        events.append(
            Event(
                "Normal",
                Reason.JWT_KEY_ROTATING,
                f"phase 3/3: every API pod signs with the new JWT key; the previous key is accepted until "
                f"{rfc3339(until)}, when the longest token it signed has expired",
            )
        )
    kept = [r for r in retiring if r.until is None or r.until > now]
    if len(kept) < len(retiring):
        events.append(
            Event(
                "Normal",
                EventReason.JWT_KEY_RETIRED,
                "a previous JWT key is no longer accepted: its tokens have expired",
            )
        )
    retiring = kept

    if desired == signing:
        if pending is not None:
            events.append(
                Event("Normal", Reason.JWT_KEY_ROTATING, "the new JWT key was withdrawn: the current key keeps signing")
            )
        pending = None
    elif pending == desired and rolled_out:
        retiring = [Retiring(signing), *(r for r in retiring if r.key != desired)]
        signing, pending = desired, None
        events.append(
            Event(
                "Normal",
                Reason.JWT_KEY_ROTATING,
                "phase 2/3: every API pod accepts the new JWT key; rolling out pods that sign with it (the "
                "previous key is still accepted)",
            )
        )
    elif pending != desired:
        pending = desired
        retiring = [r for r in retiring if r.key != desired]
        events.append(
            Event(
                "Normal",
                Reason.JWT_KEY_ROTATING,
                "phase 1/3: a new JWT key; rolling it out to every API pod as a verify-only key (the current key "
                "still signs)",
            )
        )
    deadlines = [r.until for r in retiring if r.until is not None]
    recheck = max(0.0, (min(deadlines) - now).total_seconds()) if deadlines else None
    return KeyPlan(JwtKeys(signing, pending, tuple(retiring)), tuple(events), recheck)


def condition(keys: JwtKeys | None) -> Observation:
    """JWTKeyCurrent: whether the desired key signs (None: the desired key is not known, see Degraded)."""
    type_ = ConditionType.JWT_KEY_CURRENT
    if keys is None:
        return Observation(type_, "Unknown", Reason.DESIRED_KEY_UNKNOWN, "the desired JWT key cannot be read")
    match keys.phase:
        case Phase.DISTRIBUTING:
            return Observation(
                type_,
                "False",
                Reason.JWT_KEY_ROTATING,
                "phase 1/3: the new JWT key is rolling out to every API pod as a verify-only key; the current key "
                "still signs",
            )
        case Phase.SWITCHING:
            return Observation(
                type_,
                "False",
                Reason.JWT_KEY_ROTATING,
                "phase 2/3: API pods that sign with the new JWT key are rolling out; the previous key is still "
                "accepted",
            )
        case Phase.RETIRING:
            until = max(r.until for r in keys.retiring if r.until is not None)
            return Observation(
                type_,
                "True",
                Reason.RETIRING_PREVIOUS_KEY,
                f"the new JWT key signs; the previous key is accepted until {rfc3339(until)}",
            )
    return Observation(type_, "True", Reason.CURRENT, "the API signs with the desired JWT key")
