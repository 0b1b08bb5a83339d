"""One Retry-After for the whole app: a 429 on one listener's poll holds back every listener's.

Spotify's rate limits are per app (client id), not per user: when it answers 429 to alice's
poll, bob's poll a second later counts against the same budget, and a client that ignores a
Retry-After risks a longer ban. The hourly schedule starts one run per listener, each in its own
process, so the wait is kept in a small file every process of the installation reads before it
calls Spotify (``settings.rate_limit_path``: ``<data>/state/spotify-rate-limit-<app>.json``).

The file holds the wall-clock time until which the app must wait and the endpoint that was
limited, never a user or a token. A process that finds a wait no longer than its client's
``max_retry_wait_s`` sleeps it out; a longer one fails the run at once with the time to try again,
without calling Spotify.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from spotify_assets.file_lock import exclusive_lock


def app_slug(api_base_url: str, client_id: str) -> str:
    """A short stable name for one app at one API (the sandbox and Spotify never share a wait)."""
    return hashlib.sha256(f"{api_base_url}|{client_id}".encode()).hexdigest()[:12]


class RateGate:
    """The app's shared wait, in ``path`` (created on the first 429)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            yield

    def _read(self) -> tuple[float, str]:
        try:
            state = json.loads(self.path.read_text())
            return float(state["until"]), str(state.get("endpoint", "?"))
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0, ""  # no file (the common case) or a torn one: no wait known

    def remaining(self) -> tuple[float, str]:
        """Seconds the app must still wait (0 when none) and the endpoint that was limited."""
        until, endpoint = self._read()
        return max(0.0, until - self._clock()), endpoint

    def hold(self, seconds: float, endpoint: str) -> None:
        """Record a Retry-After of ``seconds``; a longer wait already recorded is kept."""
        with self._locked():
            until = self._clock() + seconds
            if until <= self._read()[0]:
                return
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".rate-limit-")
            with os.fdopen(fd, "w") as fh:
                json.dump({"until": until, "endpoint": endpoint}, fh)
            os.replace(tmp, self.path)
