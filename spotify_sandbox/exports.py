"""Seeded generator of an extended-streaming-history export, for tests (small N) and benchmarks (1M).

The output looks like what Spotify sends: a folder (or .zip) ``Spotify Extended Streaming
History/`` of ``Streaming_History_Audio_<years>_<k>.json`` files of ~20k rows each, a
``Streaming_History_Video_*.json`` and a ReadMe PDF (both skipped by the import). The field mix
is realistic: podcast episodes, plays under 30 s, local files, incognito and offline plays,
rows with no content at all (real exports have those; the import quarantines them), unicode and
emoji names, and stream ends exactly on DST transitions (``ts`` is UTC, so they are ordinary).

Timestamps strictly increase (at least 1 s apart), so every row has a distinct ``play_key`` and
the expected counts are exact: ``added == rows - no_content``, ``quarantined == no_content``.

    python -m spotify_sandbox.exports --rows 1000000 --out /tmp/export.zip --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
import string
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

FOLDER = "Spotify Extended Streaming History"
_B62 = string.digits + string.ascii_letters
_WORDS = [
    "love",
    "night",
    "blue",
    "river",
    "fire",
    "gold",
    "dream",
    "city",
    "heart",
    "rain",
    "summer",
    "ghost",
    "electric",
    "dance",
    "wild",
    "Beyoncé",
    "Sigur",
    "Rós",
    "Motörhead",
    "Ñandú",
    "坂本龍一",
    "Пётр",
    "Δέλτα",
    "مرحبا",
    "🔥",
    "🎸",
    "❤️",
    "naïve",
    "café",
    "São",
    "Zürich",
]
_PLATFORMS = ("android", "ios", "osx", "windows", "web_player", "cast_to_device", "linux")
_COUNTRIES = ("DE", "US", "GB", "SE", "FR", "BR", "JP", "ES")
_REASON_START = ("trackdone", "clickrow", "fwdbtn", "backbtn", "playbtn", "appload", "remote")
_REASON_END = ("trackdone", "endplay", "fwdbtn", "backbtn", "logout", "remote", "unexpected-exit")
#: Stream ends placed exactly on DST switches (EU and US), in UTC.
_DST_EDGES = tuple(
    datetime.fromisoformat(s)
    for s in (
        "2016-03-27T01:00:00+00:00",
        "2016-10-30T01:00:00+00:00",
        "2019-03-10T07:00:00+00:00",
        "2019-11-03T06:00:00+00:00",
        "2021-03-28T01:00:00+00:00",
        "2021-10-31T00:59:59+00:00",
        "2021-10-31T01:00:00+00:00",
        "2023-03-26T01:00:00+00:00",
    )
)


@dataclass
class GenerateSummary:
    rows: int = 0
    files: int = 0
    tracks: int = 0
    short_tracks: int = 0
    episodes: int = 0
    local_files: int = 0
    no_content: int = 0
    incognito: int = 0
    dst_edges: int = 0
    video_rows: int = 0

    @property
    def expected_added(self) -> int:
        return self.rows - self.no_content

    @property
    def expected_plays(self) -> int:
        """Rows that count as plays (tracks, incl. local files, of at least 30 s)."""
        return self.tracks + self.local_files - self.short_tracks


def _sid(rng: random.Random) -> str:
    return "".join(rng.choices(_B62, k=22))


def _title(rng: random.Random) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(1, 4))).title()


class _Catalogue:
    def __init__(self, rng: random.Random, n_tracks: int) -> None:
        artists = [_title(rng) for _ in range(max(5, n_tracks // 8))]
        self.tracks = [(_sid(rng), _title(rng), rng.choice(artists), _title(rng)) for _ in range(n_tracks)]
        self.shows = [(_title(rng), [(_sid(rng), _title(rng)) for _ in range(20)]) for _ in range(10)]
        # A Zipf-like skew: a few favourites, a long tail.
        weights = [1.0 / (rank + 1) for rank in range(n_tracks)]
        self.cum: list[float] = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)


def _row(rng: random.Random, cat: _Catalogue, ts: datetime, s: GenerateSummary) -> dict[str, Any]:
    r = rng.random()
    short = rng.random() < 0.25
    ms = rng.randint(0, 29_999) if short else rng.randint(30_000, 420_000)
    incognito = rng.random() < 0.02
    row: dict[str, Any] = {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": rng.choice(_PLATFORMS),
        "ms_played": ms,
        "conn_country": rng.choice(_COUNTRIES),
        # As in a real export; from the documentation range and not drawn from ``rng``, so the
        # rest of every row is what it was before the field was added.
        "ip_addr": f"198.51.100.{ts.minute + 1}",
        "master_metadata_track_name": None,
        "master_metadata_album_artist_name": None,
        "master_metadata_album_album_name": None,
        "spotify_track_uri": None,
        "episode_name": None,
        "episode_show_name": None,
        "spotify_episode_uri": None,
        "audiobook_title": None,
        "audiobook_uri": None,
        "reason_start": rng.choice(_REASON_START),
        "reason_end": "fwdbtn" if short else rng.choice(_REASON_END),
        "shuffle": rng.random() < 0.4,
        "skipped": short,
        "offline": rng.random() < 0.05,
        "offline_timestamp": None,
        "incognito_mode": incognito,
    }
    s.incognito += incognito
    if r < 0.001:
        s.no_content += 1  # a stream of something unidentifiable: every metadata field null
    elif r < 0.003:
        tid, name, artist, album = rng.choice(cat.tracks)
        row.update(master_metadata_track_name=name + " (local)", master_metadata_album_artist_name=artist)
        s.local_files += 1
        s.short_tracks += short
    elif r < 0.053:
        show, episodes = rng.choice(cat.shows)
        eid, title = rng.choice(episodes)
        row.update(episode_name=title, episode_show_name=show, spotify_episode_uri=f"spotify:episode:{eid}")
        s.episodes += 1
    else:
        tid, name, artist, album = rng.choices(cat.tracks, cum_weights=cat.cum)[0]
        row.update(
            master_metadata_track_name=name,
            master_metadata_album_artist_name=artist,
            master_metadata_album_album_name=album,
            spotify_track_uri=f"spotify:track:{tid}",
        )
        s.tracks += 1
        s.short_tracks += short
    return row


def extended_row_from_api_item(item: dict[str, Any], ts: str | None = None) -> dict[str, Any]:
    """The extended-streaming-history row a recently-played ``item`` (a full listen) would be.

    ``ts`` overrides the end time (the export's own clock); by default the item's
    ``played_at`` cut to whole seconds, as the export writes it.
    """
    track = item["track"]
    ended = ts or str(item["played_at"])[:19] + "Z"
    return {
        "ts": ended,
        "platform": "linux",
        "ms_played": track["duration_ms"],
        "conn_country": "DE",
        "ip_addr": "192.0.2.10",
        "master_metadata_track_name": track["name"],
        "master_metadata_album_artist_name": track["artists"][0]["name"],
        "master_metadata_album_album_name": track["album"]["name"],
        "spotify_track_uri": track["uri"],
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "incognito_mode": False,
    }


def generate_export(
    out: str | Path,
    rows: int,
    *,
    seed: int = 0,
    rows_per_file: int = 20_000,
    start: datetime = datetime(2015, 1, 1, tzinfo=UTC),
    end: datetime = datetime(2025, 1, 1, tzinfo=UTC),
) -> GenerateSummary:
    """Write an export of ``rows`` audio rows to ``out`` (a folder, or a .zip if it ends with .zip)."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by seed
    out = Path(out)
    summary = GenerateSummary(rows=rows)
    cat = _Catalogue(rng, max(50, min(20_000, rows // 20)))
    mean_gap = max(2.0, (end - start).total_seconds() / max(rows, 1))
    edges = list(_DST_EDGES)
    ts = start
    with ExitStack() as stack:
        opener = _opener(out, stack)
        written = 0
        while written < rows:
            batch = []
            for _ in range(min(rows_per_file, rows - written)):
                nxt = ts + timedelta(seconds=max(1, int(rng.expovariate(1 / mean_gap))))
                while edges and edges[0] <= ts:
                    edges.pop(0)
                if edges and ts < edges[0] <= nxt:
                    nxt = edges.pop(0)
                    summary.dst_edges += 1
                ts = nxt
                batch.append(_row(rng, cat, ts, summary))
            name = f"Streaming_History_Audio_{batch[0]['ts'][:4]}-{batch[-1]['ts'][:4]}_{summary.files}.json"
            with opener(f"{FOLDER}/{name}") as fh:
                _write_array(fh, batch)
            summary.files += 1
            written += len(batch)
        video = [_row(rng, cat, start + timedelta(days=i), GenerateSummary()) for i in range(3)]
        summary.video_rows = len(video)
        with opener(f"{FOLDER}/Streaming_History_Video_2015-2024.json") as fh:
            _write_array(fh, video)
        with opener(f"{FOLDER}/ReadMeFirst_ExtendedStreamingHistory.pdf") as fh:
            fh.write(b"%PDF-1.4\n% not JSON: the import skips it with a counted reason\n")
    return summary


def _opener(out: Path, stack: ExitStack) -> Callable[[str], IO[bytes]]:
    if out.suffix == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        zf = stack.enter_context(zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1))
        return lambda name: zf.open(name, "w")

    def open_file(name: str) -> IO[bytes]:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("wb")

    return open_file


def _write_array(fh: IO[bytes], rows: list[dict[str, Any]]) -> None:
    fh.write(b"[\n")
    for i, row in enumerate(rows):
        fh.write((("," if i else "") + json.dumps(row, ensure_ascii=False) + "\n").encode())
    fh.write(b"]\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", required=True, help="output folder, or a path ending in .zip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows-per-file", type=int, default=20_000)
    args = parser.parse_args(argv)
    summary = generate_export(args.out, args.rows, seed=args.seed, rows_per_file=args.rows_per_file)
    print(json.dumps({**asdict(summary), "expected_added": summary.expected_added}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
