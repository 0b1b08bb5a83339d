"""A seeded, synthetic music catalogue: artists, albums, tracks, podcast episodes, audio features.

Everything is derived from one seed so two sandboxes with the same seed serve byte-identical
objects, which is what lets tests compare a pipeline run against ground truth. Objects are
rendered once, in the real Web API's JSON shapes, and reused (they are never mutated).
"""

# ruff: noqa: S311, SIM905 - seeded PRNGs make synthetic data, not secrets; word lists read better as text
from __future__ import annotations

import base64
import colorsys
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass
from functools import cache, cached_property
from itertools import pairwise
from typing import Any

from spotify_sandbox.constants import PUBLIC_API

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
N_ARTISTS = 80
N_ALBUMS = 120
N_TRACKS = 300
N_SHOWS = 6
N_EPISODES = 24
N_PLAYLISTS = 8

_ADJECTIVES = (
    "Silver Velvet Midnight Golden Electric Paper Neon Quiet Wild Hollow Crystal Broken Northern Little "
    "Burning Blue Scarlet Lonely Endless Secret Distant Gentle Restless Summer Winter Violet Copper Static"
).split()
_NOUNS = (
    "Harbor Echoes Tides Lanterns Satellites Rivers Foxes Gardens Signals Mirrors Horizons Ghosts Cities "
    "Waves Hearts Machines Orchards Comets Shadows Islands Bridges Feathers Engines Canyons Valleys Letters"
).split()
_TITLE_WORDS = (
    "love night light fire dance home road dream rain heart sky time ocean city stars gold run fall "
    "ghost youth fever glow drive wonder shiver echo bloom tide thunder signal paradise motion"
).split()
_TITLE_SHAPES = (
    "{A} {N}",
    "{w} {w2}",
    "The {N}",
    "{W} In The {N}",
    "{W}",
    "Don't {W} Me",
    "{A} {W}",
    "All The {N}",
    "{W} ({A} Mix)",
    "When The {N} {W2}",
)
_FIRST = "Maya Leo Nina Theo Ava Jonas Iris Felix Luna Oscar Clara Milo Ruby Hugo Zoe Elias".split()
_LAST = "Holt Rivera Lind Okafor Sato Moreau Keller Vance Quinn Berg Novak Reyes Achebe Laine".split()
_BAND_SHAPES = ("The {A} {N}", "{A} {N}", "{N} of {N2}", "{F} {L}", "{F} & The {N}", "{L}")
_SHOW_NAMES = (
    "Deep Cuts Weekly",
    "The Data Hour",
    "Slow News Radio",
    "History Rewired",
    "Morning Brief",
    "Sound & Science",
)
_GENRE_CONTEXT = ("playlist", "playlist", "playlist", "album", "artist", "collection")


def stable_int(*parts: object) -> int:
    """A 64-bit integer from a hash of ``parts``; stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def stable_unit(*parts: object) -> float:
    """A float in [0, 1) derived only from ``parts``."""
    return stable_int(*parts) / 2**64


def base62_id(rng: random.Random) -> str:
    return "".join(rng.choice(BASE62) for _ in range(22))


@dataclass(frozen=True)
class Artist:
    id: str
    name: str


@dataclass(frozen=True)
class Album:
    id: str
    name: str
    album_type: str
    release_date: str
    release_date_precision: str
    total_tracks: int
    image_hash: str
    artists: tuple[int, ...]


@dataclass(frozen=True)
class Track:
    id: str
    name: str
    album: int
    artists: tuple[int, ...]
    duration_ms: int
    popularity: int
    explicit: bool
    track_number: int
    disc_number: int
    isrc: str


@dataclass(frozen=True)
class Episode:
    id: str
    name: str
    show: int
    duration_ms: int
    release_date: str
    explicit: bool


def _fill(shape: str, rng: random.Random) -> str:
    return shape.format(
        A=rng.choice(_ADJECTIVES),
        N=rng.choice(_NOUNS),
        N2=rng.choice(_NOUNS),
        W=rng.choice(_TITLE_WORDS).title(),
        W2=rng.choice(_TITLE_WORDS).title(),
        w=rng.choice(_TITLE_WORDS).title(),
        w2=rng.choice(_TITLE_WORDS).title(),
        F=rng.choice(_FIRST),
        L=rng.choice(_LAST),
    )


def _external_urls(kind: str, id_: str) -> dict[str, str]:
    return {"spotify": f"https://open.spotify.com/{kind}/{id_}"}


#: Spotify's three renditions of every cover, largest first (px).
COVER_SIZES = (640, 300, 64)
#: Cells per side of a cover's pattern (mirrored left to right, as an identicon).
_COVER_GRID = 5


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def cover_png(image_hash: str, size: int) -> bytes:
    """A ``size`` px square cover drawn from ``image_hash``: two colours of one hue in a mirrored
    5x5 pattern, a 1-bit palette PNG of a few hundred bytes at any size.

    Built by hand (the sandbox needs no image library) and derived from the hash alone, so a
    cover is the same in every sandbox of the seed, whatever its port or restarts.
    """
    bits = int(image_hash, 16)
    hue = (bits & 0xFFF) / 0x1000
    colours = (
        colorsys.hsv_to_rgb((hue + 0.5) % 1, 0.35, 0.22),  # background: dark, the opposite hue
        colorsys.hsv_to_rgb(hue, 0.65, 0.9),
    )
    palette = bytes(round(c * 255) for rgb in colours for c in rgb)
    half = (_COVER_GRID + 1) // 2
    on = [
        (bits >> (12 + row * half + min(col, _COVER_GRID - 1 - col))) & 1
        for row in range(_COVER_GRID)
        for col in range(_COVER_GRID)
    ]

    # Pixel x (and row y) shows cell x * grid // size: cell c covers ceil(c * size / grid) up to
    # ceil((c + 1) * size / grid), a run of equal bits (rows) drawn by repeating, not per pixel.
    starts = [-(-col * size // _COVER_GRID) for col in range(_COVER_GRID + 1)]
    runs = [end - start for start, end in pairwise(starts)]

    def scanline(row: int) -> bytes:
        pixels = "".join(str(on[row * _COVER_GRID + col]) * run for col, run in enumerate(runs))
        pixels += "0" * (-size % 8)
        return b"\x00" + int(pixels, 2).to_bytes(len(pixels) // 8, "big")  # filter type 0 (none)

    lines = [scanline(row) for row in range(_COVER_GRID)]
    raw = b"".join(line * run for line, run in zip(lines, runs, strict=True))
    header = struct.pack(">IIBBBBB", size, size, 1, 3, 0, 0, 0)  # 1-bit, palette, no interlace
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"PLTE", palette),
            _png_chunk(b"IDAT", zlib.compress(raw, 9)),
            _png_chunk(b"IEND", b""),
        )
    )


def images(image_hash: str) -> list[dict[str, Any]]:
    """A cover's renditions as Spotify lists them (``COVER_SIZES``), each a self-contained
    base64 ``data:`` PNG (``cover_png``).

    Not Spotify's CDN addresses: whatever shows or downloads a cover (the dashboard's pages in
    a browser, the Wrapped card) would reach the internet from tests and demos. Not the
    sandbox's own address either: the warehouse keeps a cover after the sandbox's port changed.
    """
    return [
        {
            "url": "data:image/png;base64," + base64.b64encode(cover_png(image_hash, size)).decode(),
            "height": size,
            "width": size,
        }
        for size in COVER_SIZES
    ]


class Catalogue:
    """The synthetic world of one seed. Building it takes a few milliseconds."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = random.Random(stable_int("catalogue", seed))
        self.artists = [
            Artist(base62_id(rng), _fill(rng.choice(_BAND_SHAPES), rng)) for _ in range(N_ARTISTS)
        ]
        self.albums: list[Album] = []
        for _ in range(N_ALBUMS):
            year = min(2026, int(2026 - rng.expovariate(1 / 9)))
            roll = rng.random()
            if roll < 0.08:
                release_date, precision = str(year), "year"
            elif roll < 0.12:
                release_date, precision = f"{year}-{rng.randint(1, 12):02d}", "month"
            else:
                release_date, precision = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "day"
            album_type = rng.choices(("album", "single", "compilation"), weights=(6, 3, 1))[0]
            main = rng.randrange(N_ARTISTS)
            artists: tuple[int, ...] = (main,) if rng.random() < 0.9 else (main, rng.randrange(N_ARTISTS))
            self.albums.append(
                Album(
                    id=base62_id(rng),
                    name=_fill(rng.choice(_TITLE_SHAPES), rng),
                    album_type=album_type,
                    release_date=release_date,
                    release_date_precision=precision,
                    total_tracks=rng.randint(1, 3) if album_type == "single" else rng.randint(8, 16),
                    image_hash=f"{rng.getrandbits(96):024x}",
                    artists=tuple(dict.fromkeys(artists)),
                )
            )
        self.tracks: list[Track] = []
        for i in range(N_TRACKS):
            album_idx = i % N_ALBUMS if i < N_ALBUMS else rng.randrange(N_ALBUMS)
            album = self.albums[album_idx]
            artists = album.artists
            if rng.random() < 0.15:  # a featured artist
                artists = tuple(dict.fromkeys((*artists, rng.randrange(N_ARTISTS))))
            self.tracks.append(
                Track(
                    id=base62_id(rng),
                    name=_fill(rng.choice(_TITLE_SHAPES), rng),
                    album=album_idx,
                    artists=artists,
                    duration_ms=int(min(480_000, max(95_000, rng.gauss(212_000, 45_000)))),
                    popularity=max(0, min(100, int(rng.gauss(55, 18)))),
                    explicit=rng.random() < 0.22,
                    track_number=rng.randint(1, album.total_tracks),
                    disc_number=1,
                    isrc=f"US{rng.choice('ABCDEFGHJK')}{rng.choice('ABCDEFGHJK')}{rng.randint(1, 9)}"
                    f"{rng.randint(10, 26)}{rng.randint(0, 99999):05d}",
                )
            )
        self.shows = [(base62_id(rng), name, f"{rng.getrandbits(96):024x}") for name in _SHOW_NAMES[:N_SHOWS]]
        self.episodes = [
            Episode(
                id=base62_id(rng),
                name=f"Episode {n + 1}: {_fill(rng.choice(_TITLE_SHAPES), rng)}",
                show=n % N_SHOWS,
                duration_ms=rng.randint(18, 65) * 60_000 + rng.randint(0, 59_999),
                release_date=f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}",
                explicit=rng.random() < 0.1,
            )
            for n in range(N_EPISODES)
        ]
        self.playlists = [base62_id(rng) for _ in range(N_PLAYLISTS)]
        # Zipf-like taste over a random order of the catalogue, weight 1/(rank + 8): favourites
        # repeat, yet the top track stays a few percent of plays, as in real listening (a pure
        # 1/rank over 300 tracks would give one song a fifth of a year).
        order = list(range(N_TRACKS))
        rng.shuffle(order)
        self.preference_order = order
        cum, total = [], 0.0
        for rank in range(N_TRACKS):
            total += 1.0 / (rank + 8)
            cum.append(total)
        self.preference_cum_weights = cum
        self.track_index = {t.id: i for i, t in enumerate(self.tracks)}
        self._rendered_tracks: dict[int, dict[str, Any]] = {}

    # -- rendering in the Web API's shapes ---------------------------------------------------------

    def artist_json(self, idx: int) -> dict[str, Any]:
        a = self.artists[idx]
        return {
            "id": a.id,
            "name": a.name,
            "uri": f"spotify:artist:{a.id}",
            "href": f"{PUBLIC_API}/v1/artists/{a.id}",
            "type": "artist",
            "external_urls": _external_urls("artist", a.id),
        }

    def album_json(self, idx: int) -> dict[str, Any]:
        al = self.albums[idx]
        return {
            "id": al.id,
            "name": al.name,
            "uri": f"spotify:album:{al.id}",
            "href": f"{PUBLIC_API}/v1/albums/{al.id}",
            "type": "album",
            "album_type": al.album_type,
            "release_date": al.release_date,
            "release_date_precision": al.release_date_precision,
            "total_tracks": al.total_tracks,
            "images": images(al.image_hash),
            "artists": [self.artist_json(i) for i in al.artists],
            "external_urls": _external_urls("album", al.id),
        }

    def track_json(self, idx: int) -> dict[str, Any]:
        """The full track object (cached: rendered once per track, shared read-only)."""
        cached = self._rendered_tracks.get(idx)
        if cached is not None:
            return cached
        t = self.tracks[idx]
        rendered = {
            "id": t.id,
            "name": t.name,
            "uri": f"spotify:track:{t.id}",
            "href": f"{PUBLIC_API}/v1/tracks/{t.id}",
            "type": "track",
            "duration_ms": t.duration_ms,
            "popularity": t.popularity,
            "explicit": t.explicit,
            "is_local": False,
            "track_number": t.track_number,
            "disc_number": t.disc_number,
            "external_ids": {"isrc": t.isrc},
            "external_urls": _external_urls("track", t.id),
            "preview_url": None,
            "artists": [self.artist_json(i) for i in t.artists],
            "album": self.album_json(t.album),
        }
        self._rendered_tracks[idx] = rendered
        return rendered

    def episode_json(self, idx: int) -> dict[str, Any]:
        e = self.episodes[idx]
        show_id, show_name, show_image = self.shows[e.show]
        return {
            "id": e.id,
            "name": e.name,
            "uri": f"spotify:episode:{e.id}",
            "href": f"{PUBLIC_API}/v1/episodes/{e.id}",
            "type": "episode",
            "duration_ms": e.duration_ms,
            "explicit": e.explicit,
            "is_local": False,
            "release_date": e.release_date,
            "release_date_precision": "day",
            "external_urls": _external_urls("episode", e.id),
            "images": images(show_image),
            "show": {
                "id": show_id,
                "name": show_name,
                "publisher": show_name,
                "uri": f"spotify:show:{show_id}",
                "href": f"{PUBLIC_API}/v1/shows/{show_id}",
                "type": "show",
                "images": images(show_image),
                "external_urls": _external_urls("show", show_id),
            },
        }

    def local_track_json(self, key: int) -> dict[str, Any]:
        """A file from the user's own disk: no id, no album art, a ``spotify:local:`` uri."""
        rng = random.Random(key)
        artist = _fill(rng.choice(_BAND_SHAPES), rng)
        album = _fill(rng.choice(_TITLE_SHAPES), rng)
        title = _fill(rng.choice(_TITLE_SHAPES), rng)
        seconds = rng.randint(150, 330)

        def enc(s: str) -> str:
            return s.replace(" ", "+").replace(":", "%3A")

        return {
            "id": None,
            "name": title,
            "uri": f"spotify:local:{enc(artist)}:{enc(album)}:{enc(title)}:{seconds}",
            "href": None,
            "type": "track",
            "duration_ms": seconds * 1000,
            "popularity": 0,
            "explicit": False,
            "is_local": True,
            "track_number": 0,
            "disc_number": 0,
            "external_ids": {},
            "external_urls": {},
            "preview_url": None,
            "artists": [
                {"id": None, "name": artist, "uri": None, "href": None, "type": "artist", "external_urls": {}}
            ],
            "album": {
                "id": None,
                "name": album,
                "uri": None,
                "href": None,
                "type": "album",
                "album_type": None,
                "release_date": None,
                "release_date_precision": None,
                "total_tracks": 0,
                "images": [],
                "artists": [],
                "external_urls": {},
            },
        }

    def context_json(self, kind: str, track_idx: int, pick: int) -> dict[str, Any] | None:
        """The play's context (what it was started from), or None like Spotify for queue/radio plays."""
        t = self.tracks[track_idx]
        if kind == "album":
            id_ = self.albums[t.album].id
        elif kind == "artist":
            id_ = self.artists[t.artists[0]].id
        elif kind == "playlist":
            id_ = self.playlists[pick % len(self.playlists)]
        elif kind == "collection":
            return {
                "type": "collection",
                "uri": "spotify:user:sandbox-listener:collection",
                "href": f"{PUBLIC_API}/v1/me/tracks",
                "external_urls": {"spotify": "https://open.spotify.com/collection/tracks"},
            }
        else:
            return None
        return {
            "type": kind,
            "uri": f"spotify:{kind}:{id_}",
            "href": f"{PUBLIC_API}/v1/{kind}s/{id_}",
            "external_urls": _external_urls(kind, id_),
        }

    @cached_property
    def audio_features_by_id(self) -> dict[str, dict[str, Any]]:
        return {t.id: self._audio_features(i) for i, t in enumerate(self.tracks)}

    def _audio_features(self, idx: int) -> dict[str, Any]:
        t = self.tracks[idx]
        rng = random.Random(stable_int("features", self.seed, t.id))
        return {
            "id": t.id,
            "danceability": round(rng.uniform(0.2, 0.95), 3),
            "energy": round(rng.uniform(0.1, 0.98), 3),
            "key": rng.randint(-1, 11),
            "loudness": round(rng.uniform(-18.0, -2.5), 3),
            "mode": rng.randint(0, 1),
            "speechiness": round(rng.uniform(0.025, 0.35), 4),
            "acousticness": round(rng.betavariate(0.6, 2.0), 5),
            "instrumentalness": round(rng.betavariate(0.3, 3.0), 6),
            "liveness": round(rng.uniform(0.05, 0.6), 4),
            "valence": round(rng.uniform(0.05, 0.97), 3),
            "tempo": round(rng.uniform(68.0, 182.0), 3),
            "time_signature": rng.choices((3, 4, 5), weights=(1, 18, 1))[0],
            "duration_ms": t.duration_ms,
            "type": "audio_features",
            "uri": f"spotify:track:{t.id}",
            "track_href": f"{PUBLIC_API}/v1/tracks/{t.id}",
            "analysis_url": f"{PUBLIC_API}/v1/audio-analysis/{t.id}",
        }

    def context_kind(self, pick: float) -> str | None:
        """Map a uniform draw to a context type; about a fifth of sessions have none."""
        if pick < 0.2:
            return None
        return _GENRE_CONTEXT[int((pick - 0.2) / 0.8 * len(_GENRE_CONTEXT)) % len(_GENRE_CONTEXT)]
