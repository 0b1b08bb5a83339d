"""The Spotify Web API client the assets use: one interface, one HTTP implementation.

Like the Hacker News client in Dagster's ``project_fully_featured`` example, there is an
abstract ``SpotifyClient`` and a live implementation; local mode and the tests do not swap
in a fake, they point the *same* HTTP code at the sandbox server (a different base URL), so
retries, OAuth and paging are exercised for real.

Two OAuth flows are in play, as Spotify requires:

* Client Credentials (app token) for ``/v1/audio-features``;
* Authorization Code, via a stored refresh token, for ``/v1/me/player/recently-played``.

Failure policy: 429 honours Retry-After up to ``max_retry_wait_s`` (longer waits raise
``SpotifyRateLimited`` instead of stalling a run); 5xx, timeouts, connection errors and
malformed JSON are retried with bounded exponential backoff; a 401 triggers exactly one
re-authentication. Tokens and secrets never appear in messages, reprs or logs.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import requests

from spotify_assets.spotify.errors import (
    AudioFeaturesUnavailable,
    SpotifyAPIError,
    SpotifyAuthError,
    SpotifyRateLimited,
    SpotifyServerError,
)
from spotify_assets.spotify.token_store import MemoryTokenStore, TokenStore

log = logging.getLogger(__name__)

RECENTLY_PLAYED_LIMIT = 50
AUDIO_FEATURES_BATCH = 100
#: Refresh an access token this long before Spotify says it expires.
TOKEN_EXPIRY_MARGIN_S = 30.0
RERUN_AUTH_HINT = "run `spotify-assets auth` to authorise again and store a new refresh token"

AuthKind = Literal["user", "app", "basic"]


def played_at_ms(item: dict[str, Any]) -> int:
    """Unix milliseconds of a play-history item's ``played_at``."""
    value = str(item["played_at"]).replace("Z", "+00:00")
    return round(datetime.fromisoformat(value).timestamp() * 1000)


class SpotifyClient(ABC):
    """What the assets need from Spotify."""

    def __init__(self) -> None:
        #: HTTP requests made, per endpoint (token, recently_played, audio_features), retries included.
        self.calls: Counter[str] = Counter()

    @abstractmethod
    def recently_played(self, after_ms: int | None = None) -> list[dict[str, Any]]:
        """Raw play-history items played strictly after ``after_ms`` (all available if None), newest first."""

    @abstractmethod
    def audio_features(self, track_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Audio features per track id (None where Spotify has none). Raises AudioFeaturesUnavailable on 403."""


class HttpSpotifyClient(SpotifyClient):
    """The Web API over ``requests``; the same code serves Spotify and the sandbox."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str | None = None,
        *,
        api_base_url: str = "https://api.spotify.com",
        accounts_base_url: str = "https://accounts.spotify.com",
        token_store: TokenStore | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 4,
        max_retry_wait_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_pages: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._env_refresh_token = refresh_token
        self.api_base_url = api_base_url.rstrip("/")
        self.accounts_base_url = accounts_base_url.rstrip("/")
        self.token_store = token_store if token_store is not None else MemoryTokenStore()
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_pages = max_pages
        self._sleep = sleep
        self._session = session or requests.Session()
        self._tokens: dict[str, tuple[str, float]] = {}  # kind -> (access token, monotonic expiry)

    def __repr__(self) -> str:
        return (
            f"HttpSpotifyClient(client_id={self.client_id!r}, api_base_url={self.api_base_url!r}, "
            f"accounts_base_url={self.accounts_base_url!r}, token_store={self.token_store!r})"
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HttpSpotifyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API ---------------------------------------------------------------------------------

    def recently_played(self, after_ms: int | None = None) -> list[dict[str, Any]]:
        url = f"{self.api_base_url}/v1/me/player/recently-played"
        first: dict[str, Any] = {"limit": RECENTLY_PLAYED_LIMIT}
        if after_ms is not None:
            first["after"] = int(after_ms)
        params: dict[str, Any] | None = first
        items: dict[tuple[str, str | None], dict[str, Any]] = {}
        for _ in range(self.max_pages):
            body = self._send("GET", url, endpoint="recently_played", auth="user", params=params)
            page = (body.get("items") or []) if isinstance(body, dict) else []
            for item in page:
                if after_ms is not None and played_at_ms(item) <= after_ms:
                    continue
                track = item.get("track") or {}
                items.setdefault((str(item["played_at"]), track.get("id") or track.get("uri")), item)
            next_url = body.get("next") if isinstance(body, dict) else None
            if not page or not next_url:
                break
            oldest = min(played_at_ms(i) for i in page)
            if after_ms is not None and oldest <= after_ms:
                break
            if str(next_url).startswith(self.api_base_url + "/"):
                url, params = str(next_url), None
            else:  # never send our bearer token to a host we were not configured for
                url = f"{self.api_base_url}/v1/me/player/recently-played"
                params = {"limit": RECENTLY_PLAYED_LIMIT, "before": oldest}
        return sorted(items.values(), key=played_at_ms, reverse=True)

    def audio_features(self, track_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        ids = list(dict.fromkeys(i for i in track_ids if i))
        out: dict[str, dict[str, Any] | None] = {}
        url = f"{self.api_base_url}/v1/audio-features"
        for start in range(0, len(ids), AUDIO_FEATURES_BATCH):
            chunk = ids[start : start + AUDIO_FEATURES_BATCH]
            try:
                body = self._send(
                    "GET", url, endpoint="audio_features", auth="app", params={"ids": ",".join(chunk)}
                )
            except SpotifyAPIError as exc:
                if exc.status == 403:
                    raise AudioFeaturesUnavailable(
                        "Spotify refused /v1/audio-features (403): this app has no access to audio features",
                        status=403,
                        endpoint="audio_features",
                    ) from None
                raise
            features = body.get("audio_features") if isinstance(body, dict) else None
            if not isinstance(features, list):
                raise SpotifyAPIError(
                    "audio-features answer has no audio_features list", endpoint="audio_features"
                )
            for i, track_id in enumerate(chunk):
                value = features[i] if i < len(features) else None
                out[track_id] = value if isinstance(value, dict) else None
        return out

    def exchange_code(self, code: str, redirect_uri: str) -> dict[str, Any]:
        """Authorization Code step 2: trade ``code`` for tokens (used by ``spotify-assets auth``)."""
        body = self._send(
            "POST",
            f"{self.accounts_base_url}/api/token",
            endpoint="token",
            auth="basic",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            grant="authorization_code",
        )
        if not isinstance(body, dict) or not body.get("refresh_token"):
            raise SpotifyAuthError("Spotify's token answer carried no refresh token")
        return body

    # -- tokens -------------------------------------------------------------------------------------

    def _access_token(self, kind: AuthKind) -> str:
        cached = self._tokens.get(kind)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        body = self._refresh_user_token() if kind == "user" else self._client_credentials()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise SpotifyAPIError("Spotify's token answer carried no access_token", endpoint="token")
        ttl = float(body.get("expires_in") or 3600)
        self._tokens[kind] = (str(token), time.monotonic() + max(0.0, ttl - TOKEN_EXPIRY_MARGIN_S))
        return str(token)

    def _client_credentials(self) -> Any:
        return self._send(
            "POST",
            f"{self.accounts_base_url}/api/token",
            endpoint="token",
            auth="basic",
            data={"grant_type": "client_credentials"},
            grant="client_credentials",
        )

    def _refresh_user_token(self) -> Any:
        """Refresh-token grant; a rotated refresh token in the answer is written to the token store."""
        with self.token_store.locked():
            resolved = self.token_store.resolve(self._env_refresh_token)
            if resolved is None:
                raise SpotifyAuthError(
                    f"No Spotify refresh token (SPOTIFY_REFRESH_TOKEN is unset); {RERUN_AUTH_HINT}"
                )
            body = self._send(
                "POST",
                f"{self.accounts_base_url}/api/token",
                endpoint="token",
                auth="basic",
                data={"grant_type": "refresh_token", "refresh_token": resolved.refresh_token},
                grant="refresh_token",
            )
            rotated = body.get("refresh_token") if isinstance(body, dict) else None
            if rotated and rotated != resolved.refresh_token:
                try:
                    self.token_store.save(
                        str(rotated), env_sha256=resolved.env_sha256, scope=body.get("scope")
                    )
                    log.info(
                        "Spotify rotated the refresh token; stored the new one in %s",
                        self.token_store.location,
                    )
                except OSError as exc:
                    log.error(
                        "Spotify rotated the refresh token but it could not be stored in %s (%s); "
                        "the next run may need `spotify-assets auth`",
                        self.token_store.location,
                        type(exc).__name__,
                    )
            return body

    # -- HTTP with retries --------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        auth: AuthKind,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        grant: str | None = None,
    ) -> Any:
        retries = 0
        reauthed = False
        while True:
            if auth == "basic":
                headers = {"Authorization": f"Basic {self._basic}"}
            else:
                headers = {"Authorization": f"Bearer {self._access_token(auth)}"}
            headers["Accept"] = "application/json"
            self.calls[endpoint] += 1
            try:
                resp = self._session.request(
                    method, url, params=params, data=data, headers=headers, timeout=self.timeout_s
                )
            except requests.Timeout:
                retries = self._backoff(retries, endpoint, f"timed out after {self.timeout_s:g} s")
                continue
            except requests.ConnectionError:
                retries = self._backoff(retries, endpoint, "connection failed")
                continue
            status = resp.status_code
            if status == 429:
                wait = _retry_after_s(resp)
                if wait > self.max_retry_wait_s:
                    raise SpotifyRateLimited(
                        f"Spotify rate-limited {endpoint} and asks to wait {wait:g} s (Retry-After), more than "
                        f"max_retry_wait_s={self.max_retry_wait_s:g}; try again later",
                        retry_after_s=wait,
                        endpoint=endpoint,
                    )
                if retries >= self.max_retries:
                    raise SpotifyRateLimited(
                        f"Spotify kept rate-limiting {endpoint} after {retries} retries (Retry-After {wait:g} s)",
                        retry_after_s=wait,
                        endpoint=endpoint,
                    )
                retries += 1
                log.warning("Spotify %s: 429, waiting %g s (Retry-After)", endpoint, wait)
                self._sleep(wait)
                continue
            if status >= 500:
                retries = self._backoff(retries, endpoint, f"HTTP {status}", status=status)
                continue
            if status == 401 and auth != "basic":
                if reauthed:
                    raise SpotifyAuthError(
                        f"Spotify rejected a fresh access token for {endpoint} (401: {_api_message(resp)})"
                    )
                reauthed = True
                self._tokens.pop(auth, None)
                log.info("Spotify %s: 401 (%s), re-authenticating once", endpoint, _api_message(resp))
                continue
            if status >= 400:
                self._raise_for_status(resp, endpoint, auth, grant)
            try:
                return resp.json()
            except ValueError:
                retries = self._backoff(retries, endpoint, "malformed JSON in the answer", status=status)

    def _backoff(self, retries: int, endpoint: str, what: str, status: int | None = None) -> int:
        """Sleep before retry ``retries + 1``, or raise once ``max_retries`` are used up."""
        if retries >= self.max_retries:
            raise SpotifyServerError(
                f"Spotify {endpoint}: {what}; gave up after {retries + 1} attempts",
                status=status,
                endpoint=endpoint,
            )
        delay = min(self.backoff_max_s, self.backoff_base_s * 2**retries)
        log.warning(
            "Spotify %s: %s; retry %d/%d in %g s", endpoint, what, retries + 1, self.max_retries, delay
        )
        self._sleep(delay)
        return retries + 1

    def _raise_for_status(
        self, resp: requests.Response, endpoint: str, auth: AuthKind, grant: str | None
    ) -> None:
        status = resp.status_code
        if auth == "basic":
            error, description = _oauth_error(resp)
            if error == "invalid_client":
                raise SpotifyAuthError(
                    "Spotify rejected the client id/secret (invalid_client); check SPOTIFY_CLIENT_ID and "
                    "SPOTIFY_CLIENT_SECRET"
                )
            if error == "invalid_grant" and grant == "refresh_token":
                raise SpotifyAuthError(
                    f"Spotify rejected the refresh token (invalid_grant: {description}); it was revoked, "
                    f"expired or rotated away: {RERUN_AUTH_HINT}"
                )
            if error == "invalid_grant":
                raise SpotifyAuthError(
                    f"Spotify rejected the authorization code (invalid_grant: {description})"
                )
            raise SpotifyAPIError(
                f"Spotify token endpoint answered {status} ({error}: {description})",
                status=status,
                endpoint=endpoint,
            )
        raise SpotifyAPIError(
            f"Spotify {endpoint} answered {status}: {_api_message(resp)}", status=status, endpoint=endpoint
        )


def _retry_after_s(resp: requests.Response) -> float:
    """Retry-After as seconds (delta-seconds or an HTTP date); 1 s if absent or unreadable."""
    value = resp.headers.get("Retry-After", "").strip()
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, when.timestamp() - time.time())


def _api_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or "no message"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or resp.reason)[:200]
    return str(error or resp.reason)[:200]


def _oauth_error(resp: requests.Response) -> tuple[str, str]:
    try:
        body = resp.json()
    except ValueError:
        return "unknown_error", resp.reason or "no description"
    if not isinstance(body, dict):
        return "unknown_error", "no description"
    error = body.get("error")
    if isinstance(error, dict):  # some gateways answer token errors in the API shape
        return str(error.get("status", "unknown_error")), str(error.get("message", ""))[:200]
    return str(error or "unknown_error"), str(body.get("error_description") or "no description")[:200]
