"""The chaos soak (issue 27): its verdict against hand-made cases, the sandbox's record of what
it showed, and a short real soak that injects every fault kind once.

The short soak is ``make soak``'s short form (``--every-kind-once``), the real thing at a
small scale: ``spotify-assets dev`` (daemon, sensor, webserver, code server, warm Spark)
against the sandbox on an accelerated clock, three listeners, each fault kind of
``bench.soak.FAULT_KINDS`` once, in rounds the platform must meet one after the other (after a
kill, ``dev`` must restart what died by itself and say so). It must end with every play the
API showed in the warehouse exactly once, every true gap recorded, no torn lake file, every
fault met, and every stop of ``dev`` by SIGTERM within 15 s.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import pytest
import requests

from bench.soak import (
    FAULT_KINDS,
    FILLER,
    FOLLOW_UP,
    ONCE,
    RUN_WORKER_STAGES,
    SHORT_POLL_INTERVAL_S,
    SIMULATED_HOURS_PER_POLL,
    fault_schedule,
    fill_disk,
    free_disk,
    growth_line,
    growth_per_day,
    main,
    measure,
    mount_lake,
    short_rounds,
    unmount_lake,
    with_restores,
)
from bench.soak_verdict import TrueGap, gap_counts, judge_listener, passed, truth, verdict_line
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.settings import DEFAULT_POLL_INTERVAL_S, layout
from spotify_assets.spotify.auth import SCOPE
from spotify_sandbox.server import RECENTLY_PLAYED_PATH, SandboxServer

#: The short soak's wall seconds per simulated hour, from its sensor interval.
SHORT_SECONDS_PER_HOUR = SHORT_POLL_INTERVAL_S / SIMULATED_HOURS_PER_POLL["short"]

#: Starts whole ``spotify-assets dev`` trees and times them: one file after another (conftest.PROCESS_TREES).
pytestmark = pytest.mark.process_tree


@dataclass(frozen=True)
class _Play:
    played_at_ms: int


class _History:
    """A listener with one play at each of ``instants`` (ms)."""

    def __init__(self, instants: list[int]) -> None:
        self.instants = sorted(instants)

    def recent(self, now_ms: int, n: int = 50) -> list[_Play]:
        return [_Play(ms) for ms in reversed(self.instants) if ms <= now_ms][:n]

    def between(self, start_ms: int, end_ms: int) -> list[_Play]:
        return [_Play(ms) for ms in self.instants if start_ms < ms <= end_ms]


def test_truth_is_the_union_of_the_pages_shown_and_what_fell_between_is_a_gap() -> None:
    history = _History(list(range(1, 201)))  # plays at 1..200 ms
    visible, gaps = truth(history, [60, 80, 200])
    # At 60: 11..60; at 80: 31..80; at 200: 151..200. Never shown: 81..150 (70 plays).
    assert visible == set(range(11, 81)) | set(range(151, 201))
    assert gaps == [TrueGap(after_ms=80, before_ms=151, missed=70)]
    # Polled often enough, nothing falls between.
    assert truth(history, [50, 100, 150, 200])[1] == []


def test_a_listener_is_exact_only_with_every_shown_play_once_and_nothing_else() -> None:
    history = _History(list(range(1, 101)))
    assert judge_listener("u", history, [50, 100], list(range(1, 101))).lost == []
    verdict = judge_listener("u", history, [50, 100], [*range(1, 100), 7, 1000])
    assert verdict.lost == [100]
    assert verdict.duplicated == [7]
    assert verdict.unexpected == [1000]  # no play of the listener at that instant


def test_gaps_recorded_count_covered_true_gaps_and_flag_false_ones() -> None:
    history = _History(list(range(1, 201)))
    verdict = judge_listener("u", history, [80, 200], list(range(31, 81)) + list(range(151, 201)))
    assert gap_counts([verdict], [(75, 160)]) == (1, 1, 0)
    assert gap_counts([verdict], [(90, 160)]) == (0, 1, 1)  # starts after the plays it missed
    assert gap_counts([verdict], []) == (0, 1, 0)
    assert not passed([verdict], (0, 1, 0), torn=0)
    assert passed([verdict], (1, 1, 0), torn=0)
    line = verdict_line(3, 12, 7, [verdict], (1, 1, 0), torn=0)
    assert line == (
        "soak: 3 hours, 12 runs, 7 faults, plays exact (lost 0, duplicated 0), gaps recorded 1 of 1, torn files 0"
    )


def test_a_gap_recorded_over_a_span_never_shown_is_not_false_though_nothing_was_played_in_it() -> None:
    # Plays at 1..80 and 151..200: silent from 81 to 150. At 200 the page (151..200) is full and
    # all newer than the 80 shown before: no client can tell the silence from a missed stretch.
    history = _History([*range(1, 81), *range(151, 201)])
    verdict = judge_listener("u", history, [80, 200], list(range(31, 81)) + list(range(151, 201)))
    assert verdict.true_gaps == [] and verdict.unseen == [TrueGap(after_ms=80, before_ms=151, missed=0)]
    assert gap_counts([verdict], [(80, 151)]) == (0, 0, 0)
    assert gap_counts([verdict], []) == (0, 0, 0)
    assert passed([verdict], gap_counts([verdict], [(80, 151)]), torn=0)
    # Where the pages overlapped the platform saw continuity: a gap recorded there is false.
    polled = _History(list(range(1, 201)))
    seen = judge_listener("u", polled, [50, 90, 130, 170, 200], list(range(1, 201)))
    assert seen.unseen == [] and gap_counts([seen], [(90, 160)]) == (0, 0, 1)


def test_a_removed_listener_is_owed_the_pages_shown_up_to_the_removal_and_no_poll_after() -> None:
    history = _History(list(range(1, 301)))
    # Removed at 100: the plays shown at 50 and 100 are owed; none after.
    verdict = judge_listener("u", history, [50, 100], list(range(1, 101)), removed_at_ms=100)
    assert verdict.lost == [] and verdict.polled_after_removal == 0
    assert passed([verdict], (0, 0, 0), torn=0)
    # A page shown after the removal is owed nothing, but is a poll nobody should have made.
    polled = judge_listener("u", history, [50, 100, 200], list(range(1, 101)), removed_at_ms=100)
    assert polled.lost == [] and polled.true_gaps == [] and polled.polled_after_removal == 1
    assert not passed([polled], (0, 0, 0), torn=0)
    assert verdict_line(1, 1, 1, [polled], (0, 0, 0), torn=0).endswith(", polled after removal 1")
    # What was shown before the removal is still owed.
    assert judge_listener("u", history, [50, 100], list(range(1, 100)), removed_at_ms=100).lost == [100]


def test_an_added_listener_is_owed_their_latest_50_at_the_first_run_and_every_play_after() -> None:
    history = _History(list(range(1, 301)))  # plays since long before they joined
    verdict = judge_listener("u", history, [150, 200, 250], list(range(101, 251)))
    assert verdict.visible == 150 and verdict.lost == [] and verdict.true_gaps == []
    assert judge_listener("u", history, [150, 200, 250], list(range(102, 251))).lost == [101]


def test_the_schedule_is_seeded_and_the_short_form_has_every_kind_once() -> None:
    users = ["alice", "bob"]
    short = short_rounds(7, users)
    assert short == short_rounds(7, users)
    kinds = [f.kind for r in short for f in r if f.kind not in FOLLOW_UP.values()]
    assert kinds == list(FAULT_KINDS) and len(set(kinds)) == len(kinds)
    # The revoked listener signs in again, and the full disk is freed, in a round after the
    # fault's own (a tick meets it first).
    for kind, end in FOLLOW_UP.items():
        began = [(i, f.user) for i, r in enumerate(short) for f in r if f.kind == kind]
        ended = [(i, f.user) for i, r in enumerate(short) for f in r if f.kind == end]
        assert len(began) == len(ended) == 1
        assert ended[0][0] > began[0][0] and ended[0][1] == began[0][1]
    # The listener removed is no other fault's target (a revoked token restored for nobody).
    (removed,) = [f.user for r in short for f in r if f.kind == "swap-listener"]
    assert all(f.user != removed for r in short for f in r if f.kind in ("revoke", "restore"))
    assert all(f.stage in RUN_WORKER_STAGES for r in short for f in r if f.kind == "kill-run-worker")
    long = fault_schedule(168, 7, users)
    assert long == fault_schedule(168, 7, users) != fault_schedule(168, 8, users)
    assert {f.kind for f in long} == set(FAULT_KINDS)
    assert all(sum(f.kind == kind for f in long) == 1 for kind in ONCE)
    restored = with_restores(long, 168, 7)
    for kind, end in FOLLOW_UP.items():
        began = [f for f in restored if f.kind == kind]
        ended = [f for f in restored if f.kind == end]
        assert len(ended) == len(began) and all(f.at_hour < 168 for f in ended)


def test_the_sandbox_records_only_pages_answered_whole(sandbox: SandboxServer) -> None:
    listener = sandbox.listener_for("alice").profile.user_id
    token = sandbox.state.issue_access_token("user", SCOPE, listener)
    headers = {"Authorization": f"Bearer {token}"}

    def get() -> int:
        url = f"{sandbox.url}{RECENTLY_PLAYED_PATH}?limit=50"
        return requests.get(url, headers=headers, timeout=10).status_code

    now_ms = round(sandbox.now().timestamp() * 1000)
    sandbox.fail_next(429, retry_after=1)
    assert get() == 429
    sandbox.malformed_next(1, RECENTLY_PLAYED_PATH)
    assert get() == 200  # a truncated body: not shown
    assert sandbox.shown_at() == {}
    assert get() == 200
    assert sandbox.shown_at() == {listener: [now_ms]}


@pytest.mark.slow
@pytest.mark.timeout(1500)  # 590 s at load 2-4 with 60 s ticks; 522 s at load 3-11, 583 s at 15-17 with 15 s
def test_a_short_soak_injects_every_fault_kind_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    code = main(
        [
            # At most: the short form ends once its last round was met. The clock may run the 24
            # wall minutes it always had, whatever the pace.
            "--hours",
            str(24 * 60 / SHORT_SECONDS_PER_HOUR),
            "--seed",
            "3",
            "--users",
            "alice,bob,carol",
            # The short form's pace (``SIMULATED_HOURS_PER_POLL``): the sensor every
            # ``SHORT_POLL_INTERVAL_S`` (``SPOTIFY_POLL_INTERVAL_S`` in dev's environment), a quarter
            # of a simulated hour each, so the retry of a failed run (an interval later) is minutes
            # of listening; at 3 hours an interval a full disk met while a listener's 50-play window
            # was full lost the plays shown to the failed run before its retry (lost 4, a soak's
            # pacing, not the platform's: the platform recorded the gap).
            "--poll-interval-s",
            str(SHORT_POLL_INTERVAL_S),
            "--seconds-per-hour",
            str(SHORT_SECONDS_PER_HOUR),
            "--every-kind-once",
            "--catch-up-s",
            "240",
            "--keep",
            str(tmp_path / "data"),
            "--json",
            str(out),
        ]
    )
    report = json.loads(out.read_text())
    kinds = [f["kind"] for f in report["faults"] if f["kind"] not in FOLLOW_UP.values()]
    assert kinds == list(FAULT_KINDS), report
    assert report["restarts"], "dev restarts what each kill took down, and says so in its log"
    assert all(s <= 15 for s in report["stops_s"]), report["stops_s"]
    # Who lost what first: the whole report is long, and pytest shows a failure's first lines.
    listeners = [
        {k: v for k, v in f.items() if k not in ("true_gaps", "unseen")} for f in report["listeners"]
    ]
    assert code == 0, "\n".join(
        [report["verdict"], json.dumps(listeners), json.dumps(report, indent=1)[:4000]]
    )
    # dev's sensor ticked at the short form's interval (no sooner: Dagster's minimum interval), not
    # at the platform's minute: what makes the short form fast reached the daemon.
    gaps = report["sensor_tick_gaps_s"]
    assert report["poll_interval_s"] == SHORT_POLL_INTERVAL_S and gaps, report
    assert min(gaps) >= SHORT_POLL_INTERVAL_S - 1 and median(gaps) < DEFAULT_POLL_INTERVAL_S, gaps
    # The dashboard's cold Overview was rendered over the soak's own data at each growth sample.
    assert all(s.get("page_cold_s") for s in report["growth_samples"]), report["growth_samples"]


def test_growth_per_day_scales_the_first_and_the_last_day_to_24_hours(tmp_path: Path) -> None:
    def sample(hours: float, files: int, kib: int) -> dict[str, float]:
        return {
            "hours": hours,
            "lake_files": files,
            "lake_bytes": kib * 1024,
            "instance_bytes": 2 * kib * 1024,
            "warehouse_bytes": 1024,
        }

    week = [sample(0, 0, 0), sample(24, 24, 100), sample(48, 48, 200), sample(60, 60, 300)]
    week[1]["page_cold_s"] = 0.25  # the dashboard's cold Overview at hour 24 (bench/page_time.py)
    growth = growth_per_day(week)
    assert growth["first"] == {
        "from_hour": 0,
        "to_hour": 24,
        "lake_files": 24,
        "lake_bytes": 102400,
        "instance_bytes": 204800,
        "warehouse_bytes": 0,
        "page_cold_s": 0.25,
    }
    assert "page_cold_s" not in growth["last"]  # not measured at hour 60
    assert growth["last"]["lake_files"] == 24 and growth["last"]["lake_bytes"] == 200 * 1024  # 12 h, doubled
    assert growth_line(growth).startswith(
        "growth per day: first (h 0-24) lake +24 files +100 KiB, instance +200 KiB, warehouse +0 KiB, "
        "dashboard cold 0.25 s; last (h 48-60)"
    )
    # What is measured: files and bytes under the data directory's lake, instance and warehouse.
    (layout(tmp_path).lake / "plays").mkdir(parents=True)
    (layout(tmp_path).lake / "plays" / "a.parquet").write_bytes(b"x" * 10)
    measured = measure(tmp_path, 1.0)
    assert measured["lake_files"] == 1 and measured["lake_bytes"] == 10, measured


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a file system needs root")
@pytest.mark.allowed_skip(
    reason="mounting the lake's own disk needs root (the soak then says disk-full was not injected)"
)
def test_a_lake_write_on_a_full_disk_fails_saying_so_and_leaves_no_file(tmp_path: Path) -> None:
    lake = layout(tmp_path).lake
    assert mount_lake(lake) == ""
    try:
        writer = LocalLakeResource(root=str(lake))
        writer.write_bytes("plays/a.parquet", b"x" * 1000)
        filled = fill_disk(lake)
        assert filled["free_bytes"] < 64 * 1024, filled
        with pytest.raises(OSError, match="No space left"):
            writer.write_bytes("plays/b.parquet", b"y" * 256 * 1024)
        # Nothing torn, nothing half-written left behind: the lake lists what it held before.
        assert sorted(p.name for p in lake.rglob("*") if p.is_file()) == sorted([FILLER, "a.parquet"])
        assert writer.list() == ["plays/a.parquet"]
        free_disk(lake)
        writer.write_bytes("plays/b.parquet", b"y" * 256 * 1024)
        assert writer.list() == ["plays/a.parquet", "plays/b.parquet"]
    finally:
        unmount_lake(lake)
    # Unmounted, the lake's files are in the folder beneath (the filler is not).
    assert sorted(p.name for p in lake.rglob("*") if p.is_file()) == ["a.parquet", "b.parquet"]
