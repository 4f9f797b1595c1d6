from datetime import UTC, datetime, timedelta

import pytest

from taskplatform.api.config import Settings
from taskplatform.api.services.throttle import LoginScopes, delay_after, wait_for

SETTINGS = Settings(login_delay_base_s=1, login_delay_max_s=60)


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0), (4, 0), (5, 1), (6, 2), (7, 4), (10, 32), (11, 60), (1000, 60)]
)
def test_the_delay_doubles_after_the_free_failures_up_to_its_ceiling(failures: int, delay: float) -> None:
    assert delay_after(failures, free=5, settings=SETTINGS) == delay


def test_scopes_are_digests_and_each_pair_is_its_own() -> None:
    scopes = LoginScopes.of("ann@x.io", "10.0.0.1")
    assert len(set(scopes.all())) == 3 and all(
        "ann" not in s and "10.0" not in s and len(s) == 64 for s in scopes.all()
    )
    elsewhere = LoginScopes.of("ann@x.io", "10.0.0.2")
    assert elsewhere.account == scopes.account and elsewhere.pair != scopes.pair and elsewhere.client != scopes.client
    # A server that does not know its peer counts all such peers as one client.
    assert LoginScopes.of("ann@x.io", None) == LoginScopes.of("ann@x.io", "")


NOW = datetime(2030, 1, 1, tzinfo=UTC)
LIMITS = Settings(
    login_delay_base_s=10,
    login_delay_max_s=60,
    login_free_failures_per_account_client=5,
    login_free_failures_per_client=20,
    login_free_failures_per_account=100,
)


def test_each_scope_waits_past_its_own_free_failures() -> None:
    scopes = LoginScopes.of("ann@x.io", "10.0.0.1")
    just_now = NOW - timedelta(seconds=1)
    assert wait_for(LIMITS, scopes, {}, NOW) == 0
    assert wait_for(LIMITS, scopes, {scopes.pair: (4, just_now)}, NOW) == 0
    assert wait_for(LIMITS, scopes, {scopes.pair: (5, just_now)}, NOW) == 9
    assert wait_for(LIMITS, scopes, {scopes.client: (20, just_now)}, NOW) == 9
    assert wait_for(LIMITS, scopes, {scopes.pair: (5, NOW - timedelta(seconds=11))}, NOW) <= 0  # waited enough


def test_the_account_wide_bound_never_holds_back_a_clients_first_attempt() -> None:
    scopes = LoginScopes.of("ann@x.io", "10.0.0.1")
    attacked = {scopes.account: (1000, NOW)}
    assert wait_for(LIMITS, scopes, attacked, NOW) == 0  # the owner, new at this address
    assert wait_for(LIMITS, scopes, {**attacked, scopes.pair: (1, NOW)}, NOW) == 60  # one that failed already
