"""``spotify-assets auth``: get a refresh token with the Authorization Code flow, once.

Recently-played needs a *user* token, which only the Authorization Code flow gives. This
command prints (and opens) Spotify's consent URL, catches the redirect on a one-shot loopback
HTTP server (or takes the redirect URL pasted on stdin, for a browser on another machine),
checks ``state``, trades the code for tokens and stores the refresh token in the 0600 token
store. It prints where the token went, never the token.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import queue
import secrets
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from spotify_assets.settings import spotify_accounts_url
from spotify_assets.spotify.client import HttpSpotifyClient
from spotify_assets.spotify.errors import SpotifyError
from spotify_assets.spotify.token_store import FileTokenStore, token_sha256

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8888/callback"
#: What ``auth`` and ``users add`` ask each listener for: their recently played tracks (the
#: pipeline) and the track playing now (Overview's "Now playing", ``app/now_playing.py``). A token
#: given before the second was added answers 403 there; the app says to run ``auth`` again.
SCOPES = ("user-read-recently-played", "user-read-currently-playing")
SCOPE = " ".join(SCOPES)
_DONE_PAGE = (
    b"<!doctype html><title>spotify-assets</title>"
    b"<p>Spotify answered. You can close this tab and go back to the terminal.</p>"
)


def authorize_url(accounts_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": state,
    }
    return f"{accounts_url.rstrip('/')}/authorize?{urlencode(params)}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _start_callback_server(host: str, port: int, path: str, results: queue.Queue[str]) -> HTTPServer | None:
    """A loopback server that hands the first request to ``path`` (its query string) to ``results``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            split = urlsplit(self.path)
            if split.path != path:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(_DONE_PAGE)))
            self.end_headers()
            self.wfile.write(_DONE_PAGE)
            results.put(split.query)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the request line holds the authorization code."""

    try:
        server = HTTPServer((host, port), Handler)
    except OSError as exc:
        print(
            f"Could not listen on {host}:{port} ({exc.strerror}); paste the redirect URL instead.",
            file=sys.stderr,
        )
        return None
    threading.Thread(target=server.serve_forever, name="spotify-auth-callback", daemon=True).start()
    return server


def _read_pasted(results: queue.Queue[str]) -> None:
    """Take a pasted redirect URL (or bare query string) from stdin, if the user has one."""
    try:
        for line in sys.stdin:
            text = line.strip()
            if text:
                results.put(urlsplit(text).query if "://" in text else text.lstrip("?"))
                return
    except (OSError, ValueError):
        return


class AuthorizationFailed(Exception):
    """The Authorization Code flow did not end with tokens; the message says why (no secrets)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_flow_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the flow, shared by ``spotify-assets auth`` and ``spotify-assets users add``."""
    parser.add_argument("--redirect-uri", default=DEFAULT_REDIRECT_URI, help="must match the app's settings")
    parser.add_argument(
        "--accounts-url",
        default=spotify_accounts_url(),
        help="accounts service base URL (default: $SPOTIFY_ACCOUNTS_URL or Spotify's)",
    )
    parser.add_argument("--no-browser", action="store_true", help="only print the URL")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the redirect")


def app_credentials() -> tuple[str, str]:
    """``SPOTIFY_CLIENT_ID`` and ``SPOTIFY_CLIENT_SECRET``, or AuthorizationFailed (exit 2) naming them."""
    client_id = os.environ.get("SPOTIFY_CLIENT_ID", "")
    client_secret = os.environ.get("SPOTIFY_CLIENT_SECRET", "")
    if not client_id or not client_secret:
        raise AuthorizationFailed(
            "Set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET (from your Spotify app) first.", exit_code=2
        )
    return client_id, client_secret


def run_authorization_flow(args: argparse.Namespace, client_id: str, client_secret: str) -> dict[str, Any]:
    """Consent URL -> redirect (loopback callback or pasted URL) -> state check -> code exchange.

    Returns Spotify's token answer (it holds ``refresh_token``; never print it). Raises
    AuthorizationFailed with the reason.
    """
    redirect = urlsplit(args.redirect_uri)
    if redirect.scheme != "http" or not redirect.hostname or not _is_loopback(redirect.hostname):
        raise AuthorizationFailed(
            "--redirect-uri must be a loopback http URI such as http://127.0.0.1:8888/callback", exit_code=2
        )

    state = secrets.token_urlsafe(24)
    results: queue.Queue[str] = queue.Queue()
    server = _start_callback_server(redirect.hostname, redirect.port or 80, redirect.path or "/", results)
    url = authorize_url(args.accounts_url, client_id, args.redirect_uri, state)
    print("Open this URL in a browser and approve access:", flush=True)
    print(f"  {url}", flush=True)
    print(
        f"Waiting for Spotify to redirect to {args.redirect_uri} "
        "(or paste the URL you were redirected to here and press Enter)...",
        flush=True,
    )
    if not args.no_browser:
        webbrowser.open(url)
    threading.Thread(target=_read_pasted, args=(results,), name="spotify-auth-stdin", daemon=True).start()
    try:
        query = results.get(timeout=args.timeout)
    except queue.Empty:
        raise AuthorizationFailed(f"No redirect within {args.timeout:g} s; run the command again.") from None
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()

    params = {k: v[-1] for k, v in parse_qs(query).items()}
    if "error" in params:
        raise AuthorizationFailed(f"Spotify did not authorise the app: {params['error'][:100]}")
    if not secrets.compare_digest(params.get("state", ""), state):
        raise AuthorizationFailed(
            "The redirect's state does not match this session; refusing it (possible CSRF)."
        )
    code = params.get("code")
    if not code:
        raise AuthorizationFailed("The redirect carried no authorization code.")

    client = HttpSpotifyClient(client_id, client_secret, accounts_base_url=args.accounts_url)
    try:
        return client.exchange_code(code, args.redirect_uri)
    except SpotifyError as exc:
        raise AuthorizationFailed(f"Token exchange failed: {exc}") from None
    finally:
        client.close()


def auth_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="spotify-assets auth", description=__doc__.splitlines()[0])
    add_flow_arguments(parser)
    parser.add_argument(
        "--token-file", default=None, help="token store path (default: $SPOTIFY_TOKEN_FILE or XDG)"
    )
    args = parser.parse_args(argv)
    try:
        client_id, client_secret = app_credentials()
        answer = run_authorization_flow(args, client_id, client_secret)
    except AuthorizationFailed as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code

    store = FileTokenStore(args.token_file)
    env_token = os.environ.get("SPOTIFY_REFRESH_TOKEN")
    # Record the current env value as superseded, so this fresh token wins until the env changes.
    store.save(
        str(answer["refresh_token"]),
        env_sha256=token_sha256(env_token) if env_token else None,
        scope=answer.get("scope"),
    )
    print(f"Stored a refresh token (scope: {answer.get('scope') or SCOPE}) in {store.path} (mode 0600).")
    if env_token:
        print("Note: SPOTIFY_REFRESH_TOKEN is set too; the stored token wins until that variable changes.")
    return 0
