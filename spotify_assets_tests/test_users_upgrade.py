"""The household's data model: plays keyed by listener, and the upgrade from the single-user layout.

The upgrade test builds its warehouse and lake with the *previous* code (main's HEAD before the
household, checked out of this repository's history with ``git archive``) in a subprocess:
the real pipeline polls the sandbox and a real export is imported. The current code then starts
on that data directory: every play is adopted as the stored token's user, the count is the
same, a rerun adds 0, and ``rebuild-warehouse`` gives the same table from the lake.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from spotify_assets.assets import PIPELINE_GRAPH
from spotify_assets.import_run import import_command
from spotify_assets.lake_layout import plays_day_path, user_dir
from spotify_assets.rebuild import rebuild_command
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.spotify.client import SpotifyUser
from spotify_assets.spotify.normalize import for_user
from spotify_assets.tables import admin
from spotify_assets.tables import plays as plays_table
from spotify_assets.users.adoption import (
    ADOPTION_PATH,
    ImportOwnerUnknown,
    adopt_legacy,
    import_owner,
    legacy_owner,
)
from spotify_assets.users.command import users_command
from spotify_assets.users.registry import UserRegistry
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_assets_tests.fixtures.plays import make_plays
from spotify_assets_tests.test_rebuild import UPSTREAM_OF_SPARK, _fingerprint, _resources
from spotify_sandbox.exports import extended_row_from_api_item, generate_export
from spotify_sandbox.listener import DEFAULT_LISTENER
from spotify_sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parents[1]
#: main's HEAD before issue 13: the single-user layout (no user_id, keys without a user).
SINGLE_USER_COMMIT = "207be812c9569dd43d247a5721086a4923bf0422"

_OLD_PIPELINE = """
import sys
import dagster as dg
import spotify_assets
assert spotify_assets.__file__.startswith(sys.argv[2]), spotify_assets.__file__
from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH
from spotify_assets.imports.runner import import_export
from spotify_assets.resources.by_deployment import local_resources
from spotify_sandbox.resource import SandboxSpotifyResource

resources = local_resources(SandboxSpotifyResource(url=sys.argv[1]))
selection = [a for a in PIPELINE_ASSETS if a.key.to_user_string() != "top_ten_tracks"]
assert dg.materialize(PIPELINE_GRAPH, selection=selection, resources=resources).success
print(import_export(sys.argv[3], resources["warehouse"], resources["lake"]).added)
"""


def _have_commit() -> bool:
    probe = ["git", "-C", str(ROOT), "cat-file", "-e", f"{SINGLE_USER_COMMIT}^{{commit}}"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _old_tree(dest: Path) -> Path:
    if not _have_commit():
        # A shallow clone (some CI checkouts) lacks the commit: ask the origin for it once.
        subprocess.run(
            ["git", "-C", str(ROOT), "fetch", "--quiet", "--depth=1", "origin", SINGLE_USER_COMMIT],
            capture_output=True,
            check=False,
            timeout=120,
        )
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", SINGLE_USER_COMMIT, "spotify_assets", "spotify_sandbox"],
        capture_output=True,
        check=False,
    )
    assert archive.returncode == 0, (
        f"commit {SINGLE_USER_COMMIT} (the single-user layout) is not in this clone's history: "
        f"{archive.stderr.decode()[:300]}"
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def test_a_single_user_warehouse_and_lake_are_adopted_without_loss(
    data_dir: Path, pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    old = _old_tree(tmp_path / "old")
    export = tmp_path / "export"
    generate_export(
        export,
        300,
        seed=5,
        rows_per_file=300,
        start=pipeline_sandbox.now() - timedelta(days=400),
        end=pipeline_sandbox.now() - timedelta(days=300),
    )
    env = {**os.environ, "PYTHONPATH": str(old), "SPOTIFY_DATA_DIR": str(data_dir)}
    env.pop("SPOTIFY_CLIENT_ID", None)
    built = subprocess.run(
        [sys.executable, "-c", _OLD_PIPELINE, pipeline_sandbox.url, str(old), str(export)],
        capture_output=True, text=True, env=env, cwd=old, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    imported = int(built.stdout.strip().splitlines()[-1])
    assert imported > 250

    db = data_dir / "warehouse.duckdb"
    legacy = DuckDBWarehouseResource(path=str(db)).query("SELECT play_key FROM bq_plays")
    assert len(legacy) == 50 + imported
    assert not (data_dir / "lake" / "plays" / "user_id=sandbox-listener").exists()  # the old layout

    # The current code starts on it: the first run adopts, then polls the next hour's plays.
    pipeline_sandbox.advance(3600)
    new_plays = len(
        pipeline_sandbox.plays_between(pipeline_sandbox.now() - timedelta(hours=1), pipeline_sandbox.now())
    )
    assert new_plays > 0
    resources = _resources(pipeline_sandbox)
    assert materialize_user(PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=resources).success
    warehouse: DuckDBWarehouseResource = resources["warehouse"]
    after = warehouse.query("SELECT play_key, user_id FROM bq_plays")
    assert len(after) == len(legacy) + new_plays
    assert set(after["user_id"]) == {DEFAULT_LISTENER.user_id}
    prefix = f"{DEFAULT_LISTENER.user_id}|"
    assert {prefix + k for k in legacy["play_key"]} <= set(after["play_key"])
    assert json.loads(resources["lake"].read_bytes(ADOPTION_PATH)) == {"user_id": DEFAULT_LISTENER.user_id}
    assert list((data_dir / "lake" / "plays" / f"user_id={DEFAULT_LISTENER.user_id}").iterdir())

    # A rerun adds 0.
    assert materialize_user(PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=resources).success
    assert warehouse.count("bq_plays") == len(after)

    # The lake alone (old files and new) rebuilds the same table, keys and users included.
    before = _fingerprint(warehouse)
    assert rebuild_command(["--data-dir", str(data_dir), "--replace"]) == 0
    assert _fingerprint(DuckDBWarehouseResource(path=str(db))) == before


def test_two_listeners_playing_the_same_track_at_the_same_instant_are_two_plays(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    same = make_plays(3)
    merged = [
        plays_table.merge_plays(warehouse, for_user(same, who)) for who in ("sandbox-alice", "sandbox-bob")
    ]
    assert [m.inserted for m in merged] == [3, 3]
    assert plays_table.merge_plays(warehouse, for_user(same, "sandbox-alice")).inserted == 0
    counts = warehouse.query("SELECT user_id, count(*) AS n FROM bq_plays GROUP BY 1 ORDER BY 1")
    assert counts.to_dict("records") == [
        {"user_id": "sandbox-alice", "n": 3},
        {"user_id": "sandbox-bob", "n": 3},
    ]
    # Bob's export of the same streams is no duplicate of Alice's: the window match is per listener.
    bobs = for_user(same, "sandbox-carol").assign(
        source="extended_export", played_at=same["played_at"] - pd.Timedelta(seconds=2)
    )
    found = warehouse.plays_index().duplicates(bobs.assign(idx=range(len(bobs))), "extended_export")
    assert found.empty
    alices = bobs.assign(user_id="sandbox-alice")
    assert len(warehouse.plays_index().duplicates(alices.assign(idx=range(3)), "extended_export")) == 3


def _export_with_username(folder: Path, sandbox: SandboxServer, username: str) -> Path:
    items = sandbox.plays_between(sandbox.now() - timedelta(days=2), sandbox.now(), user="alice")[:40]
    rows: list[dict[str, Any]] = [{**extended_row_from_api_item(i), "username": username} for i in items]
    history = folder / "Spotify Extended Streaming History"
    history.mkdir(parents=True)
    (history / "Streaming_History_Audio_2026.json").write_text(json.dumps(rows))
    return folder


def test_import_for_a_user_refuses_someone_elses_export_unless_forced(
    data_dir: Path, pipeline_sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    UserRegistry(data_dir / "users").add("alice", SpotifyUser("sandbox-alice", "Alice"), "rt")
    theirs = _export_with_username(tmp_path / "theirs", pipeline_sandbox, "someone-else")
    args = ["--data-dir", str(data_dir), "--no-progress", "--user", "alice"]
    assert import_command([str(theirs), *args]) == 2
    err = capsys.readouterr().err
    assert "belongs to Spotify user someone-else, not sandbox-alice" in err and "--force" in err
    assert not (data_dir / "warehouse.duckdb").exists()  # refused before anything was written

    mine = _export_with_username(tmp_path / "mine", pipeline_sandbox, "sandbox-alice")
    assert import_command([str(mine), *args]) == 0
    warehouse = DuckDBWarehouseResource(path=str(data_dir / "warehouse.duckdb"))
    plays = warehouse.query("SELECT play_key, user_id FROM bq_plays")
    assert len(plays) == 40 and set(plays["user_id"]) == {"sandbox-alice"}
    assert all(k.startswith("sandbox-alice|") for k in plays["play_key"])
    assert list((data_dir / "lake" / "plays" / "user_id=sandbox-alice").rglob("*.parquet"))
    assert (
        plays_table.max_played_at(warehouse, "sandbox-alice") is not None
        and plays_table.max_played_at(warehouse, "sandbox-bob") is None
    )

    # Forced: imported as alice's although the export says otherwise (same streams: nothing new).
    assert import_command([str(theirs), *args, "--force"]) == 0
    assert "--force: this export belongs to Spotify user someone-else" in capsys.readouterr().err
    assert warehouse.count("bq_plays") == 40
    assert import_command([str(mine), "--data-dir", str(data_dir), "--no-progress", "--user", "nobody"]) == 2
    assert "no user named 'nobody'" in capsys.readouterr().err


def test_adoption_keeps_one_row_per_play_when_the_user_already_has_some(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    assert plays_table.merge_plays(warehouse, make_plays(5)).inserted == 5  # plays 0-4, the old layout's
    assert (
        plays_table.merge_plays(warehouse, for_user(make_plays(6, start=3), "u1")).inserted == 6
    )  # plays 3-8, u1's
    assert admin.adopt_legacy_plays(warehouse, "u1") == 3  # plays 3 and 4 were u1's already
    rows = warehouse.query("SELECT play_key, user_id FROM bq_plays")
    assert len(rows) == 9 and set(rows["user_id"]) == {"u1"} and rows["play_key"].is_unique
    assert admin.adopt_legacy_plays(warehouse, "u1") == 0


@pytest.mark.parametrize(
    "legacy",
    ["plays/played_date=2024-01-01/b0.parquet", "raw/recently_played/fetched_date=2024-01-01/d0.json"],
)
def test_the_legacy_owner_is_recorded_only_when_the_single_user_layout_left_something(
    tmp_path: Path, legacy: str
) -> None:
    """A fresh household has no single-user layout to own: nobody becomes its owner by running
    first (an import without --user would go to them). Its files or its plays make the next run's
    listener the owner, as before."""
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    # Two listeners' first runs: each lands plays and files in their own folders, no owner.
    for uid in ("sandbox-alice", "sandbox-bob"):
        assert adopt_legacy(warehouse, lake, uid) == (None, 0)
        plays_table.merge_plays(warehouse, for_user(make_plays(3), uid))
        lake.write_bytes(plays_day_path("plays", uid, "2024-01-01", "b1.parquet"), b"theirs")
        lake.write_bytes(f"{user_dir('raw/recently_played', uid)}/fetched_date=2024-01-01/d1.json", b"[]")
        assert adopt_legacy(warehouse, lake, uid) == (None, 0)
    assert legacy_owner(lake) is None and not lake.exists(ADOPTION_PATH)
    # So an import without --user is nobody's to guess among two listeners: refused, not the first runner's.
    with pytest.raises(ImportOwnerUnknown, match="--user"):
        import_owner(warehouse, lake)
    # A file of the single-user layout: the next run's listener is recorded as its owner, once.
    lake.write_bytes(legacy, b"legacy")
    assert adopt_legacy(warehouse, lake, "sandbox-bob") == ("sandbox-bob", 0)
    assert adopt_legacy(warehouse, lake, "sandbox-alice") == ("sandbox-bob", 0)
    assert json.loads(lake.read_bytes(ADOPTION_PATH)) == {"user_id": "sandbox-bob"}
    # Plays without a user (an import without --user on a fresh install): recorded and adopted.
    fresh = DuckDBWarehouseResource(path=str(tmp_path / "fresh.duckdb"))
    fresh_lake = LocalLakeResource(root=str(tmp_path / "fresh-lake"))
    assert import_owner(fresh, fresh_lake) is None  # nobody has plays: rows without a user
    assert plays_table.merge_plays(fresh, make_plays(4)).inserted == 4
    assert adopt_legacy(fresh, fresh_lake, "sandbox-alice") == ("sandbox-alice", 4)
    assert legacy_owner(fresh_lake) == "sandbox-alice"
    assert set(fresh.query("SELECT user_id FROM bq_plays")["user_id"]) == {"sandbox-alice"}
    assert import_owner(fresh, fresh_lake) == "sandbox-alice"
    # A single-user install after its first run (one listener, no single-user layout, no owner
    # recorded): an import without --user is that listener's.
    single = DuckDBWarehouseResource(path=str(tmp_path / "single.duckdb"))
    plays_table.merge_plays(single, for_user(make_plays(2), "sandbox-listener"))
    assert import_owner(single, LocalLakeResource(root=str(tmp_path / "single-lake"))) == "sandbox-listener"


def test_the_same_export_imported_for_two_users_is_kept_apart(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = UserRegistry(data_dir / "users")
    registry.add("alice", SpotifyUser("sandbox-alice", "Alice"), "rt-a")
    registry.add("bob", SpotifyUser("sandbox-bob", "Bob"), "rt-b")
    export = tmp_path / "export"
    summary = generate_export(export, 400, seed=11, rows_per_file=400)
    base = ["--data-dir", str(data_dir), "--no-progress", "--json"]
    added = {}
    for name in ("alice", "bob", "alice"):
        capsys.readouterr()
        assert import_command([str(export), *base, "--user", name]) == 0
        added.setdefault(name, []).append(json.loads(capsys.readouterr().out)["added"])
    assert added == {"alice": [summary.expected_added, 0], "bob": [summary.expected_added]}
    warehouse = DuckDBWarehouseResource(path=str(data_dir / "warehouse.duckdb"))
    counts = warehouse.query("SELECT user_id, count(*) AS n FROM bq_plays GROUP BY 1 ORDER BY 1")
    assert counts.to_dict("records") == [
        {"user_id": "sandbox-alice", "n": summary.expected_added},
        {"user_id": "sandbox-bob", "n": summary.expected_added},
    ]
    # Removing bob stops polling him; his plays stay.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert users_command(["--data-dir", str(data_dir), "remove", "bob"]) == 0
    assert warehouse.count("bq_plays") == 2 * summary.expected_added
    assert [u.name for u in registry.users()] == ["alice"]
