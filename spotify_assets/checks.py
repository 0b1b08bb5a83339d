"""Data-quality checks on the plays table (and, on ``track_features``, feature coverage).

Blocking checks guard what the marts must never be computed from (duplicate or keyless
plays, plays from the future, a drifted schema): when one fails, ``top_ten_tracks`` does
not run. Warnings (freshness, feature coverage, possible gaps in the poll history) are
shown in the UI but stop nothing. The SQL is plain enough to run unchanged on DuckDB and
BigQuery.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from spotify_assets.assets.warehouse import bq_plays, track_features
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import FEATURES_TABLE, PLAY_KEY, PLAYS_TABLE, column_names
from spotify_assets.tables import gaps as gaps_table
from spotify_assets.tables import plays as plays_table

#: Clock skew tolerated before a play counts as "in the future".
FUTURE_TOLERANCE = timedelta(minutes=5)
#: Newest play older than this: the pipeline (or the listener) has been quiet.
FRESHNESS_LIMIT = timedelta(hours=36)
#: Share of distinct tracks with features ("ok" or "not_found") below which we warn.
MIN_FEATURE_COVERAGE = 0.8


class ClockConfig(dg.Config):
    """The instant the time-based checks call "now".

    Empty (the default) means the real clock. A fixed instant makes a run reproducible: the
    sandbox's listener lives on a simulated clock, so tests and replays of old data pass the
    sandbox's "now" instead of depending on today's date. Set it per check in the run config,
    e.g. ``{"ops": {"bq_plays_no_future_plays": {"config": {"now": "2026-11-20T21:00:00Z"}}}}``.
    """

    now: str = ""

    def instant(self) -> datetime:
        if not self.now:
            return datetime.now(UTC)
        parsed = datetime.fromisoformat(self.now.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dg.asset_check(asset=bq_plays, blocking=True, description="Each play_key appears exactly once.")
def play_key_unique(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    dupes = warehouse.query(
        f"SELECT {PLAY_KEY}, count(*) AS n FROM {PLAYS_TABLE} GROUP BY {PLAY_KEY} HAVING count(*) > 1 LIMIT 20"
    )
    return dg.AssetCheckResult(
        passed=dupes.empty,
        description=None if dupes.empty else f"{len(dupes)} play_key(s) appear more than once",
        metadata={"duplicate_keys": len(dupes), "examples": dupes[PLAY_KEY].tolist()[:5]},
    )


@dg.asset_check(asset=bq_plays, blocking=True, description="No play lacks its key, time, source or batch.")
def keys_not_null(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    row = warehouse.query(
        f"SELECT countif_null_key, countif_null_time FROM (SELECT "
        f"sum(CASE WHEN {PLAY_KEY} IS NULL THEN 1 ELSE 0 END) AS countif_null_key, "
        f"sum(CASE WHEN played_at IS NULL THEN 1 ELSE 0 END) AS countif_null_time FROM {PLAYS_TABLE})"
    ).fillna(0)
    null_keys, null_times = int(row["countif_null_key"].iloc[0]), int(row["countif_null_time"].iloc[0])
    passed = null_keys == 0 and null_times == 0
    return dg.AssetCheckResult(
        passed=passed,
        description=None
        if passed
        else f"{null_keys} play(s) without play_key, {null_times} without played_at",
        metadata={"null_play_keys": null_keys, "null_played_at": null_times},
    )


@dg.asset_check(asset=bq_plays, blocking=True, description="No play ended in the future.")
def no_future_plays(config: ClockConfig, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    limit = config.instant() + FUTURE_TOLERANCE
    newest = plays_table.max_played_at(warehouse)
    passed = newest is None or newest <= limit
    return dg.AssetCheckResult(
        passed=passed,
        description=None if passed else f"newest play {newest} is after now + {FUTURE_TOLERANCE} ({limit})",
        metadata={"newest_play": newest.isoformat() if newest else "none", "limit": limit.isoformat()},
    )


@dg.asset_check(asset=bq_plays, blocking=True, description="The table's columns equal schemas/plays.json.")
def schema_unchanged(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    actual = list(warehouse.query(f"SELECT * FROM {PLAYS_TABLE} LIMIT 0").columns)
    expected = column_names("plays")
    return dg.AssetCheckResult(
        passed=actual == expected,
        description=None if actual == expected else "the table's columns differ from schemas/plays.json",
        metadata={
            "missing": sorted(set(expected) - set(actual)),
            "unexpected": sorted(set(actual) - set(expected)),
            "order_matches": actual == expected,
        },
    )


@dg.asset_check(asset=bq_plays, description="The newest play is recent (warns only).")
def newest_play_is_fresh(config: ClockConfig, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    newest = plays_table.max_played_at(warehouse)
    age = config.instant() - newest if newest else None
    passed = age is not None and age <= FRESHNESS_LIMIT
    return dg.AssetCheckResult(
        passed=passed,
        description=None if passed else f"no play in the last {FRESHNESS_LIMIT} (newest: {newest or 'none'})",
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "newest_play": newest.isoformat() if newest else "none",
            "age_hours": round(age.total_seconds() / 3600, 1) if age else -1,
            "limit_hours": FRESHNESS_LIMIT.total_seconds() / 3600,
        },
    )


@dg.asset_check(asset=track_features, description="Most played tracks have audio features (warns only).")
def audio_feature_coverage(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    stats = warehouse.query(
        f"SELECT count(DISTINCT p.track_id) AS tracks, "
        f"count(DISTINCT CASE WHEN f.status IN ('ok', 'not_found') THEN p.track_id END) AS covered "
        f"FROM {PLAYS_TABLE} p LEFT JOIN {FEATURES_TABLE} f ON p.track_id = f.track_id "
        f"WHERE p.track_id IS NOT NULL"
    )
    tracks, covered = int(stats["tracks"].iloc[0]), int(stats["covered"].iloc[0])
    coverage = covered / tracks if tracks else 1.0
    return dg.AssetCheckResult(
        passed=coverage >= MIN_FEATURE_COVERAGE,
        description=None
        if coverage >= MIN_FEATURE_COVERAGE
        else f"only {covered} of {tracks} played tracks have audio features",
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"tracks": tracks, "with_features": covered, "coverage": round(coverage, 3)},
    )


@dg.asset_check(asset=bq_plays, description="No open gap in the poll history (warns only).")
def no_open_gaps(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    gaps = gaps_table.open_gaps(warehouse)
    return dg.AssetCheckResult(
        passed=gaps.empty,
        description=None if gaps.empty else f"{len(gaps)} open gap(s) in the poll history",
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "open_gaps": len(gaps),
            "windows": [f"{r.gap_start} .. {r.gap_end}" for r in gaps.itertuples()][:10],
            "how_to_close": "import a Spotify privacy export covering the window: spotify-assets import PATH",
        },
    )


PLAYS_CHECKS = [
    play_key_unique,
    keys_not_null,
    no_future_plays,
    schema_unchanged,
    newest_play_is_fresh,
    audio_feature_coverage,
    no_open_gaps,
]


def clock_run_config(now: datetime) -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    """Run config that makes every time-based check judge against ``now`` (a simulated clock)."""
    clock = {"config": {"now": now.isoformat()}}
    return {"ops": {check.node_def.name: clock for check in (no_future_plays, newest_play_is_fresh)}}
