"""``spotify-assets export`` (issue 26, item 5), as a real subprocess over a real import.

A generated Spotify export is imported with ``spotify-assets import``; the plays are exported in
both formats and read back with the project's own import readers (``scrobbles/detect.py``),
which recognise ListenBrainz's and Last.fm's formats: every counted track play comes back once,
at the time it started (its end minus the time it played), with its names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.scrobbles.detect import Format, detect, read_listens
from spotify_assets.scrobbles.export import export_plays
from spotify_assets.scrobbles.listen import Listen
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.bigquery import BigQueryEmulator
from spotify_assets_tests.fixtures.plays import make_plays
from spotify_sandbox.exports import generate_export


def _cli(command: str, *args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPOTIFY_DATA_DIR": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "spotify_assets.cli", command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding one listener's imported history over two calendar years."""
    tmp = tmp_path_factory.mktemp("export")
    archive = tmp / "my_spotify_data.zip"
    generate_export(
        archive,
        900,
        seed=5,
        rows_per_file=400,
        start=datetime(2024, 11, 1, tzinfo=UTC),
        end=datetime(2025, 2, 1, tzinfo=UTC),
    )
    data = tmp / ".data"
    done = _cli("import", str(archive), "--no-progress", data=data)
    assert done.returncode == 0, done.stderr
    return data


def _expected(data: Path, artist: str = "primary_artist_name") -> list[tuple[datetime, str, str]]:
    """(start, ``artist`` column, track) of every counted track play, from the warehouse itself."""
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            f"SELECT played_at, ms_played, {artist}, track_name FROM bq_plays "
            "WHERE is_play AND content_type = 'track'"
        ).fetchall()
    finally:
        con.close()
    return sorted(
        (end.replace(tzinfo=UTC) - timedelta(milliseconds=ms), artist, track)
        for end, ms, artist, track in rows
    )


def _track_ids(data: Path) -> list[str | None]:
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT track_id FROM bq_plays WHERE is_play AND content_type = 'track'"
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def _read_back(path: Path) -> list[Listen]:
    items = list(read_listens(path, now=datetime.now(UTC)))
    # ListenBrainz's user.json is not a listen file: skipped, as in its own exports.
    others = [i for i in items if not isinstance(i, Listen)]
    assert [(getattr(i, "reason", i), getattr(i, "position", "")) for i in others] in (
        [],
        [("not_a_listen_file", "user.json")],
    ), others[:3]
    return [i for i in items if isinstance(i, Listen)]


def test_listenbrainz_export_reads_back_as_every_play_at_its_start(imported: Path, tmp_path: Path) -> None:
    out = tmp_path / "listens.zip"
    done = _cli("export", str(out), data=imported)
    assert done.returncode == 0, done.stderr
    expected = _expected(imported, artist="artist_names")
    assert len(expected) > 500
    assert f"export: {len(expected):,} listens from 2024-" in done.stdout
    assert "streams left out" in done.stdout

    assert detect(out) is Format.LISTENBRAINZ_JSONL
    names = zipfile.ZipFile(out).namelist()
    assert "user.json" in names and "listens/2024/11.jsonl" in names and "listens/2025/1.jsonl" in names
    listens = _read_back(out)
    # ListenBrainz's artist_name is the whole credit, as Spotify joins it.
    got = sorted((listen.started_at, listen.artist, listen.track) for listen in listens)
    assert got == [(start.replace(microsecond=0), a, t) for start, a, t in expected]
    # Every play with a Spotify id carries it (a local file has none).
    assert sorted(listen.spotify_track_id or "" for listen in listens) == sorted(
        track_id or "" for track_id in _track_ids(imported)
    )


def test_csv_export_reads_back_as_lastfm_scrobbles(imported: Path, tmp_path: Path) -> None:
    out = tmp_path / "scrobbles.csv"
    done = _cli("export", str(out), "--format", "csv", data=imported)
    assert done.returncode == 0, done.stderr
    assert detect(out) is Format.LASTFM_CSV
    got = sorted((listen.started_at, listen.artist, listen.track) for listen in _read_back(out))
    assert got == [(start.replace(microsecond=0), a, t) for start, a, t in _expected(imported)]


def test_export_never_overwrites_and_says_why(imported: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken.zip"
    out.write_bytes(b"mine")
    done = _cli("export", str(out), data=imported)
    assert done.returncode == 2
    assert "exists already" in done.stderr
    assert out.read_bytes() == b"mine"
    assert not list(tmp_path.glob(".*partial"))


def test_bigquery_exports_the_same_file_as_duckdb(
    bigquery_emulator: BigQueryEmulator, tmp_path: Path
) -> None:
    """The export's queries in both warehouses' dialects: the same plays give the same bytes."""
    plays = pd.concat([make_plays(30), make_plays(5, 100, source="extended_export")], ignore_index=True)
    plays.loc[30:, "ms_played"] = 61_000
    duck = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    plays_table.merge_plays(duck, plays)
    bq = bigquery_emulator.warehouse()
    plays_table.merge_plays(bq, plays)
    written = []
    for name, warehouse in (("duckdb", duck), ("bigquery", bq)):
        out = tmp_path / f"{name}.csv"
        done = export_plays(warehouse, out, "csv", user_id=None, username="me")
        assert (done.listens, done.left_out) == (35, 0)
        written.append(out.read_bytes())
    assert written[0] == written[1]
    assert len(written[0].splitlines()) == 36  # the header and 35 plays


def test_an_exported_history_imported_back_adds_nothing(imported: Path, tmp_path: Path) -> None:
    """The way out and the way in agree: every exported listen matches the Spotify play it came
    from (same listener, names and start), so the plays table is unchanged."""
    out = tmp_path / "roundtrip.zip"
    assert _cli("export", str(out), data=imported).returncode == 0
    before = _expected(imported, artist="artist_names")
    done = _cli("import", str(out), "--json", "--no-progress", data=imported)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows_read"] == len(before)
    assert (report["added"], report["quarantined"]) == (0, 0), report
    assert report["matched"] == len(before), report
    assert _expected(imported, artist="artist_names") == before
