"""A mart as a warehouse table: the asset returns the frame, this writes (and reads) the table.

Through the project's ``WarehouseResource``, not dagster-duckdb's or dagster-gcp's table IO
managers: the DuckDB warehouse serialises writers on its own lock and publishes a snapshot
for the dashboard after every write, and BigQuery replaces the mart with one ``WRITE_TRUNCATE``
load job; a second writer path would bypass both. Only whole-table replacement belongs here:
tables merged on a key stay with their assets.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pandas as pd
from pydantic import Field

from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import TOP_TEN_TABLE, TableName, conform
from spotify_assets.tables import top_ten as top_ten_table

#: The tables this manager may replace, and how. Anything else is refused.
_REPLACERS: dict[str, tuple[TableName, Callable[[WarehouseResource, pd.DataFrame], None]]] = {
    TOP_TEN_TABLE: ("top_ten_tracks", top_ten_table.replace),
}


class WarehouseTableIOManager(dg.ConfigurableIOManager):
    """Replaces the table named after the asset (``top_ten_tracks``) with the asset's frame."""

    warehouse: WarehouseResource = Field(description="The warehouse holding the mart tables.")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        table, replace = _replacer(context.asset_key)
        replace(self.warehouse, obj)
        context.add_output_metadata({"table": table, "dagster/row_count": len(obj)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        table, _ = _replacer(context.asset_key)
        return conform(self.warehouse.query(f"SELECT * FROM {table}"), _REPLACERS[table][0])


def _replacer(asset_key: dg.AssetKey) -> tuple[str, Callable[[WarehouseResource, pd.DataFrame], None]]:
    name = asset_key.path[-1]
    if name not in _REPLACERS:
        raise KeyError(f"WarehouseTableIOManager does not manage {asset_key.to_user_string()}")
    return name, _REPLACERS[name][1]
