"""Mutable sandbox state: OAuth tokens, fault knobs and request counters.

Kept apart from the HTTP layer so the in-process API (``SandboxServer``) and the HTTP
control endpoints (``/_sandbox/...``) drive exactly the same object.
"""

from __future__ import annotations

import fnmatch
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from spotify_assets.spotify.auth import SCOPE
from spotify_sandbox.constants import DEFAULT_TOKEN_TTL_S, SANDBOX_REFRESH_TOKEN
from spotify_sandbox.listener import DEFAULT_LISTENER

TokenKind = Literal["app", "user"]
#: What the sandbox's ready-made tokens were given: what ``spotify-assets auth`` asks for.
DEFAULT_SCOPE = SCOPE
#: The scope ``GET /v1/me/player/currently-playing`` needs (Spotify answers 403 without it).
CURRENTLY_PLAYING_SCOPE = "user-read-currently-playing"


@dataclass
class AccessToken:
    kind: TokenKind
    expires_at: float  # time.monotonic() deadline: tokens expire in wall time
    scope: str = ""
    #: Whose plays a user token opens (a listener's Spotify user id); app tokens carry nobody.
    user_id: str = ""


@dataclass(frozen=True)
class Grant:
    """What a refresh token or an authorization code stands for: a scope, given by one listener."""

    scope: str
    user_id: str


@dataclass
class StatusFault:
    """Answer the next ``remaining`` requests whose path matches ``path`` with ``status``."""

    status: int
    remaining: int
    path: str = "*"
    retry_after: int | None = None


@dataclass
class CountedFault:
    """A fault applied to the next ``remaining`` matching requests (None: until cleared)."""

    remaining: int | None
    path: str = "*"
    seconds: float = 0.0


def _matches(pattern: str, path: str) -> bool:
    return fnmatch.fnmatchcase(path, pattern)


def _take(fault: CountedFault | StatusFault | None, path: str) -> bool:
    if fault is None or not _matches(fault.path, path):
        return False
    if fault.remaining is None:
        return True
    if fault.remaining <= 0:
        return False
    fault.remaining -= 1
    return True


#: What an item fault does to the recently-played item at its position (see ``listener.corrupt_item``).
ITEM_FAULT_KINDS = (
    "missing_played_at",
    "unparseable_played_at",
    "track_not_object",
    "unknown_type",
    "not_object",
    "null_id",
    "local",
    "episode",
)


@dataclass
class FaultPlan:
    status: list[StatusFault] = field(default_factory=list)
    malformed: CountedFault | None = None
    html: CountedFault | None = None
    #: Position in each recently-played page -> what to turn that item into (until cleared).
    items: dict[int, str] = field(default_factory=dict)
    delay: CountedFault | None = None
    audio_features_forbidden: bool = False
    rotate_refresh_tokens: bool = False


class SandboxState:
    """Tokens, faults and counters of one sandbox. All methods are thread-safe."""

    def __init__(self, token_ttl_s: int = DEFAULT_TOKEN_TTL_S) -> None:
        self.token_ttl_s = token_ttl_s
        self.lock = threading.RLock()
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, Grant] = {
            SANDBOX_REFRESH_TOKEN: Grant(DEFAULT_SCOPE, DEFAULT_LISTENER.user_id)
        }
        self.auth_codes: dict[str, tuple[str, Grant]] = {}  # code -> (redirect_uri, grant)
        self.faults = FaultPlan()
        self.requests: Counter[str] = Counter()
        self.grant_types: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.log: deque[dict[str, Any]] = deque(maxlen=1000)
        #: Listener id -> the simulated instants (ms) a recently-played page was answered whole
        #: (200, not truncated, not HTML): the windows the API showed, for the soak's truth.
        self.shown: dict[str, list[int]] = {}

    # -- tokens -------------------------------------------------------------------------------------

    def issue_access_token(self, kind: TokenKind, scope: str = "", user_id: str = "") -> str:
        token = "sbx-at-" + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[token] = AccessToken(kind, time.monotonic() + self.token_ttl_s, scope, user_id)
        return token

    def issue_refresh_token(self, scope: str = DEFAULT_SCOPE, user_id: str = DEFAULT_LISTENER.user_id) -> str:
        token = "sbx-rt-" + secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[token] = Grant(scope, user_id)
        return token

    def revoke_refresh_tokens(self, user_id: str) -> int:
        """Forget every refresh token ``user_id`` gave (the user revoked the app); returns how many."""
        with self.lock:
            gone = [t for t, grant in self.refresh_tokens.items() if grant.user_id == user_id]
            for token in gone:
                del self.refresh_tokens[token]
            return len(gone)

    def issue_auth_code(self, redirect_uri: str, scope: str, user_id: str = DEFAULT_LISTENER.user_id) -> str:
        code = "sbx-code-" + secrets.token_urlsafe(16)
        with self.lock:
            self.auth_codes[code] = (redirect_uri, Grant(scope, user_id))
        return code

    def redeem_auth_code(self, code: str) -> tuple[str, Grant] | None:
        with self.lock:
            return self.auth_codes.pop(code, None)

    def check_access_token(self, token: str) -> tuple[AccessToken | None, str]:
        """(token, "") if usable, else (None, Spotify's error message)."""
        with self.lock:
            found = self.access_tokens.get(token)
        if found is None:
            return None, "Invalid access token"
        if time.monotonic() >= found.expires_at:
            return None, "The access token expired"
        return found, ""

    def expire_tokens(self) -> int:
        """Expire every access token issued so far; returns how many."""
        with self.lock:
            for token in self.access_tokens.values():
                token.expires_at = 0.0
            return len(self.access_tokens)

    # -- faults -------------------------------------------------------------------------------------

    def add_status_fault(
        self, status: int, count: int = 1, path: str = "*", retry_after: int | None = None
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (4xx/5xx)")
        with self.lock:
            self.faults.status.append(StatusFault(status, count, path, retry_after))

    def set_malformed(self, count: int | None = 1, path: str = "*") -> None:
        with self.lock:
            self.faults.malformed = CountedFault(count, path) if count != 0 else None

    def set_html(self, count: int | None = 1, path: str = "*") -> None:
        with self.lock:
            self.faults.html = CountedFault(count, path) if count != 0 else None

    def set_item_faults(self, faults: dict[int, str]) -> None:
        unknown = sorted(set(faults.values()) - set(ITEM_FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown item fault(s) {unknown}; known: {', '.join(ITEM_FAULT_KINDS)}")
        with self.lock:
            self.faults.items = {int(k): v for k, v in faults.items()}

    def item_faults(self) -> dict[int, str]:
        with self.lock:
            return dict(self.faults.items)

    def set_delay(self, seconds: float, count: int | None = None, path: str = "*") -> None:
        with self.lock:
            self.faults.delay = CountedFault(count, path, seconds) if seconds > 0 else None

    def configure(
        self,
        *,
        audio_features_forbidden: bool | None = None,
        rotate_refresh_tokens: bool | None = None,
    ) -> None:
        with self.lock:
            if audio_features_forbidden is not None:
                self.faults.audio_features_forbidden = audio_features_forbidden
            if rotate_refresh_tokens is not None:
                self.faults.rotate_refresh_tokens = rotate_refresh_tokens

    def clear_faults(self) -> None:
        with self.lock:
            self.faults = FaultPlan()

    def pending_faults(self) -> int:
        """Counted fault answers not served yet (error statuses, truncated and HTML pages, delays);
        one that lasts until cleared counts as one."""
        with self.lock:
            counted = [self.faults.malformed, self.faults.html, self.faults.delay]
            return sum(f.remaining for f in self.faults.status) + sum(
                1 if f.remaining is None else f.remaining for f in counted if f is not None
            )

    def take_delay(self, path: str) -> float:
        with self.lock:
            fault = self.faults.delay
            return fault.seconds if fault is not None and _take(fault, path) else 0.0

    def take_status_fault(self, path: str) -> StatusFault | None:
        with self.lock:
            for fault in self.faults.status:
                if _take(fault, path):
                    self.faults.status = [f for f in self.faults.status if f.remaining > 0]
                    return fault
        return None

    def take_malformed(self, path: str) -> bool:
        with self.lock:
            return _take(self.faults.malformed, path)

    def take_html(self, path: str) -> bool:
        with self.lock:
            return _take(self.faults.html, path)

    # -- counters -----------------------------------------------------------------------------------

    def record(self, method: str, path: str, status: int, grant_type: str | None) -> None:
        with self.lock:
            self.requests[f"{method} {path}"] += 1
            self.statuses[str(status)] += 1
            if grant_type:
                self.grant_types[grant_type] += 1
            self.log.append({"method": method, "path": path, "status": status, "grant_type": grant_type})

    def record_shown(self, user_id: str, now_ms: int) -> None:
        with self.lock:
            self.shown.setdefault(user_id, []).append(now_ms)

    def shown_at(self) -> dict[str, list[int]]:
        """Listener id -> each simulated instant (ms) a whole recently-played page was answered."""
        with self.lock:
            return {user: list(instants) for user, instants in self.shown.items()}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "total": sum(self.requests.values()),
                "requests": dict(self.requests),
                "grant_types": dict(self.grant_types),
                "statuses": dict(self.statuses),
                "log": list(self.log),
            }

    def reset_stats(self) -> None:
        with self.lock:
            self.requests.clear()
            self.grant_types.clear()
            self.statuses.clear()
            self.log.clear()
