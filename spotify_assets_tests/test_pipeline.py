"""The whole asset graph on the local default: real DuckDB, real lake folder, real Spark, sandbox API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH
from spotify_assets.tables import gaps as gaps_table
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID, materialize_user
from spotify_sandbox.server import SandboxServer

UPSTREAM_OF_SPARK = [a for a in PIPELINE_ASSETS if a.key.to_user_string() != "top_ten_tracks"]


def _run(resources: dict[str, Any], assets: list[Any] | None = None) -> dg.ExecuteInProcessResult:
    result = materialize_user(PIPELINE_GRAPH, selection=assets or PIPELINE_ASSETS, resources=resources)
    assert result.success
    return result


def _skipped(result: dg.ExecuteInProcessResult) -> list[str]:
    return sorted(e.step_key or "" for e in result.all_events if e.event_type_value == "STEP_SKIPPED")


def _materialized(result: dg.ExecuteInProcessResult) -> list[str]:
    return sorted(
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key
    )


def _meta(result: dg.ExecuteInProcessResult, step: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(step)
    return {k: v.value for k, v in event.metadata.items()}


def test_full_graph_twice_second_run_skips_and_adds_nothing(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    first = _run(local_resources)
    assert _materialized(first) == sorted(a.key.to_user_string() for a in PIPELINE_ASSETS)
    truth = pipeline_sandbox.recently_played_truth()
    assert len(truth) == 50
    warehouse = local_resources["warehouse"]
    assert warehouse.count("bq_plays") == 50
    assert _meta(first, "raw_recent_tracks")["new_plays"] == 50
    assert _meta(first, "bq_plays")["plays_inserted"] == 50
    keys = set(warehouse.query("SELECT played_at, track_id FROM bq_plays").itertuples(index=False, name=None))
    expected = {(pd.Timestamp(i["played_at"]), i["track"]["id"]) for i in truth}
    assert keys == expected

    mart = warehouse.query("SELECT * FROM top_ten_tracks ORDER BY user_id, rank")
    # One job, two scopes: everyone's ('*') and the one listener's own, the same ten here.
    assert list(mart["user_id"]) == ["*"] * 10 + ["sandbox-listener"] * 10
    top = mart[mart["user_id"] == "*"].reset_index(drop=True)
    own = mart[mart["user_id"] == "sandbox-listener"].reset_index(drop=True)
    assert own[["rank", "track_id", "plays"]].equals(top[["rank", "track_id", "plays"]])
    assert list(top["rank"]) == list(range(1, 11))
    per_track = pd.Series([i["track"]["id"] for i in truth]).value_counts()
    assert top["plays"].iloc[0] == per_track.max()
    assert top["plays"].sum() == per_track.sort_values(ascending=False).head(10).sum()

    lake_files = sorted(
        p.relative_to(data_dir / "lake").as_posix() for p in (data_dir / "lake").rglob("*") if p.is_file()
    )
    # The listener's own folder (issue 13): the default sandbox listener's Spotify id.
    mine = "user_id=sandbox-listener"
    assert any(f.startswith(f"plays/{mine}/played_date=") and f.endswith(".parquet") for f in lake_files)
    assert any(f.startswith(f"plays_csv/{mine}/played_date=") and f.endswith(".csv") for f in lake_files)
    assert any(f.startswith(f"raw/recently_played/{mine}/") for f in lake_files)
    assert set(warehouse.query("SELECT DISTINCT user_id FROM bq_plays")["user_id"]) == {"sandbox-listener"}

    second = _run(local_resources)
    assert _materialized(second) == []
    assert _skipped(second) == ["audio_features", "bq_plays", "gcs_csv", "top_ten_tracks", "track_features"]
    observations = [e for e in second.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert "no plays after the cursor" in str(observations[0].event_specific_data)
    assert warehouse.count("bq_plays") == 50
    # The lake got no new files either.
    assert len([p for p in (data_dir / "lake").rglob("*") if p.is_file()]) == len(lake_files)
    _assert_handoff_is_typed_files_and_nothing_is_pickled(data_dir, first.run_id)


#: Pickle protocols 2-5 start with PROTO (0x80) and the protocol number.
_PICKLE_MAGIC = {bytes([0x80, n]) for n in range(2, 6)}
#: Binary files of known formats that may start with any byte (DuckDB's header is a checksum).
_KNOWN_BINARY = {".duckdb", ".wal", ".lock", ".db", ".sqlite", ".parquet", ".crc"}


def _assert_handoff_is_typed_files_and_nothing_is_pickled(data_dir: Path, run_id: str) -> None:
    """Asset handoff is Parquet/JSON under ``handoff/``; no file under the data dir is a pickle."""
    handoff = sorted(
        p.relative_to(data_dir / "handoff").as_posix()
        for p in (data_dir / "handoff").rglob("*")
        if p.is_file()
    )
    assert handoff == [
        f"audio_features/{run_id}.parquet",
        f"gcs_csv/{run_id}.json",
        f"raw_recent_tracks/{run_id}.parquet",
    ]
    plays = pd.read_parquet(data_dir / "handoff" / "raw_recent_tracks" / f"{run_id}.parquet")
    assert len(plays) == 50 and str(plays["played_at"].dtype) == "datetime64[us, UTC]"
    pickles = []
    for path in data_dir.rglob("*"):
        if path.is_file() and path.suffix not in _KNOWN_BINARY:
            with path.open("rb") as fh:
                if fh.read(2) in _PICKLE_MAGIC:
                    pickles.append(path.relative_to(data_dir).as_posix())
    assert pickles == []
    assert not (data_dir / "storage").exists(), "the filesystem IO manager's folder came back"


def test_new_plays_after_the_clock_moves_are_added_exactly(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    """The poll's cursor is the newest stored play: exactly the plays after it are added.

    Expected plays are counted from the newest play in the warehouse, not from the sandbox's
    clock (a quiet spell after the newest play would make the two agree by luck). The clock is
    first moved into a listening streak, so plays follow the newest stored one within minutes:
    a cursor any later than that play (30 minutes, say) misses some and fails here.
    """
    pipeline_sandbox.advance(30 * 60)
    _run(local_resources, UPSTREAM_OF_SPARK)
    newest = plays_table.max_played_at(local_resources["warehouse"], DEFAULT_USER_ID)
    assert newest == max(pd.Timestamp(i["played_at"]) for i in pipeline_sandbox.recently_played_truth())
    pipeline_sandbox.advance(3 * 3600)
    new = pipeline_sandbox.plays_between(newest, pipeline_sandbox.now())
    assert 0 < len(new) <= 50
    soon = [i for i in new if pd.Timestamp(i["played_at"]) <= newest + pd.Timedelta(minutes=30)]
    assert soon, "no play within 30 minutes of the newest stored one: a late cursor would pass unseen"
    result = _run(local_resources, UPSTREAM_OF_SPARK)
    assert _meta(result, "raw_recent_tracks")["new_plays"] == len(new)
    assert _meta(result, "bq_plays")["plays_inserted"] == len(new)
    assert local_resources["warehouse"].count("bq_plays") == 50 + len(new)


def test_audio_features_403_is_recorded_not_failed(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.configure(audio_features_forbidden=True)
    result = _run(local_resources, UPSTREAM_OF_SPARK)
    meta = _meta(result, "audio_features")
    assert meta["features_available"] is False
    assert "reccobeats" in meta["note"].lower()
    statuses = local_resources["warehouse"].query("SELECT DISTINCT status FROM track_features")
    assert statuses["status"].tolist() == ["unavailable"]
    first_tracks = {i["track"]["id"] for i in pipeline_sandbox.recently_played_truth()}
    # Next run, access restored: the unavailable tracks that are played again (in the new
    # batch) are asked again and their ok rows replace the unavailable ones; tracks not in the
    # batch stay unavailable (the backfill asset is what asks for those).
    pipeline_sandbox.configure(audio_features_forbidden=False)
    before = pipeline_sandbox.now()
    pipeline_sandbox.advance(3600)
    second_tracks = {i["track"]["id"] for i in pipeline_sandbox.plays_between(before, pipeline_sandbox.now())}
    asked_again, left_alone = first_tracks & second_tracks, first_tracks - second_tracks
    assert asked_again and left_alone, "the sandbox's next hour should replay some tracks and not others"
    second = _run(local_resources, UPSTREAM_OF_SPARK)
    assert _meta(second, "audio_features")["requested"] == len(second_tracks)
    stored = local_resources["warehouse"].query("SELECT track_id, status FROM track_features")
    expected = {t: "ok" for t in second_tracks} | {t: "unavailable" for t in left_alone}
    assert dict(zip(stored["track_id"], stored["status"], strict=True)) == expected


def test_episodes_and_local_files_are_quarantined_with_counts(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    pipeline_sandbox.configure(local_file_ratio=0.15, episode_ratio=0.1)
    truth = pipeline_sandbox.recently_played_truth()
    odd = [i for i in truth if i["track"].get("type") == "episode" or i["track"].get("is_local")]
    assert odd, "the knobs should produce some episodes or local files"
    result = _run(local_resources, UPSTREAM_OF_SPARK)
    meta = _meta(result, "raw_recent_tracks")
    assert meta["quarantined"] == len(odd)
    assert meta["new_plays"] == 50 - len(odd)
    assert local_resources["warehouse"].count("bq_plays") == 50 - len(odd)
    (qfile,) = list((data_dir / "lake" / "quarantine").rglob("*.jsonl"))
    reasons = [json.loads(line)["reason"] for line in qfile.read_text().splitlines()]
    assert len(reasons) == len(odd)
    assert {r.split(" ")[0] for r in reasons} <= {"podcast", "local"}


def test_sensor_skips_then_requests_and_advances_cursor(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    from spotify_assets.sensors import new_plays_sensor

    resources = {"spotify": local_resources["spotify"], "lake": local_resources["lake"]}
    with dg.build_sensor_context(resources=resources) as ctx:
        first = new_plays_sensor(ctx)
    assert isinstance(first, dg.SensorResult)
    assert first.run_requests and [r.partition_key for r in first.run_requests] == [DEFAULT_USER_ID]
    # No partition yet: the token store's listener gets theirs with the tick's result.
    added = first.dynamic_partitions_requests or []
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in added] == [("users", [DEFAULT_USER_ID])]
    cursor = first.cursor
    newest = max(pd.Timestamp(i["played_at"]) for i in pipeline_sandbox.recently_played_truth())
    assert json.loads(cursor or "") == {DEFAULT_USER_ID: int(newest.timestamp() * 1000)}

    with dg.build_sensor_context(cursor=cursor, resources=resources) as ctx:
        quiet = new_plays_sensor(ctx)
    assert not quiet.run_requests
    assert quiet.skip_reason and "no new plays" in (quiet.skip_reason.skip_message or "")

    pipeline_sandbox.advance(2 * 3600)
    with dg.build_sensor_context(cursor=cursor, resources=resources) as ctx:
        again = new_plays_sensor(ctx)
    moved = json.loads(again.cursor or "")
    assert again.run_requests and moved[DEFAULT_USER_ID] > json.loads(cursor or "")[DEFAULT_USER_ID]


def test_poll_gap_is_recorded_then_closed_by_an_import(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from spotify_assets.import_run import import_export

    warehouse = local_resources["warehouse"]
    _run(local_resources, UPSTREAM_OF_SPARK)
    cursor = plays_table.max_played_at(warehouse)
    pipeline_sandbox.advance(36 * 3600)  # far more than 50 plays happen: the API can't show them all
    missed = pipeline_sandbox.plays_between(cursor, pipeline_sandbox.now())
    assert len(missed) > 50
    result = _run(local_resources, UPSTREAM_OF_SPARK)
    assert _meta(result, "raw_recent_tracks")["possible_gap"] is True
    gaps = gaps_table.open_gaps(warehouse)
    assert len(gaps) == 1
    assert gaps["gap_start"].iloc[0] == pd.Timestamp(cursor)

    export = tmp_path / "export"
    export.mkdir()
    rows = [
        {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ms_played": 200_000,
            "master_metadata_track_name": "Bridge",
            "master_metadata_album_artist_name": "Gap Closers",
            "master_metadata_album_album_name": "Cover",
            "spotify_track_uri": "spotify:track:0000000000000000000gap",
            "reason_start": "trackdone",
            "reason_end": "trackdone",
            "shuffle": False,
            "skipped": False,
            "offline": False,
            "incognito_mode": False,
            "platform": "linux",
            "conn_country": "DE",
        }
        for ts in (
            gaps["gap_start"].iloc[0] - pd.Timedelta(hours=1),
            gaps["gap_end"].iloc[0] + pd.Timedelta(hours=1),
        )
    ]
    (export / "Streaming_History_Audio_2026.json").write_text(json.dumps(rows))
    report = import_export(export, warehouse, local_resources["lake"])
    assert report.added == 2
    assert report.gaps_closed == 1
    assert gaps_table.open_gaps(warehouse).empty


def test_a_polled_play_already_imported_from_an_export_is_not_added_twice(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from spotify_assets.import_run import import_export
    from spotify_sandbox.exports import extended_row_from_api_item

    newest = pipeline_sandbox.recently_played_truth()[0]
    ended = pd.Timestamp(newest["played_at"]) - pd.Timedelta(seconds=2)  # the export's clock, 2 s early
    export = tmp_path / "export"
    export.mkdir()
    row = extended_row_from_api_item(newest, ts=ended.strftime("%Y-%m-%dT%H:%M:%SZ"))
    (export / "Streaming_History_Audio_2026.json").write_text(json.dumps([row]))
    assert import_export(export, local_resources["warehouse"], local_resources["lake"]).added == 1

    # The cursor is now the export's timestamp, just before the API's version of that play.
    result = _run(local_resources, UPSTREAM_OF_SPARK)
    assert _materialized(result) == []  # nothing new: the one play after the cursor is the imported one
    observation = next(e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION")
    assert observation.event_specific_data.asset_observation.metadata["already_imported"].value == 1
    assert local_resources["warehouse"].count("bq_plays") == 1


def test_features_backfill_fills_imported_tracks_most_played_first(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from spotify_assets.assets import audio_features_backfill, track_features
    from spotify_assets.import_run import import_export
    from spotify_sandbox.exports import extended_row_from_api_item

    history = pipeline_sandbox.plays_between(
        pipeline_sandbox.now() - pd.Timedelta(days=3), pipeline_sandbox.now()
    )
    export = tmp_path / "export"
    export.mkdir()
    (export / "Streaming_History_Audio_2026.json").write_text(
        json.dumps([extended_row_from_api_item(i) for i in history])
    )
    import_export(export, local_resources["warehouse"], local_resources["lake"])
    played = pd.Series([i["track"]["id"] for i in history]).value_counts()
    # The backfill fetches; the table's own asset, downstream of it, merges (one writer per table).
    backfill = [audio_features_backfill, track_features]

    first = dg.materialize(
        PIPELINE_GRAPH,
        selection=backfill,
        resources=local_resources,
        run_config={"ops": {"audio_features_backfill": {"config": {"max_tracks": 5}}}},
    )
    assert _meta(first, "audio_features_backfill")["requested"] == 5
    assert _meta(first, "track_features")["from_backfill"] == 5
    assert _meta(first, "track_features")["from_audio_features"] == 0  # not run here: nothing old re-merged
    stored = local_resources["warehouse"].query("SELECT track_id, status FROM track_features")
    most_played = sorted(played.items(), key=lambda kv: (-kv[1], kv[0]))[:5]  # the asset's order
    assert set(stored["track_id"]) == {track for track, _ in most_played}
    assert set(stored["status"]) == {"ok"}

    rest = dg.materialize(PIPELINE_GRAPH, selection=backfill, resources=local_resources)
    assert _meta(rest, "audio_features_backfill")["requested"] == len(played) - 5
    assert local_resources["warehouse"].count("track_features") == len(played)
    done = dg.materialize(PIPELINE_GRAPH, selection=backfill, resources=local_resources)
    assert _meta(done, "audio_features_backfill")["requested"] == 0
