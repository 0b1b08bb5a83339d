"""The top-ten Spark job on a real (shared) Spark session: the transformation, the CLI and
the Dagster resource's in-process mode, each checked against exact expected rows."""

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark import top_ten
from spotify_assets.resources.spark import SparkResource
from spotify_assets.schema import column_names, conform, load_schema, schema_path

pytestmark = pytest.mark.spark

_SPARK_TYPES = {
    "STRING": T.StringType(),
    "INT64": T.LongType(),
    "FLOAT64": T.DoubleType(),
    "BOOL": T.BooleanType(),
    "TIMESTAMP": T.TimestampType(),
}
DAY = datetime(2024, 3, 1, tzinfo=UTC)
COMPUTED_AT = datetime(2024, 3, 2, 6, 30, 15, 123456, tzinfo=UTC)


#: The household of :func:`history`: its main listener, a second one, and (``None``) plays of
#: the single-user layout not yet adopted, which count in everyone's ranking only.
LISTENER, BOB = "sandbox-listener", "sandbox-bob"
ALL = top_ten.ALL_USERS


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def play(
    hour: int,
    track_id: str | None,
    name: str,
    *,
    duration_ms: int | None = 200_000,
    ms_played: int | None = None,
    content_type: str = "track",
    is_play: bool = True,
    image: str | None = None,
    user: str | None = LISTENER,
) -> dict[str, Any]:
    """One row of the plays table, every column filled the way the lake writes it."""
    return {
        "play_key": f"{user + '|' if user else ''}{at(hour).isoformat()}|{track_id or 'name:' + name}",
        "played_at": at(hour),
        "track_id": track_id,
        "track_name": name,
        "track_uri": f"spotify:{content_type}:{track_id}" if track_id else None,
        "artist_ids": "ar1",
        "artist_names": f"Artist of {name}",
        "primary_artist_id": "ar1",
        "primary_artist_name": f"Artist of {name}",
        "album_id": "al1",
        "album_name": f"Album of {name}",
        "album_release_date": "2020",
        "album_image_url": image or f"https://img/{name}",
        "duration_ms": duration_ms,
        "popularity": 50,
        "explicit": False,
        "context_type": None,
        "context_uri": None,
        "ms_played": ms_played,
        "skipped": None,
        "shuffle": None,
        "reason_start": None,
        "reason_end": None,
        "platform": None,
        "conn_country": None,
        "offline": None,
        "incognito_mode": None,
        "content_type": content_type,
        "is_play": is_play,
        "source": "api",
        "batch_id": "batch-1",
        "ingested_at": DAY + timedelta(days=1),
        "user_id": user,
    }


def history() -> list[dict[str, Any]]:
    """A day of listening built so each ranking rule decides exactly one place.

    The listener's own: a and b both have 3 plays; a wins on minutes (10 vs 6). c and d tie
    on plays and minutes; d was played later. e and f tie on everything but the id. g has one
    play but only 45 s of it was heard (ms_played beats duration_ms); h has no length at all
    (0 minutes). A local file (no Spotify id) has 3 plays and a's minutes: it ranks by its
    names, after a on the last play. Bob plays h three times (as "H live", the latest name)
    and c once; one play of g has no listener. Everyone's ranking therefore differs: h first
    on 4 plays, c above b on minutes (7.5 vs 6), g above d (5.75 vs 5 minutes).
    """
    return [
        play(10, "a", "A old"),
        play(11, "a", "A old"),
        play(12, "a", "A new", image="https://img/a-new"),
        # A skip after the last real play: not a play, so it neither counts nor renames a.
        play(17, "a", "A skipped", ms_played=10_000, is_play=False),
        play(9, "b", "B", duration_ms=180_000, ms_played=60_000),
        play(13, "b", "B", duration_ms=180_000, ms_played=120_000),
        play(14, "b", "B", duration_ms=180_000),
        play(7, "c", "C", duration_ms=150_000),
        play(15, "c", "C", duration_ms=150_000),
        play(6, "d", "D", duration_ms=150_000),
        play(16, "d", "D", duration_ms=150_000),
        play(8, "f", "F", duration_ms=100_000),
        play(8, "e", "E", duration_ms=100_000),
        play(5, "g", "G", duration_ms=300_000, ms_played=45_000),
        play(4, "h", "H", duration_ms=None),
        # Never ranked: episodes, however often they occur.
        *[play(18 + i, "ep1", "Episode", content_type="episode", duration_ms=3_600_000) for i in range(4)],
        # Ranked by its names: a track without a Spotify id (a local file, a scrobble).
        *[play(1 + i, None, "Local file") for i in range(3)],
        # Bob's plays, and a play of no known listener (single-user layout, not adopted).
        *[play(19 + i, "h", "H live", duration_ms=100_000, user=BOB) for i in range(3)],
        play(3, "c", "C", duration_ms=150_000, user=BOB),
        play(20, "ep1", "Episode", content_type="episode", duration_ms=3_600_000, user=BOB),
        play(2, "g", "G", duration_ms=300_000, user=None),
    ]


def expected_row(
    user: str, rank: int, tid: str | None, name: str, plays: int, ms: int, first: datetime, last: datetime
) -> tuple:
    image = "https://img/a-new" if tid == "a" else f"https://img/{name}"
    return (
        user, rank, tid, name, f"Artist of {name}", f"Album of {name}", image, plays, ms / 60000.0, first, last
    )  # fmt: skip


#: The full ranking of :func:`history`, scope by scope as the job orders them (everyone's
#: ``*`` first, then the listeners by id); computed_at left out, checked separately.
EXPECTED = [
    expected_row(ALL, 1, "h", "H live", 4, 300_000, at(4), at(21)),
    expected_row(ALL, 2, "a", "A new", 3, 600_000, at(10), at(12)),
    expected_row(ALL, 3, None, "Local file", 3, 600_000, at(1), at(3)),
    expected_row(ALL, 4, "c", "C", 3, 450_000, at(3), at(15)),
    expected_row(ALL, 5, "b", "B", 3, 360_000, at(9), at(14)),
    expected_row(ALL, 6, "g", "G", 2, 345_000, at(2), at(5)),
    expected_row(ALL, 7, "d", "D", 2, 300_000, at(6), at(16)),
    expected_row(ALL, 8, "e", "E", 1, 100_000, at(8), at(8)),
    expected_row(ALL, 9, "f", "F", 1, 100_000, at(8), at(8)),
    expected_row(BOB, 1, "h", "H live", 3, 300_000, at(19), at(21)),
    expected_row(BOB, 2, "c", "C", 1, 150_000, at(3), at(3)),
    expected_row(LISTENER, 1, "a", "A new", 3, 600_000, at(10), at(12)),
    expected_row(LISTENER, 2, None, "Local file", 3, 600_000, at(1), at(3)),
    expected_row(LISTENER, 3, "b", "B", 3, 360_000, at(9), at(14)),
    expected_row(LISTENER, 4, "d", "D", 2, 300_000, at(6), at(16)),
    expected_row(LISTENER, 5, "c", "C", 2, 300_000, at(7), at(15)),
    expected_row(LISTENER, 6, "e", "E", 1, 100_000, at(8), at(8)),
    expected_row(LISTENER, 7, "f", "F", 1, 100_000, at(8), at(8)),
    expected_row(LISTENER, 8, "g", "G", 1, 45_000, at(5), at(5)),
    expected_row(LISTENER, 9, "h", "H", 1, 0, at(4), at(4)),
]


def expected(n: int) -> list[tuple]:
    """:data:`EXPECTED` cut to the ``n`` best of each scope (what ``n=...`` returns)."""
    return [row for row in EXPECTED if row[1] <= n]


def plays_frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    """A Spark frame with exactly the plays schema (types from ``schemas/plays.json``)."""
    schema = T.StructType([T.StructField(f.name, _SPARK_TYPES[f.type]) for f in load_schema("plays")])
    # Columns a row leaves out are NULL (the nullable ones added later: sources, scrobbled_at).
    return spark.createDataFrame([tuple(r.get(c) for c in schema.fieldNames()) for r in rows], schema)


def collect(frame: DataFrame) -> list[tuple]:
    """Rows as tuples with timestamps as aware UTC datetimes, independent of the machine's zone
    (PySpark's own conversion uses the Python process's local zone)."""
    ts = {f.name for f in frame.schema.fields if isinstance(f.dataType, T.TimestampType)}
    micros = frame.select([F.unix_micros(c).alias(c) if c in ts else F.col(c) for c in frame.columns])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [
        tuple(
            epoch + timedelta(microseconds=v) if c in ts and v is not None else v
            for c, v in zip(frame.columns, row, strict=True)
        )
        for row in micros.collect()
    ]


def pandas_rows(df: pd.DataFrame) -> list[tuple]:
    """The ranked columns of a pandas result as plain Python tuples (computed_at left out; a
    missing value, pandas' ``NA`` in a conformed frame, as None)."""

    def plain(v: Any) -> Any:
        if isinstance(v, pd.Timestamp):
            return v.to_pydatetime()
        return None if v is pd.NA else v

    return [tuple(plain(v) for v in rec) for rec in df.drop(columns=["computed_at"]).itertuples(index=False)]


def write_plays_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Plays as the lake stores them: pandas conformed to the schema, written with pyarrow."""
    frame = conform(pd.DataFrame(rows, columns=column_names("plays")), "plays")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


# --- the transformation -------------------------------------------------------------------


def test_ranks_the_history_exactly(spark: SparkSession) -> None:
    result = top_ten.top_ten_tracks(plays_frame(spark, history()), n=10, computed_at=COMPUTED_AT)
    rows = collect(result)
    assert [r[:-1] for r in rows] == EXPECTED
    assert {r[-1] for r in rows} == {COMPUTED_AT}


def test_n_smaller_than_the_number_of_tracks_keeps_the_best(spark: SparkSession) -> None:
    result = top_ten.top_ten_tracks(plays_frame(spark, history()), n=3, computed_at=COMPUTED_AT)
    assert [r[:-1] for r in collect(result)] == expected(3)


def test_ranking_does_not_depend_on_row_order(spark: SparkSession) -> None:
    shuffled = list(reversed(history()))
    result = top_ten.top_ten_tracks(plays_frame(spark, shuffled).repartition(3), computed_at=COMPUTED_AT)
    assert [r[:-1] for r in collect(result)] == EXPECTED


def test_naive_computed_at_is_taken_as_utc(spark: SparkSession) -> None:
    naive = COMPUTED_AT.replace(tzinfo=None)
    result = top_ten.top_ten_tracks(plays_frame(spark, history()[:1]), computed_at=naive)
    assert collect(result)[0][-1] == COMPUTED_AT


def test_only_non_plays_episodes_and_nameless_plays_without_ids_give_an_empty_ranking(
    spark: SparkSession,
) -> None:
    rows = [
        play(1, "a", "A", is_play=False),
        play(2, "ep", "Ep", content_type="episode"),
        {**play(3, None, "Local"), "primary_artist_name": None},  # no id and no artist: nothing to rank by
    ]
    result = top_ten.top_ten_tracks(plays_frame(spark, rows), computed_at=COMPUTED_AT)
    assert result.collect() == []
    assert result.columns == column_names("top_ten_tracks")


def scrobble(hour: int, artist: str, name: str, *, user: str | None = LISTENER, **kw: Any) -> dict[str, Any]:
    """A play no Spotify play matched (a Last.fm or ListenBrainz scrobble): names, no ids, no length."""
    return {
        **play(hour, None, name, duration_ms=None, user=user, **kw),
        "primary_artist_name": artist,
        "artist_names": artist,
        "artist_ids": None,
        "primary_artist_id": None,
        "album_id": None,
        "album_image_url": None,
    }


def test_plays_without_an_id_count_grouped_by_their_names(spark: SparkSession) -> None:
    """Scrobbles of one track in three spellings are one track of 3 plays, named after the
    latest; a scrobble of the same names as a Spotify track stays its own row (ids are ranked
    by id, ``top_ten.name_key``); the Spotify track's minutes break the tie with it."""
    rows = [
        scrobble(1, "Dust Choir", "Vinyl Hiss"),
        scrobble(2, "DUST CHOIR", "vinyl hiss"),
        scrobble(3, "dust choir", "Vinyl HISS", user=BOB),
        play(4, "s1", "Night Drive", duration_ms=200_000),
        play(5, "s1", "Night Drive", duration_ms=200_000),
        scrobble(6, "Artist of Night Drive", "night drive"),
        scrobble(7, "Artist of Night Drive", "Night Drive"),
    ]
    result = collect(top_ten.top_ten_tracks(plays_frame(spark, rows), computed_at=COMPUTED_AT))

    def row(
        user: str,
        rank: int,
        tid: str | None,
        name: str,
        artist: str,
        plays: int,
        ms: int,
        first: int,
        last: int,
    ):
        album, image = f"Album of {name}", f"https://img/{name}" if tid else None
        return (
            user,
            rank,
            tid,
            name,
            artist,
            album,
            image,
            plays,
            ms / 60000.0,
            at(first),
            at(last),
            COMPUTED_AT,
        )

    assert result == [
        row(ALL, 1, None, "Vinyl HISS", "dust choir", 3, 0, 1, 3),
        row(ALL, 2, "s1", "Night Drive", "Artist of Night Drive", 2, 400_000, 4, 5),
        row(ALL, 3, None, "Night Drive", "Artist of Night Drive", 2, 0, 6, 7),
        row(BOB, 1, None, "Vinyl HISS", "dust choir", 1, 0, 3, 3),
        row(LISTENER, 1, "s1", "Night Drive", "Artist of Night Drive", 2, 400_000, 4, 5),
        row(LISTENER, 2, None, "Night Drive", "Artist of Night Drive", 2, 0, 6, 7),
        row(LISTENER, 3, None, "vinyl hiss", "DUST CHOIR", 2, 0, 1, 2),
    ]


def test_empty_input_gives_an_empty_frame_with_the_schema(spark: SparkSession) -> None:
    result = top_ten.top_ten_tracks(plays_frame(spark, []))
    assert result.count() == 0
    assert [(f.name, f.dataType) for f in result.schema.fields] == [
        (f.name, f.dataType) for f in top_ten.TOP_TEN_SCHEMA.fields
    ]


def test_a_history_without_listeners_gives_everyones_ranking_only(spark: SparkSession) -> None:
    """The single-user layout's plays (no ``user_id`` column at all): one ranking, of everyone."""
    listener_only = [r for r in history() if r["user_id"] == LISTENER]
    frame = plays_frame(spark, listener_only).drop("user_id")
    result = top_ten.top_ten_tracks(frame, computed_at=COMPUTED_AT)
    assert [r[:-1] for r in collect(result)] == [(ALL, *row[1:]) for row in EXPECTED if row[0] == LISTENER]


def test_the_all_listeners_marker_is_the_schemas() -> None:
    from spotify_assets.schema import ALL_LISTENERS

    assert top_ten.ALL_USERS == ALL_LISTENERS


def test_missing_input_column_is_an_input_error(spark: SparkSession) -> None:
    with pytest.raises(top_ten.InputError, match=r"\['ms_played'\]"):
        top_ten.top_ten_tracks(plays_frame(spark, history()).drop("ms_played"))


def test_n_below_one_is_rejected(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        top_ten.top_ten_tracks(plays_frame(spark, []), n=0)


# --- the embedded schemas match the one schema source --------------------------------------


def test_output_schema_equals_the_schema_file() -> None:
    declared = json.loads(Path(schema_path("top_ten_tracks")).read_text())
    assert list(top_ten.TOP_TEN_COLUMNS) == [f["name"] for f in declared]
    assert [(f.name, f.dataType) for f in top_ten.TOP_TEN_SCHEMA.fields] == [
        (f["name"], _SPARK_TYPES[f["type"]]) for f in declared
    ]
    required = {f["name"] for f in declared if f["mode"] == "REQUIRED"}
    assert {f.name for f in top_ten.TOP_TEN_SCHEMA.fields if not f.nullable} == required


def test_input_columns_are_plays_columns_with_their_types() -> None:
    plays = {f.name: _SPARK_TYPES[f.type] for f in load_schema("plays")}
    for field in top_ten.PLAYS_INPUT_SCHEMA.fields:
        assert plays[field.name] == field.dataType, field.name


def test_spark_package_does_not_import_dagster_or_the_project() -> None:
    """The job file is shipped to clusters alone; only PySpark and the standard library."""
    source = Path(top_ten.__file__).read_text()
    imports = [ln.split()[1] for ln in source.splitlines() if ln.startswith(("import ", "from "))]
    assert {m.split(".")[0] for m in imports} <= {
        "__future__",
        "argparse",
        "os",
        "sys",
        "warnings",
        "typing",
        "collections",
        "datetime",
        "pyspark",
    }


# --- the command line, in this process and session -----------------------------------------


def test_main_reads_parquet_and_writes_one_parquet_file(spark: SparkSession, tmp_path: Path) -> None:
    source = write_plays_parquet(tmp_path / "lake" / "plays.parquet", history())
    out = tmp_path / "out"
    before = datetime.now(UTC)
    assert top_ten.main(["--input", str(source), "--output", str(out), "--n", "4"]) == 0
    after = datetime.now(UTC)
    assert len(list(out.glob("part-*.parquet"))) == 1
    result = pd.read_parquet(out)
    assert list(result.columns) == column_names("top_ten_tracks")
    assert pandas_rows(result) == expected(4)
    stamps = set(result["computed_at"])
    assert len(stamps) == 1 and before <= stamps.pop() <= after
    # The shared session is still usable: main() only stops a session it started itself.
    assert spark.range(3).count() == 3


def test_main_reads_a_directory_and_a_glob_and_overwrites(spark: SparkSession, tmp_path: Path) -> None:
    rows = history()
    write_plays_parquet(tmp_path / "lake" / "part-1.parquet", rows[:8])
    write_plays_parquet(tmp_path / "lake" / "part-2.parquet", rows[8:])
    out = tmp_path / "out"
    assert top_ten.main(["--input", str(tmp_path / "lake"), "--output", str(out)]) == 0
    assert pandas_rows(pd.read_parquet(out)) == EXPECTED
    # Only the first file through a glob: a has 3 plays, b 3 (60+120 s + 180 s), c 1.
    assert top_ten.main(["--input", str(tmp_path / "lake" / "part-1*"), "--output", str(out)]) == 0
    result = pd.read_parquet(out)
    assert list(result["user_id"]) == [ALL] * 3 + [LISTENER] * 3
    assert list(result["track_id"]) == ["a", "b", "c"] * 2
    assert list(result["plays"]) == [3, 3, 1] * 2
    assert len(list(out.glob("part-*.parquet"))) == 1


def test_main_on_an_empty_history_writes_an_empty_table(spark: SparkSession, tmp_path: Path) -> None:
    source = write_plays_parquet(tmp_path / "empty.parquet", [])
    out = tmp_path / "out"
    assert top_ten.main(["--input", str(source), "--output", str(out)]) == 0
    result = pd.read_parquet(out)
    assert result.empty
    assert list(result.columns) == column_names("top_ten_tracks")
    assert str(result["first_played_at"].dtype) == "datetime64[us, UTC]"
    empty_dir = tmp_path / "no-files"
    empty_dir.mkdir()
    assert top_ten.main(["--input", str(empty_dir), "--output", str(tmp_path / "out2")]) == 0
    assert pd.read_parquet(tmp_path / "out2").empty


def test_main_rejects_bad_input_with_a_clear_message(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.parquet"
    assert top_ten.main(["--input", str(missing), "--output", str(tmp_path / "o1")]) == 2
    assert f"input path does not exist: {missing}" in capsys.readouterr().err

    assert (
        top_ten.main(["--input", str(tmp_path / "nothing-*.parquet"), "--output", str(tmp_path / "o2")]) == 2
    )
    assert "input path does not exist" in capsys.readouterr().err

    nanos = tmp_path / "nanos.parquet"
    pd.DataFrame({"played_at": pd.Series([at(1)], dtype="datetime64[ns, UTC]")}).to_parquet(nanos)
    assert top_ten.main(["--input", str(nanos), "--output", str(tmp_path / "o0")]) == 2
    assert "plays timestamps must be microseconds" in capsys.readouterr().err

    bad = tmp_path / "bad.parquet"
    pd.DataFrame(
        {"played_at": pd.Series([at(1)], dtype="datetime64[us, UTC]"), "track_id": ["a"]}
    ).to_parquet(bad)
    assert top_ten.main(["--input", str(bad), "--output", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert "[top_ten] error: input lacks plays column(s)" in err and "'is_play'" in err
    assert not (tmp_path / "o3").exists()


def test_main_argument_errors_exit_nonzero() -> None:
    with pytest.raises(SystemExit) as exc:
        top_ten.main(["--input", "x"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        top_ten.main(["--input-format", "bigquery", "--input-table", "p.d.t"])
    assert exc.value.code == 2


def test_bigquery_mode_without_the_connector_says_which_package_is_missing(
    spark: SparkSession, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--input-format",
        "bigquery",
        "--input-table",
        "p.d.bq_plays",
        "--output-table",
        "p.d.top_ten_tracks",
    ]
    assert top_ten.main(argv) == 3
    assert "spark-bigquery-with-dependencies_2.13" in capsys.readouterr().err


# --- the Dagster resource, in-process --------------------------------------------------------


def test_resource_session_mode_returns_a_conformed_frame(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_plays_parquet(tmp_path / "plays.parquet", history())
    with caplog.at_level(logging.INFO, logger="spark-test"):
        result = SparkResource().run_top_ten(
            str(source), str(tmp_path / "top"), n=10, log=logging.getLogger("spark-test")
        )
    # The shared session was reused (local[2]), and the job's progress went to the given log.
    assert "Running top-ten on an in-process session, master local[2]" in caplog.messages
    assert (
        "[top_ten] ranked 20 row(s): everyone's and 2 listener(s)' top 10" in caplog.messages
    )  # len(EXPECTED)
    assert pandas_rows(result) == EXPECTED
    expected_dtypes = conform(result, "top_ten_tracks").dtypes
    assert list(result.dtypes) == list(expected_dtypes)
    assert str(result["rank"].dtype) == "Int64" and str(result["minutes_listened"].dtype) == "Float64"
    assert str(result["track_id"].dtype) == "string"


def test_resource_runs_inside_a_dagster_asset(spark: SparkSession, tmp_path: Path) -> None:
    source = write_plays_parquet(tmp_path / "plays.parquet", history())

    @dg.asset
    def ranked(context: dg.AssetExecutionContext, spark_job: SparkResource) -> pd.DataFrame:
        return spark_job.run_top_ten(str(source), str(tmp_path / "top"), n=2, log=context.log)

    res = dg.materialize([ranked], resources={"spark_job": SparkResource(master="local[2]")})
    assert res.success
    assert pandas_rows(res.output_for_node("ranked")) == expected(2)


def test_submit_command_runs_the_job_file_with_the_config() -> None:
    resource = SparkResource(
        master="spark://127.0.0.1:7077", spark_conf={"spark.sql.shuffle.partitions": "8"}
    )
    cmd = resource.submit_command("in.parquet", "out", n=5)
    assert cmd[0].endswith("bin/spark-submit") and Path(cmd[0]).exists()
    assert cmd[1:3] == ["--master", "spark://127.0.0.1:7077"]
    assert "spark.sql.shuffle.partitions=8" in cmd and "spark.sql.session.timeZone=UTC" in cmd
    assert "spark.sql.shuffle.partitions=4" not in cmd
    assert cmd[-7:] == [
        str(Path(top_ten.__file__).resolve()),
        "--input",
        "in.parquet",
        "--output",
        "out",
        "--n",
        "5",
    ]


def test_bigquery_input_names_a_table_and_an_optional_endpoint() -> None:
    """Cloud mode hands over ``bigquery:<table>[?endpoint=URL]``; the driver reads it (the read
    itself runs against the BigQuery emulator in test_bigquery_emulator_warehouse.py)."""
    from spark.top_ten import InputError, parse_bigquery_input

    assert parse_bigquery_input("bigquery:p.d.bq_plays") == ("p.d.bq_plays", None)
    assert parse_bigquery_input("bigquery:p.d.t?endpoint=http://127.0.0.1:9050") == (
        "p.d.t",
        "http://127.0.0.1:9050",
    )
    for bad in ("bigquery:d.t", "bigquery:p..t", "bigquery:"):
        with pytest.raises(InputError):
            parse_bigquery_input(bad)


def test_bigquery_input_is_never_looked_for_on_the_filesystem(tmp_path: Path) -> None:
    from spark.top_ten import check_local_input

    check_local_input("bigquery:proj.dataset.bq_plays?endpoint=http://127.0.0.1:1")  # no InputError
