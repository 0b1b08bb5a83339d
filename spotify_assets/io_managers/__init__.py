"""How data travels between assets: typed files in a create-only store, tables in the warehouse.

No pickles: ``LakeIOManager`` hands frames over as Parquet typed by ``schemas/`` (and small
dicts as JSON) in a store beside the lake; ``WarehouseTableIOManager`` writes a mart as a
warehouse table. Merges on a key (``bq_plays``, ``track_features``) stay in the asset bodies
through the warehouse resource, because an IO manager replaces what it stores and those
tables must only ever gain rows exactly once.
"""

from spotify_assets.io_managers.lake_io_manager import HANDOFF_TABLE_KEY, LakeIOManager
from spotify_assets.io_managers.warehouse_io_manager import WarehouseTableIOManager

__all__ = ["HANDOFF_TABLE_KEY", "LakeIOManager", "WarehouseTableIOManager"]
