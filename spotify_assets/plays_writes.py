"""Who writes the plays table, listed once: the ``bq_plays`` merge and two operator commands.

Every play reaches ``bq_plays`` through a Parquet file in the lake and ``merge_plays_files``,
called only by the ``bq_plays`` asset, in a run: the pipeline's batches (``gcs_csv``'s day files)
and a history import's chunks (``history_import``'s month files, ``imports/landing.py``) alike,
so the warehouse can always be rebuilt from the lake, exactly-once is the merge's rule
(insert only keys not there yet), and the asset lineage shows every write. A batch that holds
scrobbles (Last.fm, ListenBrainz, the scrobble server), or lies near plays only scrobblers
recorded, is merged across sources (``scrobbles/merge.py``): a listen matched to a play adds its
source to that play's ``sources``, and a Spotify row matched to a scrobble's play replaces that
row. Those updates and replacements are this merge's too, in the same transaction (DuckDB) or
``MERGE`` (BigQuery) as its inserts: still one writer. ``spotify-assets
import`` and the dashboard start a run of ``history_import`` + ``bq_plays``
(``spotify_assets.import_run``) rather than merging themselves. The files of one merge are read
in one scan (DuckDB's ``read_parquet`` over the list, one load job in BigQuery), never merged
file by file.

Adoption (``adopt_legacy_plays``: the single-user layout's rows become their owner's) runs
before a poll's merge, in ``raw_recent_tracks``, which records the rows adopted as an
observation of ``bq_plays``, and in ``rebuild-warehouse``; its one caller here is ``adopt_legacy``.

Anything that rewrites the table rather than adding to it is an operator command, not an
asset: ``OPERATOR_REWRITES`` is the one list of them. Each takes the warehouse's writer lock
(``rebuild-warehouse`` merges inside ``warehouse.batch()``; ``delete_user`` holds the lock and
rewrites the file), and ``test_plays_writes.py`` checks that no other module of the runtime
calls a write of the plays table. (The bench, ``bench/``, seeds scratch warehouses of its own,
never the one the pipeline writes.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spotify_assets.tables import admin
from spotify_assets.tables import plays as plays_table

if TYPE_CHECKING:
    from spotify_assets.resources.lake import LakeResource
    from spotify_assets.resources.warehouse import WarehouseResource
    from spotify_assets.tables.merge_result import MergeResult
    from spotify_assets.tables.plays import Planner

#: The operator commands that may rewrite the plays table (not only add to it), and the function
#: of each that does. Nothing else writes the table outside the ``bq_plays`` merge.
OPERATOR_REWRITES: dict[str, str] = {
    "rebuild-warehouse": "spotify_assets.rebuild.rebuild_from_lake",
    "users remove --delete-data": "spotify_assets.users.deletion.delete_user_data",
}


def merge_plays_files(
    warehouse: WarehouseResource,
    lake: LakeResource,
    paths: list[str],
    batch_id: str,
    planner: Planner | None = None,
) -> MergeResult:
    """Merge the plays of these lake files into ``bq_plays`` (the ``bq_plays`` asset's merge).

    Only keys the table lacks are inserted (and, across sources, only listens no play holds yet
    are matched), so a batch merged twice (a retried run, a re-import after kill -9, a rebuild)
    changes nothing the second time.

    ``planner``: ``scrobbles/merge.plan``, which the ``bq_plays`` asset and ``rebuild-warehouse``
    pass (this module sits below the scrobbles package); a batch that needs it and has none is
    refused (``tables.plays.PlannerMissing``), never merged insert-only.
    """
    return plays_table.merge_plays_from_lake(warehouse, lake, paths, batch_id, planner)


def adopt_legacy_plays(warehouse: WarehouseResource, owner: str) -> int:
    """Make the single-user layout's plays (no ``user_id``) ``owner``'s; returns how many."""
    return admin.adopt_legacy_plays(warehouse, owner)
