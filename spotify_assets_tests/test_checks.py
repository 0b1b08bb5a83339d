"""The data-quality checks on ``bq_plays``, each shown to fire on a warehouse that violates it.

Every test runs the real graph with its checks (sandbox API, DuckDB, lake folder, shared
Spark) over a warehouse prepared to break exactly one promise, then asserts which checks
failed, with which message, and whether ``top_ten_tracks`` was blocked. A check that always
passed, or a blocking check that stopped blocking, fails here; so does a check that fires on
clean data (the baseline test).

DuckDB enforces the play key itself, so a warehouse with duplicate or null keys is built the
way one could really arise (a table re-created by hand without its constraints): the key is
demoted to a nullable ``UNIQUE (play_key, batch_id)``, which still lets the pipeline's ``INSERT OR
IGNORE`` merge run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH
from spotify_assets.checks import PLAYS_CHECKS
from spotify_assets.schema import PLAYS_TABLE, duckdb_columns_sql
from spotify_assets.spotify.normalize import normalize_recently_played
from spotify_assets.tables import gaps as gaps_table
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_sandbox.server import SandboxServer

BLOCKING = {"play_key_unique", "keys_not_null", "no_future_plays", "schema_unchanged"}
WARNINGS = {"newest_play_is_fresh", "audio_feature_coverage", "no_open_gaps"}
ALL_PASS = dict.fromkeys(BLOCKING | WARNINGS, True)


def _run(resources: dict[str, Any], now: datetime) -> dg.ExecuteInProcessResult:
    """The pipeline with its checks; both time-based checks take ``now`` from the run config."""
    clock = {"config": {"now": now.isoformat()}}
    return materialize_user(
        [*PIPELINE_GRAPH, *PLAYS_CHECKS],
        selection=PIPELINE_ASSETS,
        resources=resources,
        run_config={"ops": {"bq_plays_no_future_plays": clock, "bq_plays_newest_play_is_fresh": clock}},
        raise_on_error=False,
    )


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _passed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {name: e.passed for name, e in _evaluations(result).items()}


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


def _older_plays(sandbox: SandboxServer, n: int) -> pd.DataFrame:
    """The ``n`` oldest of the 50 plays the API shows: already stored, as if polled before. The
    poll then finds fewer than 50 newer plays, so no poll gap is recorded."""
    return normalize_recently_played(sandbox.recently_played_truth()[-n:]).plays


def _prepare_warehouse(data_dir: Path, table_sql: str, rows: pd.DataFrame) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    try:
        con.execute(table_sql)
        con.register("seed", rows)
        con.execute(f"INSERT INTO {PLAYS_TABLE} BY NAME SELECT * FROM seed")
    finally:
        con.close()


def _keyless_table() -> str:
    """``bq_plays`` re-created without its constraints (no NOT NULL, no primary key)."""
    columns = duckdb_columns_sql("plays").replace(" NOT NULL", "")
    return f"CREATE TABLE {PLAYS_TABLE} ({columns}, UNIQUE (play_key, batch_id))"


def _assert_blocked_by(result: dg.ExecuteInProcessResult, check: str, message: str) -> None:
    assert not result.success
    assert _passed(result) == {**ALL_PASS, check: False}
    evaluation = _evaluations(result)[check]
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert message in (evaluation.description or "")
    assert "bq_plays" in _materialized(result)
    assert "top_ten_tracks" not in _materialized(result)


def test_clean_data_passes_every_check_and_the_top_ten_runs(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    result = _run(local_resources, pipeline_sandbox.now())
    assert result.success
    assert _passed(result) == ALL_PASS
    assert "top_ten_tracks" in _materialized(result)


def test_duplicate_play_key_fails_play_key_unique_and_blocks_the_top_ten(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    older = _older_plays(pipeline_sandbox, 2)
    again = older.iloc[[0]].assign(batch_id="a-second-batch")
    _prepare_warehouse(data_dir, _keyless_table(), pd.concat([older, again]))
    result = _run(local_resources, pipeline_sandbox.now())
    _assert_blocked_by(result, "play_key_unique", "1 play_key(s) appear more than once")
    # The rows had no listener (the single-user layout): the run adopted them as the token's user.
    adopted = "sandbox-listener|" + older["play_key"].iloc[0]
    assert _evaluations(result)["play_key_unique"].metadata["examples"].value == [adopted]


def test_null_play_key_fails_keys_not_null_and_blocks_the_top_ten(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    older = _older_plays(pipeline_sandbox, 2)
    older.loc[older.index[0], "play_key"] = None
    _prepare_warehouse(data_dir, _keyless_table(), older)
    result = _run(local_resources, pipeline_sandbox.now())
    _assert_blocked_by(result, "keys_not_null", "1 play(s) without play_key, 0 without played_at")


def test_play_after_now_fails_no_future_plays_and_blocks_the_top_ten(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    """The sandbox's plays end at its clock; a ``now`` an hour earlier puts the newest in the future."""
    now = pipeline_sandbox.now() - timedelta(hours=1)
    clock = {"config": {"now": now.isoformat()}}
    result = materialize_user(
        [*PIPELINE_GRAPH, *PLAYS_CHECKS],
        selection=PIPELINE_ASSETS,
        resources=local_resources,
        # Freshness keeps the sandbox's clock so that only the blocking check is exercised.
        run_config={
            "ops": {
                "bq_plays_no_future_plays": clock,
                "bq_plays_newest_play_is_fresh": {"config": {"now": pipeline_sandbox.now().isoformat()}},
            }
        },
        raise_on_error=False,
    )
    _assert_blocked_by(result, "no_future_plays", "is after now + 0:05:00")
    newest = pd.Timestamp(_evaluations(result)["no_future_plays"].metadata["newest_play"].value)
    assert newest > now + timedelta(minutes=5)


def test_extra_column_fails_schema_unchanged_and_blocks_the_top_ten(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    table = f"CREATE TABLE {PLAYS_TABLE} ({duckdb_columns_sql('plays')}, added_by_hand VARCHAR, PRIMARY KEY (play_key))"
    _prepare_warehouse(data_dir, table, _older_plays(pipeline_sandbox, 1))
    result = _run(local_resources, pipeline_sandbox.now())
    _assert_blocked_by(result, "schema_unchanged", "differ from schemas/plays.json")
    assert _evaluations(result)["schema_unchanged"].metadata["unexpected"].value == ["added_by_hand"]


def test_open_gap_warns_without_blocking(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    now = pipeline_sandbox.now()
    gaps_table.record(local_resources["warehouse"], now - timedelta(days=3), now - timedelta(days=2))
    result = _run(local_resources, now)
    assert result.success
    assert _passed(result) == {**ALL_PASS, "no_open_gaps": False}
    evaluation = _evaluations(result)["no_open_gaps"]
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "1 open gap(s)" in (evaluation.description or "")
    assert "top_ten_tracks" in _materialized(result)


def test_stale_newest_play_warns_without_blocking(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    result = _run(local_resources, pipeline_sandbox.now() + timedelta(days=2))
    assert result.success
    assert _passed(result) == {**ALL_PASS, "newest_play_is_fresh": False}
    evaluation = _evaluations(result)["newest_play_is_fresh"]
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "no play in the last 1 day, 12:00:00" in (evaluation.description or "")
    assert "top_ten_tracks" in _materialized(result)


def test_missing_audio_features_warn_without_blocking(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.configure(audio_features_forbidden=True)
    result = _run(local_resources, pipeline_sandbox.now())
    assert result.success
    assert _passed(result) == {**ALL_PASS, "audio_feature_coverage": False}
    evaluation = _evaluations(result)["audio_feature_coverage"]
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    tracks = len({i["track"]["id"] for i in pipeline_sandbox.recently_played_truth()})
    assert f"only 0 of {tracks} played tracks have audio features" in (evaluation.description or "")
    assert "top_ten_tracks" in _materialized(result)
