"""``spotify-assets import PATH``: import a privacy export, with a progress bar and a report.

Into the deployment the pipeline uses, so imported history and polled plays meet in one
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
    from spotify_assets.imports.runner import ImportReport, ProgressEvent, ProgressFn
    from spotify_assets.settings import Settings

#: Mirrors runner.DEFAULT_CHUNK_ROWS without importing the runner (and Dagster) just to parse argv.
DEFAULT_CHUNK_ROWS = 100_000


def import_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="spotify-assets import", description="Import a Spotify privacy export (.zip or folder)."
    )
    parser.add_argument("path", help="the export: the .zip Spotify sent, or the folder it unpacks to")
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
    if export.is_file() and not zipfile.is_zipfile(export):
        print(f"spotify-assets import: {export} is neither a folder nor a .zip archive", file=sys.stderr)
        return 2
    # Imported here, after argv is checked: a usage error should not wait for Dagster to import.
    from spotify_assets.deployments import deployment_settings
    from spotify_assets.settings import MissingSettings

    try:
        settings = deployment_settings(data=args.data_dir)
    except MissingSettings as exc:
        print(f"spotify-assets import: {exc}", file=sys.stderr)
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
        refused = mismatch(export, args.user_id)
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
    ``export`` into ``settings``' deployment as ``user_id``'s plays (``runner.import_export``,
    exactly once, under the warehouse's writer lock), recorded in Dagster when it added plays.

    ``source`` names the export in the report and the Dagster event instead of ``export``'s path
    (an upload's temporary copy is nobody's business). Raises what ``import_export`` raises.
    """
    from spotify_assets.deployments import command_stores
    from spotify_assets.imports.runner import import_export
    from spotify_assets.users.adoption import import_owner

    with command_stores(settings, "warehouse", "lake") as stores:
        report = import_export(
            export, stores.warehouse, stores.lake, progress, chunk_rows=chunk_rows, user_id=user_id
        )
        if source is not None:
            report.path = source
        if report.added:
            owner = user_id or import_owner(stores.warehouse, stores.lake)
            _tell_dagster(report.added, report.path, settings.data.root, owner)
    return report


def _tell_dagster(added: int, path: str, data_dir: Path, user_id: str | None) -> None:
    """Record the import as materializations of ``history_import`` and ``bq_plays`` in the local Dagster instance.

    The plays table changed outside any run: the import landed its plays in the lake and
    merged them into ``bq_plays`` (the same call the pipeline's ``bq_plays`` makes). These
    events put that write in the asset's history, and they are what the top ten's automation
    condition sees (``assets/marts.py``), so the mart is recomputed on the next sensor tick
    instead of staying stale until the API brings new plays. The instance is the one
    ``make demo`` and ``make dev`` use (``$DAGSTER_HOME``, else ``dagster_home`` in the data directory).
    ``bq_plays`` is partitioned by user: the event names whose plays were merged (the import's
    user, or the single-user layout's owner; none while no owner is recorded yet).
    """
    import dagster as dg

    from spotify_assets.partitions import add_user_partition
    from spotify_assets.schema import PLAYS_TABLE
    from spotify_assets.settings import dagster_home

    home = dagster_home(data_dir)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="history_import",
                description="spotify-assets import",
                metadata={"path": path, "plays_added": added},
            )
        )
        if user_id is not None:
            add_user_partition(instance, user_id)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="bq_plays",
                partition=user_id,
                description="spotify-assets import: plays merged from the lake",
                metadata={"table": PLAYS_TABLE, "plays_inserted": added, "source": path},
            )
        )
