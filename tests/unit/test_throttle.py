import pytest

from taskplatform.api.config import Settings
from taskplatform.api.services.throttle import LoginScopes, delay_after

SETTINGS = Settings(login_delay_base_s=1, login_delay_max_s=60)


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0), (4, 0), (5, 1), (6, 2), (7, 4), (10, 32), (11, 60), (1000, 60)]
)
def test_the_delay_doubles_after_the_free_failures_up_to_its_ceiling(failures: int, delay: float) -> None:
    assert delay_after(failures, free=5, settings=SETTINGS) == delay


def test_scopes_are_digests_and_an_unknown_peer_counts_only_against_the_account() -> None:
    scopes = LoginScopes.of("ann@x.io", "10.0.0.1")
    assert len(scopes.all()) == 2 and all("ann" not in s and len(s) == 64 for s in scopes.all())
    assert LoginScopes.of("ann@x.io", None).all() == [scopes.account]
