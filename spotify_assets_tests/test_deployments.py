"""The one resource factory (``spotify_assets/deployments.py``) and who uses it.

Every ``spotify-assets`` command that writes or reads the warehouse or the lake opens them
through ``deployments.command_stores``, so ``SPOTIFY_DEPLOYMENT=cloud`` reaches each of them the
same way: the tests below run each command through the console script (``cli.main``) in cloud
mode and record what the factory handed it (the cloud stores, resolved against the GCS emulator's
bucket), then stop the command before it does any work. A command that built its own resources
by hand would never reach the spy; a factory that ignored the deployment would hand it local
stores: both fail here. One command (``users list``) also runs to the end against the BigQuery
emulator, reading a play only the cloud warehouse holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotify_assets import deployments
from spotify_assets.cli import main
from spotify_assets.resources.bigquery_warehouse import BigQueryWarehouseResource
from spotify_assets.resources.gcs_lake import GCSLakeResource
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.settings import MissingSettings, Settings, snapshot_path_for
from spotify_assets.spotify.client import SpotifyClient
from spotify_assets.spotify.token_store import TokenStore
from spotify_assets.users.registry_file import User, registry_path, registry_payload
from spotify_assets_tests.fixtures.bigquery import BigQueryEmulator
from spotify_assets_tests.fixtures.gcs import GCSEmulator

ROOT = Path(__file__).resolve().parents[1]
ALICE = User("alice", "alice-spotify-id", "Alice", "2026-01-01T00:00:00+00:00")

#: command line -> the stores it must get from the factory.
COMMANDS: dict[str, tuple[list[str], set[str]]] = {
    "export": (["export", "{export}.zip"], {"warehouse"}),
    "import": (["import", "{export}"], {"warehouse", "lake", "handoff"}),
    "rebuild-warehouse": (["rebuild-warehouse"], {"warehouse", "lake"}),
    "redact-lake": (["redact-lake"], {"lake"}),
    "compact-lake": (["compact-lake"], {"lake"}),
    "users list": (["users", "list"], {"warehouse"}),
    "users remove --delete-data": (
        ["users", "remove", "alice", "--delete-data", "--yes"],
        {"warehouse", "lake", "handoff"},
    ),
}
CLOUD_TYPES = {"warehouse": BigQueryWarehouseResource, "lake": GCSLakeResource, "handoff": GCSLakeResource}


class Stopped(Exception):
    """Raised by the spy once the command has its stores: the test is about what it was given."""


def write_registry(data: Path, *users: User) -> None:
    path = registry_path(data / "users")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(registry_payload(list(users))))


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    (folder / "export").mkdir(parents=True)
    write_registry(folder, ALICE)
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(folder))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return folder


@pytest.fixture
def cloud(gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch, data: Path) -> GCSEmulator:
    """Cloud mode with the variables a user exports; the lake is a bucket of the GCS emulator."""
    for name, value in {
        "SPOTIFY_DEPLOYMENT": "cloud",
        "SPOTIFY_GCP_PROJECT": "test-proj",
        "SPOTIFY_GCS_BUCKET": gcs_emulator.bucket,
        "SPOTIFY_BQ_DATASET": "spotify",
        "SPOTIFY_BQ_STAGING_DATASET": "spotify_staging",
        "SPOTIFY_GCS_ENDPOINT": gcs_emulator.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SPOTIFY_GCS_PREFIX", raising=False)
    return gcs_emulator


@pytest.fixture
def given(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Settings, dict[str, Any]]]:
    """What each call of ``deployments.command_stores`` handed out (the real factory, then a stop)."""
    calls: list[tuple[Settings, dict[str, Any]]] = []
    real = deployments.command_stores

    def spy(settings: Settings, *names: str) -> Iterator[Any]:
        with real(settings, *names) as built:
            calls.append((settings, {name: getattr(built, name) for name in names}))
        raise Stopped

    monkeypatch.setattr(deployments, "command_stores", spy)
    return calls


def argv_for(command: str, data: Path) -> list[str]:
    return [arg.format(export=data / "export") for arg in COMMANDS[command][0]]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_gets_the_cloud_stores_from_the_factory(
    command: str, cloud: GCSEmulator, data: Path, given: list[tuple[Settings, dict[str, Any]]]
) -> None:
    with pytest.raises(Stopped):
        main(argv_for(command, data))
    assert len(given) == 1, f"{command} did not open its stores through deployments.command_stores"
    settings, stores = given[0]
    assert settings.deployment == "cloud"
    assert settings.data.root == data.resolve()
    assert set(stores) == COMMANDS[command][1]
    for name, store in stores.items():
        assert isinstance(store, CLOUD_TYPES[name]), f"{command} got {type(store).__name__} as {name}"
    if "lake" in stores:
        assert stores["lake"].uri("x") == f"gs://{cloud.bucket}/spotify/lake/x"
    if "handoff" in stores:
        assert stores["handoff"].uri("x") == f"gs://{cloud.bucket}/spotify/dagster/x"
    if "warehouse" in stores:
        assert (stores["warehouse"].project, stores["warehouse"].dataset) == ("test-proj", "spotify")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_gets_the_local_stores_under_its_data_dir(
    command: str, data: Path, monkeypatch: pytest.MonkeyPatch, given: list[tuple[Settings, dict[str, Any]]]
) -> None:
    """The same commands locally: the paths are the layout's, under ``--data-dir`` when given."""
    monkeypatch.delenv("SPOTIFY_DEPLOYMENT", raising=False)
    (data / "lake" / "plays").mkdir(parents=True)  # rebuild-warehouse refuses a lake without plays
    (data / "warehouse.duckdb").touch()  # users list opens no warehouse that is not there
    other = data.parent / "elsewhere"
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(other))  # --data-dir wins over the environment
    argv = argv_for(command, data)
    argv[1:1] = ["--data-dir", str(data)]  # right after the command (for `users`, before the action)
    with pytest.raises(Stopped):
        main(argv)
    assert len(given) == 1
    settings, stores = given[0]
    assert settings.deployment == "local"
    expected = {"warehouse": data / "warehouse.duckdb", "lake": data / "lake", "handoff": data / "handoff"}
    for name, store in stores.items():
        where = store.path if isinstance(store, DuckDBWarehouseResource) else store.root
        assert isinstance(store, (DuckDBWarehouseResource, LocalLakeResource))
        assert Path(where) == expected[name].resolve()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_cloud_variable_is_named_before_anything_runs(
    command: str,
    cloud: GCSEmulator,
    data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: list[tuple[Settings, dict[str, Any]]],
) -> None:
    monkeypatch.delenv("SPOTIFY_GCS_BUCKET")
    monkeypatch.setenv("SPOTIFY_BQ_STAGING_DATASET", " ")
    code = main(argv_for(command, data))
    err = capsys.readouterr().err
    assert "SPOTIFY_GCS_BUCKET, SPOTIFY_BQ_STAGING_DATASET" in err
    assert given == []
    # `users list` still lists the household; only the newest plays are unknown.
    assert code == (0 if command == "users list" else 2)


def test_users_list_reads_the_cloud_warehouse(
    bigquery_emulator: BigQueryEmulator,
    data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end: the newest play ``users list`` shows is one only the BigQuery warehouse holds."""
    warehouse = bigquery_emulator.warehouse()
    warehouse.ensure_tables()
    client = bigquery_emulator.client()
    client.query(
        f"INSERT INTO `{warehouse.table_id('bq_plays')}` (play_key, played_at, content_type, is_play, source, "
        "batch_id, ingested_at, user_id) VALUES ('k', TIMESTAMP '2026-01-02 03:04:05+00', 'track', TRUE, "
        f"'api', 'b', CURRENT_TIMESTAMP(), '{ALICE.user_id}')"
    ).result()
    client.close()
    for name, value in {
        "SPOTIFY_DEPLOYMENT": "cloud",
        "SPOTIFY_GCP_PROJECT": warehouse.project,
        "SPOTIFY_GCS_BUCKET": "unused",
        "SPOTIFY_BQ_DATASET": warehouse.dataset,
        "SPOTIFY_BQ_STAGING_DATASET": warehouse.staging_dataset,
        "SPOTIFY_BQ_ENDPOINT": bigquery_emulator.url,
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["users", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("alice"))
    assert "2026-01-02 03:04Z" in row


def test_definitions_get_the_factory_set_and_cloud_is_validated(
    cloud: GCSEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = deployments.resources_for()
    assert isinstance(resources["lake"], GCSLakeResource)
    assert isinstance(resources["warehouse"], BigQueryWarehouseResource)
    monkeypatch.delenv("SPOTIFY_BQ_STAGING_DATASET")
    with pytest.raises(MissingSettings, match="SPOTIFY_BQ_STAGING_DATASET") as missing:
        deployments.resources_for()
    assert missing.value.missing == ["SPOTIFY_BQ_STAGING_DATASET"]


class _RegistryOnly(SpotifyResource):
    """A Spotify resource that fails loudly if asked for the single-user token store's listener."""

    def get_client(self) -> SpotifyClient:
        raise AssertionError("the listener was not found in the registry of the resource's data directory")

    def get_user_client(self, user_id: str, token_store: TokenStore) -> SpotifyClient:
        return f"client of {user_id} from {token_store.path}"  # type: ignore[attr-defined,return-value]


def test_a_run_finds_the_household_in_its_configured_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data directory reaches a run as resource config: ``SPOTIFY_DATA_DIR`` pointing elsewhere
    while the run polls changes nothing (it is not read again)."""
    from spotify_assets.users.polling import listener_for

    configured, elsewhere = tmp_path / "configured", tmp_path / "elsewhere"
    write_registry(configured, ALICE)
    resources = deployments.resources_for("local", data=configured)
    assert resources["spotify"].data_dir == str(configured.resolve())
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(elsewhere))
    listener = listener_for(_RegistryOnly(data_dir=resources["spotify"].data_dir), ALICE.user_id)
    assert (listener.user_id, listener.name) == (ALICE.user_id, "alice")
    assert str(configured.resolve() / "users") in str(listener.client)


def test_the_dashboard_opens_the_snapshot_of_the_pipelines_warehouse(tmp_path: Path) -> None:
    """One layout: the dashboard's snapshot is the one the factory's local warehouse publishes."""
    from app.warehouse import DuckDBSnapshot, from_env

    warehouse = deployments.resources_for("local", data=tmp_path)["warehouse"]
    snapshot = from_env({"SPOTIFY_DATA_DIR": str(tmp_path)})
    assert isinstance(snapshot, DuckDBSnapshot)
    assert snapshot.path == snapshot_path_for(Path(warehouse.path))


def test_both_registry_readers_agree_and_the_dashboard_needs_no_dagster(tmp_path: Path) -> None:
    from app.listeners import registry
    from spotify_assets.users.registry import UserRegistry

    bob = User("bob", "bob-id", "", "2026-01-03T00:00:00+00:00")
    write_registry(tmp_path, ALICE, bob)
    pipeline = UserRegistry(tmp_path / "users").users()
    dashboard = registry(registry_path(tmp_path / "users"))
    assert pipeline == [ALICE, bob]
    assert {uid: (who.name, who.label) for uid, who in dashboard.items()} == {
        ALICE.user_id: ("alice", "Alice"),
        bob.user_id: ("bob", "bob"),
    }
    probe = "import sys, app.warehouse, app.listeners; print(sorted(m for m in sys.modules if m.startswith('dagster')))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
