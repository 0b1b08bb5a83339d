"""The sandbox Spotify Web API: the real endpoints, JSON shapes, OAuth flows and errors, on loopback.

It is the stand-in for ``api.spotify.com`` and ``accounts.spotify.com`` in local mode and in
tests: the production HTTP client runs unchanged against it, only the base URL differs.
Both hosts are served on one port (``/api/token`` and ``/authorize`` are the accounts part,
``/v1/...`` the API part). Test knobs live under ``/_sandbox/...`` (loopback clients only)
and mirror the in-process methods of :class:`SandboxServer`.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import binascii
import ipaddress
import json
import logging
import re
import signal
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from spotify_sandbox.catalogue import Catalogue
from spotify_sandbox.constants import (
    DEFAULT_NOW,
    DEFAULT_SEED,
    DEFAULT_TOKEN_TTL_S,
    MAX_AUDIO_FEATURE_IDS,
    RECENTLY_PLAYED_WINDOW,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
)
from spotify_sandbox.listener import (
    DEFAULT_LISTENER,
    HOUR_MS,
    LISTENER_PROFILES,
    ClockMode,
    Listener,
    ListenerProfile,
    SimClock,
    corrupt_item,
    from_ms,
    parse_instant,
    to_ms,
)
from spotify_sandbox.reccobeats import RECCOBEATS_AUDIO_FEATURES_PATH, ReccoBeatsBadRequest
from spotify_sandbox.reccobeats import audio_features_answer as reccobeats_answer
from spotify_sandbox.state import CURRENTLY_PLAYING_SCOPE, AccessToken, SandboxState

log = logging.getLogger(__name__)

RECENTLY_PLAYED_PATH = "/v1/me/player/recently-played"
ME_PATH = "/v1/me"
CURRENTLY_PLAYING_PATH = "/v1/me/player/currently-playing"
#: The sandbox's stand-in for signing in at Spotify's consent page: ``/authorize?...&sandbox_user=alice``
#: approves as that listener (a name of ``LISTENER_PROFILES`` or a user id); without it, the default one.
SANDBOX_USER_PARAM = "sandbox_user"
AUDIO_FEATURES_PATH = "/v1/audio-features"
TRACKS_PATH = "/v1/tracks"
_ERROR_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Service not found",
    429: "API rate limit exceeded",
    500: "Server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


class _HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def api_error(status: int, message: str | None = None) -> _HttpError:
    """An error in the Web API's shape: ``{"error": {"status": ..., "message": ...}}``."""
    return _HttpError(
        status, {"error": {"status": status, "message": message or _ERROR_MESSAGES.get(status, "")}}
    )


def oauth_error(status: int, error: str, description: str | None = None) -> _HttpError:
    """An error in the accounts service's shape: ``{"error": ..., "error_description": ...}``."""
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = description
    return _HttpError(status, body)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "SpotifySandbox/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines can carry auth codes; stats are in ``/_sandbox/stats``."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing -----------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        #: (listener id, simulated now in ms) of a recently-played page, set by the route; one
        #: handler serves every request of a kept-alive connection, so it starts empty each time.
        self._shown: tuple[str, int] | None = None
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        if path.startswith("/_sandbox"):
            try:
                if not _is_loopback(self.client_address[0]):
                    raise api_error(403, "Sandbox controls are loopback-only")
                self._send_json(200, self._control(method, path, query, raw_body))
            except _HttpError as err:
                self._send_json(err.status, err.body, err.headers)
            except (ValueError, TypeError, KeyError) as err:
                self._send_json(400, {"error": {"status": 400, "message": f"bad control request: {err}"}})
            return

        state = sandbox.state
        form = (
            {k: v[-1] for k, v in parse_qs(raw_body.decode("utf-8", "replace")).items()}
            if method == "POST"
            else {}
        )
        grant_type = form.get("grant_type") if path == "/api/token" else None
        malformed = html = False
        delay = state.take_delay(path)
        if delay and sandbox.stopping.wait(delay):
            state.record(method, path, 0, grant_type)
            return
        try:
            fault = state.take_status_fault(path)
            if fault is not None:
                injected = api_error(fault.status)
                if fault.retry_after is not None:
                    injected.headers["Retry-After"] = str(fault.retry_after)
                raise injected
            malformed = state.take_malformed(path)
            html = state.take_html(path)
            status, body, headers = self._route(method, path, query, form)
        except _HttpError as err:
            status, body, headers = err.status, err.body, err.headers
        if self._shown is not None and status == 200 and not (malformed or html):
            state.record_shown(*self._shown)
        # Count before answering, so a client that reads /_sandbox/stats right after sees its request.
        state.record(method, path, status, grant_type)
        if status in (301, 302):
            self._send_redirect(status, headers["Location"])
        elif status == 204:
            self._send_no_content()
        elif html:
            self._send_html(status)
        else:
            self._send_json(status, body, headers, malformed=malformed)

    def _send_html(self, status: int) -> None:
        """What a captive portal or a misrouted proxy answers: a web page, with the API's status."""
        data = (
            b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in to continue</body></html>"
        )
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_json(
        self, status: int, body: Any, headers: dict[str, str] | None = None, *, malformed: bool = False
    ) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        if malformed:
            data = data[: max(1, len(data) // 2)]
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_no_content(self) -> None:
        self.send_response(204)
        self.end_headers()

    def _send_redirect(self, status: int, location: str) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- the Spotify endpoints ----------------------------------------------------------------------

    def _route(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        if path == "/api/token":
            if method != "POST":
                raise api_error(405, "Method not allowed")
            return 200, self._token(form), {}
        if path == "/authorize" and method == "GET":
            return 302, None, {"Location": self._authorize(query)}
        if path == RECENTLY_PLAYED_PATH and method == "GET":
            token = self._bearer(user=True)
            return 200, self._recently_played(query, token), {}
        if path == CURRENTLY_PLAYING_PATH and method == "GET":
            token = self._bearer(user=True)
            if CURRENTLY_PLAYING_SCOPE not in token.scope.split():
                raise api_error(403, "Permissions missing")
            playing = self.server.sandbox.currently_playing(token.user_id)
            return (200, playing, {}) if playing is not None else (204, None, {})
        if path == ME_PATH and method == "GET":
            token = self._bearer(user=True)
            return 200, self.server.sandbox.listener_for(token.user_id).profile_json(), {}
        if path == AUDIO_FEATURES_PATH and method == "GET":
            self._bearer(user=False)
            return 200, self._audio_features(query), {}
        if path.startswith(TRACKS_PATH + "/") and method == "GET":
            self._bearer(user=False)
            return 200, self._track(path.removeprefix(TRACKS_PATH + "/")), {}
        if path == TRACKS_PATH and method == "GET":
            # Development-mode apps lost the several-tracks endpoint in February 2026; the
            # sandbox app is one, so a client that batches finds out here, not in production.
            self._bearer(user=False)
            raise api_error(403, "Forbidden: GET /v1/tracks is not available to development-mode apps")
        if path == RECCOBEATS_AUDIO_FEATURES_PATH and method == "GET":
            return 200, self._reccobeats_audio_features(), {}
        raise api_error(404)

    # -- the ReccoBeats emulation (keyless; its own path prefix, see sandbox/reccobeats.py) -----------

    def _reccobeats_audio_features(self) -> dict[str, Any]:
        # Repeated ``ids`` parameters: the whole list, not the last value ``query`` keeps.
        ids = parse_qs(urlsplit(self.path).query).get("ids", [])
        try:
            return reccobeats_answer(self.server.sandbox.catalogue, ids)
        except ReccoBeatsBadRequest as exc:
            raise api_error(400, str(exc)) from None

    def _client_auth(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        try:
            decoded = base64.b64decode(value, validate=True).decode() if scheme.lower() == "basic" else ""
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        sandbox = self.server.sandbox
        if decoded != f"{sandbox.client_id}:{sandbox.client_secret}":
            raise oauth_error(401, "invalid_client", "Invalid client")

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        self._client_auth()
        state = self.server.sandbox.state
        grant = form.get("grant_type", "")
        base = {"token_type": "Bearer", "expires_in": state.token_ttl_s}
        if grant == "client_credentials":
            return {"access_token": state.issue_access_token("app"), **base}
        if grant == "authorization_code":
            redeemed = state.redeem_auth_code(form.get("code", ""))
            if redeemed is None:
                raise oauth_error(400, "invalid_grant", "Invalid authorization code")
            redirect_uri, grant_given = redeemed
            if form.get("redirect_uri") != redirect_uri:
                raise oauth_error(400, "invalid_grant", "Invalid redirect URI")
            return {
                "access_token": state.issue_access_token("user", grant_given.scope, grant_given.user_id),
                **base,
                "refresh_token": state.issue_refresh_token(grant_given.scope, grant_given.user_id),
                "scope": grant_given.scope,
            }
        if grant == "refresh_token":
            old = form.get("refresh_token", "")
            with state.lock:
                held = state.refresh_tokens.get(old)
                if held is None:
                    raise oauth_error(400, "invalid_grant", "Invalid refresh token")
                out = {
                    "access_token": state.issue_access_token("user", held.scope, held.user_id),
                    **base,
                    "scope": held.scope,
                }
                if state.faults.rotate_refresh_tokens:
                    del state.refresh_tokens[old]
                    out["refresh_token"] = state.issue_refresh_token(held.scope, held.user_id)
            return out
        if not grant:
            raise oauth_error(400, "invalid_request", "grant_type parameter is missing")
        raise oauth_error(
            400,
            "unsupported_grant_type",
            "grant_type must be client_credentials, authorization_code or refresh_token",
        )

    def _authorize(self, query: dict[str, str]) -> str:
        sandbox = self.server.sandbox
        if query.get("client_id") != sandbox.client_id:
            raise oauth_error(400, "invalid_client", "Invalid client")
        if query.get("response_type") != "code":
            raise oauth_error(400, "unsupported_response_type", "response_type must be code")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            raise oauth_error(400, "invalid_request", "Illegal redirect_uri")
        try:
            listener = sandbox.listener_for(query.get(SANDBOX_USER_PARAM) or None)
        except KeyError:
            raise oauth_error(400, "invalid_request", "Unknown sandbox listener") from None
        code = sandbox.state.issue_auth_code(redirect_uri, query.get("scope", ""), listener.profile.user_id)
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return f"{redirect_uri}{separator}{urlencode(params)}"

    def _bearer(self, *, user: bool) -> AccessToken:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise api_error(401, "No token provided")
        found, message = self.server.sandbox.state.check_access_token(token.strip())
        if found is None:
            raise api_error(401, message)
        if user and found.kind != "user":
            raise api_error(401, "This endpoint needs a user access token; client credentials carry no user")
        return found

    def _recently_played(self, query: dict[str, str], token: AccessToken) -> dict[str, Any]:
        sandbox = self.server.sandbox
        listener = sandbox.listener_for(token.user_id)
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise api_error(400, "Invalid limit") from None
        if not 1 <= limit <= RECENTLY_PLAYED_WINDOW:
            raise api_error(400, "Invalid limit")
        if query.get("after") and query.get("before"):
            raise api_error(400, "after and before cannot both be specified")
        try:
            after = int(query["after"]) if query.get("after") else None
            before = int(query["before"]) if query.get("before") else None
        except ValueError:
            raise api_error(
                400, "Invalid cursor: after/before must be Unix timestamps in milliseconds"
            ) from None
        now_ms = sandbox.clock.now_ms()
        plays = listener.recent(now_ms)
        self._shown = (token.user_id, now_ms)  # recorded once the page is answered whole
        if after is not None:
            plays = [p for p in plays if p.played_at_ms > after]
        if before is not None:
            plays = [p for p in plays if p.played_at_ms < before]
        page = plays[:limit]
        base = f"{sandbox.url}{RECENTLY_PLAYED_PATH}"
        cursors = None
        next_url = None
        if page:
            cursors = {"after": str(page[0].played_at_ms), "before": str(page[-1].played_at_ms)}
            if len(plays) > limit:
                next_url = f"{base}?{urlencode({'before': page[-1].played_at_ms, 'limit': limit})}"
        href_params = {k: query[k] for k in ("limit", "after", "before") if query.get(k)}
        faults = sandbox.state.item_faults()
        items = [
            corrupt_item(rendered, faults[n], sandbox.catalogue, p.played_at_ms) if n in faults else rendered
            for n, (p, rendered) in enumerate((p, listener.render(p)) for p in page)
        ]
        return {
            "items": items,
            "next": next_url,
            "cursors": cursors,
            "limit": limit,
            "href": f"{base}?{urlencode(href_params)}" if href_params else base,
        }

    def _track(self, track_id: str) -> dict[str, Any]:
        """``GET /v1/tracks/{id}``: 400 for a malformed id, 404 for an unknown one, as Spotify answers."""
        if not re.fullmatch(r"[0-9A-Za-z]{22}", track_id):
            raise api_error(400, "invalid id")
        catalogue = self.server.sandbox.catalogue
        idx = catalogue.track_index.get(track_id)
        if idx is None:
            raise api_error(404, "Resource not found")
        return catalogue.track_json(idx)

    def _audio_features(self, query: dict[str, str]) -> dict[str, Any]:
        sandbox = self.server.sandbox
        if sandbox.state.faults.audio_features_forbidden:
            raise api_error(403, "Forbidden: this application cannot use audio-features")
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not ids:
            raise api_error(400, "Missing required parameter: ids")
        if len(ids) > MAX_AUDIO_FEATURE_IDS:
            raise api_error(400, "Too many ids requested")
        features = sandbox.catalogue.audio_features_by_id
        return {"audio_features": [features.get(i) for i in ids]}

    # -- test controls ------------------------------------------------------------------------------

    def _control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Any:
        sandbox = self.server.sandbox
        body: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        action = path.removeprefix("/_sandbox").strip("/")
        if method == "GET" and action == "stats":
            return sandbox.stats()
        if method == "GET" and action == "clock":
            return {"now": sandbox.now().isoformat(), "mode": sandbox.clock.mode}
        if method == "GET" and action == "plays":
            return {"items": sandbox.plays_between(query["start"], query["end"], query.get("user") or None)}
        if method == "GET" and action == "listeners":
            return {"items": [listener.profile_json() for listener in sandbox.listeners.values()]}
        if method != "POST":
            raise api_error(404, f"unknown sandbox control {method} {path}")
        if action == "clock":
            if "now" in body:
                sandbox.set_now(body["now"])
            if "advance_seconds" in body:
                sandbox.advance(float(body["advance_seconds"]))
            return {"now": sandbox.now().isoformat(), "mode": sandbox.clock.mode}
        if action == "faults":
            sandbox.fail_next(
                int(body["status"]), int(body.get("count", 1)), body.get("path", "*"), body.get("retry_after")
            )
        elif action == "malformed":
            sandbox.malformed_next(int(body.get("count", 1)), body.get("path", "*"))
        elif action == "html":
            sandbox.html_next(int(body.get("count", 1)), body.get("path", "*"))
        elif action == "items":
            sandbox.corrupt_items({int(k): str(v) for k, v in body.get("faults", {}).items()})
        elif action == "delay":
            count = body.get("count")
            sandbox.delay(
                float(body["seconds"]), None if count is None else int(count), body.get("path", "*")
            )
        elif action == "expire-tokens":
            return {"expired": sandbox.expire_tokens()}
        elif action == "settings":
            sandbox.configure(**body)
        elif action == "clear-faults":
            sandbox.clear_faults()
        elif action == "reset-stats":
            sandbox.reset_stats()
        elif action == "refresh-token":
            return {"refresh_token": sandbox.issue_refresh_token(body.get("user") or None)}
        elif action == "revoke":
            return {"revoked": sandbox.revoke(str(body["user"]))}
        else:
            raise api_error(404, f"unknown sandbox control {path}")
        return {"ok": True}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: SandboxServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet for clients that hang up (timeout tests do); anything else is logged."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        log.exception("sandbox request from %s failed", client_address)


class SandboxServer:
    """A running sandbox Spotify Web API (``with SandboxServer() as sb: ... sb.url``).

    ``clock="fixed"`` (default) freezes simulated time at ``now`` until :meth:`advance` or
    :meth:`set_now`; ``"realtime"`` lets it tick with the wall clock from ``now``.
    """

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        now: str | datetime = DEFAULT_NOW,
        clock: ClockMode = "fixed",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_ttl_s: int = DEFAULT_TOKEN_TTL_S,
        local_file_ratio: float = 0.0,
        episode_ratio: float = 0.0,
        rotate_refresh_tokens: bool = False,
        audio_features_forbidden: bool = False,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
    ) -> None:
        self.seed = seed
        self.host = host
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.catalogue = Catalogue(seed)
        self.listener = Listener(
            self.catalogue, local_file_ratio=local_file_ratio, episode_ratio=episode_ratio
        )
        #: Every listener by Spotify user id, the default one first (see ``listener.LISTENER_PROFILES``).
        self.listeners: dict[str, Listener] = {DEFAULT_LISTENER.user_id: self.listener}
        for profile in LISTENER_PROFILES.values():
            self.listeners[profile.user_id] = Listener(
                self.catalogue,
                profile=profile,
                local_file_ratio=local_file_ratio,
                episode_ratio=episode_ratio,
            )
        self.clock = SimClock(parse_instant(now), clock)
        self.state = SandboxState(token_ttl_s)
        self.state.configure(
            rotate_refresh_tokens=rotate_refresh_tokens, audio_features_forbidden=audio_features_forbidden
        )
        self.stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SandboxServer(url={self.url if self._httpd else None!r}, seed={self.seed}, clock={self.clock.mode!r})"

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        self.stopping.clear()
        httpd = _Server((self.host, self.port), _Handler)
        httpd.sandbox = self
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Block until :meth:`stop` is called (from a signal handler or another thread)."""
        self.start()
        self.stopping.wait()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def accounts_url(self) -> str:
        return self.url

    @property
    def api_url(self) -> str:
        return self.url

    # -- in-process controls (mirrored by POST /_sandbox/...) ---------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> datetime:
        return self.clock.advance(seconds)

    def set_now(self, now: str | datetime) -> datetime:
        return self.clock.set_now(now)

    def fail_next(self, status: int, count: int = 1, path: str = "*", retry_after: int | None = None) -> None:
        """The next ``count`` requests whose path matches the glob ``path`` answer ``status``."""
        self.state.add_status_fault(status, count, path, retry_after)

    def malformed_next(self, count: int = 1, path: str = "*") -> None:
        """The next ``count`` matching responses carry a truncated JSON body."""
        self.state.set_malformed(count, path)

    def html_next(self, count: int = 1, path: str = "*") -> None:
        """The next ``count`` matching responses are an HTML page (status kept), as a proxy might send."""
        self.state.set_html(count, path)

    def corrupt_items(self, faults: dict[int, str]) -> None:
        """Until cleared, the recently-played item at each position of a page becomes its fault kind
        (``missing_played_at``, ``unparseable_played_at``, ``track_not_object``, ``unknown_type``,
        ``not_object``, ``null_id``, ``local``, ``episode``)."""
        self.state.set_item_faults(faults)

    def delay(self, seconds: float, count: int | None = None, path: str = "*") -> None:
        """Hold matching responses for ``seconds`` (next ``count`` requests; None: until cleared)."""
        self.state.set_delay(seconds, count, path)

    def pending_faults(self) -> int:
        """Injected fault answers no request has met yet (see ``SandboxState.pending_faults``)."""
        return self.state.pending_faults()

    def expire_tokens(self) -> int:
        return self.state.expire_tokens()

    def configure(
        self,
        *,
        audio_features_forbidden: bool | None = None,
        rotate_refresh_tokens: bool | None = None,
        local_file_ratio: float | None = None,
        episode_ratio: float | None = None,
    ) -> None:
        self.state.configure(
            audio_features_forbidden=audio_features_forbidden, rotate_refresh_tokens=rotate_refresh_tokens
        )
        for listener in self.listeners.values():
            if local_file_ratio is not None:
                listener.local_file_ratio = float(local_file_ratio)
            if episode_ratio is not None:
                listener.episode_ratio = float(episode_ratio)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def listener_for(self, user: str | None = None) -> Listener:
        """A listener by name (``"alice"``), by Spotify user id, or the default one for None.

        Raises KeyError for anyone else.
        """
        if user is None:
            return self.listener
        profile: ListenerProfile | None = LISTENER_PROFILES.get(user)
        return self.listeners[profile.user_id if profile is not None else user]

    def issue_refresh_token(self, user: str | None = None) -> str:
        """A refresh token for ``user`` (see :meth:`listener_for`), as the authorization flow would give."""
        return self.state.issue_refresh_token(user_id=self.listener_for(user).profile.user_id)

    def revoke(self, user: str) -> int:
        """``user`` revokes the app: their refresh tokens answer ``invalid_grant`` from now on."""
        return self.state.revoke_refresh_tokens(self.listener_for(user).profile.user_id)

    def is_refresh_token_valid(self, token: str) -> bool:
        with self.state.lock:
            return token in self.state.refresh_tokens

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def shown_at(self) -> dict[str, list[int]]:
        """Listener id -> each simulated instant (ms) a whole recently-played page was answered."""
        return self.state.shown_at()

    def reset_stats(self) -> None:
        self.state.reset_stats()

    # -- ground truth -------------------------------------------------------------------------------

    def plays_between(
        self, start: str | datetime, end: str | datetime, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Every play of ``user`` (default listener if None) with start < played_at <= end, oldest
        first, as API items (ignores the 50 cap)."""
        listener = self.listener_for(user)
        return [
            listener.render(p)
            for p in listener.between(to_ms(parse_instant(start)), to_ms(parse_instant(end)))
        ]

    def currently_playing(self, user: str | None = None) -> dict[str, Any] | None:
        """``GET /v1/me/player/currently-playing`` for ``user``: the play that has started and not
        yet ended at the clock's now (Spotify lists a play when it ends), with its progress; None
        between plays (the API's 204). A play starts when the one before it ended or, after a
        pause, one track length before it ends."""
        listener = self.listener_for(user)
        now_ms = self.clock.now_ms()
        upcoming = listener.between(now_ms, now_ms + 2 * HOUR_MS)[:1]
        if not upcoming:
            return None
        play = upcoming[0]
        before = [p for p in listener.between(now_ms - 2 * HOUR_MS, now_ms) if p.played_at_ms <= now_ms]
        duration = listener.catalogue.tracks[play.track].duration_ms
        started = play.played_at_ms - duration
        if before and before[-1].played_at_ms > started:
            started = before[-1].played_at_ms
        if started > now_ms:
            return None
        rendered = listener.render(play)
        return {
            "timestamp": now_ms,
            "context": rendered["context"],
            "progress_ms": now_ms - started,
            "item": rendered["track"],
            "currently_playing_type": rendered["track"].get("type", "track"),
            "actions": {"disallows": {"resuming": True}},
            "is_playing": True,
        }

    def recently_played_truth(self, user: str | None = None) -> list[dict[str, Any]]:
        """What ``/recently-played`` would hold right now for ``user``: the latest 50 plays, newest first."""
        listener = self.listener_for(user)
        return [listener.render(p) for p in listener.recent(self.clock.now_ms(), RECENTLY_PLAYED_WINDOW)]


# -- one embedded sandbox per process (SandboxSpotifyResource with no url) ---------------------------

_EMBEDDED: SandboxServer | None = None
_EMBEDDED_LOCK = threading.Lock()


def embedded_sandbox() -> SandboxServer:
    """The process-wide sandbox, started on first use on a free loopback port (fixed clock)."""
    global _EMBEDDED
    with _EMBEDDED_LOCK:
        if _EMBEDDED is None:
            _EMBEDDED = SandboxServer().start()
            atexit.register(_EMBEDDED.stop)
        return _EMBEDDED


# -- console command ---------------------------------------------------------------------------------


def serve_command(argv: list[str]) -> int:
    """``spotify-assets sandbox``: serve the sandbox until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="spotify-assets sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--clock", choices=("fixed", "realtime"), default="fixed")
    parser.add_argument(
        "--now", default=None, help="simulated start time, ISO 8601 (default: 2026-11-20T21:00:00Z)"
    )
    parser.add_argument(
        "--port-file", type=Path, default=None, help="write the chosen port here once listening"
    )
    args = parser.parse_args(argv)
    now: str | datetime = args.now or DEFAULT_NOW
    if args.now is None and args.clock == "realtime":
        from datetime import UTC

        now = datetime.now(UTC)
    sandbox = SandboxServer(seed=args.seed, now=now, clock=args.clock, host=args.host, port=args.port)
    sandbox.start()

    def _stop(signum: int, frame: FrameType | None) -> None:
        sandbox.stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if args.port_file is not None:
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(f"{sandbox.port}\n")
        tmp.replace(args.port_file)
    print(
        f"Sandbox Spotify API on {sandbox.url} (seed {args.seed}, {args.clock} clock at {sandbox.now().isoformat()})"
    )
    print(f"  client id {sandbox.client_id}, refresh token: the SANDBOX_REFRESH_TOKEN constant", flush=True)
    try:
        while not sandbox.stopping.wait(0.5):
            pass
    finally:
        sandbox.stop()
    print("Sandbox stopped.", flush=True)
    return 0


__all__ = ["SandboxServer", "embedded_sandbox", "from_ms", "serve_command"]
