import io
import json

import pytest

from taskplatform.migration.progress import CollectionStats, Reporter


def test_json_lines_when_not_interactive() -> None:
    out = io.StringIO()
    with Reporter(stream=out, interactive=False, interval_s=0) as reporter:
        stats = CollectionStats(name="tasks", total=10, read=4, written=3, rejected=1)
        reporter.update(stats)
        reporter.summary([stats], dry_run=False)
    progress, summary = (json.loads(line) for line in out.getvalue().splitlines())
    assert progress["event"] == "progress"
    assert (progress["read"], progress["written"], progress["rejected"], progress["total"]) == (4, 3, 1, 10)
    assert progress["eta_s"] is not None
    assert summary["event"] == "summary"
    assert summary["collections"][0]["collection"] == "tasks"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("uptime_s", [0.0, 5.0, 1e6])
def test_json_progress_is_rate_limited_whatever_the_uptime(uptime_s: float) -> None:
    """The monotonic clock counts from boot: a machine up for seconds must still emit the first line."""
    out = io.StringIO()
    clock = FakeClock(uptime_s)
    reporter = Reporter(stream=out, interactive=False, interval_s=10, clock=clock)
    stats = CollectionStats(name="users", total=5)
    for _ in range(5):
        reporter.update(stats)
    assert len(out.getvalue().splitlines()) == 1  # the first update always emits, then the interval holds
    clock.now += 10
    reporter.update(stats)
    assert len(out.getvalue().splitlines()) == 2
    reporter.update(stats, force=True)
    assert len(out.getvalue().splitlines()) == 3  # the forced final one


def test_terminal_gets_a_bar_and_a_pgloader_style_table() -> None:
    out = io.StringIO()
    with Reporter(stream=out, interactive=True) as reporter:
        stats = [
            CollectionStats(name="users", total=3, read=3, written=2, rejected=1, seconds=1.0),
            CollectionStats(name="tasks", total=5, read=5, written=5, rejected=0, seconds=2.0),
        ]
        for s in stats:
            reporter.update(s)
        reporter.summary(stats, dry_run=True)
    text = out.getvalue()
    assert "dry run: nothing written" in text
    for word in ("collection", "imported", "rejected", "users", "tasks", "total"):
        assert word in text
    assert not text.lstrip().startswith("{")
