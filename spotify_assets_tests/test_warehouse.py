"""The DuckDB warehouse on real files: exactly-once merges, the features rule, snapshots, locks."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from spotify_assets.resources.warehouse import DuckDBWarehouseResource, WarehouseLockTimeout
from spotify_assets.schema import SchemaError, conform
from spotify_assets.tables import plays as plays_table
from spotify_assets.tables import tracks as tracks_table
from spotify_assets_tests.fixtures.plays import make_plays


def _wh(tmp_path: Path, **kw: object) -> DuckDBWarehouseResource:
    return DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"), **kw)  # type: ignore[arg-type]


def test_merge_is_idempotent_and_counts(tmp_path: Path) -> None:
    wh = _wh(tmp_path)
    assert plays_table.max_played_at(wh) is None
    first = plays_table.merge_plays(wh, make_plays(30))
    assert (first.inserted, first.duplicates, first.total_rows) == (30, 0, 30)
    again = plays_table.merge_plays(wh, make_plays(30))
    assert (again.inserted, again.duplicates, again.total_rows) == (0, 30, 30)
    overlap = plays_table.merge_plays(wh, make_plays(20, start=25))
    assert (overlap.inserted, overlap.duplicates, overlap.total_rows) == (15, 5, 45)
    assert wh.count("bq_plays") == 45
    assert plays_table.max_played_at(wh) == make_plays(20, start=25)["played_at"].max().to_pydatetime()
    dupes = wh.query("SELECT play_key, count(*) n FROM bq_plays GROUP BY 1 HAVING n > 1")
    assert dupes.empty


def test_duplicate_rows_within_one_frame_are_one_play(tmp_path: Path) -> None:
    wh = _wh(tmp_path)
    batch = pd.concat([make_plays(5), make_plays(5)], ignore_index=True)
    result = plays_table.merge_plays(wh, batch)
    assert (result.inserted, result.duplicates) == (5, 5)


def test_required_nulls_are_rejected_before_writing(tmp_path: Path) -> None:
    wh = _wh(tmp_path)
    bad = make_plays(3)
    bad["played_at"] = [bad["played_at"].iloc[0], None, None]
    with pytest.raises(SchemaError, match="played_at"):
        plays_table.merge_plays(wh, bad)
    assert wh.count("bq_plays") == 0


def test_features_upsert_never_downgrades_ok(tmp_path: Path) -> None:
    wh = _wh(tmp_path)
    now = datetime.now(UTC)

    def features(status: dict[str, str]) -> pd.DataFrame:
        return conform(
            pd.DataFrame(
                [
                    {
                        "track_id": t,
                        "status": s,
                        "provider": "spotify",
                        "energy": 0.5 if s == "ok" else None,
                        "fetched_at": now,
                    }
                    for t, s in status.items()
                ]
            ),
            "track_features",
        )

    tracks_table.merge_features(wh, features({"a": "ok", "b": "unavailable"}))
    tracks_table.merge_features(wh, features({"a": "unavailable", "b": "ok", "c": "not_found"}))
    stored = tracks_table.features_of(wh, ["a", "b", "c", "zzz"]).set_index("track_id")["status"].to_dict()
    assert stored == {"a": "ok", "b": "ok", "c": "not_found"}


def test_snapshot_is_published_and_readable_while_writer_holds_lock(tmp_path: Path) -> None:
    wh = _wh(tmp_path)
    plays_table.merge_plays(wh, make_plays(10))
    snapshot = tmp_path / "warehouse.snapshot.duckdb"
    assert snapshot.exists()
    with wh.writer() as con:  # a writer in the middle of its transaction
        con.execute("DELETE FROM bq_plays")
        reader = duckdb.connect(str(snapshot), read_only=True)
        assert reader.execute("SELECT count(*) FROM bq_plays").fetchall()[0][0] == 10
        reader.close()
        con.execute("ROLLBACK")
        con.execute("BEGIN TRANSACTION")
    assert wh.count("bq_plays") == 10
    meta = wh.query("SELECT value FROM warehouse_meta WHERE key = 'published_at'")
    assert len(meta) == 1


def test_writer_waits_for_another_and_times_out_clearly(tmp_path: Path) -> None:
    wh = _wh(tmp_path, lock_timeout_s=0.3)
    import fcntl

    plays_table.merge_plays(wh, make_plays(1))
    with open(tmp_path / "warehouse.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(WarehouseLockTimeout, match="held"):
            plays_table.merge_plays(wh, make_plays(1, start=1))
    assert plays_table.merge_plays(wh, make_plays(1, start=1)).inserted == 1


def _merge_many(path: str, offset: int, rounds: int) -> None:
    wh = DuckDBWarehouseResource(path=path)
    for r in range(rounds):
        # Each process loads overlapping batches: rows 0..59 shifted by r, both processes alike.
        plays_table.merge_plays(wh, make_plays(40, start=offset + r * 5))


def _read_many(snapshot: str, rounds: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    counts = []
    for _ in range(rounds):
        for attempt in range(50):
            try:
                con = duckdb.connect(snapshot, read_only=True)
                break
            except duckdb.IOException:
                if attempt == 49:
                    raise
        counts.append(con.execute("SELECT count(*) FROM bq_plays").fetchall()[0][0])
        con.close()
    out.put(counts)


def test_two_writer_processes_and_a_reader_never_duplicate_or_fail(tmp_path: Path) -> None:
    path = str(tmp_path / "warehouse.duckdb")
    plays_table.merge_plays(DuckDBWarehouseResource(path=path), make_plays(1))  # create + first snapshot
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    writers = [ctx.Process(target=_merge_many, args=(path, 0, 8)) for _ in range(2)]
    reader = ctx.Process(target=_read_many, args=(str(tmp_path / "warehouse.snapshot.duckdb"), 40, out))
    for p in [*writers, reader]:
        p.start()
    for p in [*writers, reader]:
        p.join(timeout=180)
        assert p.exitcode == 0
    counts = out.get(timeout=5)
    assert counts == sorted(counts)  # readers only ever see whole, growing snapshots
    wh = DuckDBWarehouseResource(path=path)
    # rows 0 .. 7*5+39 = 74 -> 75 distinct plays, none twice
    assert wh.count("bq_plays") == 75
    assert wh.query("SELECT count(DISTINCT play_key) n FROM bq_plays")["n"].iloc[0] == 75


def test_batch_holds_one_lock_sees_its_writes_and_publishes_once(tmp_path: Path) -> None:
    wh = _wh(tmp_path)
    plays_table.merge_plays(wh, make_plays(5))
    snapshot = tmp_path / "warehouse.snapshot.duckdb"
    published = snapshot.stat().st_ino
    with wh.batch():
        assert plays_table.merge_plays(wh, make_plays(5, start=5)).inserted == 5
        assert wh.count("bq_plays") == 10  # read-your-writes inside the batch
        assert plays_table.merge_plays(wh, make_plays(5, start=10)).inserted == 5
        assert snapshot.stat().st_ino == published  # not yet republished
        reader = duckdb.connect(str(snapshot), read_only=True)
        assert reader.execute("SELECT count(*) FROM bq_plays").fetchall()[0][0] == 5
        reader.close()
    assert snapshot.stat().st_ino != published
    assert wh.count("bq_plays") == 15


def test_a_failed_write_in_a_batch_keeps_the_committed_ones(tmp_path: Path) -> None:
    wh = _wh(tmp_path)
    bad = make_plays(1, start=99)
    bad["played_at"] = [None]
    with pytest.raises(SchemaError), wh.batch():
        plays_table.merge_plays(wh, make_plays(4))
        plays_table.merge_plays(wh, bad)
    assert wh.count("bq_plays") == 4
