"""An import, end to end, and ``spotify-assets import PATH``: a listening history with a progress bar and a report.

PATH is a Spotify privacy export, a Last.fm export or a ListenBrainz export: the command says
which it found (``scrobbles/detect.py``), and the run's ``history_import`` lands it with the
reader of that source.

``import_export`` is the one way an export reaches the plays table, for every caller (this
command, the dashboard's Import page through ``run_import``, the tests): a Dagster run of
``history_import`` (parse, dedupe, land the new plays in the lake: ``imports/runner.py``) and
``bq_plays`` (merge those lake files, in one scan, and settle the counts), so the run and the
asset lineage show the write like any other. It lives here, above ``assets/`` and ``imports/``,
because it starts the assets that use the import library.

The command imports into the deployment the pipeline uses, so imported history and polled plays meet in one
table: the lake and warehouse come from the pipeline's own resource factory
(``deployments.command_stores``): locally ``warehouse.duckdb`` and ``lake/`` in the data directory
(``settings.data_dir()``: ``.data/`` at the repo root, wherever the command is run from;
``--data-dir`` overrides it), with ``SPOTIFY_DEPLOYMENT=cloud`` the cloud resource set (GCS +
BigQuery) from the same variables as the pipeline. Exit status: 0 when
every history file was read, 1 when some file could not be (the report names it), 2 on usage
errors - an import that saved a fraction never looks like a success.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    import dagster as dg

    from spotify_assets.imports.runner import ImportReport, ProgressEvent, ProgressFn
    from spotify_assets.resources.lake import LakeResource
    from spotify_assets.resources.warehouse import WarehouseResource
    from spotify_assets.settings import Settings

#: Mirrors runner.DEFAULT_CHUNK_ROWS without importing the runner (and Dagster) just to parse argv.
DEFAULT_CHUNK_ROWS = 50_000


def import_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="spotify-assets import",
        description="Import a listening history: a Spotify privacy export (.zip, folder or JSON file), "
        "a Last.fm export (CSV with or without header, or getRecentTracks JSON pages) or a "
        "ListenBrainz export (JSON array, or .zip/folder of JSON lines). Each listen is counted once "
        "across sources (docs/import.md).",
    )
    parser.add_argument("path", help="the export file, .zip archive or folder; its source is recognised")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where the warehouse and lake live (default: $SPOTIFY_DATA_DIR, else .data/ at the repo root)",
    )
    parser.add_argument(
        "--user",
        default=None,
        help="whose export it is: a name from `spotify-assets users list` (default: the single-user "
        "layout's owner, see README 'A household')",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="import even if the export's username is not the user's Spotify id",
    )
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    export = Path(args.path)
    if not export.exists():
        print(f"spotify-assets import: no such file or folder: {export}", file=sys.stderr)
        return 2
    from spotify_assets.scrobbles.detect import Format, UnknownFormat, source_format

    try:
        fmt = source_format(export)
    except UnknownFormat as exc:
        what = "neither a folder nor a .zip archive, nor a listening history file read here"
        print(f"spotify-assets import: {export} is {what}: {exc}", file=sys.stderr)
        return 2
    if fmt is Format.SPOTIFY_EXPORT and export.is_file() and not zipfile.is_zipfile(export):
        # One Streaming_History*.json file: the Spotify import reads folders and archives.
        print(
            f"spotify-assets import: {export} is one file of a Spotify export: give the .zip or "
            "the folder it unpacks to",
            file=sys.stderr,
        )
        return 2
    # Imported here, after argv is checked: a usage error should not wait for Dagster to import.
    from spotify_assets.deployments import command_settings

    settings = command_settings(parser.prog, args.data_dir)
    if settings is None:
        return 2
    args.user_id = None
    if args.user is not None:
        from spotify_assets.imports.owner import mismatch
        from spotify_assets.users.registry import UserError, UserRegistry

        try:
            args.user_id = UserRegistry(settings.data.users).get(args.user).user_id
        except UserError as exc:
            print(f"spotify-assets import: {exc}", file=sys.stderr)
            return 2
        refused = mismatch(export, args.user_id) if fmt is Format.SPOTIFY_EXPORT else None
        if refused and not args.force:
            print(f"spotify-assets import: refused: {refused}", file=sys.stderr)
            return 2
        if refused:
            print(f"spotify-assets import: --force: {refused}", file=sys.stderr)
    return _run_import(export, settings, args)


def _run_import(export: Path, settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    bar = tqdm(
        total=0,
        unit="B",
        unit_scale=True,
        desc="import",
        disable=args.no_progress,
        file=sys.stderr,
        leave=True,
    )

    def on_progress(event: ProgressEvent) -> None:
        if bar.total != event.total_bytes:
            bar.total = event.total_bytes
        bar.update(event.done_bytes - bar.n)
        bar.set_postfix(rows=f"{event.rows_read:,}", refresh=False)

    from spotify_assets.users.adoption import ImportOwnerUnknown

    try:
        report = run_import(export, settings, on_progress, chunk_rows=args.chunk_rows, user_id=args.user_id)
    except (FileNotFoundError, ImportOwnerUnknown) as exc:
        bar.close()
        print(f"spotify-assets import: {exc}", file=sys.stderr)
        return 2
    bar.close()
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 1 if report.files_failed else 0


def run_import(
    export: Path,
    settings: Settings,
    progress: ProgressFn | None = None,
    *,
    user_id: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    source: str | None = None,
) -> ImportReport:
    """The import this command runs, for every caller (the command, the dashboard's Import page):
    ``export`` into ``settings``' deployment as ``user_id``'s plays (``import_export``: a run on the
    local Dagster instance, the one ``make demo`` and ``make dev`` use, ``$DAGSTER_HOME`` else
    ``dagster_home`` in the data directory; its values handed between the two steps go to the
    deployment's handoff store, as a pipeline run's do).

    ``source`` names the export in the report and the run instead of ``export``'s path (an
    upload's temporary copy is nobody's business). Raises what ``import_export`` raises.
    """
    import dagster as dg

    from spotify_assets.deployments import command_stores
    from spotify_assets.settings import dagster_home

    home = dagster_home(settings.data.root)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch()
    with (
        command_stores(settings, "warehouse", "lake", "handoff") as stores,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        return import_export(
            export,
            stores.warehouse,
            stores.lake,
            progress,
            chunk_rows=chunk_rows,
            user_id=user_id,
            instance=instance,
            handoff=stores.handoff,
            source=source,
        )


def import_export(
    path: str | Path,
    warehouse: WarehouseResource,
    lake: LakeResource,
    progress: ProgressFn | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    now: datetime | None = None,
    user_id: str | None = None,
    instance: dg.DagsterInstance | None = None,
    handoff: LakeResource | None = None,
    source: str | None = None,
) -> ImportReport:
    """Import the export at ``path`` (.zip or folder) into ``warehouse`` as ``user_id``'s plays, in one
    Dagster run of ``history_import`` and ``bq_plays`` on ``instance`` (an ephemeral one unless
    given; ``handoff``: where the run hands the landed files' list over, a scratch folder unless
    given); returns the settled report (``rows_read == added + duplicates + matched + quarantined``).

    No ``user_id``: the single-user layout's owner once the pipeline has recorded one, else the
    one listener with plays, else rows without a user (an unpartitioned run), adopted on the
    pipeline's first run; refused (``ImportOwnerUnknown``) among several listeners. A file that
    cannot be read is in the report (``files_failed``), the run failed after merging the rest.
    Any other failure of the run is raised as it was raised in the step.
    """
    import contextlib
    import tempfile
    import time

    import dagster as dg

    from spotify_assets.assets.history import HistoryImportConfig, history_import
    from spotify_assets.assets.lake import gcs_csv
    from spotify_assets.assets.warehouse import bq_plays
    from spotify_assets.imports.runner import PROGRESS, ImportReport
    from spotify_assets.io_managers import LakeIOManager
    from spotify_assets.partitions import add_user_partition
    from spotify_assets.resources.lake import LocalLakeResource
    from spotify_assets.users.adoption import import_owner

    started = time.monotonic()
    # The run's partition: whose plays these are, decided before the run (the asset asks again).
    owner = user_id if user_id is not None else import_owner(warehouse, lake)
    config = HistoryImportConfig(
        path=str(path),
        user_id=user_id,
        chunk_rows=chunk_rows,
        now=now.isoformat() if now is not None else None,
        source=source,
    )
    with contextlib.ExitStack() as stack:
        if instance is None:
            instance = stack.enter_context(dg.DagsterInstance.ephemeral())
        if handoff is None:
            handoff = LocalLakeResource(
                root=stack.enter_context(tempfile.TemporaryDirectory(prefix="handoff-"))
            )
        if owner is not None:
            add_user_partition(instance, owner)
        watching = PROGRESS.set(progress)
        stack.callback(PROGRESS.reset, watching)
        try:
            # bq_plays' other writer, gcs_csv, is outside this run: the listener's latest batch, if
            # any (none in the single-user layout's unpartitioned run: nobody has polled yet).
            pipeline_batch = (
                gcs_csv.to_source_assets() if owner is not None else [dg.SourceAsset(gcs_csv.key)]
            )
            result = dg.materialize(
                [history_import, bq_plays, *pipeline_batch],
                instance=instance,
                partition_key=owner,
                resources={"warehouse": warehouse, "lake": lake, "io_manager": LakeIOManager(store=handoff)},
                # The run's events go to the instance (the UI shows them); the caller's screen
                # gets the progress and the report, not Dagster's debug log.
                run_config=dg.RunConfig(
                    ops={"history_import": config},
                    loggers={"console": {"config": {"log_level": "CRITICAL"}}},
                ),
                tags={"spotify/import": source or str(path)},
            )
            (materialized,) = result.asset_materializations_for_node("bq_plays")
            settled = materialized.metadata["import_report"].value
        except dg.Failure as failure:  # unreadable files: the rest was merged, the report says which
            if "import_report" not in failure.metadata:
                raise
            settled = failure.metadata["import_report"].value
    report = ImportReport.from_dict(settled)  # type: ignore[arg-type]
    report.wall_seconds = time.monotonic() - started
    return report
