"""Issue 25, item 6: the demo's sandbox clock is anchored to the current day.

A first visit after ``make demo`` finds a history that ends today (so "Last 4 weeks" is full),
and every demo of one day sees the same history (so a second adds 0): the anchor is the day,
never the moment. ``$SPOTIFY_SANDBOX_NOW`` pins it for tests that must not depend on the date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from spotify_sandbox.constants import DEFAULT_NOW, DEMO_NOW_ENV
from spotify_sandbox.demo import demo_now
from spotify_sandbox.server import SandboxServer

DAY = datetime(2026, 12, 6, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEMO_NOW_ENV, raising=False)


def test_every_moment_of_a_day_gives_that_days_anchor() -> None:
    moments = [DAY, DAY + timedelta(hours=9, minutes=30), DAY + timedelta(hours=23, minutes=59, seconds=59)]
    assert {demo_now(m) for m in moments} == {DAY}
    assert demo_now(DAY + timedelta(days=1, seconds=1)) == DAY + timedelta(days=1)
    assert demo_now() <= datetime.now(UTC) < demo_now() + timedelta(days=1)


def test_the_anchor_can_be_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEMO_NOW_ENV, "2026-11-20T21:00:00Z")
    assert demo_now(DAY) == DEFAULT_NOW


def _items(anchor: datetime) -> list[str]:
    with SandboxServer(now=anchor) as sandbox:
        return [str(i["played_at"]) + str(i["track"]["id"]) for i in sandbox.recently_played_truth()]


def test_two_demos_of_one_day_see_the_same_plays_and_the_next_day_more() -> None:
    morning, night = demo_now(DAY + timedelta(hours=8)), demo_now(DAY + timedelta(hours=23))
    assert _items(morning) == _items(night)  # the second demo's poll finds nothing new: adds 0
    assert _items(demo_now(DAY + timedelta(days=1, hours=8))) != _items(morning)


def test_the_last_four_weeks_of_the_anchored_history_are_full() -> None:
    anchor = demo_now(DAY + timedelta(hours=15))
    with SandboxServer(now=anchor) as sandbox:
        plays = sandbox.plays_between(anchor - timedelta(weeks=4), anchor)
    days = {pd.Timestamp(p["played_at"]).date() for p in plays}
    assert max(days) == (anchor - timedelta(days=1)).date()  # yesterday: nothing in the future
    assert len(days) >= 24, sorted(days)  # listened on nearly every one of the 28 days
    assert min(days) == (anchor - timedelta(weeks=4)).date()


def test_make_cloud_demo_runs_on_the_demos_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``make cloud-demo`` (``scripts/cloud_demo.py``) starts the same sandbox as ``make demo``:
    the clock at today's anchor, not the tests' fixed ``DEFAULT_NOW`` (its history was weeks old)."""
    import importlib.util
    from pathlib import Path

    from spotify_sandbox import demo

    spec = importlib.util.spec_from_file_location(
        "cloud_demo", Path(__file__).resolve().parents[1] / "scripts" / "cloud_demo.py"
    )
    assert spec is not None and spec.loader is not None
    cloud_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cloud_demo)
    assert cloud_demo.demo_sandbox is demo.demo_sandbox
    with cloud_demo.demo_sandbox() as sandbox:
        assert sandbox.now() == demo_now() != DEFAULT_NOW
    monkeypatch.setenv(DEMO_NOW_ENV, DEFAULT_NOW.isoformat())  # a pinned demo pins the cloud demo too
    with cloud_demo.demo_sandbox() as sandbox:
        assert sandbox.now() == DEFAULT_NOW
