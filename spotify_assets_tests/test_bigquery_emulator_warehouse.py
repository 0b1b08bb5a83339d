"""Every ``BigQueryWarehouseResource`` method against a BigQuery that executes SQL.

The real ``google-cloud-bigquery`` client against bqemulator (``fixtures/bigquery.py``), on
an empty table, a one-row table and a 100k-row table: the SQL the warehouse sends really
runs, and the answers (counts, cursors, typed frames) are the database's, not scripted.
What the emulator cannot show (409 on a reused job id) stays in ``test_bigquery_warehouse.py``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
from dagster_gcp import GCSResource
from google.cloud import storage

from spotify_assets.assets.lake import parquet_bytes
from spotify_assets.resources.bigquery_warehouse import BigQueryWarehouseResource
from spotify_assets.resources.dedupe import plays_index
from spotify_assets.resources.gcs_lake import GCSLakeResource
from spotify_assets.schema import column_names, conform, empty_frame
from spotify_assets.tables import admin
from spotify_assets.tables import gaps as gaps_table
from spotify_assets.tables import plays as plays_table
from spotify_assets.tables import top_ten as top_ten_table
from spotify_assets.tables import tracks as tracks_table
from spotify_assets_tests.fixtures.bigquery import BigQueryEmulator
from spotify_assets_tests.fixtures.gcs import GCSEmulator
from spotify_assets_tests.fixtures.plays import BASE
from spotify_assets_tests.fixtures.plays import make_plays as _make_plays

SIZES = [0, 1, 100_000]


def make_plays(n: int, start: int = 0, *, track_count: int = 7) -> pd.DataFrame:
    return _make_plays(n, start, track_count=track_count) if n else empty_frame("plays")


@dataclass
class Loaded:
    warehouse: BigQueryWarehouseResource
    plays: pd.DataFrame


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n}_rows")
def loaded(request: pytest.FixtureRequest, bigquery_emulator: BigQueryEmulator) -> Iterator[Loaded]:
    """A warehouse whose ``bq_plays`` holds ``n`` plays, merged once per module (reads only)."""
    warehouse = bigquery_emulator.warehouse()
    plays = make_plays(request.param, track_count=50)
    result = plays_table.merge_plays(warehouse, plays)
    assert (result.inserted, result.total_rows) == (request.param, request.param)
    yield Loaded(warehouse, plays)


# -- reads on each size ------------------------------------------------------------------
def test_count_and_max_played_at(loaded: Loaded) -> None:
    n = len(loaded.plays)
    assert loaded.warehouse.count("bq_plays") == n
    expected = None if n == 0 else (BASE + timedelta(minutes=4 * (n - 1))).astimezone(UTC)
    assert plays_table.max_played_at(loaded.warehouse) == expected


def test_query_results_are_typed_by_the_schema_even_when_empty(loaded: Loaded) -> None:
    """The cause of the first-run crash: an empty result must still carry its column types."""
    df = loaded.warehouse.query("SELECT * FROM bq_plays ORDER BY played_at LIMIT 5")
    assert list(df.columns) == column_names("plays")
    assert str(df["played_at"].dtype) == "datetime64[us, UTC]"
    assert str(df["duration_ms"].dtype) == "Int64"
    assert str(df["is_play"].dtype) == "boolean"
    assert len(df) == min(5, len(loaded.plays))
    if len(loaded.plays):
        assert df["play_key"].iloc[0] == loaded.plays["play_key"].iloc[0]


def test_import_dedupe_runs_over_the_warehouse(loaded: Loaded) -> None:
    """``raw_recent_tracks``' dedupe against the warehouse (BinderException on an empty table before)."""
    n = len(loaded.plays)
    probe = make_plays(3, start=max(n - 1, 0), track_count=50)
    dups = plays_index(loaded.warehouse).duplicates(probe.assign(idx=range(3)), "api")
    expected_same_key = 1 if n else 0  # the first probe play is the table's newest play
    assert (dups["why"] == "key").sum() == expected_same_key
    assert len(dups) == expected_same_key


def test_export_for_spark_reads_the_same_plays(loaded: Loaded, spark) -> None:
    from spark.top_ten import read_bigquery_plays

    spec = plays_table.export_plays_for_spark(loaded.warehouse, "/unused")
    assert (
        spec == f"bigquery:{loaded.warehouse.table_id('bq_plays')}?endpoint={loaded.warehouse.api_endpoint}"
    )
    frame = read_bigquery_plays(spark, spec, log=lambda _: None)
    assert frame.count() == len(loaded.plays)


def test_the_spark_job_ranks_a_household_read_from_bigquery_exactly(
    bigquery_emulator: BigQueryEmulator, spark
) -> None:
    """Cloud mode's path (the driver reads ``bq_plays``, Spark ranks): the same rows, scope by
    scope, as the Parquet path's exact expectations in test_spark_top_ten."""
    from spark import top_ten
    from spotify_assets_tests.test_spark_top_ten import COMPUTED_AT, EXPECTED, collect, history

    warehouse = bigquery_emulator.warehouse()
    plays_table.merge_plays(
        warehouse, conform(pd.DataFrame(history(), columns=column_names("plays")), "plays")
    )
    frame = top_ten.read_bigquery_plays(
        spark, plays_table.export_plays_for_spark(warehouse, "/unused"), log=lambda _: None
    )
    result = top_ten.top_ten_tracks(frame, computed_at=COMPUTED_AT)
    assert [r[:-1] for r in collect(result)] == EXPECTED


# -- writes on each size -----------------------------------------------------------------
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n}_rows")
def test_merge_plays_is_exact_and_idempotent(bigquery_emulator: BigQueryEmulator, n: int) -> None:
    warehouse = bigquery_emulator.warehouse()
    plays = make_plays(n, track_count=50)
    first = plays_table.merge_plays(warehouse, pd.concat([plays, plays.head(1)], ignore_index=True))
    assert (first.inserted, first.duplicates, first.total_rows) == (n, min(n, 1), n)
    again = plays_table.merge_plays(warehouse, plays)
    assert (again.inserted, again.duplicates, again.total_rows) == (0, n, n)
    overlap = make_plays(2, start=max(n - 1, 0), track_count=50)
    third = plays_table.merge_plays(warehouse, overlap)
    assert third.inserted == (1 if n else 2)
    assert warehouse.count("bq_plays") == n + third.inserted
    keys = warehouse.query("SELECT count(DISTINCT play_key) AS k, count(*) AS c FROM bq_plays")
    assert int(keys["k"].iloc[0]) == int(keys["c"].iloc[0])


@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n}_rows")
def test_merge_from_lake_files_in_gcs(
    bigquery_emulator: BigQueryEmulator, gcs_emulator: GCSEmulator, n: int
) -> None:
    """The cloud path: Parquet in the bucket under a hive-style folder, loaded by URI, merged."""
    warehouse = bigquery_emulator.warehouse()
    lake = GCSLakeResource(bucket=gcs_emulator.bucket, prefix="spotify/lake", gcs=GCSResource(project="p"))
    plays = make_plays(n, track_count=50)
    half = n // 2
    paths = []
    for i, part in enumerate((plays.iloc[:half], plays.iloc[half:])):
        if len(part):
            paths.append(
                lake.write_bytes(
                    f"plays/played_date=2026-11-20/b{i}.parquet", parquet_bytes(part, "plays")
                ).path
            )
    result = plays_table.merge_plays_from_lake(warehouse, lake, paths, f"batch-{n}")
    assert (result.inserted, result.total_rows) == (n, n)
    again = plays_table.merge_plays_from_lake(warehouse, lake, paths, f"batch-{n}")
    assert (again.inserted, again.duplicates, again.total_rows) == (0, n, n)
    if n:
        row = warehouse.query("SELECT * FROM bq_plays ORDER BY played_at LIMIT 1").iloc[0]
        assert row["play_key"] == plays["play_key"].iloc[0]
        assert row["track_name"] == plays["track_name"].iloc[0]  # columns mapped by name


def _features(ids: list[str], status: str, energy: float) -> pd.DataFrame:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    return conform(
        pd.DataFrame(
            [
                {"track_id": t, "status": status, "provider": "spotify", "energy": energy, "fetched_at": now}
                for t in ids
            ],
            columns=["track_id", "status", "provider", "energy", "fetched_at"],
        ),
        "track_features",
    )


@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n}_rows")
def test_track_features_upsert_and_read(bigquery_emulator: BigQueryEmulator, n: int) -> None:
    warehouse = bigquery_emulator.warehouse()
    ids = [f"t{i:06d}" for i in range(n)]
    assert tracks_table.features_of(warehouse, ["t000000"]).empty
    first = tracks_table.merge_features(warehouse, _features(ids, "ok", 0.5))
    assert (first.inserted, first.total_rows) == (n, n)
    # an 'ok' row is never replaced by a worse status; 'unavailable' rows are filled in later
    worse = tracks_table.merge_features(warehouse, _features(ids[:1], "unavailable", 0.1))
    assert (worse.inserted, worse.total_rows) == (0, n)
    got = tracks_table.features_of(warehouse, [*ids[:3], "unknown"])
    assert list(got.columns) == column_names("track_features")
    assert sorted(got["track_id"]) == ids[:3]
    assert set(got["status"]) <= {"ok"} and (got["energy"] == 0.5).all()
    assert str(got["fetched_at"].dtype) == "datetime64[us, UTC]"


def test_track_metadata_upsert_keeps_ok_rows(bigquery_emulator: BigQueryEmulator) -> None:
    from spotify_assets.spotify.normalize import normalize_track_metadata

    warehouse = bigquery_emulator.warehouse()
    track = {
        "id": "a",
        "name": "Song",
        "artists": [{"id": "ar1", "name": "Band"}],
        "album": {
            "id": "al1",
            "name": "LP",
            "images": [{"url": "https://i.scdn.co/image/x", "width": 640, "height": 640}],
        },
    }
    first = tracks_table.merge_metadata(warehouse, normalize_track_metadata({"a": track, "b": None}))
    assert (first.inserted, first.total_rows) == (2, 2)
    # A later not_found for a track once found does not erase what was found.
    again = tracks_table.merge_metadata(warehouse, normalize_track_metadata({"a": None}))
    assert (again.inserted, again.total_rows) == (0, 2)
    got = warehouse.query(
        "SELECT track_id, status, primary_artist_id, album_id, album_image_url FROM track_metadata ORDER BY 1"
    )
    assert got.to_dict("records") == [
        {
            "track_id": "a",
            "status": "ok",
            "primary_artist_id": "ar1",
            "album_id": "al1",
            "album_image_url": "https://i.scdn.co/image/x",
        },
        {
            "track_id": "b",
            "status": "not_found",
            "primary_artist_id": None,
            "album_id": None,
            "album_image_url": None,
        },
    ]


@pytest.mark.parametrize("n", [0, 1, 10], ids=lambda n: f"{n}_rows")
def test_replace_top_ten_replaces_the_whole_mart(bigquery_emulator: BigQueryEmulator, n: int) -> None:
    warehouse = bigquery_emulator.warehouse()
    now = datetime(2026, 11, 21, tzinfo=UTC)

    def mart(k: int, plays: int) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"user_id": "*", "rank": r, "track_id": f"t{r}", "plays": plays - r, "minutes_listened": 1.5}
                | {"first_played_at": now, "last_played_at": now, "computed_at": now}
                for r in range(1, k + 1)
            ],
            columns=column_names("top_ten_tracks"),
        )

    top_ten_table.replace(warehouse, mart(10, 100))
    top_ten_table.replace(warehouse, mart(n, 50))
    got = warehouse.query("SELECT rank, plays FROM top_ten_tracks ORDER BY rank")
    assert got["rank"].tolist() == list(range(1, n + 1))
    assert got["plays"].tolist() == [50 - r for r in range(1, n + 1)]


def test_gaps_are_recorded_once_listed_and_closed(bigquery_emulator: BigQueryEmulator) -> None:
    warehouse = bigquery_emulator.warehouse()
    assert gaps_table.open_gaps(warehouse).empty
    assert list(gaps_table.open_gaps(warehouse).columns) == ["gap_start", "gap_end", "detected_at"]
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    gaps_table.record(warehouse, start, end)
    gaps_table.record(warehouse, start, end)  # a retried run
    gaps_table.record(warehouse, end, end + timedelta(days=1))
    gaps = gaps_table.open_gaps(warehouse)
    assert gaps["gap_start"].tolist() == [pd.Timestamp(start), pd.Timestamp(end)]
    assert gaps_table.close_covered_by(warehouse, start - timedelta(hours=1), end + timedelta(hours=1)) == 1
    assert gaps_table.open_gaps(warehouse)["gap_start"].tolist() == [pd.Timestamp(end)]


def test_empty_frame_merges_nothing(bigquery_emulator: BigQueryEmulator) -> None:
    warehouse = bigquery_emulator.warehouse()
    result = plays_table.merge_plays(warehouse, empty_frame("plays"))
    assert (result.inserted, result.duplicates, result.total_rows) == (0, 0, 0)


def test_lake_upload_is_what_the_load_reads(gcs_emulator: GCSEmulator, gcs_emulator_server) -> None:
    """The two emulators share bytes: the GCS emulator's disk store is the BigQuery emulator's gs:// root."""
    storage.Client().bucket(gcs_emulator.bucket).blob("x/y.parquet").upload_from_string(
        parquet_bytes(make_plays(2), "plays")
    )
    on_disk = gcs_emulator_server.root / gcs_emulator.bucket / "x" / "y.parquet"
    assert pq.read_table(io.BytesIO(on_disk.read_bytes())).num_rows == 2


def test_tables_are_created_from_the_schema_files_partitioned_and_clustered(
    bigquery_emulator: BigQueryEmulator,
) -> None:
    from spotify_assets.schema import load_schema

    warehouse = bigquery_emulator.warehouse()
    warehouse.ensure_tables()
    client = bigquery_emulator.client()
    plays = client.get_table(warehouse.table_id("bq_plays"))
    legacy = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}  # the same types, older names
    assert [(f.name, legacy.get(f.field_type, f.field_type), f.mode) for f in plays.schema] == [
        (f.name, f.type, f.mode) for f in load_schema("plays")
    ]
    assert plays.time_partitioning.type_ == "DAY" and plays.time_partitioning.field == "played_at"
    assert plays.clustering_fields == ["user_id", "track_id"]
    names = {t.table_id for t in client.list_tables(warehouse.dataset)}
    assert names == {"bq_plays", "track_features", "top_ten_tracks", "track_metadata", "ingest_gaps"}


def test_dashboard_resolves_imported_plays_on_bigquery(bigquery_emulator: BigQueryEmulator) -> None:
    """The dashboard's SQL over imported plays, transpiled for BigQuery: the artist page by a
    looked-up id and the top lists (with their LIMIT) give the DuckDB figures."""
    from app import queries
    from app.warehouse import to_bigquery
    from spotify_assets_tests.fixtures.dashboard import dashboard_metadata, dashboard_plays

    warehouse = bigquery_emulator.warehouse()
    plays_table.merge_plays(warehouse, dashboard_plays())
    tracks_table.merge_metadata(warehouse, dashboard_metadata())

    def run(sql: str) -> pd.DataFrame:
        return warehouse.query(to_bigquery(sql, warehouse.project, warehouse.dataset))

    resolved = run(
        f"SELECT primary_artist_id AS id, count(*) AS plays, count(album_image_url) AS covers "
        f"FROM {queries.plays_resolved()} AS plays WHERE is_play AND content_type <> 'episode' GROUP BY 1"
    )
    rows = {
        (r.id if isinstance(r.id, str) else None): (int(r.plays), int(r.covers))
        for r in resolved.itertuples()
    }
    # Aurora Lane's plays all came from an export: ids and covers from the lookups. Basalt's
    # "Magma" (10 plays) is not looked up yet, Fable's local file never will be.
    assert rows["a1"] == (60, 60) and rows["a2"] == (35, 35) and rows[None] == (10 + 5, 0)

    artist = queries.detail_queries("artist", "a1", "UTC")
    summary = run(artist["summary"]).iloc[0]
    assert (summary["name"], int(summary["plays"]), float(summary["minutes"])) == ("Aurora Lane", 60, 230.0)
    assert (summary["artist_id"], summary["album_id"], int(summary["by_name"])) == ("a1", "al1", 0)
    assert run(artist["rank"])["rank"].tolist() == [1, 3, 4]
    top = queries.top_queries("UTC", queries.Period(), limit=3)
    assert run(top["artists"])["id"].tolist() == ["a1", "a2", "a4"]
    assert len(run(top["albums"])) == 3


def test_a_single_user_plays_table_is_upgraded_and_adopted(bigquery_emulator: BigQueryEmulator) -> None:
    """A ``bq_plays`` of the single-user layout (no ``user_id``) gets the column from
    ``ensure_tables`` and its rows are adopted: user set, keys prefixed, doubles dropped."""
    from google.cloud import bigquery

    from spotify_assets.schema import load_schema
    from spotify_assets.spotify.normalize import for_user

    warehouse = bigquery_emulator.warehouse()
    client = bigquery_emulator.client()
    old_schema = [
        bigquery.SchemaField(f.name, f.type, f.mode) for f in load_schema("plays") if f.name != "user_id"
    ]
    client.create_table(bigquery.Table(warehouse.table_id("bq_plays"), schema=old_schema))
    warehouse.ensure_tables()
    upgraded = client.get_table(warehouse.table_id("bq_plays"))
    assert "user_id" in {f.name for f in upgraded.schema}
    assert upgraded.clustering_fields == ["user_id", "track_id"]
    assert plays_table.merge_plays(warehouse, make_plays(5)).inserted == 5  # plays 0-4, the old layout's
    assert (
        plays_table.merge_plays(warehouse, for_user(make_plays(6, start=3), "u1")).inserted == 6
    )  # plays 3-8, u1's
    assert plays_table.max_played_at(warehouse, "u1") == (BASE + timedelta(minutes=4 * 8)).astimezone(UTC)
    assert admin.adopt_legacy_plays(warehouse, "u1") == 3  # plays 3 and 4 were u1's already
    rows = warehouse.query("SELECT play_key, user_id FROM bq_plays")
    assert len(rows) == 9 and set(rows["user_id"]) == {"u1"}
    assert all(k.startswith("u1|") for k in rows["play_key"]) and rows["play_key"].is_unique
    assert admin.adopt_legacy_plays(warehouse, "u1") == 0
