"""``SPOTIFY_POLL_INTERVAL_S``: the new-plays sensor's one cadence (``settings.poll_interval_s``).

The sensor reads it once, as the code server loads the definitions, so the tests that follow it
into the sensor run a fresh interpreter with the variable set, as ``dev``'s code server starts:
the sensor's minimum interval, its "polled N s ago" gate and its first retry wait after a failed
run all follow it. A value that is no interval fails the definitions' load, naming the variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from spotify_assets.settings import DEFAULT_POLL_INTERVAL_S, POLL_INTERVAL_ENV, poll_interval_s

#: What the fresh interpreter reports: the loaded sensor's interval, its gate a second either side
#: of the interval after a run, and the retry's wait after one failed run, two and nine.
_PROBE = """
import json, time
import dagster as dg
from spotify_assets import sensors
from spotify_assets.definitions import defs
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.users.run_history import PARTITION_TAG, SENSOR_NAME

sensor = defs.resolve_sensor_def(SENSOR_NAME)
job = defs.resolve_job_def(spotify_pipeline_job.name)
with dg.instance_for_test() as instance:
    def run(status):
        instance.create_run_for_job(job, tags={PARTITION_TAG: "u"}, status=status)
        return sensors._latest_runs(instance, "u"), time.time()

    ran, _ = run(dg.DagsterRunStatus.SUCCESS)
    polled = ran[0].start_time or ran[0].create_timestamp.timestamp()
    gate = [sensors._run_is_polling(ran, polled + sensors.POLL_INTERVAL_S + d) for d in (-1, 1)]
    failed_once, at1 = run(dg.DagsterRunStatus.FAILURE)
    failed_twice, at2 = run(dg.DagsterRunStatus.FAILURE)
    for _ in range(7):  # nine failures in a row: 15 s doubled eight times is past the hour
        failed_often, at9 = run(dg.DagsterRunStatus.FAILURE)
    print(json.dumps({
        "minimum_interval_seconds": sensor.minimum_interval_seconds,
        "gate_before": gate[0], "gate_after": gate[1],
        "retry_once_s": sensors._failed_run(failed_once, at1)[1],
        "retry_twice_s": sensors._failed_run(failed_twice, at2)[1],
        "retry_often_s": sensors._failed_run(failed_often, at9)[1],
    }))
"""


def _fresh(env: Mapping[str, str], code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter with ``env`` over this one's (a data directory of its own)."""
    base = {k: v for k, v in os.environ.items() if k not in (POLL_INTERVAL_ENV, "DAGSTER_HOME")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=base | {"SPOTIFY_DATA_DIR": str(tmp_path)} | dict(env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize(("value", "seconds"), [(None, 60), ("", 60), (" 30 ", 30), ("300", 300), ("5", 5)])
def test_the_interval_is_whole_seconds_and_a_minute_unless_set(value: str | None, seconds: int) -> None:
    assert DEFAULT_POLL_INTERVAL_S == 60
    assert poll_interval_s({} if value is None else {POLL_INTERVAL_ENV: value}) == seconds


@pytest.mark.parametrize("value", ["0", "abc", "1.5", "-30", "4", "3601", "60s"])
def test_a_value_that_is_no_interval_fails_naming_the_variable_and_what_it_takes(value: str) -> None:
    with pytest.raises(ValueError) as raised:
        poll_interval_s({POLL_INTERVAL_ENV: value})
    assert str(raised.value) == (
        f"SPOTIFY_POLL_INTERVAL_S must be a whole number of seconds from 5 to 3600, got {value!r}"
    )


def test_the_setting_reaches_the_sensor_its_gate_and_its_retry(tmp_path: Path) -> None:
    done = _fresh({POLL_INTERVAL_ENV: "15"}, _PROBE, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["minimum_interval_seconds"] == 15, seen
    # A run that polled 14 s ago holds the listener back; 16 s ago it does not (not the minute).
    assert " polled " in (seen["gate_before"] or ""), seen
    assert seen["gate_after"] is None, seen
    # The first retry after a failed run waits the interval; after two failures, twice it.
    assert 10 < seen["retry_once_s"] <= 15, seen
    assert 25 < seen["retry_twice_s"] <= 30, seen
    # A failure that persists still waits up to the hour at 15 s (the tick reads enough runs).
    assert 3590 < seen["retry_often_s"] <= 3600, seen


def test_a_definitions_load_with_a_nonsense_interval_fails_saying_why(tmp_path: Path) -> None:
    done = _fresh({POLL_INTERVAL_ENV: "abc"}, "import spotify_assets.definitions", tmp_path)
    assert done.returncode != 0
    assert (
        "ValueError: SPOTIFY_POLL_INTERVAL_S must be a whole number of seconds from 5 to 3600, got 'abc'"
        in done.stderr
    ), done.stderr[-3000:]
