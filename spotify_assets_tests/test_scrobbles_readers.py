"""The readers of Last.fm and ListenBrainz exports and ``detect``: real files in a temporary
folder, every shape the issue lists, and what each row becomes (listen, reject with its reason,
or a skip the report counts)."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spotify_assets.scrobbles import lastfm
from spotify_assets.scrobbles.detect import Format, UnknownFormat, detect, read_listens
from spotify_assets.scrobbles.listen import LASTFM, LISTENBRAINZ, Listen, Mbids, Rejected, Skipped

NOW = datetime(2026, 12, 1, tzinfo=UTC)
T0 = 1612104960  # 2021-01-31 14:56:00 UTC
SPOTIFY_ID = "4uLU6hMCjMI75M1A2tKUQC"


def _listens(items: list[object]) -> list[Listen]:
    return [i for i in items if isinstance(i, Listen)]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_lastfm_csv_with_header(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "scrobbles.csv",
        "uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n"
        f'{T0},"31 Jan 2021, 14:56",The Beatles,b10bbbfc,Help!,,"Help! - Remastered 2009",rec-1\n'
        ",,Nobody,,,,No Time,\n"
        f"0,,Old,,,,Broken clock,\n"
        f"{T0 + 60},,Only Artist,,,,,\n"
        f"{T0 + 120},too,many,columns,here,x,y,z,extra\n"
        "\n"
        f',"31 Jan 2021, 15:10",Time From Text,,,,Track,\n',
    )
    assert detect(f) is Format.LASTFM_CSV
    items = list(read_listens(f, NOW))
    first = items[0]
    assert first == Listen(
        source=LASTFM,
        artist="The Beatles",
        track="Help! - Remastered 2009",
        album="Help!",
        started_at=datetime(2021, 1, 31, 14, 56, tzinfo=UTC),
        position="scrobbles.csv:2",
        mbids=Mbids(recording="rec-1", release=None, artists=("b10bbbfc",)),
    )
    assert [(i.reason, i.position) for i in items if isinstance(i, Rejected)] == [
        ("missing_time", "scrobbles.csv:3"),
        ("time_before_2002", "scrobbles.csv:4"),
        ("missing_track", "scrobbles.csv:5"),
        ("bad_columns", "scrobbles.csv:6"),
    ]
    last = items[-1]
    assert isinstance(last, Listen) and last.precision_s == 60
    assert last.started_at == datetime(2021, 1, 31, 15, 10, tzinfo=UTC) and last.position == "scrobbles.csv:8"
    assert len(items) == 6  # the blank line is not a row


def test_lastfm_headerless_csv(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "export.csv",
        "Daft Punk,Discovery,One More Time,\n"  # playing at export time: no date yet
        "Daft Punk,Discovery,One More Time,31 Jan 2021 14:56\n"
        "Björk,Homogenic,Jóga,01 Feb 2021 09:05\n"
        "Nobody,,Undated,\n"
        "Broken,,Date,31 Foo 2021 14:56\n",
    )
    assert detect(f) is Format.LASTFM_CSV_HEADERLESS
    items = list(read_listens(f, NOW))
    assert items[0] == Skipped(lastfm.NOW_PLAYING, "export.csv:1")
    listens = _listens(items)
    assert [(x.artist, x.track, x.started_at, x.precision_s) for x in listens] == [
        ("Daft Punk", "One More Time", datetime(2021, 1, 31, 14, 56, tzinfo=UTC), 60),
        ("Björk", "Jóga", datetime(2021, 2, 1, 9, 5, tzinfo=UTC), 60),
    ]
    assert [(i.reason, i.position) for i in items if isinstance(i, Rejected)] == [
        ("missing_date", "export.csv:4"),
        ("bad_date", "export.csv:5"),
    ]


def _page(tracks: list[dict[str, object]]) -> dict[str, object]:
    return {"recenttracks": {"track": tracks, "@attr": {"user": "someone", "page": "1", "totalPages": "2"}}}


def _track(name: str, uts: int | None, *, artist: str = "Radiohead", mbid: str = "") -> dict[str, object]:
    item: dict[str, object] = {
        "artist": {"mbid": "a-mbid", "#text": artist},
        "album": {"mbid": "", "#text": "OK Computer"},
        "name": name,
        "mbid": mbid,
        "url": "https://www.last.fm/music/x",
    }
    if uts is None:
        item["@attr"] = {"nowplaying": "true"}
    else:
        item["date"] = {"uts": str(uts), "#text": "whatever"}
    return item


def test_lastfm_json_pages_one_file_and_a_folder(tmp_path: Path) -> None:
    page1 = _page([_track("Airbag", None), _track("Airbag", T0, mbid="rec-a"), _track("Lucky", T0 - 300)])
    # The next page repeats the last row of the one before (an exporter's page boundary).
    page2 = _page([_track("Lucky", T0 - 300), {"name": "No artist", "date": {"uts": str(T0 - 600)}}])
    single = tmp_path / "page.json"
    single.write_text(json.dumps(page1, indent=2))
    assert detect(single) is Format.LASTFM_JSON
    items = list(read_listens(single, NOW))
    assert items[0] == Skipped(lastfm.NOW_PLAYING, "page.json#0")
    assert [(x.track, x.started_at.timestamp(), x.mbids.recording, x.album) for x in _listens(items)] == [
        ("Airbag", T0, "rec-a", "OK Computer"),
        ("Lucky", T0 - 300, None, "OK Computer"),
    ]

    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "page-1.json").write_text(json.dumps(page1))
    (folder / "page-2.json").write_text(json.dumps(page2))
    (folder / "notes.txt").write_text("my export\n")
    assert detect(folder) is Format.LASTFM_JSON
    items = list(read_listens(folder, NOW))
    assert len(_listens(items)) == 3  # the repeated row is read; matching.decide counts it a duplicate
    assert [i.reason for i in items if isinstance(i, Rejected)] == ["missing_artist"]
    assert Skipped("not_a_listen_file", "notes.txt") in items

    # An array of pages, and a page whose one track is an object rather than a list.
    pages = tmp_path / "all.json"
    pages.write_text(json.dumps([page2, {"recenttracks": {"track": _track("Solo", T0 + 900)}}]))
    assert detect(pages) is Format.LASTFM_JSON
    assert [x.track for x in _listens(list(read_listens(pages, NOW)))] == ["Lucky", "Solo"]


def _lb_listen(ts: int | None, track: str = "Army of Me", **info: object) -> dict[str, object]:
    listen: dict[str, object] = {
        "track_metadata": {
            "artist_name": "Björk",
            "track_name": track,
            "release_name": "Post",
            "additional_info": info,
        },
        "recording_msid": "x",
    }
    if ts is not None:
        listen["listened_at"] = ts
    return listen


def test_listenbrainz_json_array(tmp_path: Path) -> None:
    f = tmp_path / "someone_lb-2026-12-01.json"
    f.write_text(
        json.dumps(
            [
                _lb_listen(
                    T0,
                    duration_ms=233_000,
                    spotify_id=f"https://open.spotify.com/track/{SPOTIFY_ID}?si=abc",
                    recording_mbid="rec-1",
                    artist_mbids=["art-1"],
                    media_player="Pano Scrobbler",
                ),
                _lb_listen(T0 + 300, duration=200, spotify_id="https://open.spotify.com/album/whatever"),
                _lb_listen(None),
                {"listened_at": T0, "track_metadata": {"artist_name": "", "track_name": "x"}},
                _lb_listen(T0, duration_ms="long"),
            ]
        )
    )
    assert detect(f) is Format.LISTENBRAINZ_JSON
    items = list(read_listens(f, NOW))
    first, second = _listens(items)
    assert first.source == LISTENBRAINZ and first.started_at == datetime(2021, 1, 31, 14, 56, tzinfo=UTC)
    assert (first.duration_ms, first.spotify_track_id, first.player) == (
        233_000,
        SPOTIFY_ID,
        "Pano Scrobbler",
    )
    assert first.mbids == Mbids(recording="rec-1", release=None, artists=("art-1",))
    assert (second.duration_ms, second.spotify_track_id) == (200_000, None)
    assert [(i.reason, i.position) for i in items if isinstance(i, Rejected)] == [
        ("missing_listened_at", f"{f.name}#2"),
        ("missing_artist_name", f"{f.name}#3"),
        ("bad_type:duration_ms", f"{f.name}#4"),
    ]


def test_listenbrainz_zip_of_json_lines(tmp_path: Path) -> None:
    archive = tmp_path / "listenbrainz_someone.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("user.json", json.dumps({"user_id": 1, "username": "someone"}))
        zf.writestr("feedback.jsonl", json.dumps({"recording_msid": "x", "score": 1}) + "\n")
        zf.writestr(
            "listens/2021/1.jsonl",
            "\n".join(json.dumps(_lb_listen(T0 + i * 240, f"Track {i}")) for i in range(3))
            + "\n\n{not json\n",
        )
        mapped = _lb_listen(T0 + 2000)
        mapped["track_metadata"]["mbid_mapping"] = {"recording_mbid": "mapped", "artist_mbids": ["a"]}  # type: ignore[index]
        zf.writestr("listens/2021/2.jsonl", json.dumps(mapped) + "\n")
    assert detect(archive) is Format.LISTENBRAINZ_JSONL
    items = list(read_listens(archive, NOW))
    listens = _listens(items)
    assert [x.track for x in listens] == ["Track 0", "Track 1", "Track 2", "Army of Me"]
    assert listens[-1].mbids == Mbids(recording="mapped", release=None, artists=("a",))
    assert [(i.reason, i.position) for i in items if isinstance(i, Rejected)] == [
        ("bad_json", "listens/2021/1.jsonl:5")
    ]
    assert {s.position for s in items if isinstance(s, Skipped)} == {"feedback.jsonl", "user.json"}


def test_detect_spotify_exports_by_the_spotify_imports_own_naming(tmp_path: Path) -> None:
    folder = tmp_path / "my_spotify_data"
    folder.mkdir()
    (folder / "Streaming_History_Audio_2021.json").write_text("[]")
    assert detect(folder) is Format.SPOTIFY_EXPORT
    archive = tmp_path / "my_spotify_data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Spotify Account Data/StreamingHistory_music_0.json", "[]")
    assert detect(archive) is Format.SPOTIFY_EXPORT
    assert detect(folder / "Streaming_History_Audio_2021.json") is Format.SPOTIFY_EXPORT
    with pytest.raises(ValueError, match="the Spotify import reads it"):
        list(read_listens(archive, NOW))


def test_an_unknown_file_says_what_was_expected(tmp_path: Path) -> None:
    odd = _write(tmp_path / "lastfm.csv", "date;artist;title\n2021-01-31;A;B\n")
    with pytest.raises(UnknownFormat) as caught:
        detect(odd)
    message = str(caught.value)
    assert "lastfm.csv" in message and "not a listening history" in message
    for expected in (
        "uts,utc_time,artist",
        "artist,album,track,date",
        "getRecentTracks",
        "ListenBrainz",
        "Spotify",
    ):
        assert expected in message
    assert "neither a folder nor a .zip" not in message
    binary = tmp_path / "cover.jpg"
    binary.write_bytes(b"\xff\xd8\xff\x00\x00binary")
    with pytest.raises(UnknownFormat):
        detect(binary)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UnknownFormat, match="empty folder"):
        detect(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.json").write_text(json.dumps([_lb_listen(T0)]))
    (mixed / "b.json").write_text(json.dumps(_page([_track("x", T0)])))
    with pytest.raises(UnknownFormat, match="mixes"):
        detect(mixed)
    with pytest.raises(FileNotFoundError):
        detect(tmp_path / "missing.csv")


def test_times_and_text_are_checked(tmp_path: Path) -> None:
    future = NOW.timestamp() + 3600
    f = tmp_path / "lb.jsonl"
    lines = [_lb_listen(int(future)), _lb_listen(T0, track=" "), _lb_listen(T0, track="ok"), _lb_listen(T0)]
    f.write_text("\n".join(json.dumps(x) for x in lines).replace('"ok"', '"\\ud800"') + "\n")
    items = list(read_listens(f, NOW))
    reasons = [i.reason for i in items if isinstance(i, Rejected)]
    # A lone surrogate cannot be stored as UTF-8: the row is quarantined, the file goes on.
    assert reasons == ["time_in_future", "missing_track_name", "bad_unicode:track_name"]
    assert len(_listens(items)) == 1


@pytest.mark.parametrize("shape", ["lastfm_csv", "lastfm_pages", "listenbrainz_array", "listenbrainz_zip"])
def test_readers_stream_a_large_export_in_bounded_memory(tmp_path: Path, shape: str) -> None:
    """20,000 rows (1-3 MB of text) read with a peak of Python allocations under 4 MiB (ijson's
    events for one 64 KB buffer, whatever the file's size), where holding the rows as Python
    objects takes 10-20 MiB: a 10-year export is never held whole."""
    import tracemalloc

    rows = 20_000
    if shape == "lastfm_csv":
        path = tmp_path / "big.csv"
        with path.open("w") as fh:
            fh.write(",".join(lastfm.CSV_HEADER) + "\n")
            for i in range(rows):
                fh.write(f"{T0 - i * 200},,Artist {i % 97},,Album {i % 13},,Track number {i},\n")
    elif shape == "lastfm_pages":
        path = tmp_path / "pages.json"
        pages = [
            _page([_track(f"Track number {i}", T0 - i * 200) for i in range(p, p + 200)])
            for p in range(0, rows, 200)
        ]
        path.write_text(json.dumps(pages))
    elif shape == "listenbrainz_array":
        path = tmp_path / "lb.json"
        path.write_text(json.dumps([_lb_listen(T0 - i * 200, f"Track number {i}") for i in range(rows)]))
    else:
        path = tmp_path / "lb.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(
                "listens/all.jsonl",
                "".join(json.dumps(_lb_listen(T0 - i * 200, f"T{i}")) + "\n" for i in range(rows)),
            )
    tracemalloc.start()
    try:
        count = sum(1 for item in read_listens(path, NOW) if isinstance(item, Listen))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < 4 * 1024 * 1024, peak
