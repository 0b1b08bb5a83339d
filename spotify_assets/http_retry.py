"""Retrying an HTTP request: the one retry loop both API clients use (Spotify's, ReccoBeats').

Retried here: connection errors, timeouts and 5xx answers (bounded exponential backoff), and
429 (after its Retry-After, when that is within ``max_retry_wait_s``; a longer wait raises at
once instead of stalling a run). Every other answer goes back to the caller, which may spend
the same budget on a retry of its own (``Retrying.backoff``: Spotify retries a body that is
not JSON) or handle it (a 401 that needs a new token, a 4xx that is the answer).

Why a helper of ours and not urllib3's ``Retry`` on the session: the Spotify client counts each
attempt, waits out the app's shared Retry-After (``spotify/rate_gate.py``) before each one and
records a 429 there, sleeps through an injectable function (the fault tests run in no wall
time) and raises its own errors saying what happened; urllib3 retries inside the adapter,
where none of that can be seen or done.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a client tries: ``max_retries`` retries after the first attempt, backoff
    ``backoff_base_s * 2**retry`` capped at ``backoff_max_s``, a Retry-After of at most
    ``max_retry_wait_s`` waited out."""

    max_retries: int = 4
    max_retry_wait_s: float = 60.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


#: What to raise when the retries are used up: (what went wrong, HTTP status or None, attempts made).
Exhausted = Callable[[str, "int | None", int], Exception]
#: What to raise on a 429 not waited out: (Retry-After in seconds, whether it was longer than
#: ``max_retry_wait_s`` (else the retries are used up), retries made).
RateLimited = Callable[[float, bool, int], Exception]


class Retrying:
    """One request's retry budget, shared by every kind of failure of that request."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        name: str,
        exhausted: Exhausted,
        rate_limited: RateLimited,
        on_429: Callable[[float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.name = name
        self.retries = 0
        self._exhausted = exhausted
        self._rate_limited = rate_limited
        self._on_429 = on_429

    def backoff(self, what: str, status: int | None = None) -> None:
        """Sleep before the next retry, or raise ``exhausted`` once ``max_retries`` are used up."""
        policy = self.policy
        if self.retries >= policy.max_retries:
            raise self._exhausted(what, status, self.retries + 1)
        delay = min(policy.backoff_max_s, policy.backoff_base_s * 2**self.retries)
        log.warning(
            "%s: %s; retry %d/%d in %g s", self.name, what, self.retries + 1, policy.max_retries, delay
        )
        policy.sleep(delay)
        self.retries += 1

    def after_429(self, wait: float) -> None:
        """Wait out a 429's Retry-After, or raise ``rate_limited`` (too long, or retries used up).

        ``on_429`` hears every Retry-After first, even one not waited out (the rate gate records it
        so every other client of the app waits too)."""
        if self._on_429 is not None:
            self._on_429(wait)
        if wait > self.policy.max_retry_wait_s:
            raise self._rate_limited(wait, True, self.retries)
        if self.retries >= self.policy.max_retries:
            raise self._rate_limited(wait, False, self.retries)
        self.retries += 1
        log.warning("%s: 429, waiting %g s (Retry-After)", self.name, wait)
        self.policy.sleep(wait)


def send_with_retries(
    send: Callable[[], requests.Response], retrying: Retrying, *, timeout_s: float
) -> requests.Response:
    """``send()`` until an answer that is neither a 429 nor a 5xx, retrying as ``retrying`` allows.

    ``send`` makes one attempt (``timeout_s`` is its timeout, for the message); it is called
    again for each retry, so it can count the attempt or wait for a shared rate limit first.
    """
    while True:
        try:
            resp = send()
        except requests.Timeout:
            retrying.backoff(f"timed out after {timeout_s:g} s")
            continue
        except requests.ConnectionError:
            retrying.backoff("connection failed")
            continue
        if resp.status_code == 429:
            retrying.after_429(retry_after_s(resp))
            continue
        if resp.status_code >= 500:
            retrying.backoff(f"HTTP {resp.status_code}", status=resp.status_code)
            continue
        return resp


def retry_after_s(resp: requests.Response) -> float:
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
