"""History import: a Spotify privacy export into the same plays table the poller fills.

Run on demand (not part of the hourly job): the API only ever shows the latest 50 plays, the
export holds years. The asset calls the same runner as ``spotify-assets import``, so the two
cannot drift, and reports the counts (which add up: rows read = added + duplicates + quarantined).
The asset lands the new plays in the lake's ``plays/`` (``runner.land_export``: it writes no
table) and hands the list of files to ``bq_plays``, whose merge inserts them in the same run:
the one path every play takes into the warehouse, and the lineage shows it. ``spotify-assets
import`` and the dashboard's Import page start that run (``spotify_assets.import_run``); the UI
can too: the ``import_history`` job (``jobs.py``; give the path in the Launchpad, pick the listener).

No ``from __future__ import annotations`` here: Dagster resolves the config class from the
annotation object, and a string annotation makes it fail.
"""

from datetime import datetime
from typing import Any

import dagster as dg
from pydantic import Field

from spotify_assets.imports.runner import (
    DEFAULT_CHUNK_ROWS,
    PROGRESS,
    ImportReport,
    LandedImport,
    ProgressEvent,
    land_export,
    settle_import,
)
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.scrobbles.detect import Format, source_format
from spotify_assets.scrobbles.landing import land_inbox, land_listens
from spotify_assets.tables.merge_result import MergeResult


class HistoryImportConfig(dg.Config):
    path: str = Field(
        default="",
        description="The export: Spotify's .zip or its folder, a Last.fm CSV/JSON, or a ListenBrainz export.",
    )
    inbox: list[str] = Field(
        default_factory=list,
        description="Instead of a path: lake paths of the scrobble server's inbox files (the inbox sensor's runs).",
    )
    user_id: str | None = Field(
        default=None,
        description="Whose plays (a Spotify user id); default: the single-user layout's owner, or the one listener.",
    )
    chunk_rows: int = Field(
        default=DEFAULT_CHUNK_ROWS, description="Rows deduped and landed at a time (bounds memory)."
    )
    now: str | None = Field(
        default=None, description="The import's clock (ISO 8601; default: now); tests pin it."
    )
    source: str | None = Field(
        default=None,
        description="What to call the export in the report instead of its path (an upload's copy).",
    )


def report_metadata(report: ImportReport) -> dict[str, dg.MetadataValue]:
    """The report as asset metadata: the counts, the quarantine reasons and the per-file outcome."""
    files = "\n".join(
        f"| {f.name} | {f.status} | {f.rows_read} | {f.added} | {f.duplicates} | {f.quarantined} | {f.error or ''} |"
        for f in report.files
    )
    return {
        "path": dg.MetadataValue.text(report.path),
        "rows_read": dg.MetadataValue.int(report.rows_read),
        "plays_added": dg.MetadataValue.int(report.added),
        "duplicates_skipped": dg.MetadataValue.int(report.duplicates),
        "duplicates_same_key": dg.MetadataValue.int(report.duplicates_same_key),
        "duplicates_within_tolerance": dg.MetadataValue.int(report.duplicates_window),
        "unmatched": dg.MetadataValue.int(report.unmatched),
        "found": dg.MetadataValue.text(report.found),
        "matched_to_another_source": dg.MetadataValue.int(report.matched),
        "not_listens_skipped": dg.MetadataValue.int(report.skipped),
        "quarantined": dg.MetadataValue.int(report.quarantined),
        "quarantine_reasons": dg.MetadataValue.json(report.quarantine_reasons),
        "files_imported": dg.MetadataValue.int(report.files_imported),
        "files_failed": dg.MetadataValue.int(report.files_failed),
        "files_skipped": dg.MetadataValue.json(report.files_skipped),
        "files": dg.MetadataValue.md(
            "| file | status | rows | added | duplicates | quarantined | note |\n|---|---|---|---|---|---|---|\n"
            + files
        ),
        "wall_seconds": dg.MetadataValue.float(round(report.wall_seconds, 3)),
    }


@dg.asset(group_name="ingest", kinds={"spotify", "json"})
def history_import(
    context: dg.AssetExecutionContext,
    config: HistoryImportConfig,
    warehouse: WarehouseResource,
    lake: LakeResource,
) -> dg.Output[dict[str, Any]]:
    """Plays from a Spotify privacy export (extended streaming history or account data), a Last.fm
    export or a ListenBrainz export (``scrobbles/detect.py`` says which), landed in the lake.

    Exactly-once with the poller: same-key rows and the same stream seen by the API within
    the tolerance are skipped, so only new plays are landed; ``bq_plays`` merges them in this
    run. A file that cannot be read is reported in the metadata, and ``bq_plays`` fails the run
    after merging the rest of the export, so a partial import never shows as a plain success.
    """
    last_logged = [-1]
    watcher = PROGRESS.get()

    def on_progress(event: ProgressEvent) -> None:
        if watcher is not None:
            watcher(event)
        pct = int(100 * event.done_bytes / event.total_bytes) if event.total_bytes else 100
        if pct // 10 != last_logged[0]:
            last_logged[0] = pct // 10
            context.log.info(f"history import: {pct}% ({event.rows_read:,} rows read, at {event.file})")

    if bool(config.path) == bool(config.inbox):
        raise dg.Failure(
            "history_import takes an export's path or the scrobble server's inbox files, one of them"
        )
    now = datetime.fromisoformat(config.now) if config.now else None
    fmt = None if config.inbox else source_format(config.path)
    if fmt is None:
        if config.user_id is None:
            raise dg.Failure("an inbox import names its listener (user_id)")
        landed = land_inbox(config.inbox, lake, config.user_id, chunk_rows=config.chunk_rows, now=now)
    elif fmt is Format.SPOTIFY_EXPORT:
        landed = land_export(
            config.path,
            warehouse,
            lake,
            on_progress,
            chunk_rows=config.chunk_rows,
            now=now,
            user_id=config.user_id,
        )
        landed.report.found = fmt.label
    else:
        landed = land_listens(
            config.path,
            fmt,
            warehouse,
            lake,
            on_progress,
            chunk_rows=config.chunk_rows,
            now=now,
            user_id=config.user_id,
        )
    if config.source is not None:
        landed.report.path = config.source
    context.log.info(
        f"{landed.report.added:,} new play(s) landed in {len(landed.paths)} lake file(s), for bq_plays to merge"
    )
    metadata = report_metadata(landed.report)
    metadata["plays_landed"] = metadata.pop("plays_added")
    metadata["lake_files"] = dg.MetadataValue.int(len(landed.paths))
    return dg.Output(landed.manifest(), metadata=metadata)


def landed_by(manifest: dict[str, Any]) -> LandedImport:
    """What a ``history_import`` of this run landed (its output), for ``bq_plays`` to merge."""
    return LandedImport.from_manifest(manifest)


def settle(
    landed: LandedImport, merged: MergeResult, warehouse: WarehouseResource, lake: LakeResource
) -> ImportReport:
    """The import's final report once ``bq_plays`` merged its files (``runner.settle_import``)."""
    return settle_import(landed, merged, warehouse, lake)


history_assets = [history_import]
