"""History import: a Spotify privacy export into the same plays table the poller fills.

Run on demand (not part of the hourly job): the API only ever shows the latest 50 plays, the
export holds years. The asset calls the same runner as ``spotify-assets import``, so the two
cannot drift, and reports the counts (which add up: rows read = added + duplicates + quarantined).
The runner lands the new plays in the lake's ``plays/`` and merges them with ``bq_plays``'s own
merge (``plays_writes.merge_plays_files``), so ``bq_plays`` lists this asset upstream of it.

No ``from __future__ import annotations`` here: Dagster resolves the config class from the
annotation object, and a string annotation makes it fail.
"""

import dagster as dg
from pydantic import Field

from spotify_assets.imports.runner import ImportReport, ProgressEvent, import_export
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.warehouse import WarehouseResource


class HistoryImportConfig(dg.Config):
    path: str = Field(description="The export: the .zip Spotify sent, or the folder it unpacks to.")


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
) -> dg.MaterializeResult:
    """Plays from a Spotify privacy export (extended streaming history or account data).

    Exactly-once with the poller: same-key rows and the same stream seen by the API within
    the tolerance are skipped. A file that cannot be read is reported in the metadata and
    fails the materialization after the rest of the export is imported, so a partial import
    never shows as a plain success.
    """
    last_logged = [-1]

    def on_progress(event: ProgressEvent) -> None:
        pct = int(100 * event.done_bytes / event.total_bytes) if event.total_bytes else 100
        if pct // 10 != last_logged[0]:
            last_logged[0] = pct // 10
            context.log.info(f"history import: {pct}% ({event.rows_read:,} rows read, at {event.file})")

    report = import_export(config.path, warehouse, lake, on_progress)
    context.log.info(report.render())
    metadata = report_metadata(report)
    if report.files_failed:
        failed = [f"{f.name}: {f.error}" for f in report.files if f.status == "error"]
        raise dg.Failure(
            description=f"{report.files_failed} export file(s) could not be read: " + "; ".join(failed),
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


history_assets = [history_import]
