"""The door (``spotify-assets scrobble-server``) over real HTTP on loopback: a listener's token
from ``users token``, submissions of each listen type, ListenBrainz's limits and error shapes,
and the inbox in a real local lake, where a retried submission lands nothing new."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spotify_assets.cli import all_commands
from spotify_assets.lake_layout import SCROBBLE_INBOX_KIND, user_dir
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.scrobbles import now_playing
from spotify_assets.scrobbles.files import InputFile
from spotify_assets.scrobbles.listen import SCROBBLE_SERVER, Listen
from spotify_assets.scrobbles.listenbrainz import read_json_lines
from spotify_assets.scrobbles.matching import Outcome, Seen, decide
from spotify_assets.scrobbles.server import Door, make_server
from spotify_assets.scrobbles.submission import MAX_LISTEN_SIZE, MAX_LISTENS_PER_REQUEST, MAX_PAYLOAD_BYTES
from spotify_assets.settings import DataLayout
from spotify_assets.spotify.client import SpotifyUser
from spotify_assets.users.command import users_command
from spotify_assets.users.registry import UserRegistry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T0 = 1764500000  # 2025-11-30, well before NOW
ALICE_ID = "alice-spotify-id"


@dataclass
class Running:
    data: DataLayout
    lake: LocalLakeResource
    port: int
    token: str

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            sent = dict(headers or {})
            if token is not None:
                sent["Authorization"] = f"Token {token or self.token}"
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def inbox(self) -> list[str]:
        return self.lake.list(user_dir(SCROBBLE_INBOX_KIND, ALICE_ID))


def _listen(ts: int | None, track: str = "Army of Me", **info: Any) -> dict[str, Any]:
    listen: dict[str, Any] = {
        "track_metadata": {
            "artist_name": "Björk",
            "track_name": track,
            "release_name": "Post",
            "additional_info": info,
        }
    }
    if ts is not None:
        listen["listened_at"] = ts
    return listen


@pytest.fixture
def door(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Running]:
    data = DataLayout(tmp_path / "data")
    UserRegistry(data.users).add("alice", SpotifyUser(ALICE_ID, "Alice"), "refresh-token")
    assert users_command(["--data-dir", str(data.root), "token", "alice"]) == 0
    token = capsys.readouterr().out.strip()
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    server = make_server(Door(data, lake, clock=lambda: NOW), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Running(data, lake, server.server_address[1], token)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_token_is_stored_hashed_and_validated(door: Running, capsys: pytest.CaptureFixture[str]) -> None:
    stored = door.data.scrobble_tokens.read_text()
    assert door.token not in stored and len(door.token) >= 40
    assert door.data.scrobble_tokens.stat().st_mode & 0o777 == 0o600
    assert door.request("GET", "/1/validate-token") == (
        200,
        {"code": 200, "message": "Token valid.", "valid": True, "user_name": "alice"},
    )
    # Under any root, and with the token in the query as ListenBrainz allows.
    status, body = door.request("GET", f"/apis/listenbrainz/1/validate-token?token={door.token}", token=None)
    assert (status, body["valid"]) == (200, True)
    assert door.request("GET", "/1/validate-token", token="not-a-token") == (
        200,
        {"code": 200, "message": "Token invalid.", "valid": False},
    )
    assert door.request("GET", "/1/validate-token", token=None)[0] == 400
    assert door.token not in capsys.readouterr().err  # the request log drops the query
    # A new token replaces the old one.
    assert users_command(["--data-dir", str(door.data.root), "token", "alice"]) == 0
    assert door.request("GET", "/1/validate-token")[1]["valid"] is False
    assert users_command(["--data-dir", str(door.data.root), "token", "bob"]) == 1


def test_single_lands_once_and_a_retry_lands_nothing_new(door: Running) -> None:
    single = {"listen_type": "single", "payload": [_listen(T0, duration_ms=200_000)]}
    assert door.request("POST", "/1/submit-listens", single) == (200, {"status": "ok"})
    files = door.inbox()
    assert len(files) == 1 and "/listened_date=2025-11-30/" in files[0] and files[0].endswith(".jsonl")
    before = door.lake.read_bytes(files[0])
    # The same submission again (a client that got no answer), even with its keys in another order.
    reordered = json.dumps(single, sort_keys=True).encode()
    assert door.request("POST", "/1/submit-listens", reordered) == (200, {"status": "ok"})
    assert door.request("POST", "/1/submit-listens", single) == (200, {"status": "ok"})
    assert door.inbox() == files and door.lake.read_bytes(files[0]) == before
    (listen,) = _read_inbox(door, files[0])
    assert (listen.source, listen.artist, listen.track, listen.duration_ms) == (
        SCROBBLE_SERVER,
        "Björk",
        "Army of Me",
        200_000,
    )
    assert listen.started_at == datetime.fromtimestamp(T0, UTC)


def _read_inbox(door: Running, path: str) -> list[Listen]:
    f = InputFile(path, lambda: (Path(door.lake.root) / path).open("rb"))
    items = list(read_json_lines(f, NOW, source=SCROBBLE_SERVER))
    assert all(isinstance(i, Listen) for i in items)
    return [i for i in items if isinstance(i, Listen)]


def test_a_clock_a_little_fast_is_accepted(door: Running) -> None:
    ahead = {"listen_type": "single", "payload": [_listen(int(NOW.timestamp()) + 300)]}
    assert door.request("POST", "/1/submit-listens", ahead) == (200, {"status": "ok"})


def test_import_and_a_listen_sent_twice_counts_once(door: Running) -> None:
    assert (
        door.request("POST", "/1/submit-listens", {"listen_type": "single", "payload": [_listen(T0)]})[0]
        == 200
    )
    batch = [_listen(T0 + 300 * i, f"Track {i}") for i in range(1, 4)] + [_listen(T0)]
    assert door.request("POST", "/1/submit-listens", {"listen_type": "import", "payload": batch}) == (
        200,
        {"status": "ok"},
    )
    files = door.inbox()
    assert len(files) == 2
    listens = [x for f in files for x in _read_inbox(door, f)]
    assert len(listens) == 5
    # What the merge will do with the inbox: the listen sent in both submissions is one play.
    decisions = decide([], listens)
    assert sum(d.outcome is Outcome.NEW for d in decisions) == 4
    assert sum(d.outcome is Outcome.DUPLICATE for d in decisions) == 1
    # And against plays already kept from these files: all duplicates.
    seen = [Seen.of(d.listen, d.play) for d in decisions if d.outcome is Outcome.NEW]
    assert {d.outcome for d in decide(seen, listens)} == {Outcome.DUPLICATE}


def test_playing_now_is_kept_for_the_dashboard_not_landed(door: Running) -> None:
    body = {"listen_type": "playing_now", "payload": [_listen(None, "Hyperballad", duration_ms=321_000)]}
    assert door.request("POST", "/1/submit-listens", body) == (200, {"status": "ok"})
    assert door.inbox() == []
    path = door.data.now_playing(ALICE_ID)
    playing = now_playing.current(path, NOW)
    assert playing is not None and playing["track_metadata"]["track_name"] == "Hyperballad"
    assert now_playing.current(path, datetime.fromtimestamp(NOW.timestamp() + 322, UTC)) is None
    with_time = {"listen_type": "playing_now", "payload": [_listen(T0)]}
    status, error = door.request("POST", "/1/submit-listens", with_time)
    assert (status, error["code"]) == (400, 400) and "listened_at" in error["error"]


@pytest.mark.parametrize(
    ("token", "headers", "message"),
    [
        ("wrong-token", None, "Invalid authorization token."),
        (None, None, "You need to provide an Authorization header."),
        (None, {"Authorization": "Bearer something"}, "Invalid authorization token."),
    ],
)
def test_a_bad_token_is_refused_and_lands_nothing(
    door: Running, token: str | None, headers: dict[str, str] | None, message: str
) -> None:
    body = {"listen_type": "single", "payload": [_listen(T0)]}
    assert door.request("POST", "/1/submit-listens", body, token=token, headers=headers) == (
        401,
        {"code": 401, "error": message},
    )
    assert door.inbox() == []


def test_a_removed_listeners_token_stops_working(door: Running) -> None:
    registry = UserRegistry(door.data.users)
    registry.remove("alice")
    single = {"listen_type": "single", "payload": [_listen(T0)]}
    assert door.request("POST", "/1/submit-listens", single)[0] == 401
    # Someone else registered under the same name later is not let in by the old token.
    registry.add("alice", SpotifyUser("another-person", "Alice Two"), "refresh-token")
    assert door.request("POST", "/1/submit-listens", single)[0] == 401
    assert door.request("GET", "/1/validate-token")[1]["valid"] is False
    assert door.inbox() == []


def test_an_oversized_payload_is_refused_unread(door: Running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", door.port, timeout=10)
    try:
        conn.putrequest("POST", "/1/submit-listens")
        conn.putheader("Authorization", f"Token {door.token}")
        conn.putheader("Content-Length", str(MAX_PAYLOAD_BYTES + 1))
        conn.endheaders(b'{"listen_type": "import", "payload": [')  # the rest is never sent
        response = conn.getresponse()
        assert response.status == 400
        assert json.loads(response.read()) == {
            "code": 400,
            "error": f"Payload too large: submissions may be at most {MAX_PAYLOAD_BYTES} bytes.",
        }
    finally:
        conn.close()
    assert door.inbox() == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"listen_type": "single", "payload": [_listen(T0, comment="x" * MAX_LISTEN_SIZE)]}, "too large"),
        (
            {
                "listen_type": "import",
                "payload": [_listen(T0 + i) for i in range(MAX_LISTENS_PER_REQUEST + 1)],
            },
            "Too many",
        ),
        ({"listen_type": "single", "payload": [_listen(T0), _listen(T0 + 1)]}, "exactly one listen"),
        ({"listen_type": "import", "payload": [_listen(T0), _listen(None)]}, "must contain listened_at"),
        (
            {"listen_type": "import", "payload": [_listen(T0), {"listened_at": T0, "track_metadata": {}}]},
            "Listen 1",
        ),
        ({"listen_type": "sometimes", "payload": [_listen(T0)]}, "listen_type"),
        ({"listen_type": "single", "payload": [_listen(int(NOW.timestamp()) + 301)]}, "time_in_future"),
        ({"listen_type": "import", "payload": []}, "non-empty"),
        ({"payload": [_listen(T0)]}, "listen_type and payload"),
        (b"{not json", "Cannot parse JSON"),
    ],
)
def test_invalid_submissions_get_listenbrainz_errors_and_land_nothing(
    door: Running, body: Any, fragment: str
) -> None:
    status, error = door.request("POST", "/1/submit-listens", body)
    assert status == 400 and error["code"] == 400 and fragment in error["error"], error
    assert door.inbox() == []


def test_a_lake_that_refuses_the_write_answers_500(tmp_path: Path, door: Running) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    server = make_server(
        Door(door.data, LocalLakeResource(root=str(blocker)), clock=lambda: NOW), "127.0.0.1", 0
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        broken = Running(door.data, door.lake, server.server_address[1], door.token)
        status, error = broken.request(
            "POST", "/1/submit-listens", {"listen_type": "single", "payload": [_listen(T0)]}
        )
        assert (status, error) == (500, {"code": 500, "error": "The listens could not be stored; try again."})
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_command_is_registered() -> None:
    assert all_commands()["scrobble-server"][0] == "spotify_assets.scrobbles.command:scrobble_server_command"


def test_spotify_assets_scrobble_server_serves_on_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console script itself: ``spotify-assets scrobble-server --port 0`` in its own process,
    the deployment's local lake under ``--data-dir``, a listen submitted over HTTP, then stopped."""
    data = DataLayout(tmp_path / "data")
    UserRegistry(data.users).add("alice", SpotifyUser(ALICE_ID, "Alice"), "refresh-token")
    assert users_command(["--data-dir", str(data.root), "token", "alice"]) == 0
    token = capsys.readouterr().out.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    command = [str(Path(sys.executable).with_name("spotify-assets")), "scrobble-server"]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--data-dir", str(data.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
        first = lines.get(timeout=120)  # the process says where it listens once it does
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        assert match, first
        running = Running(data, LocalLakeResource(root=str(data.lake)), int(match.group(1)), token)
        single = {"listen_type": "single", "payload": [_listen(T0)]}
        assert running.request("POST", "/1/submit-listens", single) == (200, {"status": "ok"})
        assert len(running.inbox()) == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert token not in err
