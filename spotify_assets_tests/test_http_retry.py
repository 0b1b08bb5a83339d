"""The retry loop both API clients share (``spotify_assets/http_retry.py``), seen through the
ReccoBeats client against the sandbox's ReccoBeats over real HTTP (the Spotify client's side
is ``test_spotify_client.py`` and the fault tests): 5xx backed off, 429 waited out per its
Retry-After, a give-up after the budget, a too-long Retry-After refused at once."""

from __future__ import annotations

import pytest

from spotify_assets.providers.reccobeats import ReccoBeatsClient, ReccoBeatsError
from spotify_assets_tests.fixtures.sandbox import SleepRecorder
from spotify_sandbox import SandboxServer
from spotify_sandbox.reccobeats import RECCOBEATS_AUDIO_FEATURES_PATH, RECCOBEATS_PREFIX, is_analysed


def _client(sandbox: SandboxServer, sleep: SleepRecorder, **kw: float) -> ReccoBeatsClient:
    return ReccoBeatsClient(f"{sandbox.url}{RECCOBEATS_PREFIX}", sleep=sleep, **kw)  # type: ignore[arg-type]


def _asked(sandbox: SandboxServer) -> int:
    return int(sandbox.stats()["requests"].get(f"GET {RECCOBEATS_AUDIO_FEATURES_PATH}", 0))


def _analysed_ids(sandbox: SandboxServer, n: int = 3) -> list[str]:
    ids = [t for t in sandbox.catalogue.audio_features_by_id if is_analysed(sandbox.catalogue, t)]
    return ids[:n]


def test_5xx_is_backed_off_then_the_answer_is_read(sandbox: SandboxServer) -> None:
    sleep = SleepRecorder()
    ids = _analysed_ids(sandbox)
    sandbox.fail_next(503, count=2, path=f"{RECCOBEATS_PREFIX}/*")
    client = _client(sandbox, sleep)
    features = client.audio_features(ids)
    assert set(features) == set(ids) and all(features[t] is not None for t in ids)
    assert sleep.waits == [1.0, 2.0]
    assert client.calls["audio-features"] == 3 == _asked(sandbox)


def test_429_waits_its_retry_after(sandbox: SandboxServer) -> None:
    sleep = SleepRecorder()
    sandbox.fail_next(429, count=1, path=f"{RECCOBEATS_PREFIX}/*", retry_after=7)
    features = _client(sandbox, sleep).audio_features(_analysed_ids(sandbox))
    assert all(v is not None for v in features.values())
    assert sleep.waits == [7.0]


def test_a_storm_gives_up_after_the_budget_and_a_long_retry_after_at_once(sandbox: SandboxServer) -> None:
    sleep = SleepRecorder()
    sandbox.fail_next(500, count=100, path=f"{RECCOBEATS_PREFIX}/*")
    with pytest.raises(ReccoBeatsError, match=r"HTTP 500.*after 3 attempts"):
        _client(sandbox, sleep, max_retries=2).audio_features(_analysed_ids(sandbox))
    assert sleep.waits == [1.0, 2.0] and _asked(sandbox) == 3

    sandbox.clear_faults()
    sandbox.fail_next(429, count=100, path=f"{RECCOBEATS_PREFIX}/*", retry_after=3600)
    later = SleepRecorder()
    with pytest.raises(ReccoBeatsError, match="429"):
        _client(sandbox, later).audio_features(_analysed_ids(sandbox))
    assert later.waits == [] and _asked(sandbox) == 4
