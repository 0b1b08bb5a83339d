"""Benchmark: time to fully render each dashboard page over a large warehouse.

Builds a synthetic warehouse (default 1,000,000 plays over five years, Zipf-like track
popularity, audio features for most tracks; the older 60% of plays come from an account-data
export, without artist or album ids or covers, and ``track_metadata`` has looked up 95% of
their tracks, as in a real history) with the pipeline's own writer, then renders
every page with Streamlit's AppTest: once cold (caches cleared, so every query runs in
DuckDB) and once warm (served from ``st.cache_data``). Detail pages open the most played
artist, track and album (by id, as a link would); Wrapped opens the newest year. Targets:
cold < 1.5 s and warm < 0.3 s per page on the 2-core reference machine. Not a test: it
reports, it does not assert.

    .venv/bin/python -m bench.dashboard_render [--plays 1000000] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "dashboard"
PAGES = [
    "views/overview.py",
    "views/top.py",
    "views/when.py",
    "views/mood.py",
    "views/discovery.py",
    "views/recent.py",
    "views/artist.py",
    "views/track.py",
    "views/album.py",
    "views/wrapped.py",
    "views/compare.py",
]
#: A household of two: the plays are split between these listeners (70/30), so Compare has a pair.
LISTENERS = ("bench-a", "bench-b")
TARGET_S = 1.5
#: The older share of plays that came from an export (no artist or album id, no cover), and the
#: share of their tracks ``track_metadata`` has looked up: the dashboard resolves the rest.
EXPORTED_SHARE = 0.6
LOOKED_UP_SHARE = 0.95


def _cover(album: np.ndarray) -> np.ndarray:
    """Each album's cover as the sandbox serves it and the pipeline stores it: its largest
    rendition, an inline ``data:`` PNG. Never Spotify's CDN: a page rendered (or a Wrapped card
    drawn) over these plays must not reach the internet, and a CDN address offline costs the
    card its download timeout."""
    from spotify_sandbox.catalogue import images

    def largest(number: int) -> str:
        renditions = images(hashlib.sha256(f"album {number}".encode()).hexdigest()[:24])
        return str(max(renditions, key=lambda i: i["width"] * i["height"])["url"])

    numbers, where = np.unique(album, return_inverse=True)
    return np.array([largest(int(n)) for n in numbers], dtype=object)[where]


WARM_TARGET_S = 0.3


def synthetic_plays(n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` plays ending now-ish, 5 years back, with a daily rhythm and skewed favourites."""
    from spotify_assets.schema import conform

    rng = np.random.default_rng(seed)
    n_tracks, n_artists = max(50, n // 50), max(10, n // 400)
    track_artist = rng.integers(0, n_artists, n_tracks)
    track_album = track_artist * 3 + rng.integers(0, 3, n_tracks)
    track_ms = rng.integers(120_000, 360_000, n_tracks)
    track = np.minimum(rng.zipf(1.3, n) - 1, n_tracks - 1)
    rng.shuffle(track_ids := np.arange(n_tracks))
    track = track_ids[track]
    end = pd.Timestamp(datetime.now(UTC)).floor("s")
    span_s = 5 * 365 * 86400
    # Hours drawn from an evening-heavy profile, days uniformly: a believable heatmap.
    day = rng.integers(0, span_s // 86400, n)
    hour_p = np.array([1, 1, 1, 1, 1, 1, 2, 4, 6, 5, 4, 4, 5, 4, 4, 5, 6, 8, 9, 10, 10, 8, 5, 2], dtype=float)
    hour = rng.choice(24, n, p=hour_p / hour_p.sum())
    offset_s = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    played_at = end - pd.to_timedelta(span_s - offset_s, unit="s")
    played_at = played_at + pd.to_timedelta(np.arange(n) % 1000, unit="us")  # unique keys
    tid = np.char.add("t", track.astype(str))
    aid = np.char.add("a", track_artist[track].astype(str))
    alb = np.char.add("al", track_album[track].astype(str))
    exported = offset_s < np.quantile(offset_s, EXPORTED_SHARE)
    user = np.where(rng.random(n) < 0.7, LISTENERS[0], LISTENERS[1])
    df = pd.DataFrame(
        {
            "play_key": [f"{u}|{p.isoformat()}|{t}" for u, p, t in zip(user, played_at, tid, strict=True)],
            "user_id": user,
            "played_at": played_at,
            "track_id": tid,
            "track_name": np.char.add("Track ", track.astype(str)),
            "artist_ids": aid,
            "artist_names": np.char.add("Artist ", track_artist[track].astype(str)),
            "primary_artist_id": aid,
            "primary_artist_name": np.char.add("Artist ", track_artist[track].astype(str)),
            "album_id": alb,
            "album_name": np.char.add("Album ", track_album[track].astype(str)),
            "album_image_url": _cover(track_album[track]),
            "duration_ms": track_ms[track],
            "content_type": np.where(rng.random(n) < 0.03, "episode", "track"),
            "is_play": rng.random(n) > 0.05,
            "source": np.where(exported, "extended_export", "api"),
            "batch_id": "bench",
            "ingested_at": end,
        }
    )
    return conform(df, "plays")


def as_exported(plays: pd.DataFrame, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The older plays as an export gives them (no artist or album id, no cover), and the
    ``track_metadata`` rows the lookups would have written for most of their tracks."""
    from app.queries import RESOLVED_COLUMNS
    from spotify_assets.schema import conform

    exported = plays["source"] == "extended_export"
    tracks = plays.loc[exported].drop_duplicates("track_id")
    looked_up = tracks[np.random.default_rng(seed).random(len(tracks)) < LOOKED_UP_SHARE]
    metadata = looked_up[
        [
            "track_id",
            "track_name",
            "track_uri",
            "artist_names",
            "primary_artist_name",
            "album_name",
            "duration_ms",
            *RESOLVED_COLUMNS,
        ]
    ].assign(status="ok", looked_up_at=datetime.now(UTC))
    out = plays.copy()
    for col in RESOLVED_COLUMNS:
        out[col] = out[col].where(~exported, None)
    return conform(out, "plays"), conform(metadata, "track_metadata")


def synthetic_features(n_tracks: int, seed: int = 7) -> pd.DataFrame:
    from spotify_assets.schema import conform

    rng = np.random.default_rng(seed)
    ids = [f"t{i}" for i in range(n_tracks)]
    ok = rng.random(n_tracks) < 0.85
    return conform(
        pd.DataFrame(
            {
                "track_id": ids,
                "status": np.where(ok, "ok", "not_found"),
                "provider": "reccobeats",
                "energy": np.where(ok, rng.random(n_tracks), np.nan),
                "valence": np.where(ok, rng.random(n_tracks), np.nan),
                "danceability": np.where(ok, rng.random(n_tracks), np.nan),
                "tempo": np.where(ok, rng.normal(118, 25, n_tracks).clip(50, 220), np.nan),
                "fetched_at": datetime.now(UTC),
            }
        ),
        "track_features",
    )


def build(n: int, folder: Path) -> Path:
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_assets.tables import plays as plays_table
    from spotify_assets.tables import tracks as tracks_table

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    snapshot = folder / "warehouse.snapshot.duckdb"
    wh = DuckDBWarehouseResource(path=str(folder / "warehouse.duckdb"), snapshot_path=str(snapshot))
    t0 = time.perf_counter()
    plays, metadata = as_exported(synthetic_plays(n))
    t1 = time.perf_counter()
    plays_table.merge_plays(wh, plays)
    tracks_table.merge_metadata(wh, metadata)
    tracks_table.merge_features(wh, synthetic_features(max(50, n // 50)))
    t2 = time.perf_counter()
    print(f"generated {n:,} plays in {t1 - t0:.1f} s, wrote the warehouse in {t2 - t1:.1f} s")
    return snapshot


def _page_params(snapshot: Path) -> dict[str, dict[str, str]]:
    """The query parameters a link to each page carries: the most played ids, the newest year."""
    import duckdb

    con = duckdb.connect(str(snapshot), read_only=True)
    try:

        def top(column: str) -> str:
            row = con.execute(
                f"SELECT {column} FROM bq_plays WHERE {column} IS NOT NULL AND is_play "
                f"GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ).fetchone()
            return str(row[0]) if row else ""

        year = con.execute("SELECT year(max(played_at)) FROM bq_plays").fetchone()
        return {
            "views/artist.py": {"id": top("primary_artist_id")},
            "views/track.py": {"id": top("track_id")},
            "views/album.py": {"id": top("album_id")},
            "views/wrapped.py": {"year": str(year[0]) if year else ""},
            "views/compare.py": {"user": LISTENERS[0], "with": LISTENERS[1]},
        }
    finally:
        con.close()


def render(snapshot: Path, rounds: int) -> dict[str, tuple[float, float]]:
    """Per page: (median cold seconds, median warm seconds)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.serve import apply_runner_config

    apply_runner_config()
    os.environ["SPOTIFY_WAREHOUSE_SNAPSHOT"] = str(snapshot)
    os.environ.setdefault("SPOTIFY_TIMEZONE", "Europe/Berlin")
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()  # imports and the first-run check, not timed
    params = _page_params(snapshot)
    results: dict[str, tuple[float, float]] = {}
    for page in PAGES:
        cold, warm = [], []
        for _ in range(rounds):
            st.cache_data.clear()
            at.query_params.clear()
            at.query_params.update(params.get(page, {}))
            at.switch_page(page)
            t0 = time.perf_counter()
            at.run()
            cold.append(time.perf_counter() - t0)
            if at.exception:
                raise RuntimeError(f"{page}: {at.exception[0].message}")
            t0 = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - t0)
        results[page] = (statistics.median(cold), statistics.median(warm))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plays", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="reuse an existing warehouse of the same size")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    folder = WORK / f"{args.plays}"
    snapshot = folder / "warehouse.snapshot.duckdb"
    if not (args.keep and snapshot.exists()):
        snapshot = build(args.plays, folder)
    results = render(snapshot, args.rounds)
    print(
        f"\n{'page':<12} {'cold (s)':>9} {'warm (s)':>9}  targets: cold {TARGET_S} s, warm {WARM_TARGET_S} s, "
        f"{os.cpu_count()} cores"
    )
    for page, (cold, warm) in results.items():
        flag = "" if cold < TARGET_S else "  COLD OVER TARGET"
        flag += "" if warm < WARM_TARGET_S else "  WARM OVER TARGET"
        print(f"{Path(page).stem:<12} {cold:>9.3f} {warm:>9.3f}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
