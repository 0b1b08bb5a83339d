"""One listener's Spotify export, Last.fm CSV and ListenBrainz ZIP that overlap, read from real
files and counted with ``matching.decide`` in every import order, twice: the exact number of
plays, each remembering every source it was seen in. (The lake and the warehouse join when the
import's one path is wired; this pins the counting it will do.)"""

from __future__ import annotations

import itertools
import json
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spotify_assets.imports.parsers import iter_json_array, normalize_extended
from spotify_assets.scrobbles.detect import Format, detect, read_listens
from spotify_assets.scrobbles.listen import LASTFM, LISTENBRAINZ, SPOTIFY, Listen, Rejected, Skipped
from spotify_assets.scrobbles.matching import Outcome, Seen, decide, spotify_listen

NOW = datetime(2026, 12, 1, tzinfo=UTC)
T = datetime(2021, 1, 31, 14, 0, tzinfo=UTC)
TRACK_IDS = {"Help! - Remastered 2009": "7DD7eSuYSC5xk2ArU62esN", "Airbag": "6zN9s4lC3Qrk8F3d0U4m2Z"}


def _at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def _spotify_row(artist: str, track: str, start: datetime, ms: int, pause_s: int = 0) -> dict[str, object]:
    end = start + timedelta(milliseconds=ms, seconds=pause_s)
    return {
        "ts": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ms_played": ms,
        "master_metadata_track_name": track,
        "master_metadata_album_artist_name": artist,
        "master_metadata_album_album_name": "Album",
        "spotify_track_uri": f"spotify:track:{TRACK_IDS[track]}",
        "reason_end": "trackdone",
    }


@pytest.fixture
def exports(tmp_path: Path) -> dict[str, Path]:
    """The listener's three exports. True plays: S1-S4 on Spotify (S3 a 5-second try, S2 paused
    2 minutes, S4 a repeat of S2's track), V1-V3 on another player. 7 plays."""
    spotify = tmp_path / "my_spotify_data"
    spotify.mkdir()
    rows = [
        _spotify_row("The Beatles", "Help! - Remastered 2009", _at(0), 138_000),  # S1
        _spotify_row("Radiohead", "Airbag", _at(2.3), 284_000, pause_s=120),  # S2
        _spotify_row("Radiohead", "Airbag", _at(9.0), 5_000),  # S3: skipped, never scrobbled
        _spotify_row("Radiohead", "Airbag", _at(9.1), 284_000),  # S4
    ]
    (spotify / "Streaming_History_Audio_2021.json").write_text(json.dumps(rows))

    def uts(when: datetime) -> int:
        return int(when.timestamp())

    lastfm = tmp_path / "lastfm.csv"
    v2 = f'{uts(_at(20))},"31 Jan 2021, 14:20",Björk,,Post,,Hyperballad,\n'
    lastfm.write_text(
        "uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n"
        f"{uts(_at(30 - 60))},,Björk,,Homogenic,,Jóga,\n"  # V1, an hour before
        f'{uts(_at(0)) + 1},,The Beatles,,Help!,,"Help!",\n'  # S1, Last.fm's corrected name
        f"{uts(_at(2.3)) + 1},,Radiohead,,OK Computer,,Airbag,\n"  # S2
        f"{uts(_at(9.1))},,radiohead,,OK Computer,,AIRBAG,\n"  # S4
        + v2  # V2, sent to both services
        + v2  # an exporter's page boundary repeats it
        + "0,,Broken,,,,Clock,\n"  # quarantined: time_before_2002
    )

    def lb(artist: str, track: str, when: datetime) -> str:
        listen = {"listened_at": uts(when), "track_metadata": {"artist_name": artist, "track_name": track}}
        return json.dumps(listen) + "\n"

    listenbrainz = tmp_path / "listenbrainz.zip"
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


def _read(source: str, path: Path) -> tuple[list[Listen], Counter[str]]:
    """The listens of one export and its other rows counted by kind."""
    other: Counter[str] = Counter()
    if source == SPOTIFY:
        assert detect(path) is Format.SPOTIFY_EXPORT
        listens = []
        for f in sorted(path.glob("*.json")):
            for n, obj in enumerate(iter_json_array(f.read_bytes())):
                listen = spotify_listen(normalize_extended(obj, NOW), f"{f.name}#{n}")
                assert listen is not None
                listens.append(listen)
        return listens, other
    listens = []
    for item in read_listens(path, NOW):
        if isinstance(item, Listen):
            listens.append(item)
        else:
            other["quarantined" if isinstance(item, Rejected) else f"skipped:{item.reason}"] += 1
            assert isinstance(item, Rejected | Skipped)
    return listens, other


@pytest.mark.parametrize("order", list(itertools.permutations([SPOTIFY, LASTFM, LISTENBRAINZ])))
def test_overlapping_exports_in_any_order_count_each_play_once(
    exports: dict[str, Path], order: tuple[str, ...]
) -> None:
    state: list[Seen] = []
    for round_ in (1, 2):
        for source in order:
            listens, other = _read(source, exports[source])
            decisions = decide(state, listens)
            counts = Counter(d.outcome.value for d in decisions)
            # The report's sum: read = added + already present + matched + quarantined (+ skipped).
            read = len(listens) + other["quarantined"]
            assert read == counts["new"] + counts["duplicate"] + counts["matched"] + other["quarantined"]
            if round_ == 2:
                assert set(counts) == {"duplicate"}, (source, counts)
            for d in decisions:
                if d.outcome is not Outcome.DUPLICATE:
                    state.append(Seen.of(d.listen, d.play))
    sources: dict[str, set[str]] = {}
    for seen in state:
        sources.setdefault(seen.play, set()).add(seen.source)
    assert len(sources) == 7, sources
    assert Counter(frozenset(s) for s in sources.values()) == Counter(
        {
            frozenset({SPOTIFY, LASTFM, LISTENBRAINZ}): 2,  # S1, S4
            frozenset({SPOTIFY, LASTFM}): 1,  # S2 (paused)
            frozenset({SPOTIFY}): 1,  # S3 (the try)
            frozenset({LASTFM}): 1,  # V1
            frozenset({LASTFM, LISTENBRAINZ}): 1,  # V2
            frozenset({LISTENBRAINZ}): 1,  # V3
        }
    )
