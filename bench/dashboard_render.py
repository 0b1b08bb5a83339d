"""Benchmark: time to fully render each dashboard page over a large warehouse.

Builds a synthetic warehouse (default 1,000,000 plays of a household of two over five years,
Zipf-like track popularity, audio features for most tracks; the older 60% of plays come from an
account-data export, without artist or album ids or covers, and ``track_metadata`` has looked up
95% of their tracks, as in a real history) with the pipeline's own writer, ``CHUNK`` plays at a
time, then renders every page with Streamlit's AppTest for everyone's plays and for the most
active listener's: once cold (caches cleared, so every query runs in DuckDB) and once warm
(served from ``st.cache_data``). Detail pages open the most played artist, track and album (by
id, as a link would); Wrapped opens the newest year; Compare the two most active listeners.
Targets (issue 28): cold < 1.0 s and warm < 0.2 s per page on the 2-core reference machine. Not
a test: it reports, it does not assert; the last line names the slowest page.

    .venv/bin/python -m bench.dashboard_render [--plays 1000000] [--listeners 2] [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
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
#: The default household: two listeners (70/30, ``listener_shares``), so Compare has a pair.
LISTENERS = ("bench-a", "bench-b")
#: Per page, on the 2-core reference machine (issue 28): a first visit and a visit served from the cache.
TARGET_S = 1.0
WARM_TARGET_S = 0.2
#: Plays generated and merged at a time: a 10M-play history built whole held 24 GB of pandas
#: objects; in chunks the bench holds one chunk (~0.7 GB) beside the warehouse's own memory.
CHUNK = 250_000
#: DuckDB's memory while the bench writes the warehouse (it spills beyond that). The primary key's
#: index stays in memory: at 1 GB the insert failed at ~7.4M plays ("failed to pin block").
BUILD_MEMORY_LIMIT = "2500MB"
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


@dataclass(frozen=True)
class Catalogue:
    """What every chunk of plays draws from: the tracks (artist, album, length, popularity
    order), which of them ``track_metadata`` has looked up, each album's cover, and the end of
    the history. Sized by the whole history (one track per 50 plays), so a history generated in
    chunks has the shape of one generated at once."""

    n_tracks: int
    track_artist: np.ndarray
    track_album: np.ndarray
    track_ms: np.ndarray
    #: Popularity rank -> track number (a Zipf draw picks a rank).
    by_rank: np.ndarray
    #: Per track number: whether ``track_metadata`` holds it (``LOOKED_UP_SHARE`` of them).
    looked_up: np.ndarray
    #: Per album number: its cover (``_cover``).
    covers: np.ndarray
    end: pd.Timestamp


def catalogue(n: int, seed: int = 7) -> Catalogue:
    rng = np.random.default_rng(seed)
    n_tracks, n_artists = max(50, n // 50), max(10, n // 400)
    track_artist = rng.integers(0, n_artists, n_tracks)
    track_album = track_artist * 3 + rng.integers(0, 3, n_tracks)
    track_ms = rng.integers(120_000, 360_000, n_tracks)
    by_rank = rng.permutation(n_tracks)
    looked_up = rng.random(n_tracks) < LOOKED_UP_SHARE
    return Catalogue(
        n_tracks=n_tracks,
        track_artist=track_artist,
        track_album=track_album,
        track_ms=track_ms,
        by_rank=by_rank,
        looked_up=looked_up,
        covers=_cover(np.arange(n_artists * 3)),
        end=pd.Timestamp(datetime.now(UTC)).floor("s"),
    )


def listener_ids(count: int) -> tuple[str, ...]:
    """``bench-a``, ``bench-b``...: the household's listeners, the first the most active."""
    return tuple(f"bench-{chr(ord('a') + i)}" for i in range(count))


def listener_shares(count: int) -> np.ndarray:
    """Each listener's share of the plays: each listens 3/7 as much as the one before (two
    listeners: 70/30; five: 58/25/11/5/2 %)."""
    weights = (3 / 7) ** np.arange(count)
    return np.asarray(weights / weights.sum())


def plays_chunk(
    cat: Catalogue, first: int, size: int, listeners: tuple[str, ...], seed: int = 7
) -> pd.DataFrame:
    """Plays ``first`` .. ``first + size - 1`` of the history, 5 years back from ``cat.end``,
    with a daily rhythm and skewed favourites; conformed to ``plays``. Each chunk has its own
    random stream (seeded by its first play), so the history is the same whatever the chunking
    below a chunk's size."""
    from spotify_assets.schema import conform

    rng = np.random.default_rng([seed, first])
    n = size
    track = cat.by_rank[np.minimum(rng.zipf(1.3, n) - 1, cat.n_tracks - 1)]
    span_s = 5 * 365 * 86400
    # Hours drawn from an evening-heavy profile, days uniformly: a believable heatmap.
    day = rng.integers(0, span_s // 86400, n)
    hour_p = np.array([1, 1, 1, 1, 1, 1, 2, 4, 6, 5, 4, 4, 5, 4, 4, 5, 6, 8, 9, 10, 10, 8, 5, 2], dtype=float)
    hour = rng.choice(24, n, p=hour_p / hour_p.sum())
    offset_s = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    # Microseconds from the play's number: no two plays of one second share a key.
    stamp = (
        np.datetime64(cat.end.tz_localize(None), "us")
        - (span_s - offset_s).astype("timedelta64[s]")
        + (np.arange(first, first + n) % 1_000_000).astype("timedelta64[us]")
    )
    played_at = pd.DatetimeIndex(stamp).tz_localize("UTC")
    tid = np.char.add("t", track.astype(str))
    artist = cat.track_artist[track].astype(str)
    album = cat.track_album[track]
    aid = np.char.add("a", artist)
    # The oldest EXPORTED_SHARE of the span came from an export (days are uniform over it).
    exported = offset_s < EXPORTED_SHARE * span_s
    user = np.asarray(listeners)[rng.choice(len(listeners), n, p=listener_shares(len(listeners)))]
    iso = np.char.add(np.datetime_as_string(stamp, unit="us"), "+00:00")
    df = pd.DataFrame(
        {
            "play_key": np.char.add(np.char.add(np.char.add(np.char.add(user, "|"), iso), "|"), tid),
            "user_id": user,
            "played_at": played_at,
            "track_id": tid,
            "track_name": np.char.add("Track ", track.astype(str)),
            "artist_ids": aid,
            "artist_names": np.char.add("Artist ", artist),
            "primary_artist_id": aid,
            "primary_artist_name": np.char.add("Artist ", artist),
            "album_id": np.char.add("al", album.astype(str)),
            "album_name": np.char.add("Album ", album.astype(str)),
            "album_image_url": cat.covers[album],
            "duration_ms": cat.track_ms[track],
            "content_type": np.where(rng.random(n) < 0.03, "episode", "track"),
            "is_play": rng.random(n) > 0.05,
            "source": np.where(exported, "extended_export", "api"),
            "batch_id": "bench",
            "ingested_at": cat.end,
        }
    )
    return conform(df, "plays")


def as_exported(cat: Catalogue, plays: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The older plays as an export gives them (no artist or album id, no cover), and the
    ``track_metadata`` rows the lookups would have written for their tracks that ``cat`` marks
    looked up."""
    from app.queries import RESOLVED_COLUMNS
    from spotify_assets.schema import conform

    exported = plays["source"] == "extended_export"
    tracks = plays.loc[exported].drop_duplicates("track_id")
    looked_up = tracks[cat.looked_up[tracks["track_id"].str.slice(1).astype(int).to_numpy()]]
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


def synthetic_plays(n: int, seed: int = 7, listeners: tuple[str, ...] = LISTENERS) -> pd.DataFrame:
    """``n`` plays in one frame (small histories; ``build`` generates a large one in chunks)."""
    cat = catalogue(n, seed)
    return pd.concat(
        [plays_chunk(cat, first, min(CHUNK, n - first), listeners, seed) for first in range(0, n, CHUNK)],
        ignore_index=True,
    )


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


def build(n: int, folder: Path, listeners: tuple[str, ...] = LISTENERS) -> Path:
    """Write ``n`` plays of ``listeners`` (and the tracks' metadata and features) into a fresh
    warehouse in ``folder`` with the pipeline's own merges, ``CHUNK`` plays at a time under
    one lock (one snapshot published at the end); returns the snapshot the dashboard reads."""
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_assets.tables import plays as plays_table
    from spotify_assets.tables import tracks as tracks_table

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    snapshot = folder / "warehouse.snapshot.duckdb"
    wh = DuckDBWarehouseResource(path=str(folder / "warehouse.duckdb"), snapshot_path=str(snapshot))
    t0 = time.perf_counter()
    cat = catalogue(n)
    generating, writing = time.perf_counter() - t0, 0.0
    with wh.batch():
        with wh.writer() as con:
            con.execute(f"SET memory_limit = '{BUILD_MEMORY_LIMIT}'")
            con.execute("SET enable_progress_bar = false")
        for first in range(0, n, CHUNK):
            t0 = time.perf_counter()
            plays, metadata = as_exported(cat, plays_chunk(cat, first, min(CHUNK, n - first), listeners))
            t1 = time.perf_counter()
            plays_table.merge_plays(wh, plays)
            tracks_table.merge_metadata(wh, metadata)
            del plays, metadata
            generating, writing = generating + t1 - t0, writing + time.perf_counter() - t1
        t0 = time.perf_counter()
        tracks_table.merge_features(wh, synthetic_features(cat.n_tracks))
    writing += time.perf_counter() - t0  # the snapshot's copy included
    print(
        f"generated {n:,} plays of {len(listeners)} listeners in {generating:.1f} s, wrote the warehouse "
        f"in {writing:.1f} s (chunks of {CHUNK:,}); peak RSS so far {peak_rss_mib():,.0f} MiB",
        flush=True,
    )
    return snapshot


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _page_params(snapshot: Path, listeners: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """The query parameters a link to each page carries: the most played ids, the newest year,
    the pair Compare shows."""
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
            "views/compare.py": {"with": listeners[1]} if len(listeners) > 1 else {},
        }
    finally:
        con.close()


#: The scope a page is rendered in: everyone's plays (``None``) or one listener's (their id).
Scope = str | None


def render(
    snapshot: Path, rounds: int, scopes: list[Scope], listeners: tuple[str, ...]
) -> dict[str, tuple[float, float]]:
    """Per page and scope (``page`` for everyone, ``page/listener`` for one): (median cold
    seconds, median warm seconds). Each scope is its own AppTest session, its listener picked by
    the link (``?user=``) as a shared address would."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.serve import apply_runner_config
    from app.ui import SCOPE_KEY, USER_PARAM

    apply_runner_config()
    os.environ["SPOTIFY_WAREHOUSE_SNAPSHOT"] = str(snapshot)
    os.environ.setdefault("SPOTIFY_TIMEZONE", "Europe/Berlin")
    params = _page_params(snapshot, listeners)
    results: dict[str, tuple[float, float]] = {}
    for scope in scopes:
        scoped = {USER_PARAM: scope} if scope else {}
        at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=600)
        at.query_params.update(scoped)
        at.run()  # imports, the first-run check and the listener picked, not timed
        for page in PAGES:
            cold, warm = [], []
            for _ in range(rounds):
                st.cache_data.clear()
                at.query_params.clear()
                at.query_params.update({**params.get(page, {}), **scoped})
                at.switch_page(page)
                t0 = time.perf_counter()
                at.run()
                cold.append(time.perf_counter() - t0)
                if at.exception:
                    raise RuntimeError(f"{page} ({scope or 'everyone'}): {at.exception[0].message}")
                if at.session_state[SCOPE_KEY] != scope:  # the picker must have taken the link's listener
                    raise RuntimeError(f"{page}: rendered for {at.session_state[SCOPE_KEY]!r}, not {scope!r}")
                t0 = time.perf_counter()
                at.run()
                warm.append(time.perf_counter() - t0)
            label = Path(page).stem + (f"/{scope}" if scope else "")
            results[label] = (statistics.median(cold), statistics.median(warm))
            print(
                f"  {label}: cold {results[label][0]:.3f} s, warm {results[label][1]:.3f} s",
                file=sys.stderr,
                flush=True,
            )
    return results


def plays_label(n: int) -> str:
    """``10M``, ``1M``, ``2.5M``, ``10k``: a history's size as the last line names it."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:g}{unit}"
    return str(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plays", type=int, default=1_000_000)
    parser.add_argument("--listeners", type=int, default=len(LISTENERS), help="household size (default 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="reuse an existing warehouse of the same size")
    args = parser.parse_args(argv)
    if args.listeners < 1:
        parser.error("--listeners must be at least 1")
    sys.path.insert(0, str(ROOT))
    listeners = listener_ids(args.listeners)
    folder = WORK / (f"{args.plays}" if listeners == LISTENERS else f"{args.plays}x{args.listeners}")
    snapshot = folder / "warehouse.snapshot.duckdb"
    if not (args.keep and snapshot.exists()):
        snapshot = build(args.plays, folder, listeners)
    # Everyone's plays, then the most active listener's (a household of one shows only theirs).
    scopes: list[Scope] = [None, listeners[0]] if len(listeners) > 1 else [None]
    results = render(snapshot, args.rounds, scopes, listeners)
    print(
        f"\n{'page':<20} {'cold (s)':>9} {'warm (s)':>9}  targets: cold {TARGET_S} s, warm {WARM_TARGET_S} s, "
        f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for label, (cold, warm) in results.items():
        flag = "" if cold < TARGET_S else "  COLD OVER TARGET"
        flag += "" if warm < WARM_TARGET_S else "  WARM OVER TARGET"
        print(f"{label:<20} {cold:>9.3f} {warm:>9.3f}{flag}")
    print(f"peak RSS {peak_rss_mib():,.0f} MiB")
    slow_cold = max(results, key=lambda label: results[label][0])
    slow_warm = max(results, key=lambda label: results[label][1])
    print(
        f"dashboard {plays_label(args.plays)}: slowest cold {results[slow_cold][0]:.3f} s ({slow_cold}), "
        f"slowest warm {results[slow_warm][1]:.3f} s ({slow_warm})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
