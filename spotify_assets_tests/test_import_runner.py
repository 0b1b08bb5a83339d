"""The import runner against a real DuckDB warehouse and lake in tmp_path.

Covers: a generated 20k-row export imported twice (exact counts, second adds 0), overlapping
exports, dedupe against plays the API poller already stored (just inside / just outside the
tolerance), account-data id matching, counts that add up (also when another writer races the
merge), and the same behaviour through the generic (BigQuery-style) lookup path.
"""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import spotify_assets.imports.runner as runner
from spotify_assets.import_run import import_export
from spotify_assets.imports.runner import ImportCountError, ImportReport
from spotify_assets.resources.dedupe import FetchingPlaysIndex
from spotify_assets.resources.lake import LakeResource, LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.schema import conform
from spotify_assets.spotify.normalize import play_key as api_play_key
from spotify_assets.tables import plays as plays_table
from spotify_assets.tables.merge_result import MergeResult
from spotify_sandbox.exports import generate_export

T0 = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
TRACK = "4uLU6hMCjMI75M1A2tKUQC"
OTHER = "7xGfFoTpQ2E7fRF5lN10tr"


@pytest.fixture
def wh(tmp_path: Path) -> DuckDBWarehouseResource:
    return DuckDBWarehouseResource(path=str(tmp_path / "data" / "warehouse.duckdb"))


@pytest.fixture
def lake(tmp_path: Path) -> LocalLakeResource:
    return LocalLakeResource(root=str(tmp_path / "data" / "lake"))


@pytest.fixture(params=["duckdb", "fetching"])
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the in-warehouse DuckDB joins and with the generic fetch-and-join path."""
    if request.param == "fetching":
        monkeypatch.setattr(runner, "plays_index", FetchingPlaysIndex)
    return str(request.param)


def api_plays(*plays: tuple[datetime, str, str, str]) -> pd.DataFrame:
    """Rows as the poller stores them (source api, millisecond played_at)."""
    rows = [
        {
            "play_key": api_play_key(at, tid),
            "played_at": at,
            "track_id": tid,
            "track_name": name,
            "track_uri": f"spotify:track:{tid}",
            "artist_names": artist,
            "primary_artist_name": artist,
            "content_type": "track",
            "is_play": True,
            "source": "api",
            "batch_id": "api-batch",
            "ingested_at": at,
        }
        for at, tid, name, artist in plays
    ]
    return conform(pd.DataFrame(rows), "plays")


def ext_row(
    ts: datetime, track_id: str | None = TRACK, name: str = "Song", artist: str = "Artist"
) -> dict[str, Any]:
    return {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ms_played": 180000,
        "master_metadata_track_name": name,
        "master_metadata_album_artist_name": artist,
        "master_metadata_album_album_name": "Album",
        "spotify_track_uri": f"spotify:track:{track_id}" if track_id else None,
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "incognito_mode": False,
        "platform": "ios",
        "conn_country": "SE",
    }


def acct_row(end: datetime, name: str = "Song", artist: str = "Artist", ms: int = 180000) -> dict[str, Any]:
    return {
        "endTime": end.strftime("%Y-%m-%d %H:%M"),
        "artistName": artist,
        "trackName": name,
        "msPlayed": ms,
    }


def write_export(folder: Path, files: dict[str, list[Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        (folder / name).write_text(json.dumps(rows, ensure_ascii=False))
    return folder


def assert_adds_up(report: ImportReport) -> None:
    assert report.rows_read == report.added + report.duplicates + report.quarantined
    assert 0 <= report.unmatched <= report.added
    for f in report.files:
        assert f.rows_read == f.added + f.duplicates + f.quarantined


# -- a generated export, twice ----------------------------------------------------------------
def test_generated_20k_export_imported_twice(tmp_path: Path, wh: DuckDBWarehouseResource, lake) -> None:
    # Three months, not the default ten years: every day of plays is a lake file.
    summary = generate_export(
        tmp_path / "export.zip", 20_000, seed=11, rows_per_file=6_000, start=T0 - timedelta(days=90), end=T0
    )
    progress: list[runner.ProgressEvent] = []

    first = import_export(tmp_path / "export.zip", wh, lake, progress.append, chunk_rows=7_000)
    assert first.rows_read == 20_000
    assert first.added == summary.expected_added
    assert first.quarantined == summary.no_content == first.quarantine_reasons["no_track_or_episode"]
    assert first.duplicates == 0 and first.unmatched == 0
    assert first.files_imported == summary.files == 4
    assert first.files_skipped == {
        "video streaming history (not audio plays)": 1,
        "not a streaming-history file": 1,
    }
    assert_adds_up(first)
    assert progress and progress[-1].done_bytes == progress[-1].total_bytes
    assert progress[-1].rows_read == 20_000

    counts = wh.query(
        "SELECT count(*) AS n, count(*) FILTER (WHERE is_play) AS plays, "
        "count(*) FILTER (WHERE content_type = 'episode') AS episodes, "
        "count(*) FILTER (WHERE incognito_mode) AS incognito, "
        "count(DISTINCT batch_id) AS batches, count(*) FILTER (WHERE source <> 'extended_export') AS other "
        "FROM bq_plays"
    ).iloc[0]
    assert int(counts["n"]) == summary.expected_added
    assert int(counts["plays"]) == summary.expected_plays
    assert int(counts["episodes"]) == summary.episodes
    assert int(counts["batches"]) == summary.files
    assert int(counts["other"]) == 0
    assert int(counts["incognito"]) <= summary.incognito  # no-content rows (quarantined) may be incognito
    raw = lake.list("raw/exports")
    assert len(raw) == summary.files and all(
        p.split("/")[-1].startswith("Streaming_History_Audio_") for p in raw
    )

    second = import_export(tmp_path / "export.zip", wh, lake, chunk_rows=7_000)
    assert second.added == 0
    assert second.duplicates == second.duplicates_same_key == summary.expected_added
    assert second.quarantined == summary.no_content
    assert_adds_up(second)
    assert wh.count("bq_plays") == summary.expected_added
    assert lake.list("raw/exports") == raw


def test_overlapping_exports(tmp_path: Path, wh, lake) -> None:
    full = tmp_path / "full"
    generate_export(full, 3_000, seed=5, rows_per_file=1_000, start=T0 - timedelta(days=30), end=T0)
    audio = sorted((full / "Spotify Extended Streaming History").glob("Streaming_History_Audio_*.json"))
    assert len(audio) == 3
    first, second = tmp_path / "a", tmp_path / "b"
    for dest, part in ((first, audio[:2]), (second, audio[1:])):
        dest.mkdir()
        for f in part:
            shutil.copy(f, dest / f.name)

    a = import_export(first, wh, lake)
    b = import_export(second, wh, lake)
    assert_adds_up(a)
    assert_adds_up(b)
    overlap_file = next(f for f in b.files if f.name == audio[1].name)
    new_file = next(f for f in b.files if f.name == audio[2].name)
    assert (
        overlap_file.added == 0
        and overlap_file.duplicates == overlap_file.rows_read - overlap_file.quarantined
    )
    assert new_file.duplicates == 0 and new_file.added == new_file.rows_read - new_file.quarantined
    assert wh.count("bq_plays") == a.added + b.added
    assert wh.count("bq_plays") == 3_000 - a.quarantined - new_file.quarantined


def test_files_overlapping_within_one_import_are_deduped_across_chunks(tmp_path: Path, wh, lake) -> None:
    """The warehouse only sees an import's plays at its run's merge, so a chunk is also deduped
    against the plays this import landed in earlier chunks: two files sharing ten plays, in chunks
    of ten rows, add each play once and count the repeats as same-key duplicates, per file."""
    rows = [ext_row(T0 + timedelta(minutes=5 * i)) for i in range(30)]
    export = write_export(
        tmp_path / "export",
        {"Streaming_History_Audio_2024_0.json": rows[:20], "Streaming_History_Audio_2024_1.json": rows[10:]},
    )
    report = import_export(export, wh, lake, chunk_rows=10)
    assert (report.added, report.duplicates, report.duplicates_same_key) == (30, 10, 10)
    assert [(f.added, f.duplicates) for f in report.files] == [(20, 0), (10, 10)]
    assert_adds_up(report)
    assert wh.count("bq_plays") == 30


# -- dedupe against the poller's rows -----------------------------------------------------------
@pytest.mark.parametrize(
    ("api_offset", "added"),
    [
        (timedelta(seconds=3, milliseconds=456), 0),
        (timedelta(seconds=5), 0),
        (timedelta(seconds=-5), 0),
        (timedelta(seconds=5, milliseconds=1), 1),
        (timedelta(seconds=-5, milliseconds=-1), 1),
        (timedelta(seconds=30), 1),
    ],
)
def test_extended_row_vs_api_row_tolerance(
    tmp_path: Path, wh, lake, lookup: str, api_offset, added: int
) -> None:
    plays_table.merge_plays(wh, api_plays((T0 + api_offset, TRACK, "Song", "Artist")))
    export = write_export(tmp_path / "export", {"Streaming_History_Audio_2024.json": [ext_row(T0)]})
    report = import_export(export, wh, lake)
    assert (report.added, report.duplicates_window) == (added, 1 - added)
    assert_adds_up(report)
    assert wh.count("bq_plays") == 1 + added


def test_window_dedupe_needs_the_same_track(tmp_path: Path, wh, lake, lookup: str) -> None:
    plays_table.merge_plays(wh, api_plays((T0 + timedelta(seconds=1), OTHER, "Other Song", "Artist")))
    export = write_export(tmp_path / "export", {"Streaming_History_Audio_2024.json": [ext_row(T0)]})
    assert import_export(export, wh, lake).added == 1


def test_same_source_repeats_are_separate_streams(tmp_path: Path, wh, lake, lookup: str) -> None:
    """Within one export a repeat 3 s later is a real second (skip-back) stream: only exact keys dedupe."""
    export = write_export(
        tmp_path / "export",
        {"Streaming_History_Audio_2024.json": [ext_row(T0), ext_row(T0 + timedelta(seconds=3))]},
    )
    assert import_export(export, wh, lake).added == 2


@pytest.mark.parametrize(
    ("api_time", "added"),
    [
        (T0, 0),
        (T0 + timedelta(seconds=59, milliseconds=900), 0),
        (T0 + timedelta(seconds=64, milliseconds=999), 0),
        (T0 - timedelta(seconds=5), 0),
        (T0 + timedelta(seconds=65), 1),
        (T0 - timedelta(seconds=5, milliseconds=1), 1),
    ],
)
def test_account_row_vs_api_row_minute_bucket(
    tmp_path: Path, wh, lake, lookup: str, api_time, added: int
) -> None:
    plays_table.merge_plays(wh, api_plays((api_time, TRACK, "Song", "Artist")))
    export = write_export(tmp_path / "export", {"StreamingHistory_music_0.json": [acct_row(T0)]})
    report = import_export(export, wh, lake)
    assert (report.added, report.duplicates) == (added, 1 - added)  # exactly T0 is even the same key
    assert report.unmatched == 0  # matched through the API row's names
    assert_adds_up(report)


def test_extended_import_after_account_import_dedupes(tmp_path: Path, wh, lake, lookup: str) -> None:
    account = write_export(tmp_path / "acct", {"StreamingHistory_music_0.json": [acct_row(T0)]})
    extended = write_export(
        tmp_path / "ext", {"Streaming_History_Audio_2024.json": [ext_row(T0 + timedelta(seconds=42))]}
    )
    first = import_export(account, wh, lake)
    assert (first.added, first.unmatched) == (1, 1)
    second = import_export(extended, wh, lake)
    assert (second.added, second.duplicates_window) == (0, 1)


# -- account-data matching ----------------------------------------------------------------------
def test_account_rows_match_the_most_common_id_and_keep_the_unmatched(
    tmp_path: Path, wh, lake, lookup: str
) -> None:
    day = timedelta(days=1)
    plays_table.merge_plays(
        wh,
        api_plays(
            (T0 - 5 * day, TRACK, "Song", "Artist"),
            (T0 - 4 * day, TRACK, "Song", "Artist"),
            (T0 - 3 * day, OTHER, "Song", "Artist"),  # the same song on another release, played less
        ),
    )
    export = write_export(
        tmp_path / "export",
        {
            "StreamingHistory_music_0.json": [
                acct_row(T0, name="  SONG ", artist="artist"),
                acct_row(T0 + timedelta(minutes=5), name="Unknown", artist="Nobody", ms=5000),
            ]
        },
    )
    report = import_export(export, wh, lake)
    assert (report.rows_read, report.added, report.unmatched, report.duplicates) == (2, 2, 1, 0)
    rows = wh.query(
        "SELECT track_id, track_uri, track_name, is_play, play_key FROM bq_plays "
        "WHERE source = 'account_export' ORDER BY played_at"
    )
    assert rows["track_id"].tolist()[0] == TRACK
    assert rows["track_uri"].tolist()[0] == f"spotify:track:{TRACK}"
    assert rows["play_key"].tolist() == [
        f"2024-06-01T12:00:00.000000Z|{TRACK}",
        "2024-06-01T12:05:00.000000Z|name:nobody|unknown",
    ]
    assert pd.isna(rows["track_id"].tolist()[1])
    assert rows["is_play"].tolist() == [True, False]
    again = import_export(export, wh, lake)
    assert (again.added, again.duplicates) == (0, 2)


def test_account_rows_match_ids_from_an_extended_file_in_the_same_export(tmp_path: Path, wh, lake) -> None:
    export = write_export(
        tmp_path / "export",
        {
            "StreamingHistory_music_0.json": [acct_row(T0 + timedelta(days=2))],
            "Streaming_History_Audio_2024.json": [ext_row(T0)],
        },
    )
    report = import_export(export, wh, lake)
    assert (report.added, report.unmatched) == (2, 0)


# -- counts -------------------------------------------------------------------------------------
def test_report_check_refuses_numbers_that_do_not_add_up() -> None:
    report = ImportReport(path="x", rows_read=10, added=5, duplicates=2, duplicates_same_key=2, quarantined=2)
    report.quarantine_reasons = {"bad_ts": 2}
    with pytest.raises(ImportCountError, match="rows_read 10"):
        report.check()
    report.added = 6
    report.check()
    report.unmatched = 7
    with pytest.raises(ImportCountError, match="unmatched"):
        report.check()


class RacingWarehouse(DuckDBWarehouseResource):
    """A warehouse where another writer (the poller) lands two of the chunk's keys just before our merge."""

    def before_merge(self, lake: LakeResource, paths: list[str], batch_id: str) -> None:
        plays = pd.concat([pd.read_parquet(io.BytesIO(lake.read_bytes(p))) for p in paths])
        if (plays["source"] == "extended_export").all() and len(plays) > 2:
            sneaky = plays.head(2).copy()
            sneaky["source"] = "api"
            sneaky["ingested_at"] = pd.Timestamp("2026-01-01", tz="UTC")  # the poller's own run
            plays_table.merge_plays(self, sneaky)


_MERGE_FROM_LAKE = plays_table.merge_plays_from_lake


def _merge_from_lake_with_faults(
    warehouse: Any, lake: Any, paths: list[str], batch_id: str, planner: Any = None
) -> MergeResult:
    """The lake merge (a table function, ``tables/plays.py``), after a test double's fault if it has one."""
    if isinstance(warehouse, (RacingWarehouse, CrashingWarehouse)):
        warehouse.before_merge(lake, paths, batch_id)
    return _MERGE_FROM_LAKE(warehouse, lake, paths, batch_id, planner)


@pytest.fixture(autouse=True)
def _merges_see_the_doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plays_table, "merge_plays_from_lake", _merge_from_lake_with_faults)


def test_counts_stay_exact_when_another_writer_races_the_merge(tmp_path: Path, lake, lookup: str) -> None:
    wh = RacingWarehouse(path=str(tmp_path / "race.duckdb"))
    rows = [ext_row(T0 + timedelta(minutes=5 * i)) for i in range(5)]
    export = write_export(tmp_path / "export", {"Streaming_History_Audio_2024.json": rows})
    report = import_export(export, wh, lake)
    assert (report.added, report.duplicates, report.duplicates_same_key) == (3, 2, 2)
    assert report.files[0].added == 3 and report.files[0].duplicates == 2
    assert wh.count("bq_plays") == 5


def test_quarantine_lands_in_the_lake_with_reasons(tmp_path: Path, wh, lake) -> None:
    bad = {**ext_row(T0), "ms_played": "lots"}
    export = write_export(tmp_path / "export", {"Streaming_History_Audio_2024.json": [ext_row(T0), bad]})
    report = import_export(export, wh, lake)
    assert (report.added, report.quarantine_reasons) == (1, {"bad_ms_played": 1})
    (path,) = lake.list("quarantine/exports")
    sha = report.files[0].sha256
    assert path == f"quarantine/exports/{sha}.jsonl"
    (line,) = lake.read_bytes(path).decode().splitlines()
    assert json.loads(line) == {
        "file": "Streaming_History_Audio_2024.json",
        "row": 1,
        "reason": "bad_ms_played",
        "data": bad,
    }
    assert lake.list("raw/exports") == [f"raw/exports/{sha}/Streaming_History_Audio_2024.json"]


def test_quarantine_that_changes_between_imports_keeps_both_versions(tmp_path: Path, wh, lake) -> None:
    """A row in the future at the first import is a fine play at a later one; the lake keeps both records."""
    later = datetime(2031, 1, 1, tzinfo=UTC)
    rows = [ext_row(datetime(2030, 6, 1, tzinfo=UTC)), {**ext_row(T0), "ms_played": "x"}]
    export = write_export(tmp_path / "export", {"Streaming_History_Audio_2030.json": rows})
    first = import_export(export, wh, lake, now=datetime(2026, 11, 25, tzinfo=UTC))
    assert (first.added, first.quarantine_reasons) == (0, {"ts_in_future": 1, "bad_ms_played": 1})
    second = import_export(export, wh, lake, now=later)
    assert (second.added, second.quarantine_reasons) == (1, {"bad_ms_played": 1})
    assert len(lake.list("quarantine/exports")) == 2


# -- the lake first, then the warehouse -----------------------------------------------------------
_MERGES: list[str] = []


class CrashingWarehouse(DuckDBWarehouseResource):
    """Dies in the run's merge, after every chunk's plays were landed in the lake (a crash between the two)."""

    def before_merge(self, lake: LakeResource, paths: list[str], batch_id: str) -> None:
        _MERGES.append(batch_id)
        raise RuntimeError("killed between landing and merging")


def test_imported_plays_are_in_the_lake_and_a_crash_before_the_merge_loses_nothing(
    tmp_path: Path, lake
) -> None:
    """The import lands every chunk, then its run's ``bq_plays`` merges them all: a crash in between
    leaves the warehouse as it was, and the next import merges exactly the landed plays, from the
    files already there (nothing landed twice), with the first import's ``ingested_at``."""
    rows = [ext_row(T0 + timedelta(hours=7 * i)) for i in range(30)]  # 30 plays over 9 days
    export = write_export(tmp_path / "export", {"Streaming_History_Audio_2024.json": rows})
    db = str(tmp_path / "data" / "warehouse.duckdb")
    _MERGES.clear()
    crashing = CrashingWarehouse(path=db)
    first_run = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(RuntimeError, match="killed between landing and merging"):
        import_export(export, crashing, lake, chunk_rows=10, now=first_run)
    assert len(_MERGES) == 1  # one merge for the whole import, in the run
    landed = lake.list("plays")
    assert len({p.rsplit("/", 1)[1] for p in landed}) == 3  # three chunks landed, none merged
    assert all("/played_month=2024-06/" in p for p in landed)  # by month: one file per chunk here
    wh = DuckDBWarehouseResource(path=db)
    assert wh.count("bq_plays") == 0

    report = import_export(export, wh, lake, chunk_rows=10)
    assert (report.added, report.duplicates, report.quarantined) == (30, 0, 0)
    assert wh.count("bq_plays") == 30
    after = lake.list("plays")
    # The crashed import's files were accepted as they were, not written again.
    assert after == landed
    stamps = wh.query("SELECT ingested_at, count(*) AS n FROM bq_plays GROUP BY 1 ORDER BY 1")
    assert list(stamps["n"]) == [30]  # every row carries the first import's time
    assert stamps["ingested_at"].iloc[0] == pd.Timestamp(first_run)

    # Every play of the warehouse is in the lake's plays files, and nothing else is.
    keys = set()
    for path in after:
        keys |= set(pd.read_parquet(io.BytesIO(lake.read_bytes(path)))["play_key"])
    assert keys == set(wh.query("SELECT play_key FROM bq_plays")["play_key"])
    again = import_export(export, wh, lake, chunk_rows=10)
    assert (again.added, again.duplicates_same_key) == (0, 30)
    assert lake.list("plays") == after  # a re-import lands nothing
