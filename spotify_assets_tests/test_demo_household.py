"""``spotify-assets demo --users alice,bob``: the issue's command, run twice as a user would.

Two real processes on one fresh data directory, each starting its own sandbox: the first
registers both listeners, imports a short history each and runs one partition per user; the
second finds nothing new. Exact per-user counts are read back from the warehouse file. Then
``users remove alice --delete-data --yes`` leaves no path or byte naming her.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.schema import PLAYS_TABLE
from spotify_assets_tests.test_users_delete import _traces
from spotify_sandbox.constants import DEFAULT_NOW, DEMO_NOW_ENV


def _per_user(warehouse: DuckDBWarehouseResource) -> dict[str, int]:
    rows = warehouse.query(f"SELECT user_id, count(*) AS n FROM {PLAYS_TABLE} GROUP BY user_id")
    return {str(u): int(n) for u, n in rows.itertuples(index=False)}


@pytest.mark.slow
@pytest.mark.spark
def test_household_demo_twice_the_second_adds_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DAGSTER_"))}
    env |= {
        "SPOTIFY_DATA_DIR": str(tmp_path / "data"),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        # The demo's clock, pinned: the two runs see one history even across midnight UTC.
        DEMO_NOW_ENV: DEFAULT_NOW.isoformat(),
    }
    demo = [
        str(Path(sys.executable).with_name("spotify-assets")),
        "demo",
        "--users",
        "alice,bob",
        "--history-days",
        "2",
    ]
    first = subprocess.run(demo, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "data" / "warehouse.duckdb"))
    counts = _per_user(warehouse)
    assert set(counts) == {"sandbox-alice", "sandbox-bob"} and min(counts.values()) > 50, counts
    polled = [int(n) for n in re.findall(r"\): ok, (\d+) play\(s\) added by the poll", first.stdout)]
    assert len(polled) == 2, first.stdout[-3000:]
    for name, user_id in (("alice", "sandbox-alice"), ("bob", "sandbox-bob")):
        assert f"{name} ({user_id}): {counts[user_id]} plays. Top ten tracks:" in first.stdout
    assert f"Everyone: {sum(counts.values())} plays. Top ten tracks:" in first.stdout
    # The printed top tens are the Spark mart's: ten rows per listener and ten for everyone.
    scopes = warehouse.query("SELECT user_id, count(*) AS n FROM top_ten_tracks GROUP BY user_id")
    assert dict(scopes.itertuples(index=False)) == {"sandbox-alice": 10, "sandbox-bob": 10, "*": 10}

    second = subprocess.run(demo, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert re.findall(r"\): ok, (\d+) play\(s\) added by the poll", second.stdout) == ["0", "0"], (
        second.stdout[-3000:]
    )
    assert "0 added" in second.stdout  # the imports found every row already there
    assert _per_user(warehouse) == counts

    # The deletion on the demo's own data: nothing under the data directory names her
    # afterwards (paths, bytes, Parquet and DuckDB read back), and bob's plays are all there.
    remove = [demo[0], "users", "remove", "alice", "--delete-data", "--yes"]
    removed = subprocess.run(remove, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert removed.returncode == 0, (removed.stdout + removed.stderr)[-4000:]
    assert _traces(tmp_path / "data") == []
    assert _per_user(warehouse) == {"sandbox-bob": counts["sandbox-bob"]}
