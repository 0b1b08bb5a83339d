"""Overview's "Now playing" (issue 25): the sandbox's currently-playing endpoint (Spotify's JSON, 204
between plays, 403 without the scope), the client's ``currently_playing`` and the widget in AppTest."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from spotify_assets.settings import sandbox_token_path
from spotify_assets.spotify.auth import SCOPE
from spotify_assets.spotify.client import HttpSpotifyClient
from spotify_assets.spotify.errors import SpotifyAPIError
from spotify_assets.spotify.token_store import FileTokenStore, MemoryTokenStore, token_sha256
from spotify_sandbox import SandboxServer
from spotify_sandbox.constants import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
OLD_SCOPE = "user-read-recently-played"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def _client(sandbox: SandboxServer, refresh_token: str) -> HttpSpotifyClient:
    return HttpSpotifyClient(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        refresh_token,
        api_base_url=sandbox.url,
        accounts_base_url=sandbox.url,
        token_store=MemoryTokenStore(),
    )


def _during_a_play(sandbox: SandboxServer) -> dict:
    """Move the clock 20 s before the end of a full play that follows a pause; returns that play."""
    start = sandbox.now() - timedelta(days=1)
    plays = sandbox.plays_between(start, start + timedelta(hours=12))
    for before, play in itertools.pairwise(plays):
        ended = pd.Timestamp(play["played_at"])
        if ended - pd.Timestamp(before["played_at"]) > pd.Timedelta(
            milliseconds=play["track"]["duration_ms"]
        ):
            sandbox.set_now((ended - pd.Timedelta(seconds=20)).to_pydatetime())
            return play
    raise AssertionError("no play after a pause in the sandbox's day")


def test_the_sandbox_and_client_say_what_plays_now_and_nothing_between_plays(sandbox: SandboxServer) -> None:
    assert "user-read-currently-playing" in SCOPE.split()  # what `auth` and `users add` ask for
    play = _during_a_play(sandbox)
    with _client(sandbox, SANDBOX_REFRESH_TOKEN) as client:
        now = client.currently_playing()
        assert now is not None and now["is_playing"] is True
        assert now["item"]["id"] == play["track"]["id"] and now["currently_playing_type"] == "track"
        assert now["progress_ms"] == play["track"]["duration_ms"] - 20_000
        sandbox.set_now(pd.Timestamp(play["played_at"]).floor("D") + pd.Timedelta(hours=3))  # a silent night
        assert client.currently_playing() is None  # the API's 204
    assert sandbox.stats()["statuses"].get("204") == 1


def test_a_token_without_the_scope_gets_403(sandbox: SandboxServer) -> None:
    old = sandbox.state.issue_refresh_token(scope=OLD_SCOPE)
    with _client(sandbox, old) as client, pytest.raises(SpotifyAPIError) as caught:
        client.currently_playing()
    assert caught.value.status == 403
    assert old not in str(caught.value)


def _overview(monkeypatch: pytest.MonkeyPatch, snapshot: Path, sandbox: SandboxServer, data: Path) -> AppTest:
    from app import now_playing

    now_playing._client.clear()
    monkeypatch.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(snapshot))
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(data))
    monkeypatch.setenv("SPOTIFY_SANDBOX_URL", sandbox.url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_overview_shows_the_track_playing_now(
    dashboard_env: pytest.MonkeyPatch, dashboard_snapshot: Path, sandbox: SandboxServer, tmp_path: Path
) -> None:
    play = _during_a_play(sandbox)
    at = _overview(dashboard_env, dashboard_snapshot, sandbox, tmp_path / "data")
    shown = [str(m.value) for m in at.markdown if str(m.value).startswith("Now playing:")]
    name, artist = play["track"]["name"], play["track"]["artists"][0]["name"]
    assert len(shown) == 1 and shown[0].startswith(f"Now playing: **{name}** - {artist}")
    assert len(at.get("progress")) == 1


def test_overview_with_a_token_from_before_the_scope_says_to_run_auth(
    dashboard_env: pytest.MonkeyPatch, dashboard_snapshot: Path, sandbox: SandboxServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    dashboard_env.setenv("SPOTIFY_DATA_DIR", str(data))
    old = sandbox.state.issue_refresh_token(scope=OLD_SCOPE)
    FileTokenStore(sandbox_token_path(sandbox.url)).save(
        old, env_sha256=token_sha256(SANDBOX_REFRESH_TOKEN), scope=OLD_SCOPE
    )
    at = _overview(dashboard_env, dashboard_snapshot, sandbox, data)
    captions = [str(c.value) for c in at.caption]
    assert any("run `spotify-assets auth` again" in c for c in captions), captions
    page = " ".join([*captions, *(str(m.value) for m in at.markdown)])
    assert old not in page and SANDBOX_REFRESH_TOKEN not in page


def _door_widget(user_id: str) -> AppTest:
    def script(user_id: str) -> None:
        from app.now_playing import render

        render(user_id)

    at = AppTest.from_function(script, args=(user_id,), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_scrobblers_playing_now_shows_while_the_track_plays(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A ``playing_now`` the door kept (no Spotify configured: another player) is shown, its names
    as text, until the track should have ended."""
    from spotify_assets.scrobbles import now_playing as door
    from spotify_assets.settings import layout

    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_SANDBOX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(tmp_path / "data"))
    path = layout().now_playing("alice-id")
    listen = {"track_metadata": {"artist_name": "Dust Choir", "track_name": "Vinyl *Hiss*"}}
    door.save(path, listen, received_at=datetime.now(UTC), duration_ms=180_000)
    shown = [str(m.value) for m in _door_widget("alice-id").markdown]
    assert shown == [r"Now playing: **Vinyl \*Hiss\*** - Dust Choir (sent by your scrobbler)"]
    assert [str(m.value) for m in _door_widget("bob-id").markdown] == []  # another listener's door

    door.save(path, listen, received_at=datetime.now(UTC) - timedelta(minutes=4), duration_ms=180_000)
    assert [str(m.value) for m in _door_widget("alice-id").markdown] == []  # it has ended
