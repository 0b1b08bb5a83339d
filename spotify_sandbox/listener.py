"""The synthetic listeners: a simulated clock and a deterministic play history per listener.

Plays are generated per UTC hour from a hash of (seed, listener, hour) alone, so any hour can
be computed on its own, in any order, and always comes out the same. "Recently played" then
only needs the few hours just before *now*: it walks back hour by hour until it has the 50
latest plays (bounded lookback) and caches each hour it builds.

A sandbox serves several listeners (a household sharing one app, as Spotify's development
mode allows): the default one, whose history every single-user test knows, and the named
``LISTENER_PROFILES`` with their own tastes and hours, over the same catalogue so that they
share artists the way friends do. Each is selected by the tokens it was given.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from spotify_sandbox.catalogue import Catalogue, stable_int, stable_unit
from spotify_sandbox.constants import MAX_LOOKBACK_HOURS, PUBLIC_API, RECENTLY_PLAYED_WINDOW

HOUR_MS = 3_600_000
#: Chance that the listener listens at all in a given UTC hour: silent nights, a morning
#: commute, a patchy working day and a heavy evening.
HOUR_ACTIVITY = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.45, 0.6, 0.3, 0.25, 0.3,
    0.55, 0.4, 0.2, 0.25, 0.35, 0.65, 0.75, 0.85, 0.95, 0.9, 0.6, 0.3,
)  # fmt: skip

ClockMode = Literal["fixed", "realtime"]


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    return int(dt.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def iso_ms(ms: int) -> str:
    """Spotify's played_at format: ``2026-11-20T20:58:03.123Z``."""
    dt = from_ms(ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_instant(value: str | datetime) -> datetime:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


class SimClock:
    """Simulated time. ``fixed`` stands still until told to move; ``realtime`` ticks with the wall clock."""

    def __init__(self, now: datetime, mode: ClockMode = "fixed") -> None:
        if mode not in ("fixed", "realtime"):
            raise ValueError(f"clock must be 'fixed' or 'realtime', not {mode!r}")
        self.mode: ClockMode = mode
        self._lock = threading.Lock()
        self._base = parse_instant(now)
        self._wall_start = time.monotonic()

    def now(self) -> datetime:
        with self._lock:
            if self.mode == "realtime":
                return self._base + timedelta(seconds=time.monotonic() - self._wall_start)
            return self._base

    def now_ms(self) -> int:
        return to_ms(self.now())

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._base += timedelta(seconds=seconds)
        return self.now()

    def set_now(self, now: str | datetime) -> datetime:
        with self._lock:
            self._base = parse_instant(now)
            self._wall_start = time.monotonic()
        return self.now()


@dataclass(frozen=True)
class ListenerProfile:
    """Who a sandbox listener is: a Spotify user id (the key), a display name (a label) and a taste.

    ``taste`` None keeps the catalogue's own preference order and the hour hashes the sandbox
    has always used, so the default listener's history is exactly what it was before there
    were several. ``hour_shift`` moves the daily activity curve (a night owl, an early bird).
    """

    user_id: str
    display_name: str
    taste: str | None = None
    hour_shift: int = 0


DEFAULT_LISTENER = ListenerProfile("sandbox-listener", "Sandbox Listener")
#: The named listeners, by the name a test or ``spotify-assets demo --users`` picks them with.
LISTENER_PROFILES: dict[str, ListenerProfile] = {
    "alice": ListenerProfile("sandbox-alice", "Alice", taste="alice", hour_shift=-2),
    "bob": ListenerProfile("sandbox-bob", "Bob", taste="bob", hour_shift=5),
    "carol": ListenerProfile("sandbox-carol", "Carol", taste="carol", hour_shift=1),
    "dave": ListenerProfile("sandbox-dave", "Dave", taste="dave", hour_shift=-4),
    "erin": ListenerProfile("sandbox-erin", "Erin", taste="erin", hour_shift=3),
}


@dataclass(frozen=True)
class Play:
    """One finished play: ``played_at_ms`` is when it ended (Spotify's convention)."""

    played_at_ms: int
    track: int
    context_kind: str | None
    context_pick: int


class Listener:
    """Generates and renders one seeded listener's plays."""

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        profile: ListenerProfile = DEFAULT_LISTENER,
        local_file_ratio: float = 0.0,
        episode_ratio: float = 0.0,
    ):
        self.catalogue = catalogue
        self.seed = catalogue.seed
        self.profile = profile
        self.local_file_ratio = local_file_ratio
        self.episode_ratio = episode_ratio
        if profile.taste is None:
            self.preference_order = catalogue.preference_order
        else:
            order = list(catalogue.preference_order)
            random.Random(stable_int("taste", self.seed, profile.taste)).shuffle(order)  # noqa: S311
            self.preference_order = order
        self.hour = lru_cache(maxsize=8192)(self._generate_hour)

    def _pick_track(self, rng: random.Random) -> int:
        c = self.catalogue
        rank = rng.choices(range(len(self.preference_order)), cum_weights=c.preference_cum_weights)[0]
        return self.preference_order[rank]

    def _hour_seed(self, hour: int) -> int:
        if self.profile.taste is None:
            return stable_int("hour", self.seed, hour)
        return stable_int("hour", self.seed, self.profile.taste, hour)

    def _generate_hour(self, hour: int) -> tuple[Play, ...]:
        """The plays that *ended* inside UTC hour ``hour`` (hours since the epoch), oldest first."""
        rng = random.Random(self._hour_seed(hour))  # noqa: S311 - synthetic data
        if rng.random() >= HOUR_ACTIVITY[(hour + self.profile.hour_shift) % 24]:
            return ()
        start = hour * HOUR_MS
        end = start + HOUR_MS
        t = start + rng.randint(0, 25 * 60_000)
        session_end = min(end, t + rng.randint(20, 60) * 60_000)
        kind = self.catalogue.context_kind(rng.random())
        pick = rng.randrange(1 << 16)
        plays: list[Play] = []
        while True:
            track = self._pick_track(rng)
            duration = self.catalogue.tracks[track].duration_ms
            if rng.random() < 0.1:  # skipped part-way, but after 30 s, so it still counts as a play
                duration = rng.randint(30_000, duration)
            finished = t + duration
            if finished >= session_end:
                break
            plays.append(Play(finished, track, kind, pick))
            t = finished + rng.randint(0, 4_000)
        return tuple(plays)

    def recent(self, now_ms: int, n: int = RECENTLY_PLAYED_WINDOW) -> list[Play]:
        """The ``n`` latest plays with played_at <= now, newest first (walks back hour by hour)."""
        out: list[Play] = []
        hour = now_ms // HOUR_MS
        for h in range(hour, hour - MAX_LOOKBACK_HOURS, -1):
            for play in reversed(self.hour(h)):
                if play.played_at_ms <= now_ms:
                    out.append(play)
                    if len(out) >= n:
                        return out
        return out

    def between(self, start_ms: int, end_ms: int) -> list[Play]:
        """All plays with start < played_at <= end, oldest first."""
        out: list[Play] = []
        for h in range(start_ms // HOUR_MS, end_ms // HOUR_MS + 1):
            out.extend(p for p in self.hour(h) if start_ms < p.played_at_ms <= end_ms)
        return out

    def profile_json(self) -> dict[str, Any]:
        """``GET /v1/me`` for this listener: Spotify's public user object."""
        user_id = self.profile.user_id
        return {
            "display_name": self.profile.display_name,
            "external_urls": {"spotify": f"https://open.spotify.com/user/{user_id}"},
            "followers": {"href": None, "total": stable_int("followers", self.seed, user_id) % 200},
            "href": f"{PUBLIC_API}/v1/users/{user_id}",
            "id": user_id,
            "images": [],
            "type": "user",
            "uri": f"spotify:user:{user_id}",
        }

    def render(self, play: Play) -> dict[str, Any]:
        """A play-history item as the API returns it; the local/episode knobs apply per play, by hash."""
        roll = stable_unit("kind", self.seed, play.played_at_ms)
        context = self.catalogue.context_json(play.context_kind or "", play.track, play.context_pick)
        if roll < self.episode_ratio:
            episode = stable_int("episode", self.seed, play.played_at_ms) % len(self.catalogue.episodes)
            item = self.catalogue.episode_json(episode)
            show = item["show"]
            context = {
                "type": "show",
                "uri": show["uri"],
                "href": show["href"],
                "external_urls": show["external_urls"],
            }
        elif roll < self.episode_ratio + self.local_file_ratio:
            item = self.catalogue.local_track_json(stable_int("local", self.seed, play.played_at_ms) % 12)
            context = None
        else:
            item = self.catalogue.track_json(play.track)
        return {"track": item, "played_at": iso_ms(play.played_at_ms), "context": context}


def corrupt_item(item: dict[str, Any], kind: str, catalogue: Catalogue, key: int) -> Any:
    """``item`` as a hostile or odd server might send it (the ``items`` fault knob).

    ``key`` (the play's time) picks which local file or episode stands in, so answers stay
    deterministic. The kinds are ``state.ITEM_FAULT_KINDS``.
    """
    out = dict(item)
    track = dict(item["track"]) if isinstance(item.get("track"), dict) else item.get("track")
    if kind == "missing_played_at":
        del out["played_at"]
    elif kind == "unparseable_played_at":
        out["played_at"] = "yesterday, late"
    elif kind == "track_not_object":
        out["track"] = track.get("uri") if isinstance(track, dict) else "spotify:track:?"
    elif kind == "unknown_type" and isinstance(track, dict):
        out["track"] = {**track, "type": "audiobook_chapter"}
    elif kind == "not_object":
        return f"{item.get('played_at')} {track.get('uri') if isinstance(track, dict) else ''}"
    elif kind == "null_id" and isinstance(track, dict):
        out["track"] = {**track, "id": None}
    elif kind == "local":
        out["track"], out["context"] = catalogue.local_track_json(key % 12), None
    elif kind == "episode":
        out["track"] = catalogue.episode_json(key % len(catalogue.episodes))
    else:
        raise ValueError(f"unknown item fault {kind!r}")
    return out
