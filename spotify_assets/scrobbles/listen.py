"""The one record every reader of another source yields: a ``Listen``, or why a row is not one.

A listen is listener-agnostic (whose it is is the caller's, as ``--user`` is for the Spotify
import) and carries what the sources agree on: names, when the play *started* (a scrobble's
time, unlike Spotify's ``played_at``, which is the end), and ids where the source knows them.
A row that cannot be trusted is a ``Rejected`` with a reason and its raw content, so the import
quarantines it with that reason rather than dropping it; an entry that is not a listen at all
(Last.fm's "now playing" line) is ``Skipped``, counted but never quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The source families a play can be seen in (``plays.sources``), re-exported from their one home.
from spotify_assets.play_sources import LASTFM as LASTFM
from spotify_assets.play_sources import LISTENBRAINZ as LISTENBRAINZ
from spotify_assets.play_sources import SCROBBLE_SERVER as SCROBBLE_SERVER
from spotify_assets.play_sources import SPOTIFY as SPOTIFY

#: Audioscrobbler (Last.fm's ancestor) started in 2002: an earlier time is a broken clock
#: (exporters write ``uts=0`` for scrobbles Last.fm lost the time of).
EARLIEST_LISTEN = datetime(2002, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Mbids:
    """MusicBrainz ids where the source knows them (Last.fm often, ListenBrainz usually)."""

    recording: str | None = None
    release: str | None = None
    artists: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listen:
    """One play of a track as another source recorded it.

    ``started_at`` is UTC and when the play began; ``precision_s`` says how finely the source
    knows it (1, or 60 for exports that print minutes only), which the matching rules use.
    ``position`` is where in the input it was read (``file:line`` / ``file#item``), for the
    import's report and quarantine. ``duration_ms`` is the track's length where the source
    knows it; ``ms_played`` how long it played (Spotify's rows only: a Spotify play given to
    ``matching.decide`` as a listen has ``started_at = spotify_started_at(ts, ms_played)``).
    """

    source: str
    artist: str
    track: str
    album: str | None
    started_at: datetime
    position: str
    duration_ms: int | None = None
    spotify_track_id: str | None = None
    mbids: Mbids = field(default_factory=Mbids)
    precision_s: int = 1
    player: str | None = None
    ms_played: int | None = None


@dataclass(frozen=True)
class Rejected:
    """A row that is not a usable listen: ``reason`` is its quarantine reason, ``raw`` the row."""

    reason: str
    position: str
    raw: Any = None


@dataclass(frozen=True)
class Skipped:
    """An entry that is not a listen and is not an error (counted in the report, not quarantined)."""

    reason: str
    position: str


ReadItem = Listen | Rejected | Skipped


class Invalid(ValueError):
    """Raised inside a reader for one row; the reader turns it into ``Rejected(reason)``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def text(value: Any, what: str, *, required: bool) -> str | None:
    """A name field: a string, stripped; empty is None. ``required`` makes a missing one ``Invalid``."""
    if value is None or value == "":
        if required:
            raise Invalid(f"missing_{what}")
        return None
    if not isinstance(value, str):
        raise Invalid(f"bad_type:{what}")
    value = value.strip()
    if not value:
        if required:
            raise Invalid(f"missing_{what}")
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be stored as UTF-8
        raise Invalid(f"bad_unicode:{what}") from None
    return value


def checked_time(when: datetime, now: datetime) -> datetime:
    """``when`` in UTC if it is believable: not before 2002, not in the future."""
    when = when.astimezone(UTC)
    if when < EARLIEST_LISTEN:
        raise Invalid("time_before_2002")
    if when > now:
        raise Invalid("time_in_future")
    return when


def unix_time(value: Any, now: datetime) -> datetime:
    """Unix seconds (an int, or digits in a string as Last.fm's JSON gives them) as a UTC time."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("bad_time")
    try:
        when = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise Invalid("bad_time") from None
    return checked_time(when, now)
