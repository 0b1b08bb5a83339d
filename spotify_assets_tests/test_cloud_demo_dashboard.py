"""``make cloud-demo``'s last step on its own: the dashboard on the emulated BigQuery, and its one line.

The whole demo takes minutes (Spark, Postgres, two emulators) and no test runs it; its
dashboard step (``scripts/cloud_demo.py`` ``dashboard_on_bigquery``) runs here against the
session's BigQuery emulator holding the household's plays, with the cloud variables a user
would export, and must print exactly the line the demo prints, or raise naming what differed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from spotify_assets.tables import plays as plays_table
from spotify_assets.tables import top_ten as top_ten_table
from spotify_assets.tables import tracks as tracks_table
from spotify_assets_tests.fixtures.bigquery import BigQueryEmulator
from spotify_assets_tests.fixtures.dashboard import (
    dashboard_features,
    dashboard_metadata,
    dashboard_top_ten,
    household_plays,
)

ROOT = Path(__file__).resolve().parents[1]


def _cloud_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cloud_demo", ROOT / "scripts" / "cloud_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demos_dashboard_step_prints_its_line(
    bigquery_emulator: BigQueryEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    writer = bigquery_emulator.warehouse()
    plays = household_plays()
    plays_table.merge_plays(writer, plays)
    tracks_table.merge_features(writer, dashboard_features("ok"))
    tracks_table.merge_metadata(writer, dashboard_metadata())
    top_ten_table.replace(writer, dashboard_top_ten(plays))
    for name, value in {
        "SPOTIFY_DEPLOYMENT": "cloud",
        "SPOTIFY_GCP_PROJECT": writer.project,
        "SPOTIFY_BQ_DATASET": writer.dataset,
        "SPOTIFY_BQ_ENDPOINT": bigquery_emulator.url,
        "SPOTIFY_DATA_DIR": str(tmp_path / "data"),
    }.items():
        monkeypatch.setenv(name, value)
    demo = _cloud_demo()
    line = demo.dashboard_on_bigquery(writer, tmp_path / "dashboard")
    assert line == "dashboard on BigQuery: 11 pages rendered, figures equal to DuckDB's"

    # In local mode the dashboard reads the DuckDB snapshot, not this warehouse: the step refuses.
    monkeypatch.setenv("SPOTIFY_DEPLOYMENT", "local")
    with pytest.raises(RuntimeError, match="not BigQuery"):
        demo.dashboard_on_bigquery(writer, tmp_path / "again")
