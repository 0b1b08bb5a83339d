"""Issue 26's "Done when": one listener's Spotify export, Last.fm CSV and ListenBrainz export that
overlap, imported through ``spotify-assets import``'s one path (a run of ``history_import`` +
``bq_plays`` on a real DuckDB warehouse and a local lake), in several orders and each twice,
give the exact same plays table; ``rebuild-warehouse`` gives it too.

The exports (as in test_scrobbles_overlap.py, which pins ``matching.decide`` alone): S1-S4 on
Spotify (S2 paused 2 minutes, S3 a 5-second try no scrobbler saw, S4 a repeat of S2's track),
V1-V3 on another player (V1 an hour before, V2 sent to both services and repeated by Last.fm's
exporter, V3 to ListenBrainz only), a Last.fm row with a broken clock (quarantined), a
ListenBrainz listen repeated in a second file. 7 plays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from spotify_assets.import_run import import_export
from spotify_assets.imports.runner import ImportReport
from spotify_assets.rebuild import rebuild_from_lake
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.scrobbles.listen import LASTFM, LISTENBRAINZ, SPOTIFY

NOW = datetime(2026, 12, 1, tzinfo=UTC)
T = datetime(2021, 1, 31, 14, 0, tzinfo=UTC)
USER = "listener1"
TRACK_IDS = {"Help! - Remastered 2009": "7DD7eSuYSC5xk2ArU62esN", "Airbag": "6zN9s4lC3Qrk8F3d0U4m2Z"}
REPO = Path(__file__).resolve().parents[1]


def _at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def _uts(when: datetime) -> int:
    return int(when.timestamp())


def _spotify_row(artist: str, track: str, start: datetime, ms: int, pause_s: int = 0) -> dict[str, object]:
    end = start + timedelta(milliseconds=ms, seconds=pause_s)
    return {
        "ts": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "username": USER,
        "ms_played": ms,
        "master_metadata_track_name": track,
        "master_metadata_album_artist_name": artist,
        "master_metadata_album_album_name": "Album",
        "spotify_track_uri": f"spotify:track:{TRACK_IDS[track]}",
        "reason_end": "trackdone",
    }


def write_exports(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    spotify = folder / "my_spotify_data"
    spotify.mkdir()
    rows = [
        _spotify_row("The Beatles", "Help! - Remastered 2009", _at(0), 138_000),  # S1
        _spotify_row("Radiohead", "Airbag", _at(2.3), 284_000, pause_s=120),  # S2
        _spotify_row("Radiohead", "Airbag", _at(9.0), 5_000),  # S3: a try, never scrobbled
        _spotify_row("Radiohead", "Airbag", _at(9.1), 284_000),  # S4
    ]
    (spotify / "Streaming_History_Audio_2021.json").write_text(json.dumps(rows))

    lastfm = folder / "lastfm.csv"
    v2 = f'{_uts(_at(20))},"31 Jan 2021, 14:20",Björk,,Post,,Hyperballad,\n'
    lastfm.write_text(
        "uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n"
        f"{_uts(_at(30 - 60))},,Björk,,Homogenic,,Jóga,\n"  # V1, an hour before
        f'{_uts(_at(0)) + 1},,The Beatles,,Help!,,"Help!",\n'  # S1, Last.fm's corrected name
        f"{_uts(_at(2.3)) + 1},,Radiohead,,OK Computer,,Airbag,\n"  # S2
        f"{_uts(_at(9.1))},,radiohead,,OK Computer,,AIRBAG,\n"  # S4
        + v2  # V2, sent to both services
        + v2  # an exporter's page boundary repeats it
        + "0,,Broken,,,,Clock,\n"  # quarantined: time_before_2002
    )

    def lb(artist: str, track: str, when: datetime) -> str:
        listen = {"listened_at": _uts(when), "track_metadata": {"artist_name": artist, "track_name": track}}
        return json.dumps(listen) + "\n"

    listenbrainz = folder / "listenbrainz.zip"
    with zipfile.ZipFile(listenbrainz, "w") as zf:
        zf.writestr("user.json", '{"username": "someone"}')
        zf.writestr(
            "listens/2021/1.jsonl",
            lb("The Beatles", "Help! - Remastered 2009", _at(0))  # S1
            + lb("Radiohead", "Airbag", _at(9.1) + timedelta(seconds=2))  # S4
            + lb("Björk", "Hyperballad", _at(20) + timedelta(seconds=3))  # V2
            + lb("Queen", "Don\u2019t Stop Me Now", _at(30)),  # V3
        )
        zf.writestr("listens/2021/2.jsonl", lb("The Beatles", "Help! - Remastered 2009", _at(0)))  # S1 again
    return {SPOTIFY: spotify, LASTFM: lastfm, LISTENBRAINZ: listenbrainz}


#: What each export holds: rows read (quarantined included), quarantined, "now playing" lines.
READ = {SPOTIFY: (4, 0), LASTFM: (7, 1), LISTENBRAINZ: (5, 0)}

EXPECTED_SOURCES = sorted(
    [
        "lastfm,listenbrainz,spotify",  # S1
        "lastfm,spotify",  # S2 (paused)
        "spotify",  # S3 (the try; NULL in the table, read as spotify)
        "lastfm,listenbrainz,spotify",  # S4
        "lastfm",  # V1
        "lastfm,listenbrainz",  # V2
        "listenbrainz",  # V3
    ]
)


def _table(wh: DuckDBWarehouseResource) -> pd.DataFrame:
    rows = wh.query("SELECT * FROM bq_plays ORDER BY play_key")
    return rows.reset_index(drop=True)


def _import(path: Path, wh: DuckDBWarehouseResource, lake: LocalLakeResource) -> ImportReport:
    return import_export(path, wh, lake, now=NOW, user_id=USER)


def _import_all(order: tuple[str, ...], exports: dict[str, Path], root: Path) -> pd.DataFrame:
    wh = DuckDBWarehouseResource(path=str(root / "wh.duckdb"))
    lake = LocalLakeResource(root=str(root / "lake"))
    for round_ in (1, 2):
        for source in order:
            report = _import(exports[source], wh, lake)
            read, quarantined = READ[source]
            assert report.rows_read == read, (source, report.to_dict())
            assert report.quarantined == quarantined
            # The report's sum, checked by the report itself too (ImportReport.check).
            assert report.rows_read == report.added + report.duplicates + report.matched + report.quarantined
            # A scrobble added is a play of its own, without a Spotify id; Spotify's rows carry theirs.
            assert report.unmatched == (0 if source == SPOTIFY else report.added), (source, report.to_dict())
            if round_ == 2:
                assert (report.added, report.matched) == (0, 0), (order, source, report.to_dict())
    table = _table(wh)
    # The rebuild from the lake gives the same table.
    fresh = DuckDBWarehouseResource(path=str(root / "rebuilt.duckdb"))
    rebuild_from_lake(fresh, lake)
    pd.testing.assert_frame_equal(_table(fresh), table)
    return table


ORDERS = [
    (LASTFM, LISTENBRAINZ, SPOTIFY),  # the scrobbles first: Spotify's rows replace theirs
    (SPOTIFY, LISTENBRAINZ, LASTFM),
    (LISTENBRAINZ, SPOTIFY, LASTFM),
]


def test_overlapping_exports_in_any_order_and_twice_give_the_same_plays(tmp_path: Path) -> None:
    exports = write_exports(tmp_path / "exports")
    tables = [_import_all(order, exports, tmp_path / f"order{i}") for i, order in enumerate(ORDERS)]
    first = tables[0]
    assert len(first) == 7
    sources = sorted(first["sources"].fillna(SPOTIFY))
    assert sources == EXPECTED_SOURCES
    spotify_plays = first[first["sources"].fillna(SPOTIFY).str.contains(SPOTIFY)]
    assert spotify_plays["track_id"].notna().all() and len(spotify_plays) == 4
    assert set(spotify_plays["source"]) == {"extended_export"}  # Spotify's rows won
    idless = first[first["track_id"].isna()]
    assert set(idless["source"]) <= {LASTFM, LISTENBRAINZ} and len(idless) == 3
    for other in tables[1:]:
        pd.testing.assert_frame_equal(other, first)


def test_the_command_says_which_source_it_found_and_counts_add_up(tmp_path: Path) -> None:
    exports = write_exports(tmp_path / "exports")
    data = tmp_path / "data"
    env_cmd = [sys.executable, "-m", "spotify_assets.cli", "import", "--no-progress", "--data-dir", str(data)]
    run = subprocess.run(
        [*env_cmd, str(exports[LASTFM])], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "found                a Last.fm CSV export (uts," in run.stdout
    assert "rows read                     7" in run.stdout
    assert "plays added                   5" in run.stdout  # V1, S1, S2, S4, V2 (its repeat: duplicate)
    assert "(unmatched, kept without a track id: 5)" in run.stdout  # no Spotify play to match yet
    assert "duplicates skipped            1" in run.stdout
    assert "quarantined                   1" in run.stdout
    again = subprocess.run(
        [*env_cmd, str(exports[LISTENBRAINZ])], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert "found                a ListenBrainz export (JSON lines)" in again.stdout
    assert "matched to another source     3" in again.stdout  # S1, S4, V2
    assert "plays added                   1" in again.stdout  # V3
    assert "(unmatched, kept without a track id: 1)" in again.stdout


@pytest.mark.parametrize("shape", ["headerless", "json"])
def test_the_other_lastfm_shapes_import(tmp_path: Path, shape: str) -> None:
    if shape == "headerless":
        path = tmp_path / "scrobbles.csv"
        path.write_text(
            "Björk,Post,Hyperballad,31 Jan 2021 14:20\nQueen,,Bohemian Rhapsody,31 Jan 2021 15:00\n"
        )
    else:
        path = tmp_path / "page.json"
        tracks = [
            {
                "artist": {"#text": "Queen"},
                "name": "Now",
                "album": {"#text": ""},
                "@attr": {"nowplaying": "true"},
            },
            {
                "artist": {"#text": "Björk"},
                "name": "Hyperballad",
                "album": {"#text": "Post"},
                "date": {"uts": str(_uts(_at(20)))},
            },
        ]
        path.write_text(json.dumps({"recenttracks": {"track": tracks}}))
    wh = DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb"))
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    report = _import(path, wh, lake)
    assert report.found.startswith("a Last.fm") or report.found.startswith("Last.fm")
    assert report.added == (2 if shape == "headerless" else 1)
    assert report.skipped == (0 if shape == "headerless" else 1)
    assert _import(path, wh, lake).added == 0
    assert wh.count("bq_plays") == report.added


def test_history_import_needs_a_path_or_inbox_files_not_neither(tmp_path: Path) -> None:
    """An empty path must not import the working directory (``Path("")`` is ``.``)."""
    import dagster as dg

    from spotify_assets.assets.history import HistoryImportConfig, history_import
    from spotify_assets.assets.lake import gcs_csv
    from spotify_assets.assets.warehouse import bq_plays
    from spotify_assets.io_managers import LakeIOManager

    result = dg.materialize(
        [history_import, bq_plays, dg.SourceAsset(gcs_csv.key)],
        resources={
            "warehouse": DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb")),
            "lake": LocalLakeResource(root=str(tmp_path / "lake")),
            "io_manager": LakeIOManager(store=LocalLakeResource(root=str(tmp_path / "handoff"))),
        },
        run_config=dg.RunConfig(ops={"history_import": HistoryImportConfig()}),
        raise_on_error=False,
    )
    assert not result.success
    assert not (tmp_path / "lake" / "plays").exists()
