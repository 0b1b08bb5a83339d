"""The dashboard's SQL, one builder per page; every aggregation runs in the warehouse.

Builders return ``{name: sql}`` batches in DuckDB's dialect (``warehouse.to_bigquery``
transpiles them for the cloud). Nothing here touches a connection, so the SQL can be unit
tested and transpiled without a warehouse.

Definitions used everywhere (the pages repeat them in a short note):

* a *play* is a ``bq_plays`` row with ``is_play`` (a track streamed for at least 30 s,
  Spotify's own rule); shorter streams are kept in the table but never counted;
* podcast episodes (``content_type = 'episode'``) are excluded from music statistics;
* minutes are ``coalesce(ms_played, duration_ms) / 60000`` (the API does not report how
  long a track was actually played, so a full listen is assumed there);
* tracks, artists and albums are told apart by (lower-cased) names, falling back to ids:
  account-data exports carry names only, so keying by id would list every song twice once
  such an export is imported next to API plays.

User input never reaches SQL as raw text: time zones are checked against the IANA list,
instants and dates are formatted by Python, free-text search is quoted by sqlglot, and
grains and sort keys come from fixed allow-lists.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Literal

from sqlglot import exp

from spotify_assets.schema import FEATURES_TABLE, PLAYS_TABLE, TOP_TEN_TABLE

META_TABLE = "warehouse_meta"
Grain = Literal["day", "week", "month"]
GRAINS: tuple[Grain, ...] = ("day", "week", "month")
PeriodKind = Literal["4w", "6m", "all", "custom"]
PERIOD_LABELS: dict[PeriodKind, str] = {
    "4w": "Last 4 weeks",
    "6m": "Last 6 months",
    "all": "All time",
    "custom": "Custom range",
}
#: A listening session ends after this long without a play finishing.
SESSION_GAP_MINUTES = 30
TOP_LIMIT = 50


@cache
def valid_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def check_timezone(tz: str) -> str:
    """Return ``tz`` if it is a known IANA zone; anything else is refused (it ends up in SQL)."""
    if tz not in valid_timezones():
        raise ValueError(f"unknown time zone {tz!r}")
    return tz


def lit(value: str) -> str:
    """A safely quoted SQL string literal."""
    return exp.Literal.string(value).sql(dialect="duckdb")


def ts_lit(instant: datetime) -> str:
    """A TIMESTAMPTZ literal for an aware datetime (normalised to UTC)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return f"CAST({lit(instant.astimezone(UTC).isoformat())} AS TIMESTAMPTZ)"


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval ``[start, end)``; ``None`` ends are unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    def sql(self, column: str = "played_at") -> str:
        parts = []
        if self.start is not None:
            parts.append(f"{column} >= {ts_lit(self.start)}")
        if self.end is not None:
            parts.append(f"{column} < {ts_lit(self.end)}")
        return " AND ".join(parts) if parts else "TRUE"


def period_for(
    kind: PeriodKind,
    tz: str,
    *,
    now: datetime | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
) -> Period:
    """The UTC interval for a period choice; custom ranges are whole local days, inclusive."""
    now = now or datetime.now(UTC)
    if kind == "4w":
        return Period(start=now - timedelta(weeks=4))
    if kind == "6m":
        return Period(start=now - timedelta(days=182))
    if kind == "all":
        return Period()
    zone = zoneinfo.ZoneInfo(check_timezone(tz))
    start = datetime.combine(first_day, time(0), zone) if first_day else None
    end = datetime.combine(last_day + timedelta(days=1), time(0), zone) if last_day else None
    return Period(start=start, end=end)


def music_cte(tz: str, where: str = "TRUE") -> str:
    """The counted music plays with stable keys and local time: the base of every page."""
    return f"""music AS (
  SELECT
    played_at,
    played_at AT TIME ZONE {lit(check_timezone(tz))} AS local_ts,
    coalesce(lower(primary_artist_name) || '|' || lower(track_name), track_id) AS track_key,
    coalesce(lower(primary_artist_name), primary_artist_id) AS artist_key,
    coalesce(lower(primary_artist_name) || '|' || lower(album_name), album_id) AS album_key,
    track_id, track_name, artist_names, primary_artist_name, album_name, album_image_url,
    coalesce(ms_played, duration_ms, 0) / 60000.0 AS minutes
  FROM {PLAYS_TABLE}
  WHERE is_play AND content_type <> 'episode' AND ({where})
)"""


def version_queries() -> dict[str, str]:
    """Tiny queries whose answers key every cache: the newest play and the last publish."""
    return {
        "plays": f"SELECT max(played_at) AS newest, count(*) AS n FROM {PLAYS_TABLE}",
        "meta": f"SELECT value AS published_at FROM {META_TABLE} WHERE key = 'published_at'",
    }


def overview_queries(tz: str) -> dict[str, str]:
    base = f"WITH {music_cte(tz)}\n"
    return {
        "totals": base
        + """SELECT count(*) AS plays, coalesce(sum(minutes), 0) / 60.0 AS hours,
  count(DISTINCT track_key) AS tracks, count(DISTINCT artist_key) AS artists,
  count(DISTINCT album_key) AS albums, min(played_at) AS first_play, max(played_at) AS last_play
FROM music""",
        "last_track": base
        + """SELECT track_name, artist_names, album_name, album_image_url, played_at
FROM music ORDER BY played_at DESC LIMIT 1""",
        "top_artist": base
        + """SELECT arg_max(primary_artist_name, played_at) AS artist, count(*) AS plays
FROM music WHERE artist_key IS NOT NULL GROUP BY artist_key ORDER BY plays DESC, artist LIMIT 1""",
        "daily": base
        + """SELECT CAST(local_ts AS DATE) AS day, sum(minutes) AS minutes, count(*) AS plays
FROM music GROUP BY 1 ORDER BY 1""",
        "podcasts": f"""SELECT count(*) AS episodes,
  coalesce(sum(coalesce(ms_played, duration_ms, 0)), 0) / 3600000.0 AS hours
FROM {PLAYS_TABLE} WHERE is_play AND content_type = 'episode'""",
    }


def top_queries(tz: str, period: Period, limit: int = TOP_LIMIT) -> dict[str, str]:
    base = f"WITH {music_cte(tz, period.sql())}\n"
    return {
        "tracks": base
        + f"""SELECT arg_max(track_name, played_at) AS track,
  arg_max(artist_names, played_at) AS artists, arg_max(album_name, played_at) AS album,
  max(album_image_url) AS image, count(*) AS plays, sum(minutes) AS minutes, max(played_at) AS last_played
FROM music GROUP BY track_key ORDER BY plays DESC, minutes DESC, track LIMIT {int(limit)}""",
        "artists": base
        + f"""SELECT arg_max(primary_artist_name, played_at) AS artist,
  max(album_image_url) AS image, count(*) AS plays, sum(minutes) AS minutes,
  count(DISTINCT track_key) AS tracks
FROM music WHERE artist_key IS NOT NULL GROUP BY artist_key
ORDER BY plays DESC, minutes DESC, artist LIMIT {int(limit)}""",
        "albums": base
        + f"""SELECT arg_max(album_name, played_at) AS album,
  arg_max(primary_artist_name, played_at) AS artist, max(album_image_url) AS image,
  count(*) AS plays, sum(minutes) AS minutes, count(DISTINCT track_key) AS tracks
FROM music WHERE album_key IS NOT NULL GROUP BY album_key
ORDER BY plays DESC, minutes DESC, album LIMIT {int(limit)}""",
        "totals": base + "SELECT count(*) AS plays, coalesce(sum(minutes), 0) AS minutes FROM music",
    }


def top_ten_mart_query() -> dict[str, str]:
    return {
        "top_ten": f"""SELECT rank, track_name, artist_names, album_name, album_image_url, plays,
  minutes_listened, first_played_at, last_played_at, computed_at
FROM {TOP_TEN_TABLE} ORDER BY rank"""
    }


def when_queries(tz: str, period: Period, grain: Grain) -> dict[str, str]:
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}")
    base = f"WITH {music_cte(tz, period.sql())}"
    sessions = f"""{base},
ordered AS (
  SELECT played_at, minutes,
    CASE WHEN played_at - lag(played_at) OVER (ORDER BY played_at) <= INTERVAL {SESSION_GAP_MINUTES} MINUTE
      THEN 0 ELSE 1 END AS is_new
  FROM music
),
numbered AS (
  SELECT played_at, minutes,
    sum(is_new) OVER (ORDER BY played_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_id
  FROM ordered
),
sessions AS (
  SELECT session_id, min(played_at) AS started, max(played_at) AS ended, count(*) AS plays,
    sum(minutes) AS minutes
  FROM numbered GROUP BY session_id
)
"""
    return {
        "heatmap": base
        + """
SELECT isodow(local_ts) AS dow, hour(local_ts) AS hour, count(*) AS plays, sum(minutes) AS minutes
FROM music GROUP BY 1, 2""",
        "timeline": base
        + f"""
SELECT CAST(date_trunc('{grain}', local_ts) AS DATE) AS period, count(*) AS plays, sum(minutes) AS minutes
FROM music GROUP BY 1 ORDER BY 1""",
        "streaks": base
        + """,
days AS (SELECT DISTINCT CAST(local_ts AS DATE) AS day FROM music),
islands AS (
  SELECT day, date_diff('day', DATE '1970-01-01', day) - row_number() OVER (ORDER BY day) AS grp FROM days
)
SELECT min(day) AS first_day, max(day) AS last_day, count(*) AS days
FROM islands GROUP BY grp ORDER BY days DESC, first_day DESC LIMIT 5""",
        "sessions": sessions
        + """SELECT started, ended, plays, minutes, count(*) OVER () AS n_sessions,
  avg(minutes) OVER () AS avg_minutes
FROM sessions ORDER BY minutes DESC, started DESC LIMIT 10""",
    }


def mood_queries(tz: str, period: Period) -> dict[str, str]:
    base = f"""WITH {music_cte(tz, period.sql())},
feat AS (
  SELECT track_id, energy, valence, danceability, tempo FROM {FEATURES_TABLE}
  WHERE status = 'ok'
  QUALIFY row_number() OVER (PARTITION BY track_id ORDER BY fetched_at DESC) = 1
),
fp AS (
  SELECT music.*, feat.energy, feat.valence, feat.danceability, feat.tempo
  FROM music JOIN feat ON feat.track_id = music.track_id
)
"""
    return {
        "status": f"""SELECT status, provider, count(*) AS tracks FROM {FEATURES_TABLE}
GROUP BY 1, 2 ORDER BY tracks DESC""",
        "summary": base
        + """SELECT count(*) AS plays_with_features, (SELECT count(*) FROM music) AS plays,
  avg(energy) AS energy, avg(valence) AS valence, avg(danceability) AS danceability, avg(tempo) AS tempo
FROM fp""",
        "map": base
        + """SELECT arg_max(track_name, played_at) AS track, arg_max(artist_names, played_at) AS artists,
  max(energy) AS energy, max(valence) AS valence, count(*) AS plays
FROM fp WHERE energy IS NOT NULL AND valence IS NOT NULL
GROUP BY track_key ORDER BY plays DESC, track LIMIT 400""",
        "tempo": base
        + """SELECT floor(tempo / 5) * 5 AS bpm, count(*) AS plays
FROM fp WHERE tempo > 0 GROUP BY 1 ORDER BY 1""",
        "danceability": base
        + """SELECT floor(danceability * 20) / 20.0 AS danceability, count(*) AS plays
FROM fp WHERE danceability IS NOT NULL GROUP BY 1 ORDER BY 1""",
        "monthly": base
        + """SELECT CAST(date_trunc('month', local_ts) AS DATE) AS month, avg(energy) AS energy,
  avg(valence) AS valence, avg(danceability) AS danceability, count(*) AS plays
FROM fp GROUP BY 1 ORDER BY 1""",
    }


def discovery_queries(tz: str, recent_days: int = 90) -> dict[str, str]:
    zone = lit(check_timezone(tz))
    base = f"""WITH {music_cte(tz)},
track_firsts AS (SELECT track_key, min(played_at) AS first_at FROM music GROUP BY track_key),
artist_firsts AS (
  SELECT artist_key, min(played_at) AS first_at FROM music WHERE artist_key IS NOT NULL GROUP BY artist_key
)
"""
    return {
        "new_per_month": base
        + f"""SELECT month, sum(new_tracks) AS new_tracks, sum(new_artists) AS new_artists
FROM (
  SELECT CAST(date_trunc('month', first_at AT TIME ZONE {zone}) AS DATE) AS month,
    count(*) AS new_tracks, 0 AS new_artists
  FROM track_firsts GROUP BY 1
  UNION ALL
  SELECT CAST(date_trunc('month', first_at AT TIME ZONE {zone}) AS DATE) AS month,
    0 AS new_tracks, count(*) AS new_artists
  FROM artist_firsts GROUP BY 1
) AS t GROUP BY month ORDER BY month""",
        "share": base
        + f"""SELECT CAST(date_trunc('month', m.local_ts) AS DATE) AS month, count(*) AS plays,
  sum(CASE WHEN date_trunc('month', f.first_at AT TIME ZONE {zone}) = date_trunc('month', m.local_ts)
    THEN 1 ELSE 0 END) AS new_plays
FROM music AS m JOIN track_firsts AS f ON f.track_key = m.track_key
GROUP BY 1 ORDER BY 1""",
        "recent_artists": base
        + f"""SELECT arg_max(primary_artist_name, played_at) AS artist,
  min(played_at) AS first_heard, count(*) AS plays, sum(minutes) AS minutes
FROM music WHERE artist_key IS NOT NULL GROUP BY artist_key
HAVING min(played_at) >= (SELECT max(played_at) FROM music) - INTERVAL {int(recent_days)} DAY
ORDER BY plays DESC, artist LIMIT 15""",
    }


ContentFilter = Literal["music", "podcasts", "all"]


@dataclass(frozen=True)
class RecentFilter:
    """What the Recent plays table shows."""

    search: str = ""
    content: ContentFilter = "music"
    include_short: bool = False
    period: Period = Period()
    sources: tuple[str, ...] = ()

    def where(self) -> str:
        parts = [self.period.sql()]
        if not self.include_short:
            parts.append("is_play")
        if self.content == "music":
            parts.append("content_type <> 'episode'")
        elif self.content == "podcasts":
            parts.append("content_type = 'episode'")
        if self.sources:
            parts.append("source IN (" + ", ".join(lit(s) for s in self.sources) + ")")
        needle = self.search.strip().lower()
        if needle:
            quoted = lit(needle)
            parts.append(
                "("
                + " OR ".join(
                    f"strpos(lower(coalesce({col}, '')), {quoted}) > 0"
                    for col in ("track_name", "artist_names", "album_name")
                )
                + ")"
            )
        return " AND ".join(parts)


def recent_queries(tz: str, flt: RecentFilter, limit: int, offset: int) -> dict[str, str]:
    where = flt.where()
    return {
        "rows": f"""SELECT played_at AT TIME ZONE {lit(check_timezone(tz))} AS played_at, track_name AS track,
  artist_names AS artists, album_name AS album, album_image_url AS image,
  coalesce(ms_played, duration_ms, 0) / 60000.0 AS minutes, content_type, is_play, source, context_type
FROM {PLAYS_TABLE} WHERE {where}
ORDER BY played_at DESC LIMIT {int(limit)} OFFSET {int(offset)}""",
        "count": f"SELECT count(*) AS n FROM {PLAYS_TABLE} WHERE {where}",
    }


def sources_query() -> dict[str, str]:
    return {"sources": f"SELECT DISTINCT source FROM {PLAYS_TABLE} ORDER BY 1"}


def all_builders_sample(tz: str = "Europe/Berlin") -> dict[str, str]:
    """Every query the dashboard can send, with representative arguments (for SQL tests)."""
    period = Period(start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 2, 1, tzinfo=UTC))
    out: dict[str, str] = {}
    batches: list[tuple[str, dict[str, str]]] = [
        ("version", version_queries()),
        ("overview", overview_queries(tz)),
        ("top", top_queries(tz, period)),
        ("top_ten", top_ten_mart_query()),
        ("mood", mood_queries(tz, period)),
        ("discovery", discovery_queries(tz)),
        ("sources", sources_query()),
        ("recent", recent_queries(tz, RecentFilter(search="it's", sources=("api",), period=period), 100, 0)),
    ]
    batches += [(f"when_{g}", when_queries(tz, period, g)) for g in GRAINS]
    for prefix, batch in batches:
        out.update({f"{prefix}.{k}": v for k, v in batch.items()})
    return out
