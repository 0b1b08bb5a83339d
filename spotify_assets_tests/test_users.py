"""A household on one installation: the sandbox's listeners, ``/v1/me``, the user registry and
``spotify-assets users add|list|remove`` with their Dagster partitions."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest
import requests

from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.spotify.client import HttpSpotifyClient, SpotifyUser
from spotify_assets.spotify.errors import SpotifyAuthError
from spotify_assets.spotify.token_store import MemoryTokenStore
from spotify_assets.users.command import users_command
from spotify_assets.users.registry import UserError, UserRegistry
from spotify_assets_tests.test_auth_command import free_port
from spotify_sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN, SandboxServer
from spotify_sandbox.listener import DEFAULT_LISTENER, LISTENER_PROFILES
from spotify_sandbox.server import SANDBOX_USER_PARAM


def client_for(sandbox: SandboxServer, refresh_token: str) -> HttpSpotifyClient:
    return HttpSpotifyClient(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        refresh_token,
        api_base_url=sandbox.url,
        accounts_base_url=sandbox.url,
        token_store=MemoryTokenStore(),
        max_retries=0,
    )


def track_ids(items: list[dict]) -> list[str]:
    return [item["track"]["id"] for item in items]


# -- the sandbox's listeners ----------------------------------------------------------------------


def test_each_listener_is_selected_by_their_token_and_me_says_who(sandbox: SandboxServer) -> None:
    with client_for(sandbox, SANDBOX_REFRESH_TOKEN) as default:
        assert default.me() == SpotifyUser(DEFAULT_LISTENER.user_id, DEFAULT_LISTENER.display_name)
        assert track_ids(default.recently_played()) == track_ids(sandbox.recently_played_truth())
    seen: dict[str, list[str]] = {}
    for name, profile in LISTENER_PROFILES.items():
        with client_for(sandbox, sandbox.issue_refresh_token(name)) as client:
            assert client.me() == SpotifyUser(profile.user_id, profile.display_name)
            played = client.recently_played()
        assert track_ids(played) == track_ids(sandbox.recently_played_truth(name))
        assert len(played) == 50
        seen[name] = [item["played_at"] for item in played]
    # Five different histories, none of them the default listener's.
    default_times = [item["played_at"] for item in sandbox.recently_played_truth()]
    assert len({tuple(times) for times in seen.values()} | {tuple(default_times)}) == 6
    raw = requests.get(
        f"{sandbox.url}/v1/me",
        headers={"Authorization": "Bearer " + sandbox.state.issue_access_token("user", "", "sandbox-bob")},
        timeout=5,
    ).json()
    assert raw["id"] == "sandbox-bob" and raw["type"] == "user" and raw["uri"] == "spotify:user:sandbox-bob"
    assert set(raw) >= {"display_name", "external_urls", "followers", "href", "images"}


def test_me_needs_a_user_token(sandbox: SandboxServer) -> None:
    app_token = sandbox.state.issue_access_token("app")
    answer = requests.get(f"{sandbox.url}/v1/me", headers={"Authorization": f"Bearer {app_token}"}, timeout=5)
    assert answer.status_code == 401


def test_listeners_have_their_own_tastes_and_are_deterministic(sandbox: SandboxServer) -> None:
    week = ("2026-11-13T21:00:00Z", "2026-11-20T21:00:00Z")
    tops = {}
    for name in ("alice", "bob"):
        plays = sandbox.plays_between(*week, user=name)
        assert len(plays) > 100
        tops[name] = {t for t, _ in Counter(track_ids(plays)).most_common(10)}
        with SandboxServer() as again:  # same seed: the same history, in another process's sandbox too
            assert again.plays_between(*week, user=name) == plays
    assert len(tops["alice"] & tops["bob"]) <= 3
    # The default listener is unchanged by having neighbours: same as the "sandbox-listener" id asks.
    assert sandbox.plays_between(*week) == sandbox.plays_between(*week, user=DEFAULT_LISTENER.user_id)


def test_the_consent_page_approves_as_the_chosen_listener(sandbox: SandboxServer) -> None:
    redirect_uri = "http://127.0.0.1:9/callback"
    authorize = requests.get(
        f"{sandbox.url}/authorize",
        params={
            "client_id": SANDBOX_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "user-read-recently-played",
            SANDBOX_USER_PARAM: "carol",
        },
        allow_redirects=False,
        timeout=5,
    )
    code = parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]
    with client_for(sandbox, "unused") as client:
        answer = client.exchange_code(code, redirect_uri)
    with client_for(sandbox, str(answer["refresh_token"])) as carol:
        assert carol.me().id == "sandbox-carol"
    unknown = requests.get(
        f"{sandbox.url}/authorize",
        params={"client_id": SANDBOX_CLIENT_ID, "response_type": "code", "redirect_uri": redirect_uri,
                SANDBOX_USER_PARAM: "mallory"},
        allow_redirects=False, timeout=5,
    )  # fmt: skip
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"


def test_a_revoked_listener_gets_invalid_grant_and_the_others_go_on(sandbox: SandboxServer) -> None:
    alice_token, bob_token = sandbox.issue_refresh_token("alice"), sandbox.issue_refresh_token("bob")
    assert sandbox.revoke("alice") == 1
    with client_for(sandbox, alice_token) as alice, pytest.raises(SpotifyAuthError, match="invalid_grant"):
        alice.me()
    with client_for(sandbox, bob_token) as bob:
        assert bob.me().id == "sandbox-bob"


# -- the registry -----------------------------------------------------------------------------------


def test_the_registry_keeps_one_token_file_per_user_and_refuses_doubles(tmp_path: Path) -> None:
    registry = UserRegistry(tmp_path / "users")
    alice = registry.add(
        "alice", SpotifyUser("sandbox-alice", "Alice"), "rt-alice", "user-read-recently-played"
    )
    registry.add("bob", SpotifyUser("sandbox-bob", "Bob"), "rt-bob")
    assert [u.name for u in registry.users()] == ["alice", "bob"]
    assert registry.by_user_id("sandbox-bob") == registry.get("bob")
    for name, token in (("alice", "rt-alice"), ("bob", "rt-bob")):
        store = registry.token_store(name)
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
        loaded = store.load()
        assert loaded is not None and loaded.refresh_token == token
    assert stat.S_IMODE(registry.path.stat().st_mode) == 0o600
    assert "rt-alice" not in registry.path.read_text()  # the registry holds no secret
    with pytest.raises(UserError, match="exists already"):
        registry.add("alice", SpotifyUser("sandbox-carol", "Carol"), "rt")
    with pytest.raises(UserError, match="registered already, as 'alice'"):
        registry.add("alice2", SpotifyUser("sandbox-alice", "Alice"), "rt")
    with pytest.raises(UserError, match="not a usable user name"):
        registry.add("../etc", SpotifyUser("x", "x"), "rt")
    assert registry.remove("alice") == alice
    assert not registry.token_store("alice").path.exists()
    assert [u.name for u in registry.users()] == ["bob"]
    with pytest.raises(UserError, match="no user named 'alice'"):
        registry.get("alice")


# -- spotify-assets users add | list | remove ----------------------------------------------------------


def _partitions(home: Path) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_dynamic_partitions(USERS_PARTITIONS_NAME))


def _users_add(
    sandbox: SandboxServer, data: Path, home: Path, name: str, listener: str
) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "SPOTIFY_CLIENT_ID": SANDBOX_CLIENT_ID,
        "SPOTIFY_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "SPOTIFY_DATA_DIR": str(data),
        "DAGSTER_HOME": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotify_assets.cli", "users", "add", name, "--no-browser", "--timeout", "60",
         "--redirect-uri", redirect_uri, "--accounts-url", sandbox.url, "--api-url", sandbox.url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if "/authorize?" in line:
            # The "browser": the person signs in as ``listener`` and approves.
            page = requests.get(f"{line.strip()}&{SANDBOX_USER_PARAM}={listener}", timeout=10)
            assert page.status_code == 200
            break
    out, err = proc.communicate(timeout=60)
    return proc.returncode, "".join(printed) + out, err


def test_users_add_list_remove_end_to_end(
    sandbox: SandboxServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, home = tmp_path / "data", tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code, out, err = _users_add(sandbox, data, home, "alice", "alice")
    assert code == 0, err
    assert "Added alice: Spotify user sandbox-alice (Alice)" in out
    registry = UserRegistry(data / "users")
    stored = registry.token_store("alice").load()
    assert stored is not None and sandbox.is_refresh_token_valid(stored.refresh_token)
    assert stored.refresh_token not in out + err and SANDBOX_CLIENT_SECRET not in out + err
    assert _partitions(home) == ["sandbox-alice"]

    code, out, err = _users_add(sandbox, data, home, "bobby", "bob")
    assert code == 0, err
    # The same person under a second name is refused, and no partition appears for it.
    code, out, err = _users_add(sandbox, data, home, "alice-again", "alice")
    assert code == 1 and "registered already, as 'alice'" in err
    assert sorted(_partitions(home)) == ["sandbox-alice", "sandbox-bob"]

    capsys.readouterr()
    assert users_command(["--data-dir", str(data), "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == [
        "NAME",
        "SPOTIFY",
        "ID",
        "DISPLAY",
        "NAME",
        "TOKEN",
        "NEWEST",
        "PLAY",
        "ADDED",
    ]
    assert [line.split()[:5] for line in listed[1:]] == [
        ["alice", "sandbox-alice", "Alice", "stored", "-"],
        ["bobby", "sandbox-bob", "Bob", "stored", "-"],
    ]

    assert users_command(["--data-dir", str(data), "remove", "alice"]) == 0
    assert "no longer polled; their plays stay" in capsys.readouterr().out
    assert _partitions(home) == ["sandbox-bob"]
    assert [u.name for u in registry.users()] == ["bobby"]
    assert not registry.token_store("alice").path.exists()
    assert users_command(["--data-dir", str(data), "remove", "alice"]) == 1
    assert "no user named 'alice'" in capsys.readouterr().err
    assert json.loads(registry.path.read_text())["version"] == 1
