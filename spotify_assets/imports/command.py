"""``spotify-assets import PATH``: import a privacy export, with a progress bar and a report.

Into the deployment the pipeline uses, so imported history and polled plays meet in one
table: locally the warehouse is ``$SPOTIFY_DATA_DIR/warehouse.duckdb`` and the lake
``$SPOTIFY_DATA_DIR/lake``, with the pipeline's own default (``settings.data_dir()``: ``.data/``
at the repo root, wherever the command is run from; ``--data-dir`` overrides it); with ``SPOTIFY_DEPLOYMENT=cloud`` the lake and warehouse are the cloud
resource set (GCS + BigQuery) from the same variables as the pipeline. Exit status: 0 when
every history file was read, 1 when some file could not be (the report names it), 2 on usage
errors - an import that saved a fraction never looks like a success.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spotify_assets.imports.runner import ProgressEvent
    from spotify_assets.resources.lake import LakeResource
    from spotify_assets.resources.warehouse import WarehouseResource

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
    from spotify_assets.settings import WAREHOUSE_FILE, deployment, lake_root
    from spotify_assets.settings import data_dir as default_data_dir

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    args.user_id = None
    if args.user is not None:
        from spotify_assets.imports.owner import mismatch
        from spotify_assets.settings import users_root
        from spotify_assets.users.registry import UserError, UserRegistry

        try:
            args.user_id = UserRegistry(users_root(data_dir)).get(args.user).user_id
        except UserError as exc:
            print(f"spotify-assets import: {exc}", file=sys.stderr)
            return 2
        refused = mismatch(export, args.user_id)
        if refused and not args.force:
            print(f"spotify-assets import: refused: {refused}", file=sys.stderr)
            return 2
        if refused:
            print(f"spotify-assets import: --force: {refused}", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        if deployment() == "cloud":
            import dagster as dg

            from spotify_assets.resources.cloud import cloud_resources, missing_cloud_env

            missing = missing_cloud_env()
            if missing:
                print(f"spotify-assets import: cloud mode needs {', '.join(missing)}", file=sys.stderr)
                return 2
            cloud = cloud_resources()
            # build_resources resolves the EnvVar fields, as a Dagster run would.
            built = stack.enter_context(dg.build_resources({k: cloud[k] for k in ("warehouse", "lake")}))
            warehouse, lake = built.warehouse, built.lake
        else:
            from spotify_assets.resources.lake import LocalLakeResource
            from spotify_assets.resources.warehouse import DuckDBWarehouseResource

            warehouse = DuckDBWarehouseResource(path=str(data_dir / WAREHOUSE_FILE))
            lake = LocalLakeResource(root=str(lake_root(data_dir)))
        return _run_import(export, warehouse, lake, args, data_dir)


def _run_import(
    export: Path,
    warehouse: WarehouseResource,
    lake: LakeResource,
    args: argparse.Namespace,
    data_dir: Path,
) -> int:
    from tqdm import tqdm

    from spotify_assets.imports.runner import import_export

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

    from spotify_assets.users.adoption import ImportOwnerUnknown, import_owner

    try:
        report = import_export(
            export, warehouse, lake, on_progress, chunk_rows=args.chunk_rows, user_id=args.user_id
        )
    except (FileNotFoundError, ImportOwnerUnknown) as exc:
        bar.close()
        print(f"spotify-assets import: {exc}", file=sys.stderr)
        return 2
    bar.close()
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    if report.added:
        _tell_dagster(report.added, str(export), data_dir, args.user_id or import_owner(warehouse, lake))
    return 1 if report.files_failed else 0


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
