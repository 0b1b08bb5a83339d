"""The code location loads as the UI and the daemon load it, with the graph and automation intact."""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg
import pytest

EXPECTED_LINEAGE = {
    "raw_recent_tracks": set(),
    "audio_features": {"raw_recent_tracks"},
    "gcs_csv": {"raw_recent_tracks", "audio_features"},
    "bq_plays": {"gcs_csv", "history_import"},  # the two paths into the plays table, both via the lake
    "top_ten_tracks": {"bq_plays", "history_import"},  # both write the plays table it reads
}


def test_definitions_load_with_graph_schedule_and_sensor(data_dir: Path) -> None:
    import spotify_assets.definitions as module

    defs = importlib.reload(module).defs
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    lineage = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
        if key.to_user_string() in EXPECTED_LINEAGE
    }
    assert lineage == EXPECTED_LINEAGE
    job = defs.resolve_job_def("spotify_pipeline")
    assert job.tags.get("spotify/pipeline") == "hourly"
    schedule = defs.resolve_schedule_def("spotify_pipeline_hourly")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    sensor = defs.resolve_sensor_def("new_plays_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60
    for asset in ("raw_recent_tracks", "audio_features", "gcs_csv", "bq_plays", "top_ten_tracks"):
        spec = graph.get(dg.AssetKey(asset))
        assert spec.group_name in {"ingest", "lake", "warehouse", "marts"}
        assert (spec.description or "").strip(), f"{asset} needs a description"


def test_deployment_switch_is_configuration(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    from spotify_assets.deployments import resources_for
    from spotify_assets.resources.lake import LocalLakeResource
    from spotify_assets.resources.spotify import LiveSpotifyResource
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_sandbox.resource import SandboxSpotifyResource

    local = resources_for("local")
    assert isinstance(local["lake"], LocalLakeResource)
    assert isinstance(local["warehouse"], DuckDBWarehouseResource)
    assert local["warehouse"].path == str(data_dir / "warehouse.duckdb")
    assert isinstance(local["spotify"], SandboxSpotifyResource)
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "id-from-env")
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "secret-from-env")
    assert isinstance(resources_for("local")["spotify"], LiveSpotifyResource)
    monkeypatch.setenv("SPOTIFY_DEPLOYMENT", "nonsense")
    from spotify_assets.settings import deployment

    with pytest.raises(ValueError, match="SPOTIFY_DEPLOYMENT"):
        deployment()
