"""Today's Dagster tooling works on the project: ``dg check defs`` and ``dg list defs``.

``dagster-dg-cli`` (a dev dependency at the release matched with ``dagster``) reads
``[tool.dg]`` in ``pyproject.toml``; these run it as a developer does, from the repo root, and
compare what it lists with the one ``Definitions`` loaded here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spotify_assets.definitions import defs

REPO_ROOT = Path(__file__).resolve().parents[1]
DG = str(Path(sys.executable).with_name("dg"))

pytestmark = pytest.mark.slow


def _dg(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPOTIFY_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster_home")}
    (data_dir / "dagster_home").mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [DG, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_dg_check_defs_loads_the_project(tmp_path: Path) -> None:
    proc = _dg("check", "defs", data_dir=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All definitions loaded successfully." in proc.stdout + proc.stderr


def test_dg_list_defs_lists_every_asset_job_schedule_and_sensor(tmp_path: Path) -> None:
    proc = _dg("list", "defs", "--json", data_dir=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    listed = json.loads(proc.stdout)
    repo = defs.get_repository_def()
    assets = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert {"raw_recent_tracks", "bq_plays", "top_ten_tracks", "history_import"} <= assets
    assert {a["asset_key"] for a in listed["assets"]} == assets
    assert {j["name"] for j in listed["jobs"]} >= {
        j.name for j in repo.get_all_jobs() if not j.name.startswith("__")
    }
    assert {s["name"] for s in listed["schedules"]} == {s.name for s in repo.schedule_defs}
    assert {s["name"] for s in listed["sensors"]} == {s.name for s in repo.sensor_defs}
