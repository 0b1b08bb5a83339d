"""The IO managers on real parts: a lake folder for the handoff, a real DuckDB file for the mart,
and a real re-execution of a failed run on a persistent Dagster instance.

What the pipeline tests do not show on their own: a re-executed run reads the *parent* run's
handoff file (names are per run, nothing is overwritten); a handoff file is never replaced
(create-only); the mart's IO manager replaces the table and reads it back typed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from spotify_assets.io_managers import HANDOFF_TABLE_KEY, LakeIOManager, WarehouseTableIOManager
from spotify_assets.io_managers.lake_io_manager import ONLY_THIS_RUN_KEY
from spotify_assets.resources.lake import LakeConflictError, LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.schema import conform
from spotify_assets.tables import top_ten as top_ten_table

#: Environment the reconstructable job below reads (it runs from a fresh import of this module).
ROOT_ENV = "SPOTIFY_TEST_HANDOFF_ROOT"
FAIL_ENV = "SPOTIFY_TEST_FAIL_FLAG"


def _features(track_ids: list[str]) -> pd.DataFrame:
    now = datetime(2026, 11, 20, 21, tzinfo=UTC)
    return conform(
        pd.DataFrame(
            {"track_id": track_ids, "status": "ok", "provider": "test", "energy": 0.5, "fetched_at": now}
        ),
        "track_features",
    )


@dg.asset(metadata={HANDOFF_TABLE_KEY: "track_features"})
def produced() -> pd.DataFrame:
    return _features(["a", "b", "c"])


@dg.asset
def consumed(produced: pd.DataFrame) -> dict[str, int]:
    flag = Path(os.environ[FAIL_ENV])
    if flag.exists():
        flag.unlink()
        raise RuntimeError("failing once, as a crashed step would")
    return {"rows": len(produced), "energy_sum_x10": int(produced["energy"].sum() * 10)}


def handoff_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[produced, consumed],
        jobs=[dg.define_asset_job("handoff", selection=[produced, consumed])],
        resources={"io_manager": LakeIOManager(store=LocalLakeResource(root=os.environ[ROOT_ENV]))},
        executor=dg.in_process_executor,
    )
    return defs.resolve_job_def("handoff")


def test_reexecution_from_failure_reads_the_parent_runs_handoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "handoff"
    flag = tmp_path / "fail-once"
    flag.touch()
    monkeypatch.setenv(ROOT_ENV, str(root))
    monkeypatch.setenv(FAIL_ENV, str(flag))
    with dg.instance_for_test() as instance:
        job = dg.reconstructable(handoff_job)
        with dg.execute_job(job, instance=instance, raise_on_error=False) as failed:
            assert not failed.success
            parent = failed.run_id
        options = dg.ReexecutionOptions.from_failure(parent, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as again:
            assert again.success
            assert again.output_for_node("consumed") == {"rows": 3, "energy_sum_x10": 15}
            child = again.run_id
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    # produced ran once (in the parent); the re-execution read that file and wrote only its own.
    assert files == [f"consumed/{child}.json", f"produced/{parent}.parquet"]
    stored = pd.read_parquet(root / "produced" / f"{parent}.parquet")
    assert stored["track_id"].tolist() == ["a", "b", "c"]
    assert str(stored["fetched_at"].dtype) == "datetime64[us, UTC]"


def test_an_upstream_outside_the_run_is_its_latest_materialization_or_nothing(tmp_path: Path) -> None:
    """The loader tells an upstream that ran in this run from one that did not by asking the
    instance whether the run Dagster names exists: outside the run it reads the upstream's
    latest materialization, or, for an input marked ``ONLY_THIS_RUN_KEY``, an empty frame."""

    @dg.asset
    def counted(produced: pd.DataFrame) -> dict[str, int]:
        return {"rows": len(produced)}

    @dg.asset(ins={"produced": dg.AssetIn(metadata={ONLY_THIS_RUN_KEY: True})})
    def merged(produced: pd.DataFrame) -> dict[str, int]:
        return {"rows": len(produced)}

    resources = {"io_manager": LakeIOManager(store=LocalLakeResource(root=str(tmp_path)))}
    with dg.instance_for_test() as instance:
        first = dg.materialize([produced], instance=instance, resources=resources)
        alone = dg.materialize(
            [produced, counted, merged], instance=instance, resources=resources, selection=[counted, merged]
        )
        assert alone.output_for_node("counted") == {"rows": 3}
        assert alone.output_for_node("merged") == {"rows": 0}
        both = dg.materialize([produced, merged], instance=instance, resources=resources)
        assert both.output_for_node("merged") == {"rows": 3}
    assert (tmp_path / "produced" / f"{first.run_id}.parquet").is_file()


def test_a_handoff_file_is_never_replaced(tmp_path: Path) -> None:
    manager = LakeIOManager(store=LocalLakeResource(root=str(tmp_path)))

    def context() -> dg.OutputContext:
        return dg.build_output_context(
            asset_key=dg.AssetKey("produced"),
            run_id="run-1",
            definition_metadata={HANDOFF_TABLE_KEY: "track_features"},
        )

    manager.handle_output(context(), _features(["a"]))
    manager.handle_output(context(), _features(["a"]))  # the same bytes again (a retried write): fine
    with pytest.raises(LakeConflictError):
        manager.handle_output(context(), _features(["a", "z"]))  # other rows under the same name: refused
    assert pd.read_parquet(tmp_path / "produced" / "run-1.parquet")["track_id"].tolist() == ["a"]


def test_a_frame_without_a_schema_is_refused(tmp_path: Path) -> None:
    manager = LakeIOManager(store=LocalLakeResource(root=str(tmp_path)))
    context = dg.build_output_context(asset_key=dg.AssetKey("untyped"), run_id="run-1")
    with pytest.raises(TypeError, match="names no schema"):
        manager.handle_output(context, pd.DataFrame({"x": [1]}))
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_single_user_mart_table_is_replaced_by_the_per_listener_one(tmp_path: Path) -> None:
    """A warehouse of the previous layout has ``top_ten_tracks`` keyed by rank alone, without
    ``user_id``: the derived mart is dropped and written again with both scopes' rows."""
    import duckdb

    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE top_ten_tracks (rank BIGINT NOT NULL, track_id VARCHAR, plays BIGINT NOT NULL, "
        "PRIMARY KEY (rank))"
    )
    con.execute("INSERT INTO top_ten_tracks VALUES (1, 'old', 9)")
    con.close()
    warehouse = DuckDBWarehouseResource(path=str(db))
    now = datetime(2026, 11, 20, 21, tzinfo=UTC)
    rows = [
        {"user_id": scope, "rank": 1, "track_id": "t1", "plays": 5, "minutes_listened": 1.0}
        | {"first_played_at": now, "last_played_at": now, "computed_at": now}
        for scope in ("*", "alice")
    ]
    top_ten_table.replace(warehouse, pd.DataFrame(rows))
    got = warehouse.query("SELECT user_id, rank, track_id, plays FROM top_ten_tracks ORDER BY user_id")
    assert [tuple(r) for r in got.itertuples(index=False)] == [("*", 1, "t1", 5), ("alice", 1, "t1", 5)]


def test_the_mart_io_manager_replaces_the_duckdb_table_and_reads_it_back(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    manager = WarehouseTableIOManager(warehouse=warehouse)
    now = datetime(2026, 11, 20, 21, tzinfo=UTC)

    def top(n: int) -> pd.DataFrame:
        return conform(
            pd.DataFrame(
                {
                    "user_id": "*",
                    "rank": range(1, n + 1),
                    "track_id": [f"t{i}" for i in range(n)],
                    "plays": [10 - i for i in range(n)],
                    "minutes_listened": 3.5,
                    "first_played_at": now,
                    "last_played_at": now,
                    "computed_at": now,
                }
            ),
            "top_ten_tracks",
        )

    key = dg.AssetKey("top_ten_tracks")
    manager.handle_output(dg.build_output_context(asset_key=key), top(10))
    manager.handle_output(dg.build_output_context(asset_key=key), top(3))  # replaced, not appended
    assert warehouse.count("top_ten_tracks") == 3
    # The published snapshot (what the dashboard opens) has it too.
    assert (tmp_path / "warehouse.snapshot.duckdb").exists()
    loaded = manager.load_input(dg.build_input_context(asset_key=key))
    assert loaded.sort_values("rank")["track_id"].tolist() == ["t0", "t1", "t2"]
    with pytest.raises(KeyError):
        manager.handle_output(dg.build_output_context(asset_key=dg.AssetKey("bq_plays")), top(1))
