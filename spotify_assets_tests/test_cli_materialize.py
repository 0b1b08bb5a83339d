"""`dagster asset materialize` from the CLI, twice at once against one sandbox: no play twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets_tests.fixtures.partitions import add_partition_to_home
from spotify_sandbox.server import SandboxServer

DAGSTER = str(Path(sys.executable).with_name("dagster"))
SELECTION = "raw_recent_tracks,audio_features,gcs_csv,bq_plays"


def test_two_overlapping_cli_runs_load_each_play_once(
    tmp_path: Path, pipeline_sandbox: SandboxServer
) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "SPOTIFY_DATA_DIR": str(data),
        "SPOTIFY_SANDBOX_URL": pipeline_sandbox.url,
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    env.pop("SPOTIFY_CLIENT_ID", None)
    (tmp_path / "home").mkdir()
    # One deployment, one instance: create its storage once, as `dagster dev`/the daemon would,
    # so the two runs below do not race to create the same SQLite tables.
    # The default listener's partition is added there too, as `demo`, `dev` or the first tick would.
    partition = add_partition_to_home(tmp_path / "home")
    # The blocking no_future_plays check runs with bq_plays: it is given the sandbox's clock
    # (fixed at 2026-11-20) as "now", so the run does not depend on today's date.
    clock = {"config": {"now": pipeline_sandbox.now().isoformat()}}
    config = {"ops": {"bq_plays_no_future_plays": clock, "bq_plays_newest_play_is_fresh": clock}}
    cmd = [
        DAGSTER,
        "asset",
        "materialize",
        "-m",
        "spotify_assets.definitions",
        "--select",
        SELECTION,
        *partition,
    ]
    cmd += ["--config-json", json.dumps(config)]
    procs = [
        subprocess.Popen(
            cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    assert all("RUN_SUCCESS" in out for out in outputs)
    # The checks ran (and passed on the sandbox's clock) in the run that loaded the plays; the
    # other run may have found them loaded already, and then skipped bq_plays and its checks.
    assert any("Asset check 'no_future_plays' on 'bq_plays' passed" in out for out in outputs)
    assert not any("Asset check 'no_future_plays' on 'bq_plays' failed" in out for out in outputs)
    warehouse = DuckDBWarehouseResource(path=str(data / "warehouse.duckdb"))
    assert warehouse.count("bq_plays") == 50
    assert warehouse.query("SELECT count(DISTINCT play_key) n FROM bq_plays")["n"].iloc[0] == 50
    # Both runs really asked this sandbox: one refresh and one recently-played call each.
    stats = pipeline_sandbox.stats()
    assert stats["requests"]["GET /v1/me/player/recently-played"] == 2
    assert stats["grant_types"]["refresh_token"] == 2
