"""The export parsers on small fixtures: exact rows out, exact reasons for rejects."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spotify_assets.imports.parsers import (
    FileFormatError,
    FileKind,
    Reject,
    classify,
    iter_export_files,
    iter_json_array,
    normalize_account,
    normalize_extended,
    play_key,
)
from spotify_assets.spotify.normalize import play_key as api_play_key

NOW = datetime(2026, 11, 25, tzinfo=UTC)

EXT_TRACK = {
    "ts": "2023-04-02T18:31:07Z",
    "platform": "android",
    "ms_played": 215000,
    "conn_country": "DE",
    "ip_addr": "192.0.2.1",
    "master_metadata_track_name": "Hyperballad",
    "master_metadata_album_artist_name": "Björk",
    "master_metadata_album_album_name": "Post",
    "spotify_track_uri": "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
    "episode_name": None,
    "episode_show_name": None,
    "spotify_episode_uri": None,
    "reason_start": "trackdone",
    "reason_end": "trackdone",
    "shuffle": True,
    "skipped": False,
    "offline": False,
    "offline_timestamp": None,
    "incognito_mode": False,
}
EXT_EPISODE = {
    **EXT_TRACK,
    "ts": "2023-04-02T19:00:00Z",
    "ms_played": 1800000,
    "master_metadata_track_name": None,
    "master_metadata_album_artist_name": None,
    "master_metadata_album_album_name": None,
    "spotify_track_uri": None,
    "episode_name": "Ep. 12: Clocks",
    "episode_show_name": "Time Talk",
    "spotify_episode_uri": "spotify:episode:5Ep1sodeAAAAAAAAAAAAAA",
    "shuffle": False,
    "skipped": None,
}


def test_extended_track_row_exact() -> None:
    assert normalize_extended(EXT_TRACK, NOW) == {
        "played_at": datetime(2023, 4, 2, 18, 31, 7, tzinfo=UTC),
        "track_id": "4uLU6hMCjMI75M1A2tKUQC",
        "track_name": "Hyperballad",
        "track_uri": "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
        "artist_names": "Björk",
        "primary_artist_name": "Björk",
        "album_name": "Post",
        "ms_played": 215000,
        "skipped": False,
        "shuffle": True,
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "platform": "android",
        "conn_country": "DE",
        "offline": False,
        "incognito_mode": False,
        "content_type": "track",
        "is_play": True,
    }


def test_extended_episode_row_is_stored_but_not_a_play() -> None:
    row = normalize_extended(EXT_EPISODE, NOW)
    assert row["content_type"] == "episode"
    assert row["track_id"] == "5Ep1sodeAAAAAAAAAAAAAA"
    assert row["track_uri"] == "spotify:episode:5Ep1sodeAAAAAAAAAAAAAA"
    assert (row["track_name"], row["primary_artist_name"], row["album_name"]) == (
        "Ep. 12: Clocks",
        "Time Talk",
        None,
    )
    assert row["is_play"] is False
    assert row["skipped"] is None


@pytest.mark.parametrize(("ms", "is_play"), [(29_999, False), (30_000, True), (0, False)])
def test_short_streams_are_flagged(ms: int, is_play: bool) -> None:
    assert normalize_extended({**EXT_TRACK, "ms_played": ms}, NOW)["is_play"] is is_play


def test_local_file_keeps_names_without_id() -> None:
    row = normalize_extended({**EXT_TRACK, "spotify_track_uri": "spotify:local:Me:Demo:Demo+1:180"}, NOW)
    assert row["track_id"] is None and row["track_uri"].startswith("spotify:local:")
    row = normalize_extended({**EXT_TRACK, "spotify_track_uri": None}, NOW)
    assert row["track_id"] is None and row["track_name"] == "Hyperballad"


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"ts": None}, "missing_ts"),
        ({"ts": "2023-04-02"}, "bad_ts"),
        ({"ts": "yesterday at noon"}, "bad_ts"),
        ({"ts": 1680460267}, "bad_type:ts"),
        ({"ts": "2099-01-01T00:00:00Z"}, "ts_in_future"),
        ({"ts": "2001-01-01T00:00:00Z"}, "ts_before_2006"),
        ({"ms_played": None}, "missing_ms_played"),
        ({"ms_played": "215000"}, "bad_ms_played"),
        ({"ms_played": -1}, "bad_ms_played"),
        ({"ms_played": 2.5}, "bad_ms_played"),
        ({"ms_played": False}, "bad_ms_played"),
        ({"shuffle": "true"}, "bad_type:shuffle"),
        ({"master_metadata_track_name": ["x"]}, "bad_type:master_metadata_track_name"),
        ({"spotify_track_uri": "spotify:track:tooShort"}, "bad_uri"),
        ({"spotify_track_uri": None, "master_metadata_track_name": None}, "no_track_or_episode"),
    ],
)
def test_extended_rejects(patch: dict, reason: str) -> None:
    with pytest.raises(Reject) as info:
        normalize_extended({**EXT_TRACK, **patch}, NOW)
    assert info.value.reason == reason


def test_extended_non_object_rejected() -> None:
    for obj in (None, 3, "row", [1]):
        with pytest.raises(Reject, match="not_an_object"):
            normalize_extended(obj, NOW)


def test_extended_offsets_and_naive_times_are_utc() -> None:
    assert normalize_extended({**EXT_TRACK, "ts": "2021-03-28T03:30:00+02:00"}, NOW)["played_at"] == datetime(
        2021, 3, 28, 1, 30, tzinfo=UTC
    )
    assert normalize_extended({**EXT_TRACK, "ts": "2021-10-31T02:30:00"}, NOW)["played_at"] == datetime(
        2021, 10, 31, 2, 30, tzinfo=UTC
    )


def test_account_music_row_exact() -> None:
    row = normalize_account(
        {"endTime": "2021-03-28 02:30", "artistName": "Björk", "trackName": "Jóga", "msPlayed": 12000},
        NOW,
        podcast=False,
    )
    assert row == {
        "played_at": datetime(2021, 3, 28, 2, 30, tzinfo=UTC),
        "track_id": None,
        "track_name": "Jóga",
        "track_uri": None,
        "artist_names": "Björk",
        "primary_artist_name": "Björk",
        "album_name": None,
        "ms_played": 12000,
        "skipped": None,
        "shuffle": None,
        "reason_start": None,
        "reason_end": None,
        "platform": None,
        "conn_country": None,
        "offline": None,
        "incognito_mode": None,
        "content_type": "track",
        "is_play": False,
    }


def test_account_podcast_row() -> None:
    row = normalize_account(
        {
            "endTime": "2020-01-01 08:00",
            "podcastName": "Time Talk",
            "episodeName": "Ep. 1",
            "msPlayed": 600000,
        },
        NOW,
        podcast=True,
    )
    assert (row["content_type"], row["is_play"], row["track_name"], row["primary_artist_name"]) == (
        "episode",
        False,
        "Ep. 1",
        "Time Talk",
    )


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"endTime": None}, "missing_end_time"),
        ({"endTime": "2021-03-28T02:30"}, "bad_end_time"),
        ({"endTime": "2021-13-28 02:30"}, "bad_end_time"),
        ({"endTime": "2021-03-28 02:30:15"}, "bad_end_time"),
        ({"msPlayed": "1"}, "bad_ms_played"),
        ({"trackName": None}, "no_track_or_episode"),
        ({"endTime": "2100-01-01 00:00"}, "ts_in_future"),
    ],
)
def test_account_rejects(patch: dict, reason: str) -> None:
    base = {"endTime": "2021-03-28 02:30", "artistName": "A", "trackName": "T", "msPlayed": 1}
    with pytest.raises(Reject) as info:
        normalize_account({**base, **patch}, NOW, podcast=False)
    assert info.value.reason == reason


def test_play_key_format_matches_the_api_normaliser() -> None:
    when = datetime(2026, 11, 20, 20, 58, 3, 123000, tzinfo=UTC)
    assert play_key(when, "abc", None, None) == "2026-11-20T20:58:03.123000Z|abc"
    assert play_key(when, "abc", None, None) == api_play_key(when, "abc")
    assert play_key(when, None, " Björk ", "Jóga") == "2026-11-20T20:58:03.123000Z|name:björk|jóga"
    assert play_key(when, None, " Björk ", "Jóga") == api_play_key(when, None, " Björk ", "Jóga")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Spotify Extended Streaming History/Streaming_History_Audio_2019-2020_3.json", FileKind.EXTENDED),
        ("MyData/endsong_0.json", FileKind.EXTENDED),
        ("Streaming_History_Video_2019-2024.json", FileKind.VIDEO),
        ("MyData/StreamingHistory_music_0.json", FileKind.ACCOUNT_MUSIC),
        ("MyData/StreamingHistory0.json", FileKind.ACCOUNT_MUSIC),
        ("MyData/StreamingHistory_podcast_0.json", FileKind.ACCOUNT_PODCAST),
        ("MyData/Userdata.json", FileKind.OTHER),
        ("ReadMeFirst_ExtendedStreamingHistory.pdf", FileKind.OTHER),
        ("__MACOSX/._Streaming_History_Audio_2019.json", FileKind.OTHER),
    ],
)
def test_classify(name: str, kind: FileKind) -> None:
    assert classify(name) is kind


def test_json_array_streams_items_and_reports_errors() -> None:
    assert list(iter_json_array(b'\xef\xbb\xbf [{"a": 1}, {"b": 2.5}]')) == [{"a": 1}, {"b": 2.5}]
    assert list(iter_json_array(b"[]")) == []
    got: list[object] = []
    with pytest.raises(FileFormatError, match=r"invalid JSON after 1 row\(s\)"):
        got.extend(iter_json_array(b'[{"a": 1}, {"b": '))
    assert got == [{"a": 1}]
    for bad, msg in [(b"", "empty file"), (b"  \n", "empty file"), (b'{"a": 1}', "expected a JSON array")]:
        with pytest.raises(FileFormatError, match=msg):
            list(iter_json_array(bad))


def test_export_files_from_zip_and_folder_agree(tmp_path: Path) -> None:
    folder = tmp_path / "MyData"
    folder.mkdir()
    (folder / "StreamingHistory_music_0.json").write_text(json.dumps([{"x": 1}]))
    (folder / "Userdata.json").write_text("{}")
    archive = tmp_path / "my_spotify_data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"MyData/{f.name}")
    from_folder = [(Path(f.name).name, f.kind, f.read()) for f in iter_export_files(folder)]
    from_zip = [(Path(f.name).name, f.kind, f.read()) for f in iter_export_files(archive)]
    assert from_folder == from_zip
    assert [k for _, k, _ in from_zip] == [FileKind.ACCOUNT_MUSIC, FileKind.OTHER]
    not_zip = tmp_path / "export.json"
    not_zip.write_text("[]")
    with pytest.raises(FileNotFoundError, match=r"neither a folder nor a \.zip"):
        list(iter_export_files(not_zip))


# -- the engine's reader agrees with the row-by-row normaliser -----------------------------------
def _hostile_rows() -> list[object]:
    """Rows that must leave the engine's fast path (or stay on it) without changing any outcome."""
    ok = dict(EXT_TRACK)
    return [
        ok,
        {**ok, "ts": "2023-04-02T18:31:08+02:00"},  # an offset: Python converts it
        {**ok, "ts": "2023-04-02 18:31:09"},  # no 'T': bad_ts
        {**ok, "ts": "2023-02-30T18:31:09Z"},  # no such day
        {**ok, "ts": "2023-04-02T18:31:60Z"},  # a leap second Python refuses
        {**ok, "ts": "2023-04-02T18:31:10.500Z"},  # fractional seconds
        {**ok, "ts": "2030-01-01T00:00:00Z"},  # the future
        {**ok, "ts": "2001-01-01T00:00:00Z"},  # before 2006
        {**ok, "ts": 1680460267},
        {**ok, "ms_played": 1.0},  # a float that is an integer: kept
        {**ok, "ms_played": 1.5},
        {**ok, "ms_played": -1},
        {**ok, "ms_played": True},
        {**ok, "ms_played": "lots"},
        {**ok, "shuffle": "yes"},
        {**ok, "platform": 7},
        {**ok, "spotify_track_uri": "spotify:track:short"},
        {**ok, "spotify_track_uri": "spotify:local:Artist:Album:Song:215"},
        {**ok, "spotify_track_uri": ""},  # empty: the name keys it
        {**ok, "spotify_track_uri": None, "spotify_episode_uri": "spotify:episode:0123456789abcdefghijkl"},
        {**ok, "spotify_track_uri": None, "spotify_episode_uri": "spotify:episode:bad"},
        {**ok, "spotify_track_uri": None, "master_metadata_track_name": None},
        {**ok, "spotify_track_uri": None, "master_metadata_track_name": "  Song  ", "episode_name": "E"},
        {**ok, "master_metadata_album_artist_name": "", "master_metadata_album_album_name": ""},
        {**ok, "reason_start": "", "conn_country": None},
        {**ok, "master_metadata_track_name": "Emoji \U0001f600 and \u00e9", "skipped": None},
        {},
    ]


def _both_ways(tmp_path: Path, data: bytes) -> tuple[list[tuple[int, object]], list[tuple[int, object]], int]:
    """(row, normalised dict or reject reason) from the engine path and from the Python path,
    and how many rows the engine took as clean itself."""
    import duckdb

    from spotify_assets.imports.parsers import JsonArray, read_extended_with_engine

    def judge(i: int, obj: object) -> tuple[int, object]:
        try:
            return i, normalize_extended(obj, NOW)
        except Reject as rej:
            return i, rej.reason

    path = tmp_path / "file.json"
    path.write_bytes(data)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        engine = read_extended_with_engine(con, str(path), data, NOW)
    assert engine is not None
    got = [judge(i, obj) for i, obj in engine.others]
    for row in engine.clean.to_pylist():
        key = row.pop("play_key")
        i = row.pop("row")
        if key is not None:  # the engine's key is the Python key, character for character
            assert key == play_key(row["played_at"], row["track_id"], None, None)
        got.append((i, row))
    want = [judge(i, obj) for i, obj in enumerate(JsonArray(data))]
    return sorted(got, key=lambda r: r[0]), want, engine.clean.num_rows


def test_engine_reader_agrees_with_the_normaliser_row_for_row(tmp_path: Path) -> None:
    data = json.dumps(_hostile_rows(), ensure_ascii=False).encode()
    got, want, clean = _both_ways(tmp_path, data)
    assert got == want
    assert sum(isinstance(r, dict) for _, r in got) == 11  # the kept rows, the rest quarantined
    assert clean == 8  # canonical rows the engine takes itself; the odd ones go to the normaliser


def test_engine_declines_files_only_python_can_judge(tmp_path: Path) -> None:
    import duckdb

    from spotify_assets.imports.parsers import read_extended_with_engine

    cases = {
        "repeated field": b'[{"ts": "2023-04-02T18:31:07Z", "ts": "2023-04-02T18:31:08Z", "ms_played": 1}]',
        "not an object": b'[{"ts": "2023-04-02T18:31:07Z", "ms_played": 1}, 5]',
        "lone surrogate": b'[{"ts": "2023-04-02T18:31:07Z", "master_metadata_track_name": "\\ud800"}]',
        "truncated": b'[{"ts": "2023-04-02T18:31:07Z", "ms_played": 1}, {"ts": ',
        "empty": b"",
        "integer over 64 bits (ijson calls the file invalid)": b'[{"ts": "2023-04-02T18:31:07Z", "ms_played": 18446744073709551615}]',
        "NaN": b'[{"ts": "2023-04-02T18:31:07Z", "ms_played": NaN}]',
        "trailing comma": b'[{"ts": "2023-04-02T18:31:07Z", "ms_played": 1},]',
        "comment": b'[{"ts": "2023-04-02T18:31:07Z", "ms_played": 1} /* hi */]',
        "garbage after the array": b'[{"ts": "2023-04-02T18:31:07Z", "ms_played": 1}] x',
        "an object": b'{"ts": "2023-04-02T18:31:07Z"}',
    }
    path = tmp_path / "file.json"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        for why, data in cases.items():
            path.write_bytes(data)
            assert read_extended_with_engine(con, str(path), data, NOW) is None, why


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in (Path(__file__).parent / "data" / "bad_exports").glob("Streaming_History_Audio_*.json")
    ),
)
def test_engine_reader_agrees_on_every_corpus_file_it_takes(tmp_path: Path, name: str) -> None:
    data = (Path(__file__).parent / "data" / "bad_exports" / name).read_bytes()
    import duckdb

    from spotify_assets.imports.parsers import read_extended_with_engine

    path = tmp_path / "file.json"
    path.write_bytes(data)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        taken = read_extended_with_engine(con, str(path), data, NOW) is not None
    if taken:
        got, want, _ = _both_ways(tmp_path, data)
        assert got == want
