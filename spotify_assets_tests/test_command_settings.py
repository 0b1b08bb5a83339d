"""``deployments.command_settings``: the one preamble of every operator command that reads the deployment.

A cloud deployment with a variable missing must stop each command before it opens anything,
with exit status 2 and one line on stderr naming the command and every missing variable (as
before the preamble had one home). No emulator is needed: the settings fail before any store
is reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spotify_assets.cli import main
from spotify_assets.deployments import command_settings
from spotify_assets.resources.cloud import REQUIRED_CLOUD_ENV
from spotify_assets.users.registry_file import User, registry_path, registry_payload

MISSING = "cloud mode (SPOTIFY_DEPLOYMENT=cloud) needs " + ", ".join(REQUIRED_CLOUD_ENV) + " (unset or empty)"

#: argv -> the name each command signs its message with.
COMMANDS: dict[str, list[str]] = {
    "spotify-assets compact-lake": ["compact-lake"],
    "spotify-assets rebuild-warehouse": ["rebuild-warehouse"],
    "spotify-assets redact-lake": ["redact-lake"],
    "spotify-assets scrobble-server": ["scrobble-server", "--port", "0"],
    "spotify-assets export": ["export", "{data}/out.jsonl"],
    "spotify-assets import": ["import", "{data}/export"],
    "spotify-assets users remove": ["users", "remove", "alice", "--delete-data", "--yes"],
}


@pytest.fixture
def cloud_missing_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder with one listener (for ``users remove``) and an export folder (for
    ``import``), in cloud mode with none of the cloud variables set."""
    data = tmp_path / "data"
    (data / "export").mkdir(parents=True)
    registry = registry_path(data / "users")
    registry.parent.mkdir(parents=True)
    alice = User("alice", "alice-spotify-id", "Alice", "2026-01-01T00:00:00+00:00")
    registry.write_text(json.dumps(registry_payload([alice])))
    monkeypatch.setenv("SPOTIFY_DEPLOYMENT", "cloud")
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name in REQUIRED_CLOUD_ENV:
        monkeypatch.delenv(name, raising=False)
    return data


def test_the_helper_tells_the_missing_settings_once(
    cloud_missing_all: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command_settings("spotify-assets some-command", cloud_missing_all) is None
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"spotify-assets some-command: {MISSING}\n")


def test_the_helper_returns_the_local_settings_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SPOTIFY_DEPLOYMENT", raising=False)
    settings = command_settings("spotify-assets some-command", tmp_path / "mine")
    assert settings is not None and settings.deployment == "local"
    assert settings.data.root == (tmp_path / "mine").resolve()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_each_command_exits_2_naming_itself_and_every_missing_variable(
    prog: str, cloud_missing_all: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [arg.format(data=cloud_missing_all) for arg in COMMANDS[prog]]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"{prog}: {MISSING}\n"
    assert captured.out == ""
