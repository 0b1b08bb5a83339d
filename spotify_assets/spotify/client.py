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
malformed JSON are retried with bounded exponential backoff (the loop is ``http_retry.py``,
shared with the ReccoBeats client); a 401 triggers exactly one re-authentication. Tokens and secrets never appear in messages, reprs or logs.
A caller with a deadline (a sensor tick) bounds every wait with ``waits_until``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import requests

from spotify_assets.http_retry import Retrying, RetryPolicy, send_with_retries
from spotify_assets.settings import DEFAULT_ACCOUNTS_URL, DEFAULT_API_URL
from spotify_assets.spotify.errors import (
    AudioFeaturesUnavailable,
    SpotifyAPIError,
    SpotifyAuthError,
    SpotifyRateLimited,
    SpotifyServerError,
    SpotifyWaitPastDeadline,
)
from spotify_assets.spotify.rate_gate import RateGate
from spotify_assets.spotify.token_store import MemoryTokenStore, TokenStore

log = logging.getLogger(__name__)

#: Spotify's recently-played endpoint never shows more than the latest 50 plays (the one home of this fact).
RECENTLY_PLAYED_LIMIT = 50
AUDIO_FEATURES_BATCH = 100
#: Refresh an access token this long before Spotify says it expires.
TOKEN_EXPIRY_MARGIN_S = 30.0
RERUN_AUTH_HINT = "run `spotify-assets auth` to authorise again and store a new refresh token"

AuthKind = Literal["user", "app", "basic"]

#: The ``time.monotonic()`` instant no wait may end after, in this thread or task (``waits_until``).
_WAIT_DEADLINE: ContextVar[float | None] = ContextVar("spotify_wait_deadline", default=None)


@contextmanager
def waits_until(deadline: float) -> Iterator[None]:
    """Within the block, no client waits past ``deadline`` (a ``time.monotonic()`` instant).

    A wait that would end after it (a 429's Retry-After, the app's shared wait in the rate gate,
    a retry's backoff) raises ``SpotifyWaitPastDeadline`` instead of sleeping, and a request's
    timeout is cut to the time left. For a caller whose whole evaluation has a limit: Dagster
    cancels a sensor tick after 60 s, and a 45 s Retry-After waited out twice would pass it.
    A context variable rather than a client setting, so it also bounds the clients made inside
    the block (a listener's, the token store owner's ``/v1/me``). The Retry-After is still
    recorded in the rate gate, so every later call of the app honours it.
    """
    token = _WAIT_DEADLINE.set(deadline)
    try:
        yield
    finally:
        _WAIT_DEADLINE.reset(token)


def _time_left_s() -> float | None:
    """Seconds until the deadline of ``waits_until`` (None outside one)."""
    deadline = _WAIT_DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def parse_played_at(value: Any) -> datetime | None:
    """A ``played_at`` string as an aware UTC datetime; None for anything that is not one.

    Only ISO 8601 strings with a time of day count: a number, a bare date or garbage would
    otherwise become a play at midnight or in 1970. Callers quarantine what this refuses.
    """
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def played_at_ms(item: Any) -> int | None:
    """Unix milliseconds of a play-history item's ``played_at``; None if the item has none we can read."""
    parsed = parse_played_at(item.get("played_at")) if isinstance(item, dict) else None
    return None if parsed is None else round(parsed.timestamp() * 1000)


def item_key(item: dict[str, Any], ms: int) -> tuple[int, str | None]:
    """A play-history item's identity across overlapping pages: its played_at and its track."""
    track = item.get("track")
    return ms, (track.get("id") or track.get("uri")) if isinstance(track, dict) else None


@dataclass(frozen=True)
class RecentlyPlayed:
    """One poll of recently-played: the items after the cursor and what the raw pages said.

    ``items`` holds every item newer than the cursor, newest first, *including* the ones the
    client cannot read (no or unparseable ``played_at``, not an object), which come last so
    normalization quarantines them with a reason instead of one bad item failing the poll.
    ``raw_items`` and ``oldest_ms`` describe what the API returned before any filtering, so a
    missed-plays gap is judged from the API's window, not from what survived cleaning.
    """

    items: list[Any]
    after_ms: int | None
    raw_items: int
    oldest_ms: int | None

    @property
    def full(self) -> bool:
        """The API answered a whole window (it vouches for no play older than its oldest)."""
        return self.raw_items >= RECENTLY_PLAYED_LIMIT

    @property
    def possible_gap(self) -> bool:
        """The API showed a full window whose oldest readable play is still newer than the cursor."""
        if self.after_ms is None or not self.full:
            return False
        return self.oldest_ms is None or self.oldest_ms > self.after_ms


@dataclass(frozen=True)
class SpotifyUser:
    """Who a user token belongs to (``GET /v1/me``): the id is the user's key, the name a label."""

    id: str
    display_name: str


class SpotifyClient(ABC):
    """What the assets need from Spotify."""

    def __init__(self) -> None:
        #: HTTP requests made, per endpoint (token, recently_played, audio_features), retries included.
        self.calls: Counter[str] = Counter()

    @abstractmethod
    def recently_played_window(self, after_ms: int | None = None) -> RecentlyPlayed:
        """Items played strictly after ``after_ms`` (all available if None), with the window's facts."""

    def recently_played(self, after_ms: int | None = None) -> list[Any]:
        """Raw play-history items played strictly after ``after_ms`` (all available if None), newest first."""
        return self.recently_played_window(after_ms).items

    @abstractmethod
    def currently_playing(self) -> dict[str, Any] | None:
        """The listener's playback now (Spotify's currently-playing object), None when nothing plays."""

    @abstractmethod
    def me(self) -> SpotifyUser:
        """The user the refresh token belongs to (``GET /v1/me``, no scope needed)."""

    @abstractmethod
    def audio_features(self, track_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Audio features per track id (None where Spotify has none). Raises AudioFeaturesUnavailable on 403."""

    @abstractmethod
    def track(self, track_id: str) -> dict[str, Any] | None:
        """The Track object for one id (``GET /v1/tracks/{id}``); None when Spotify has no such track.

        One id per call: since February 2026 development-mode apps may no longer call the
        several-tracks endpoint (``GET /v1/tracks?ids=``), only the single-track one.
        """


class HttpSpotifyClient(SpotifyClient):
    """The Web API over ``requests``; the same code serves Spotify and the sandbox."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str | None = None,
        *,
        api_base_url: str = DEFAULT_API_URL,
        accounts_base_url: str = DEFAULT_ACCOUNTS_URL,
        token_store: TokenStore | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 4,
        max_retry_wait_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_pages: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        rate_gate: RateGate | None = None,
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
        self._rate_gate = rate_gate  # the app's Retry-After, shared with every other listener's client
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

    def recently_played_window(self, after_ms: int | None = None) -> RecentlyPlayed:
        url = f"{self.api_base_url}/v1/me/player/recently-played"
        first: dict[str, Any] = {"limit": RECENTLY_PLAYED_LIMIT}
        if after_ms is not None:
            first["after"] = int(after_ms)
        params: dict[str, Any] | None = first
        readable: dict[tuple[int, str | None], tuple[int, Any]] = {}
        unreadable: dict[str, Any] = {}
        raw_items = 0
        oldest_ms: int | None = None
        for _ in range(self.max_pages):
            body = self._send("GET", url, endpoint="recently_played", auth="user", params=params)
            page = body.get("items") if isinstance(body, dict) else None
            if page is not None and not isinstance(page, list):
                raise SpotifyAPIError(
                    f"recently-played answer from {url} has 'items' that is not a list",
                    endpoint="recently_played",
                )
            page = page or []
            raw_items += len(page)
            times = [played_at_ms(item) for item in page]
            for item, ms in zip(page, times, strict=True):
                if ms is None:  # kept for quarantine; deduplicated across overlapping pages by content
                    unreadable.setdefault(json.dumps(item, sort_keys=True, default=str), item)
                    continue
                if after_ms is not None and ms <= after_ms:
                    continue
                readable.setdefault(item_key(item, ms), (ms, item))
            known = [ms for ms in times if ms is not None]
            if known:
                oldest_ms = min(known) if oldest_ms is None else min(oldest_ms, *known)
            next_url = body.get("next") if isinstance(body, dict) else None
            if not page or not next_url or not known:
                break
            if after_ms is not None and min(known) <= after_ms:
                break
            if str(next_url).startswith(self.api_base_url + "/"):
                url, params = str(next_url), None
            else:  # never send our bearer token to a host we were not configured for
                url = f"{self.api_base_url}/v1/me/player/recently-played"
                params = {"limit": RECENTLY_PLAYED_LIMIT, "before": min(known)}
        newest_first = [item for _, item in sorted(readable.values(), key=lambda p: p[0], reverse=True)]
        return RecentlyPlayed(
            items=newest_first + list(unreadable.values()),
            after_ms=after_ms,
            raw_items=raw_items,
            oldest_ms=oldest_ms,
        )

    def currently_playing(self) -> dict[str, Any] | None:
        """What the listener is playing now (``GET /v1/me/player/currently-playing``, Spotify's JSON),
        None when nothing is (204). Needs the ``user-read-currently-playing`` scope: a token
        without it raises ``SpotifyAPIError`` with status 403."""
        body = self._send(
            "GET",
            f"{self.api_base_url}/v1/me/player/currently-playing",
            endpoint="currently_playing",
            auth="user",
        )
        return body if isinstance(body, dict) else None

    def me(self) -> SpotifyUser:
        body = self._send("GET", f"{self.api_base_url}/v1/me", endpoint="me", auth="user")
        user_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(user_id, str) or not user_id:
            raise SpotifyAPIError("the /v1/me answer carries no user id", endpoint="me")
        name = body.get("display_name")
        return SpotifyUser(id=user_id, display_name=name if isinstance(name, str) and name else user_id)

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

    def track(self, track_id: str) -> dict[str, Any] | None:
        try:
            body = self._send(
                "GET",
                f"{self.api_base_url}/v1/tracks/{quote(track_id, safe='')}",
                endpoint="track",
                auth="app",
            )
        except SpotifyAPIError as exc:
            if exc.status in (400, 404):  # 400: Spotify's answer to a malformed id ("invalid id")
                return None
            raise
        if not isinstance(body, dict) or body.get("id") is None:
            raise SpotifyAPIError("track answer is not a Track object", endpoint="track")
        return body

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

    def _wait_for_the_app(self, endpoint: str) -> None:
        """Honour a Retry-After another listener's client recorded for this app (``rate_gate.py``)."""
        if self._rate_gate is None:
            return
        wait, limited = self._rate_gate.remaining()
        if wait <= 0:
            return
        if wait > self.max_retry_wait_s:
            raise SpotifyRateLimited(
                f"Spotify rate-limited this app ({limited}) for another {wait:.0f} s (Retry-After), more than "
                f"max_retry_wait_s={self.max_retry_wait_s:g}; {endpoint} was not called; try again later",
                retry_after_s=wait,
                endpoint=endpoint,
            )
        self._pause(wait, endpoint, f"the app is rate-limited ({limited}) for another {wait:.0f} s")
        log.warning("Spotify %s: the app is rate-limited (%s), waiting %.1f s first", endpoint, limited, wait)
        self._sleep(wait)

    @staticmethod
    def _pause(seconds: float, endpoint: str, why: str) -> None:
        """Raise ``SpotifyWaitPastDeadline`` if waiting ``seconds`` would end past the deadline of
        ``waits_until``; else return (the caller sleeps)."""
        left = _time_left_s()
        if left is not None and seconds > left:
            raise SpotifyWaitPastDeadline(
                f"Spotify {endpoint}: {why}, past the caller's deadline ({max(left, 0.0):.0f} s left); "
                "not waited, not called",
                wait_s=seconds,
                endpoint=endpoint,
            )

    def _bounded_sleep(self, seconds: float, *, endpoint: str) -> None:
        """The retry loop's sleep (a Retry-After, a backoff), within the deadline of ``waits_until``."""
        self._pause(seconds, endpoint, f"a wait of {seconds:.0f} s before a retry")
        self._sleep(seconds)

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
        retrying = Retrying(
            RetryPolicy(
                self.max_retries,
                self.max_retry_wait_s,
                self.backoff_base_s,
                self.backoff_max_s,
                functools.partial(self._bounded_sleep, endpoint=endpoint),
            ),
            name=f"Spotify {endpoint}",
            exhausted=lambda what, status, attempts: SpotifyServerError(
                f"Spotify {endpoint}: {what}; gave up after {attempts} attempts",
                status=status,
                endpoint=endpoint,
            ),
            rate_limited=lambda wait, too_long, retries: SpotifyRateLimited(
                f"Spotify rate-limited {endpoint} and asks to wait {wait:g} s (Retry-After), more than "
                f"max_retry_wait_s={self.max_retry_wait_s:g}; try again later"
                if too_long
                else f"Spotify kept rate-limiting {endpoint} after {retries} retries (Retry-After {wait:g} s)",
                retry_after_s=wait,
                endpoint=endpoint,
            ),
            on_429=None
            if self._rate_gate is None
            else functools.partial(self._rate_gate.hold, endpoint=endpoint),
        )
        reauthed = False
        while True:
            resp = send_with_retries(
                lambda: self._attempt(method, url, endpoint=endpoint, auth=auth, params=params, data=data),
                retrying,
                timeout_s=self.timeout_s,
            )
            status = resp.status_code
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
            if status == 204:  # No Content: e.g. nothing playing now
                return None
            try:
                return resp.json()
            except ValueError:
                retrying.backoff(_not_json(resp, url), status=status)

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        auth: AuthKind,
        params: dict[str, Any] | None,
        data: dict[str, str] | None,
    ) -> requests.Response:
        """One request: a current token, the app's shared wait honoured, the attempt counted."""
        if auth == "basic":
            headers = {"Authorization": f"Basic {self._basic}"}
        else:
            headers = {"Authorization": f"Bearer {self._access_token(auth)}"}
        headers["Accept"] = "application/json"
        self._wait_for_the_app(endpoint)
        timeout = self.timeout_s
        left = _time_left_s()
        if left is not None:  # a request never outlasts the caller's deadline either
            if left <= 0:
                self._pause(self.timeout_s, endpoint, f"a request (timeout {self.timeout_s:g} s)")
            timeout = min(timeout, left)
        self.calls[endpoint] += 1
        return self._session.request(method, url, params=params, data=data, headers=headers, timeout=timeout)

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


def _not_json(resp: requests.Response, url: str) -> str:
    """Why an answer could not be read: an HTML page (a proxy, a captive portal) or malformed JSON."""
    where = url.split("?", 1)[0]
    content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    head = resp.content[:200].lstrip().lower()
    if content_type == "text/html" or head.startswith((b"<!doctype html", b"<html")):
        return f"an HTML page instead of JSON (HTTP {resp.status_code}, {content_type or 'no content type'}) from {where}"
    return f"malformed JSON in the answer (HTTP {resp.status_code}) from {where}"


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
