"""``spotify-assets users remove NAME --delete-data``: no trace of the listener is left.

Alice's plays come from a real pipeline run (polling her in the sandbox) and from an export of
her own whose rows carry a distinctive ``platform`` string (one row is bad, so it lands in the
quarantine too); bob has an export of his own; one more export is imported for both. After
``users remove alice --delete-data --yes`` no file under the data directory holds alice's
string or her Spotify id (the DuckDB file and its snapshot included, byte for byte), bob's
plays and files are exactly as before, the shared export's copy is still there for bob, and
a rerun deletes nothing.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from spotify_assets.assets import PIPELINE_GRAPH
from spotify_assets.imports.command import import_command
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.spotify.client import SpotifyUser
from spotify_assets.users.command import users_command
from spotify_assets.users.deletion import delete_user_data
from spotify_assets.users.registry import UserRegistry
from spotify_assets_tests.test_rebuild import UPSTREAM_OF_SPARK
from spotify_sandbox.exports import extended_row_from_api_item
from spotify_sandbox.server import SandboxServer

ALICE_MARK = "alice-only-platform-7f3q9z"
BOB_MARK = "bob-only-platform-k2v8w1"
ALICE_ID = "sandbox-alice"


def _export(
    folder: Path, sandbox: SandboxServer, listener: str, platform: str, days: tuple[int, int]
) -> Path:
    """An extended history of ``listener``'s sandbox plays ``days`` ago, every row on ``platform``,
    plus one row without a timestamp (quarantined)."""
    now = sandbox.now()
    items = sandbox.plays_between(now - timedelta(days=days[0]), now - timedelta(days=days[1]), user=listener)
    rows: list[dict[str, Any]] = [{**extended_row_from_api_item(i), "platform": platform} for i in items[:60]]
    rows.append({**rows[0], "ts": None})
    history = folder / "Spotify Extended Streaming History"
    history.mkdir(parents=True)
    (history / "Streaming_History_Audio_2026.json").write_text(json.dumps(rows))
    return folder


def _files_holding(data: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(data)) for p in data.rglob("*") if p.is_file() and needle in p.read_bytes()
    )


def _counts(warehouse: DuckDBWarehouseResource) -> dict[str, int]:
    rows = warehouse.query("SELECT user_id, count(*) AS n FROM bq_plays GROUP BY 1")
    return {str(u): int(n) for u, n in zip(rows["user_id"], rows["n"], strict=True)}


def _bobs_files(data: Path) -> dict[str, bytes]:
    lake = data / "lake"
    return {
        str(p.relative_to(lake)): p.read_bytes()
        for p in lake.rglob("*")
        if p.is_file() and "sandbox-bob" in str(p)
    }


def test_delete_data_leaves_no_trace_of_the_listener(
    data_dir: Path,
    pipeline_sandbox: SandboxServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spotify_assets.resources.by_deployment import local_resources
    from spotify_sandbox.resource import SandboxSpotifyResource

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    registry = UserRegistry(data_dir / "users")
    registry.add("alice", SpotifyUser(ALICE_ID, "Alice"), "rt-a")
    registry.add("bob", SpotifyUser("sandbox-bob", "Bob"), "rt-b")

    # Alice's recent plays through the pipeline (raw API page, Parquet, CSV, handoff files).
    resources = local_resources(
        SandboxSpotifyResource(
            url=pipeline_sandbox.url, refresh_token=pipeline_sandbox.issue_refresh_token("alice")
        )
    )
    assert dg.materialize(PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=resources).success

    base = ["--data-dir", str(data_dir), "--no-progress", "--json"]
    alices = _export(tmp_path / "a", pipeline_sandbox, "alice", ALICE_MARK, (40, 30))
    bobs = _export(tmp_path / "b", pipeline_sandbox, "bob", BOB_MARK, (40, 30))
    shared = _export(tmp_path / "s", pipeline_sandbox, "carol", "shared-platform", (60, 50))
    for export, name in ((alices, "alice"), (bobs, "bob"), (shared, "alice"), (shared, "bob")):
        assert import_command([str(export), *base, "--user", name]) == 0
    capsys.readouterr()

    # Bob's imports as an import before the records existed made them: whose the shared copy
    # is then comes from his plays' batch ids alone.
    bobs_records = list((data_dir / "lake" / "imports" / "user_id=sandbox-bob").glob("*.json"))
    assert len(bobs_records) == 2
    for record in bobs_records:
        record.unlink()
    warehouse = DuckDBWarehouseResource(path=str(data_dir / "warehouse.duckdb"))
    before = _counts(warehouse)
    assert before[ALICE_ID] > 100 and before["sandbox-bob"] > 100
    bobs_before = _bobs_files(data_dir)
    shared_copies = [
        p
        for p in (data_dir / "lake" / "raw" / "exports").rglob("*.json")
        if b"shared-platform" in p.read_bytes()
    ]
    assert len(shared_copies) == 1
    # The scan can see alice: her string is in the warehouse file, the snapshot and the lake.
    holding = _files_holding(data_dir, ALICE_MARK.encode())
    assert {"warehouse.duckdb", "warehouse.snapshot.duckdb"} <= set(holding)
    assert any(p.startswith("lake/raw/exports/") for p in holding)
    assert any(p.startswith("lake/quarantine/exports/") for p in holding)
    assert any(
        p.startswith("lake/plays_csv/user_id=sandbox-alice/")
        for p in _files_holding(data_dir, ALICE_ID.encode())
    )
    assert any(p.startswith("handoff/") for p in _files_holding(data_dir, ALICE_ID.encode()))

    assert users_command(["--data-dir", str(data_dir), "remove", "alice", "--delete-data", "--yes"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"warehouse plays\s+{before[ALICE_ID]:,} rows", out), out
    assert "kept 1 raw export copies another listener imported too" in out
    assert "their data is deleted" in out

    # No trace: not her string, not her Spotify id, in any file under the data directory.
    assert _files_holding(data_dir, ALICE_MARK.encode()) == []
    assert _files_holding(data_dir, ALICE_ID.encode()) == []
    # Bob: the same plays, the same files, byte for byte; the shared copy is still his.
    assert _counts(warehouse) == {"sandbox-bob": before["sandbox-bob"]}
    assert _bobs_files(data_dir) == bobs_before
    assert all(p.exists() for p in shared_copies)
    assert (
        int(warehouse.query(f"SELECT count(*) AS n FROM bq_plays WHERE platform = '{BOB_MARK}'")["n"].iloc[0])
        == 60
    )
    assert [u.name for u in registry.users()] == ["bob"]
    assert not registry.token_store("alice").path.exists()
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert list(instance.get_dynamic_partitions("users")) == []  # nobody added them here

    # A rerun finds nothing: by id (the deletion itself) and by name (the command).
    snapshot = {str(p): p.read_bytes() for p in (data_dir / "lake").rglob("*") if p.is_file()}
    again = delete_user_data(
        ALICE_ID, warehouse, LocalLakeResource(root=str(data_dir / "lake")), data_dir / "handoff"
    )
    assert again.nothing and again.warehouse_rows == 0 and not again.lake_files
    assert "nothing to delete" in again.render()
    assert {str(p): p.read_bytes() for p in (data_dir / "lake").rglob("*") if p.is_file()} == snapshot
    assert users_command(["--data-dir", str(data_dir), "remove", "alice", "--delete-data", "--yes"]) == 0
    assert "Nothing to delete: no user named 'alice'" in capsys.readouterr().out
    assert _counts(warehouse) == {"sandbox-bob": before["sandbox-bob"]}


def test_delete_data_asks_first(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    UserRegistry(data_dir / "users").add("alice", SpotifyUser(ALICE_ID, "Alice"), "rt-a")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "alic")
    assert users_command(["--data-dir", str(data_dir), "remove", "alice", "--delete-data"]) == 1
    assert "not confirmed; nothing deleted" in capsys.readouterr().err
    assert [u.name for u in UserRegistry(data_dir / "users").users()] == ["alice"]


def test_delete_data_in_cloud_mode_on_the_emulators(
    cloud_env: dict[str, str],
    pipeline_sandbox: SandboxServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same command with the cloud variables: BigQuery DELETE, the GCS objects removed."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from spotify_assets.resources.by_deployment import resources_for

    data = tmp_path / "data"  # the registry stays local; plays and lake files are in the cloud
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    registry = UserRegistry(data / "users")
    registry.add("alice", SpotifyUser(ALICE_ID, "Alice"), "rt-a")
    registry.add("bob", SpotifyUser("sandbox-bob", "Bob"), "rt-b")
    alices = _export(tmp_path / "a", pipeline_sandbox, "alice", ALICE_MARK, (40, 30))
    bobs = _export(tmp_path / "b", pipeline_sandbox, "bob", BOB_MARK, (40, 30))
    base = ["--data-dir", str(data), "--no-progress", "--json"]
    for export, name in ((alices, "alice"), (bobs, "bob")):
        assert import_command([str(export), *base, "--user", name]) == 0
    warehouse = resources_for()["warehouse"].process_config_and_initialize()
    bucket = storage.Client(
        project="p",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": cloud_env["SPOTIFY_GCS_ENDPOINT"]},
    ).bucket(cloud_env["SPOTIFY_GCS_BUCKET"])

    def objects() -> dict[str, bytes]:
        return {b.name: b.download_as_bytes() for b in bucket.list_blobs()}

    def counts() -> dict[str, int]:
        rows = warehouse.query("SELECT user_id, count(*) AS n FROM bq_plays GROUP BY user_id")
        return {str(u): int(n) for u, n in zip(rows["user_id"], rows["n"], strict=True)}

    before, stored = counts(), objects()
    assert before == {ALICE_ID: 60, "sandbox-bob": 60}
    assert any(ALICE_MARK.encode() in body for body in stored.values())
    capsys.readouterr()
    assert users_command(["--data-dir", str(data), "remove", "alice", "--delete-data", "--yes"]) == 0
    assert re.search(r"warehouse plays\s+60 rows", capsys.readouterr().out)
    after = objects()
    assert counts() == {"sandbox-bob": 60}
    assert [name for name, body in after.items() if ALICE_MARK.encode() in body or ALICE_ID in name] == []
    assert {n: b for n, b in stored.items() if "sandbox-bob" in n} == {
        n: b for n, b in after.items() if "sandbox-bob" in n
    }
    assert (
        int(warehouse.query(f"SELECT count(*) AS n FROM bq_plays WHERE platform = '{BOB_MARK}'")["n"].iloc[0])
        == 60
    )


def test_the_single_user_layouts_owner_is_deleted_with_their_unrecorded_files(
    data_dir: Path, pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Files of the single-user layout carry no user (no ``user_id=`` folder, imports without
    ``--user`` write no record): they are the recorded legacy owner's, and go with them."""
    from spotify_assets.imports.runner import import_export
    from spotify_assets.users.adoption import ADOPTION_PATH, record_owner

    lake = LocalLakeResource(root=str(data_dir / "lake"))
    warehouse = DuckDBWarehouseResource(path=str(data_dir / "warehouse.duckdb"))
    record_owner(lake, "sandbox-listener")
    lake.write_bytes(
        "plays_csv/played_date=2024-01-01/old.csv", f"play_key,platform\nk,{ALICE_MARK}\n".encode()
    )
    mine = _export(tmp_path / "a", pipeline_sandbox, "alice", ALICE_MARK, (40, 30))
    bobs = _export(tmp_path / "b", pipeline_sandbox, "bob", BOB_MARK, (40, 30))
    assert import_export(mine, warehouse, lake).added == 60  # as the legacy owner, no record
    assert import_export(bobs, warehouse, lake, user_id="sandbox-bob").added == 60
    # A file whose rows were all quarantined: no play says whose its copy is.
    junk = tmp_path / "junk" / "Spotify Extended Streaming History"
    junk.mkdir(parents=True)
    (junk / "Streaming_History_Audio_2025.json").write_text(
        json.dumps([{"ts": None, "platform": ALICE_MARK}])
    )
    assert import_export(junk.parent, warehouse, lake).quarantined == 1
    assert _files_holding(data_dir, ALICE_MARK.encode())

    deleted = delete_user_data("sandbox-listener", warehouse, lake)
    assert deleted.warehouse_rows == 60 and deleted.lake_files["legacy owner record"] == 1
    assert _files_holding(data_dir, ALICE_MARK.encode()) == []
    assert not lake.exists(ADOPTION_PATH)
    assert _counts(warehouse) == {"sandbox-bob": 60}
    assert len(_files_holding(data_dir / "lake", BOB_MARK.encode())) == 3  # his copy, quarantine and Parquet
    assert delete_user_data("sandbox-listener", warehouse, lake).nothing
