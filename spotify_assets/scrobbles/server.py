"""The door: a ListenBrainz-compatible HTTP server scrobblers submit listens to.

``POST /1/submit-listens`` and ``GET /1/validate-token`` as ListenBrainz serves them
(``submission.py`` judges a body), under any root, so a client configured with
``http://host:port/`` or ``http://host:port/anything/`` finds them. Each listener has a token
(``users/scrobble_tokens.py``); a token whose listener was removed from the household is refused. An accepted
``single`` or ``import`` lands in the lake's inbox before the answer (``inbox.py``: durable,
create-only, a retry lands nothing new); ``playing_now`` replaces the listener's now-playing
file (``now_playing.py``). The standard library's threading server is enough for a household's
scrobblers, and keeps the door free of a web framework.

The request log names the method, the path without its query (``validate-token`` may carry the
token there) and the status; never a header or a body.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from spotify_assets.resources.lake import LakeResource
from spotify_assets.scrobbles import inbox, now_playing
from spotify_assets.scrobbles.submission import MAX_PAYLOAD_BYTES, PLAYING_NOW, ApiError, judge, parse_body
from spotify_assets.settings import DataLayout
from spotify_assets.users.registry import User, UserError, UserRegistry
from spotify_assets.users.scrobble_tokens import ScrobbleTokens

#: Loopback unless told otherwise: a token travels in clear over plain HTTP.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8791
SUBMIT_PATH = "/1/submit-listens"
VALIDATE_PATH = "/1/validate-token"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Door:
    """What the server needs: who a token is, where listens land, and a clock."""

    data: DataLayout
    lake: LakeResource
    clock: Callable[[], datetime] = field(default=_now)

    @property
    def tokens(self) -> ScrobbleTokens:
        return ScrobbleTokens(self.data.scrobble_tokens)

    def listener(self, token: str | None) -> User | None:
        """The household member ``token`` belongs to, or None (no token, an unknown one, or a
        listener no longer in the household, or since replaced by another under that name)."""
        if not token:
            return None
        found = self.tokens.who(token)
        if found is None:
            return None
        name, user_id = found
        try:
            user = UserRegistry(self.data.users).get(name)
        except UserError:
            return None
        return user if user.user_id == user_id else None

    def submit(self, user: User, body: bytes) -> dict[str, Any]:
        """Judge and keep one submission of ``user``; ``ApiError`` for a refused one."""
        now = self.clock()
        submission = judge(parse_body(body), now)
        if submission.listen_type == PLAYING_NOW:
            now_playing.save(
                self.data.now_playing(user.user_id), submission.raw[0], now, submission.listens[0].duration_ms
            )
        else:
            inbox.land(self.lake, user.user_id, submission.raw)
        return {"status": "ok"}


def token_of(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Token <token>`` header (the scheme in any case)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "token" else None


def make_handler(door: Door) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "spotify-assets-scrobble-server"
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: dict[str, Any], *, close: bool = False) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Access-Control-Allow-Origin", "*")
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _path(self) -> str:
            return urlsplit(self.path).path.rstrip("/")

        def do_OPTIONS(self) -> None:
            """CORS preflight: browser-based scrobblers send one before a POST with a token."""
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            if not self._path().endswith(VALIDATE_PATH):
                self._answer(404, ApiError(404, "Not found.").body())
                return
            query = parse_qs(urlsplit(self.path).query)
            token = token_of(self.headers.get("Authorization")) or next(iter(query.get("token", [])), None)
            if not token:
                self._answer(400, ApiError(400, "You need to provide an Authorization token.").body())
                return
            try:
                user = door.listener(token)
            except Exception as exc:  # an unreadable tokens file or registry: say so, keep serving
                self.log_error("token not checked: %s", type(exc).__name__)
                self._answer(500, ApiError(500, "The token could not be checked; try again.").body())
                return
            if user is None:
                self._answer(200, {"code": 200, "message": "Token invalid.", "valid": False})
            else:
                self._answer(
                    200, {"code": 200, "message": "Token valid.", "valid": True, "user_name": user.name}
                )

        def do_POST(self) -> None:
            length_header = self.headers.get("Content-Length")
            try:
                if not self._path().endswith(SUBMIT_PATH):
                    raise ApiError(404, "Not found.")
                authorization = self.headers.get("Authorization")
                if not authorization:
                    raise ApiError(401, "You need to provide an Authorization header.")
                user = door.listener(token_of(authorization))
                if user is None:
                    raise ApiError(401, "Invalid authorization token.")
                if length_header is None or not length_header.strip().isdigit():
                    raise ApiError(411, "A Content-Length header is required.")
                if int(length_header) > MAX_PAYLOAD_BYTES:
                    raise ApiError(
                        400, f"Payload too large: submissions may be at most {MAX_PAYLOAD_BYTES} bytes."
                    )
                body = self.rfile.read(int(length_header))
                answer = door.submit(user, body)
            except ApiError as exc:
                # A body left unread (refused before reading it) cannot share the connection.
                self._answer(exc.status, exc.body(), close=True)
                return
            except Exception as exc:  # a lake that refused the write: the client retries later
                self.log_error("submission not kept: %s", type(exc).__name__)
                self._answer(
                    500, ApiError(500, "The listens could not be stored; try again.").body(), close=True
                )
                return
            self._answer(200, answer)

        def log_message(self, format: str, *args: Any) -> None:
            """The method, the path without its query, the status: never a token."""
            if args and args[0] == getattr(self, "requestline", None):
                args = (f"{self.command} {urlsplit(self.path).path}", *args[1:])
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    return Handler


def make_server(door: Door, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """The door bound to ``host:port`` (port 0: any free one), not yet serving."""
    server = ThreadingHTTPServer((host, port), make_handler(door))
    server.daemon_threads = True
    return server
