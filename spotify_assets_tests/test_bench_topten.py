"""``bench/topten.py``'s DuckDB and pandas versions compute what the pipeline's Spark job does.

The benchmark compares the engines' timings only if they answer the same question. Plays
without a Spotify id (a scrobble no Spotify play matched, a local file) count in the Spark job,
grouped by their lower-cased primary artist and title (``spark/top_ten.name_key``), so they
must here too. The expected table is the one ``test_spark_top_ten`` holds the Spark job to for
the same plays (``test_plays_without_an_id_count_grouped_by_their_names``): no JVM is started.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import topten
from spotify_assets.schema import arrow_schema

LISTENER, BOB = "sandbox-listener", "sandbox-bob"
ALL = "*"
BASE = datetime(2024, 3, 1, tzinfo=UTC)


def at(hour: int) -> datetime:
    return BASE + timedelta(hours=hour)


def play(hour: int, track_id: str, name: str, user: str = LISTENER) -> dict[str, Any]:
    """A Spotify play: an id, its names, 200 s long."""
    return {
        "play_key": f"{user}|{at(hour).isoformat()}|{track_id}",
        "played_at": at(hour),
        "track_id": track_id,
        "track_name": name,
        "artist_names": f"Artist of {name}",
        "primary_artist_name": f"Artist of {name}",
        "album_name": f"Album of {name}",
        "album_image_url": f"https://img/{name}",
        "duration_ms": 200_000,
        "content_type": "track",
        "is_play": True,
        "source": "api",
        "batch_id": "b",
        "ingested_at": at(hour),
        "user_id": user,
    }


def scrobble(hour: int, artist: str, name: str, user: str = LISTENER) -> dict[str, Any]:
    """A play no Spotify play matched: names only, no id, no length."""
    return {
        **play(hour, "x", name, user),
        "play_key": f"{user}|{at(hour).isoformat()}|lastfm:{artist}|{name}",
        "track_id": None,
        "artist_names": artist,
        "primary_artist_name": artist,
        "album_image_url": None,
        "duration_ms": None,
        "source": "lastfm",
    }


ROWS = [
    scrobble(1, "Dust Choir", "Vinyl Hiss"),
    scrobble(2, "DUST CHOIR", "vinyl hiss"),
    scrobble(3, "dust choir", "Vinyl HISS", user=BOB),
    play(4, "s1", "Night Drive"),
    play(5, "s1", "Night Drive"),
    scrobble(6, "Artist of Night Drive", "night drive"),
    scrobble(7, "Artist of Night Drive", "Night Drive"),
]

#: (scope, rank, track id, track name, artist names, plays, minutes): the Spark job's answer.
EXPECTED = [
    (ALL, 1, None, "Vinyl HISS", "dust choir", 3, 0.0),
    (ALL, 2, "s1", "Night Drive", "Artist of Night Drive", 2, 400_000 / 60000),
    (ALL, 3, None, "Night Drive", "Artist of Night Drive", 2, 0.0),
    (BOB, 1, None, "Vinyl HISS", "dust choir", 1, 0.0),
    (LISTENER, 1, "s1", "Night Drive", "Artist of Night Drive", 2, 400_000 / 60000),
    (LISTENER, 2, None, "Night Drive", "Artist of Night Drive", 2, 0.0),
    (LISTENER, 3, None, "vinyl hiss", "DUST CHOIR", 2, 0.0),
]


def _plays_parquet(path: Path) -> Path:
    schema = arrow_schema("plays")
    frame = pd.DataFrame([{name: r.get(name) for name in schema.names} for r in ROWS])
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
    return path


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_the_in_process_engines_count_plays_without_an_id_by_their_names(tmp_path: Path, engine: str) -> None:
    plays = _plays_parquet(tmp_path / "plays.parquet")
    result = topten.ENGINES[engine](str(plays), tmp_path, 1)
    table = pd.read_parquet(tmp_path / f"{engine}.parquet").sort_values(["user_id", "rank"])
    got = [
        (
            r["user_id"],
            int(r["rank"]),
            None if pd.isna(r["track_id"]) else r["track_id"],
            r["track_name"],
            r["artist_names"],
            int(r["plays"]),
            pytest.approx(float(r["minutes_listened"])),
        )
        for r in table.to_dict("records")
    ]
    assert got == EXPECTED
    # What run.py compares between engines names the id-less rows too (by their names).
    assert [row[:3] for row in result["ranking"]] == [
        [ALL, 1, "name:dust choir|vinyl hiss"],
        [ALL, 2, "s1"],
        [ALL, 3, "name:artist of night drive|night drive"],
        [BOB, 1, "name:dust choir|vinyl hiss"],
        [LISTENER, 1, "s1"],
        [LISTENER, 2, "name:artist of night drive|night drive"],
        [LISTENER, 3, "name:dust choir|vinyl hiss"],
    ]
