"""The door's listens reach the warehouse through the asset graph: real HTTP submissions to the
running scrobble server, the inbox sensor's tick, and the run it requests (``history_import`` of
the inbox files + the ``bq_plays`` merge), each listen in the warehouse once."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from spotify_assets.assets.history import history_import
from spotify_assets.assets.lake import gcs_csv
from spotify_assets.assets.warehouse import bq_plays
from spotify_assets.io_managers import LakeIOManager
from spotify_assets.partitions import add_user_partition
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.scrobble_inbox_sensor import scrobble_inbox_sensor
from spotify_assets_tests.test_scrobble_server import ALICE_ID, T0, Running, _listen, door

__all__ = ["door"]  # the running door, a fixture of test_scrobble_server


def _tick(
    door: Running, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[list[dg.RunRequest], str | None]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": door.lake})
    result = scrobble_inbox_sensor(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor
    assert isinstance(result, dg.SensorResult)
    return list(result.run_requests or []), result.cursor


def _run(
    request: dg.RunRequest, door: Running, wh: DuckDBWarehouseResource, tmp_path: Path, instance
) -> None:  # type: ignore[no-untyped-def]
    add_user_partition(instance, request.partition_key or "")
    result = dg.materialize(
        [history_import, bq_plays, *gcs_csv.to_source_assets()],
        instance=instance,
        partition_key=request.partition_key,
        run_config=request.run_config,
        resources={
            "warehouse": wh,
            "lake": door.lake,
            "io_manager": LakeIOManager(store=LocalLakeResource(root=str(tmp_path / "handoff"))),
        },
    )
    assert result.success


def test_listens_sent_to_the_door_reach_the_warehouse_once(door: Running, tmp_path: Path) -> None:
    wh = DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb"))
    single = {"listen_type": "single", "payload": [_listen(T0, duration_ms=200_000)]}
    imported = {
        "listen_type": "import",
        "payload": [
            _listen(T0 + 600, "Hyperballad"),
            _listen(T0 + 1200, "Jóga"),
            _listen(T0, duration_ms=200_000),
        ],
    }
    for body in (single, single, imported):  # the single twice: a client's retry
        assert door.request("POST", "/1/submit-listens", body) == (200, {"status": "ok"})
    with dg.instance_for_test() as instance:
        requests, cursor = _tick(door, instance, None)
        assert len(requests) == 1 and requests[0].partition_key == ALICE_ID
        _run(requests[0], door, wh, tmp_path, instance)
        plays = wh.query("SELECT track_name, source, sources, track_id FROM bq_plays ORDER BY track_name")
        assert plays["track_name"].tolist() == ["Army of Me", "Hyperballad", "Jóga"]
        assert set(plays["source"]) == set(plays["sources"]) == {"scrobble_server"}
        assert plays["track_id"].isna().all()
        # Nothing new: no run. The same listen in a new submission: a run that adds nothing.
        assert _tick(door, instance, cursor)[0] == []
        again = {"listen_type": "import", "payload": [_listen(T0 + 1200, "Jóga"), _listen(T0, duration_ms=1)]}
        assert door.request("POST", "/1/submit-listens", again) == (200, {"status": "ok"})
        requests, cursor = _tick(door, instance, cursor)
        assert len(requests) == 1
        _run(requests[0], door, wh, tmp_path, instance)
        assert wh.count("bq_plays") == 3
