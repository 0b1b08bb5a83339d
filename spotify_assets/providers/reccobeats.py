"""ReccoBeats: a free, keyless audio-features API that accepts Spotify track ids.

Documented multi-track endpoint: ``GET /v1/audio-features?ids=<id>&ids=<id>…`` (at most 40
ids a request). The answer is ``{"content": [{"id": <ReccoBeats uuid>, "href":
"https://open.spotify.com/track/<spotify id>", "danceability": …}, …]}``; tracks it has not
analysed are simply absent, which we record as ``not_found``. Rate limits answer 429 with
``Retry-After``: honoured up to a bound, then a clear error (nothing is lost: the tracks
stay unknown and the next run asks again). Retries are ``http_retry``'s, as for Spotify.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import requests

from spotify_assets.http_retry import Retrying, RetryPolicy, send_with_retries
from spotify_assets.spotify.normalize import FEATURE_COLUMNS

BATCH_SIZE = 40
#: The track_features columns ReccoBeats answers with (it has no time_signature or duration).
FEATURE_KEYS = tuple(c for c in FEATURE_COLUMNS if c not in {"time_signature", "duration_ms"})


class ReccoBeatsError(RuntimeError):
    """ReccoBeats failed after bounded retries."""


class ReccoBeatsClient:
    def __init__(
        self,
        base_url: str = "https://api.reccobeats.com",
        *,
        timeout_s: float = 10.0,
        max_retries: int = 4,
        max_retry_wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self.sleep = sleep
        self.session = session or requests.Session()
        self.calls: Counter[str] = Counter()

    def audio_features(self, track_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Features by Spotify id; ``None`` for ids ReccoBeats has not analysed."""
        out: dict[str, dict[str, Any] | None] = dict.fromkeys(track_ids)
        ids = list(dict.fromkeys(track_ids))
        for start in range(0, len(ids), BATCH_SIZE):
            batch = ids[start : start + BATCH_SIZE]
            for item in self._get_batch(batch):
                spotify_id = _spotify_id(item)
                if spotify_id in out:
                    out[spotify_id] = {k: item.get(k) for k in FEATURE_KEYS}
        return out

    def _get_batch(self, batch: list[str]) -> list[dict[str, Any]]:
        url = f"{self.base_url}/v1/audio-features"
        # Backoff 1, 2, 4... s, capped at the longest wait a Retry-After may ask for.
        policy = RetryPolicy(self.max_retries, self.max_retry_wait_s, 1.0, self.max_retry_wait_s, self.sleep)
        retrying = Retrying(
            policy,
            name="ReccoBeats audio-features",
            exhausted=lambda what, _status, attempts: ReccoBeatsError(
                f"ReccoBeats failed ({what}) after {attempts} attempts"
            ),
            rate_limited=lambda wait, _too_long, retries: ReccoBeatsError(
                f"ReccoBeats answered 429 (retry after {wait:.0f}s) after {retries + 1} attempts"
            ),
        )
        resp = send_with_retries(lambda: self._attempt(url, batch), retrying, timeout_s=self.timeout_s)
        if resp.status_code >= 400:
            raise ReccoBeatsError(f"ReccoBeats answered {resp.status_code}: {resp.text[:200]}")
        try:
            content = resp.json().get("content", [])
        except ValueError as exc:
            raise ReccoBeatsError("ReccoBeats answered with malformed JSON") from exc
        return [c for c in content if isinstance(c, dict)]

    def _attempt(self, url: str, batch: list[str]) -> requests.Response:
        self.calls["audio-features"] += 1
        return self.session.get(url, params={"ids": batch}, timeout=self.timeout_s)


def _spotify_id(item: dict[str, Any]) -> str | None:
    href = item.get("href") or ""
    if "open.spotify.com/track/" in href:
        return str(href.rstrip("/").rsplit("/", 1)[-1].split("?")[0])
    return None
