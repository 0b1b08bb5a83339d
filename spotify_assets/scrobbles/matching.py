"""Counting a listen once across sources: the time rules and the decision, as pure functions.

A play can be recorded by Spotify (its export or the poll) and by one or more scrobblers
(Last.fm, ListenBrainz, this installation's own door). ``decide`` says of each incoming listen
whether it is

* a **duplicate**: the same source recorded it already (a re-import, an exporter's row repeated
  at a page boundary, a scrobbler's retry): same source, equal names (``names.py``) and the same
  start at the coarser precision of the two (a minute-precision CSV row equals the JSON page's
  second-precision scrobble of that minute);
* **matched** to a play another source recorded: equal names and start times within
  ``window`` (below); the play keeps Spotify's ids and times, and remembers the new source;
* **new**: its own play, with no Spotify id, keyed by ``play_key``.

Time rules. A scrobble's time is when the play started; Spotify's ``played_at`` (the export's
``ts``) is when it ended, so its start is ``spotify_started_at`` = end - ``ms_played``. A pause
makes the true start earlier than that (paused time is not in ``ms_played``), so a scrobble may
start up to ``MAX_PAUSE`` (10 min) before Spotify's computed start, plus what the scrobble's
precision hides (a time cut to the minute is up to 59 s early); it may start up to ``SKEW``
(30 s) after it (device clocks, a scrobbler noticing the play late). Two scrobblers both record
the start itself, so between them the window is ``SKEW`` plus what the coarser precision
hides, either way. A Spotify stream shorter than ``MIN_PLAY_MS`` (30 s) is never matched: no
scrobbler records a play that short (Last.fm needs 30 s and half the track), and a skipped try
just before the real play must not take its scrobble. A polled play has no ``ms_played``: its
start is its end minus the track's duration (the API's ``duration_ms``).

One to one. Each incoming listen joins at most one play, and a play takes at most one listen
per source. When several pairs qualify (a track on repeat), the pairs closest in time are
joined first, so back-to-back plays of one track each keep their own scrobble.

The known limit. A pause and an earlier play look alike: a track played on another player
(say, vinyl scrobbled to Last.fm) and then, within ``MAX_PAUSE`` of Spotify's computed start,
the same track on Spotify is one play to these rules when Spotify's play has no scrobble of
that source of its own (the vinyl scrobble is taken as a paused Spotify play). Nothing in the
sources tells the two apart; the window is the trade between that and counting every paused
Spotify play twice. Likewise a seek backwards of more than ``SKEW`` makes Spotify's computed
start earlier than the scrobble by more than the window: that play is counted twice.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spotify_assets.imports.parsers import MIN_PLAY_MS
from spotify_assets.scrobbles.listen import SPOTIFY, Listen
from spotify_assets.scrobbles.names import artist_key, track_key

#: The longest pause a play may hold and still match its scrobble (see the module docstring).
MAX_PAUSE = timedelta(minutes=10)
#: How far apart two records of one start may be beyond pauses and precision: clocks, a
#: scrobbler noticing the play a little late. Kept short: back-to-back plays of one track
#: (a repeat, or another player's play right after Spotify's) must stay two plays.
SKEW = timedelta(seconds=30)


def spotify_started_at(ended_at: datetime, ms_played: int) -> datetime:
    """When a Spotify stream started: its end (``played_at`` / ``ts``) minus the time it played.

    Later than the true start when the listener paused: ``window`` allows for that.
    """
    return ended_at - timedelta(milliseconds=ms_played)


def spotify_listen(row: Mapping[str, Any], position: str, *, duration_ms: int | None = None) -> Listen | None:
    """A Spotify plays row (``imports/parsers.ROW_COLUMNS``: ``played_at`` the end, ``ms_played``,
    names, ``track_id``) as a ``Listen`` that starts at ``spotify_started_at``, for ``decide``.

    A polled row has no ``ms_played``: ``duration_ms`` (the track's length) stands in. None when
    neither is known or the row has no names (an episode without a show, a row with no track).
    """
    played = row.get("ms_played")
    if played is None:
        played = duration_ms
    artist, track = row.get("primary_artist_name"), row.get("track_name")
    if played is None or not artist or not track:
        return None
    return Listen(
        source=SPOTIFY,
        artist=str(artist),
        track=str(track),
        album=row.get("album_name"),
        started_at=spotify_started_at(row["played_at"], int(played)),
        position=position,
        spotify_track_id=row.get("track_id"),
        ms_played=int(played),
    )


@dataclass(frozen=True)
class Seen:
    """One source's record of a play already kept: what an incoming listen is compared with.

    ``play`` is the play's key in the warehouse; a play seen by Spotify and by Last.fm is two
    ``Seen`` with the same ``play``. ``ms_played`` is Spotify's (None for a scrobble, or when
    unknown: then the 30 s rule does not apply).
    """

    play: str
    source: str
    artist: str
    track: str
    started_at: datetime
    precision_s: int = 1
    ms_played: int | None = None

    @classmethod
    def spotify(cls, play: str, ended_at: datetime, ms_played: int, artist: str, track: str) -> Seen:
        """A Spotify play as a ``Seen``: its start computed from its end (``spotify_started_at``)."""
        return cls(play, SPOTIFY, artist, track, spotify_started_at(ended_at, ms_played), ms_played=ms_played)

    @classmethod
    def of(cls, listen: Listen, play: str) -> Seen:
        return cls(
            play,
            listen.source,
            listen.artist,
            listen.track,
            listen.started_at,
            listen.precision_s,
            listen.ms_played,
        )


class Outcome(enum.Enum):
    DUPLICATE = "duplicate"
    MATCHED = "matched"
    NEW = "new"


@dataclass(frozen=True)
class Decision:
    """What to do with ``listen``: ``play`` is the play it already is (duplicate), joins
    (matched) or starts (new, ``play_key(listen)``)."""

    listen: Listen
    outcome: Outcome
    play: str


@functools.lru_cache(maxsize=65_536)
def name_key(artist: str, track: str) -> tuple[str, str]:
    """The (artist, track) pair as compared (``names.py``); cached: a history repeats its tracks."""
    return artist_key(artist), track_key(track)


def _floor(when: datetime, seconds: int) -> int:
    return int(when.timestamp()) // seconds * seconds


def same_start(a: datetime, a_precision: int, b: datetime, b_precision: int) -> bool:
    """Whether two records of one source name the same start: equal at the coarser precision."""
    p = max(a_precision, b_precision, 1)
    return _floor(a, p) == _floor(b, p)


def window(seen: Seen, listen: Listen) -> timedelta | None:
    """How far ``listen`` starts from ``seen`` (the absolute gap) if they can be one play; else None.

    The rules of the module docstring: against Spotify, from ``-(MAX_PAUSE + precision)`` to
    ``+SKEW`` around Spotify's computed start, and only for streams of 30 s or more; between
    scrobblers, ``SKEW`` plus what the coarser precision hides, either way.
    """
    delta = listen.started_at - seen.started_at
    if SPOTIFY in (seen.source, listen.source):
        played = seen.ms_played if seen.source == SPOTIFY else listen.ms_played
        if played is not None and played < MIN_PLAY_MS:
            return None
        # The scrobble's start minus Spotify's computed start, whichever side is incoming.
        scrobble_minus_spotify = delta if seen.source == SPOTIFY else -delta
        # A time cut to ``precision_s`` seconds is up to ``precision_s - 1`` seconds early.
        precision = timedelta(
            seconds=(listen.precision_s if seen.source == SPOTIFY else seen.precision_s) - 1
        )
        if -(MAX_PAUSE + precision) <= scrobble_minus_spotify <= SKEW:
            return abs(delta)
        return None
    slack = SKEW + timedelta(seconds=max(seen.precision_s, listen.precision_s) - 1)
    return abs(delta) if abs(delta) <= slack else None


def play_key(listen: Listen) -> str:
    """The key of a play no Spotify record holds: its start (ISO UTC with microseconds, as the
    plays keys are written), the source that saw it first and its normalised names.

    The source is in it because two sources may record different plays at the same instant
    with the same names (a 4-second Spotify try and a scrobble of the play after it): keys
    must never collide, while the same listen from two sources is joined by ``decide``, not
    by equal keys. ``<source>:`` also keeps these keys apart from the Spotify import's
    ``name:`` keys (``imports/parsers.play_key``).
    """
    stamp = listen.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    artist, track = name_key(listen.artist, listen.track)
    return f"{stamp}|{listen.source}:{artist}|{track}"


def decide(existing: Iterable[Seen], incoming: Iterable[Listen]) -> list[Decision]:
    """Per incoming listen, in order: duplicate, matched (to which play) or new (see the module docstring).

    Pure: the caller writes what it decides. Incoming listens of several sources are taken
    source by source, in the order each first appears, so a listen new in this batch can be
    matched or repeated by a later one; the result does not depend on how one source's rows are
    ordered, and importing the sources in any order counts each play once.
    """
    listens = list(incoming)
    by_name: dict[tuple[str, str], list[Seen]] = {}
    sources_of: dict[str, set[str]] = {}

    def remember(seen: Seen) -> None:
        by_name.setdefault(name_key(seen.artist, seen.track), []).append(seen)
        sources_of.setdefault(seen.play, set()).add(seen.source)

    for seen in existing:
        remember(seen)
    decided: dict[int, Decision] = {}
    for source in dict.fromkeys(listen.source for listen in listens):
        group = [i for i, listen in enumerate(listens) if listen.source == source]
        _decide_group(listens, group, by_name, sources_of, decided, remember)
    return [decided[i] for i in range(len(listens))]


def _decide_group(
    listens: list[Listen],
    group: list[int],
    by_name: dict[tuple[str, str], list[Seen]],
    sources_of: dict[str, set[str]],
    decided: dict[int, Decision],
    remember: Callable[[Seen], None],
) -> None:
    """One source's listens: duplicates first, then the closest pairs matched, the rest new."""
    # 1. Duplicates of what the source recorded before, or of an earlier row of this batch.
    first_of: dict[int, int] = {}  # a repeated row -> the batch row it repeats
    candidates: list[int] = []
    candidates_by_name: dict[tuple[str, str], list[int]] = {}
    for i in group:
        listen = listens[i]
        key = name_key(listen.artist, listen.track)
        earlier = next(
            (
                s
                for s in by_name.get(key, ())
                if s.source == listen.source
                and same_start(s.started_at, s.precision_s, listen.started_at, listen.precision_s)
            ),
            None,
        )
        if earlier is not None:
            decided[i] = Decision(listen, Outcome.DUPLICATE, earlier.play)
            continue
        repeat = next(
            (
                j
                for j in candidates_by_name.get(key, ())
                if same_start(
                    listens[j].started_at, listens[j].precision_s, listen.started_at, listen.precision_s
                )
            ),
            None,
        )
        if repeat is not None:
            first_of[i] = repeat
        else:
            candidates.append(i)
            candidates_by_name.setdefault(key, []).append(i)
    # 2. The closest (listen, play) pairs within the window, one listen per play per source.
    pairs: list[tuple[timedelta, int, str]] = []
    for i in candidates:
        listen = listens[i]
        for seen in by_name.get(name_key(listen.artist, listen.track), ()):
            if seen.source == listen.source or listen.source in sources_of[seen.play]:
                continue
            gap = window(seen, listen)
            if gap is not None:
                pairs.append((gap, i, seen.play))
    taken: set[str] = set()
    for _gap, i, play in sorted(pairs):
        if i in decided or play in taken:
            continue
        taken.add(play)
        decided[i] = Decision(listens[i], Outcome.MATCHED, play)
    # 3. The rest are plays of their own; then the batch's repeats follow the row they repeat.
    for i in candidates:
        if i not in decided:
            decided[i] = Decision(listens[i], Outcome.NEW, play_key(listens[i]))
        remember(Seen.of(listens[i], decided[i].play))
    for i, j in first_of.items():
        decided[i] = Decision(listens[i], Outcome.DUPLICATE, decided[j].play)
