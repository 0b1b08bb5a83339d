"""The production Spotify client against the sandbox over real HTTP: OAuth, retries, paging, batching."""

from __future__ import annotations

import json
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from spotify_assets.spotify.client import HttpSpotifyClient, played_at_ms
from spotify_assets.spotify.errors import (
    AudioFeaturesUnavailable,
    SpotifyAPIError,
    SpotifyAuthError,
    SpotifyRateLimited,
    SpotifyServerError,
)
from spotify_assets.spotify.rate_gate import RateGate
from spotify_assets.spotify.token_store import FileTokenStore, token_sha256
from spotify_assets_tests.fixtures.sandbox import SleepRecorder
from spotify_sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    SandboxServer,
)

RP = "/v1/me/player/recently-played"
AF = "/v1/audio-features"


def make_client(sb: SandboxServer, token_file: Path, refresh_token: str | None = SANDBOX_REFRESH_TOKEN, **kw):
    kw.setdefault("sleep", SleepRecorder())
    return HttpSpotifyClient(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        refresh_token,
        api_base_url=sb.api_url,
        accounts_base_url=sb.accounts_url,
        token_store=FileTokenStore(token_file),
        **kw,
    )


def requests_to(sb: SandboxServer, path: str) -> int:
    return int(sb.stats()["requests"].get(f"GET {path}", 0))


def test_recently_played_returns_the_latest_50_newest_first(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient
) -> None:
    items = sandbox_client.recently_played()
    assert items == sandbox.recently_played_truth()
    assert sandbox_client.calls == {"token": 1, "recently_played": 1}
    assert sandbox.stats()["grant_types"] == {"refresh_token": 1}


def test_after_cursor_new_plays_only_when_the_clock_moves(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient
) -> None:
    cursor = played_at_ms(sandbox_client.recently_played()[0])
    assert sandbox_client.recently_played(after_ms=cursor) == []
    sandbox.advance(2 * 3600)
    fresh = sandbox_client.recently_played(after_ms=cursor)
    truth = sandbox.plays_between(datetime.fromtimestamp(cursor / 1000).astimezone(), sandbox.now())
    assert fresh and [i["played_at"] for i in fresh] == [t["played_at"] for t in reversed(truth)]
    assert all(played_at_ms(i) > cursor for i in fresh)


def test_access_tokens_are_reused_within_a_run(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient
) -> None:
    sandbox_client.recently_played()
    sandbox_client.recently_played()
    sandbox_client.audio_features(["a" * 22])
    sandbox_client.audio_features(["b" * 22])
    assert sandbox.stats()["grant_types"] == {"refresh_token": 1, "client_credentials": 1}


def test_rotated_refresh_token_is_stored_and_used_next_run(sandbox: SandboxServer, token_file: Path) -> None:
    sandbox.configure(rotate_refresh_tokens=True)
    with make_client(sandbox, token_file) as first_run:
        assert len(first_run.recently_played()) == 50
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] != SANDBOX_REFRESH_TOKEN
    assert stored["env_sha256"] == token_sha256(SANDBOX_REFRESH_TOKEN)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert not sandbox.is_refresh_token_valid(SANDBOX_REFRESH_TOKEN)  # the old one is now rejected
    assert sandbox.is_refresh_token_valid(stored["refresh_token"])
    # Next run: the env still holds the original (now dead) token; the stored descendant wins.
    with make_client(sandbox, token_file) as second_run:
        assert len(second_run.recently_played()) == 50
    assert json.loads(token_file.read_text())["refresh_token"] != stored["refresh_token"]  # rotated again


def test_new_env_token_wins_over_stale_stored_one(sandbox: SandboxServer, token_file: Path) -> None:
    FileTokenStore(token_file).save("stale-rotated-token", env_sha256=token_sha256("an-old-env-token"))
    fresh = sandbox.issue_refresh_token()
    with make_client(sandbox, token_file, refresh_token=fresh) as client:
        assert len(client.recently_played()) == 50
    assert json.loads(token_file.read_text())["env_sha256"] == token_sha256(fresh)


def test_invalid_grant_says_to_rerun_auth_without_leaking_the_token(
    sandbox: SandboxServer, token_file: Path
) -> None:
    with (
        make_client(sandbox, token_file, refresh_token="revoked-token-value") as client,
        pytest.raises(SpotifyAuthError) as info,
    ):
        client.recently_played()
    message = str(info.value)
    assert "spotify-assets auth" in message and "invalid_grant" in message
    assert "revoked-token-value" not in message and "revoked-token-value" not in repr(info.value)


def test_missing_refresh_token_is_a_clear_auth_error(sandbox: SandboxServer, token_file: Path) -> None:
    with (
        make_client(sandbox, token_file, refresh_token=None) as client,
        pytest.raises(SpotifyAuthError, match="spotify-assets auth"),
    ):
        client.recently_played()


def test_bad_client_secret_is_an_auth_error(sandbox: SandboxServer) -> None:
    client = HttpSpotifyClient(
        SANDBOX_CLIENT_ID, "wrong-secret", api_base_url=sandbox.url, accounts_base_url=sandbox.url
    )
    with pytest.raises(SpotifyAuthError, match="invalid_client") as info:
        client.audio_features(["a" * 22])
    assert "wrong-secret" not in str(info.value) and "wrong-secret" not in repr(client)


def test_expired_token_triggers_exactly_one_reauth(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient
) -> None:
    sandbox_client.recently_played()
    sandbox.expire_tokens()
    assert len(sandbox_client.recently_played()) == 50
    assert sandbox.stats()["grant_types"] == {"refresh_token": 2}
    assert requests_to(sandbox, RP) == 3


def test_persistent_401_fails_after_one_reauth(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient
) -> None:
    sandbox.fail_next(401, count=5, path=RP)
    with pytest.raises(SpotifyAuthError):
        sandbox_client.recently_played()
    assert requests_to(sandbox, RP) == 2
    assert sandbox.stats()["grant_types"] == {"refresh_token": 2}


def test_429_honours_retry_after(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient, sleep_recorder: SleepRecorder
) -> None:
    sandbox.fail_next(429, count=2, path=RP, retry_after=3)
    assert len(sandbox_client.recently_played()) == 50
    assert sleep_recorder.waits == [3.0, 3.0]
    assert requests_to(sandbox, RP) == 3


def test_429_with_too_long_retry_after_fails_fast(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient, sleep_recorder: SleepRecorder
) -> None:
    sandbox.fail_next(429, count=1, path=AF, retry_after=3600)
    with pytest.raises(SpotifyRateLimited, match="3600") as info:
        sandbox_client.audio_features(["a" * 22])
    assert info.value.retry_after_s == 3600
    assert sleep_recorder.waits == []


class FakeClock:
    """Wall-clock time that moves only when slept on: stands in for ``time.time`` in the shared
    rate gate and for ``time.sleep`` in every client, so a wait is measured, never waited."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.waits: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class ClockedSession(requests.Session):
    """A real HTTP session that notes the fake clock's time of each request it sends."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent: list[tuple[float, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append((self.clock.time(), str(url)))
        return super().request(method, url, *args, **kwargs)


def test_a_short_retry_after_from_another_listeners_429_is_waited_out_by_the_next_listener(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Alice's poll is answered 429 with Retry-After 5 s (her client gives up at once); Bob's
    client, 2 s later on the same app, sleeps the remaining 3 s before any request of his leaves."""
    clock = FakeClock(1_000_000.0)
    gate = RateGate(tmp_path / "state" / "rate-limit.json", clock=clock.time)
    alice_session, bob_session = ClockedSession(clock), ClockedSession(clock)
    alice = make_client(
        sandbox, tmp_path / "alice.json", sandbox.issue_refresh_token("alice"),
        sleep=clock.sleep, rate_gate=gate, session=alice_session, max_retries=0,
    )  # fmt: skip
    bob = make_client(
        sandbox, tmp_path / "bob.json", sandbox.issue_refresh_token("bob"),
        sleep=clock.sleep, rate_gate=gate, session=bob_session,
    )  # fmt: skip
    sandbox.fail_next(429, count=1, path=RP, retry_after=5)
    with pytest.raises(SpotifyRateLimited):
        alice.recently_played()
    limited_at = clock.time()
    assert clock.waits == [] and requests_to(sandbox, RP) == 1  # Alice slept nothing, the wait is shared
    clock.now += 2  # Bob's run starts 2 s later
    assert len(bob.recently_played()) == 50
    assert clock.waits == [pytest.approx(3.0)]
    assert bob_session.sent and all(at >= limited_at + 5 for at, _ in bob_session.sent), bob_session.sent
    assert requests_to(sandbox, RP) == 2  # Bob's one poll, after the wait, answered at once


def test_endless_429_is_bounded(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient, sleep_recorder: SleepRecorder
) -> None:
    sandbox.fail_next(429, count=100, path=RP, retry_after=1)
    with pytest.raises(SpotifyRateLimited):
        sandbox_client.recently_played()
    assert sleep_recorder.waits == [1.0, 1.0, 1.0]  # max_retries=3
    assert requests_to(sandbox, RP) == 4


def test_5xx_backs_off_then_succeeds(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient, sleep_recorder: SleepRecorder
) -> None:
    sandbox.fail_next(503, count=1, path=RP)
    sandbox.fail_next(500, count=1, path=RP)
    assert len(sandbox_client.recently_played()) == 50
    assert sleep_recorder.waits == [0.5, 1.0]


def test_5xx_on_the_token_endpoint_is_retried_too(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient, sleep_recorder: SleepRecorder
) -> None:
    sandbox.fail_next(502, count=1, path="/api/token")
    assert len(sandbox_client.recently_played()) == 50
    assert sleep_recorder.waits == [0.5]


def test_5xx_exhaustion_is_a_clear_error(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient, sleep_recorder: SleepRecorder
) -> None:
    sandbox.fail_next(500, count=100, path=RP)
    with pytest.raises(
        SpotifyServerError, match=r"recently_played: HTTP 500; gave up after 4 attempts"
    ) as info:
        sandbox_client.recently_played()
    assert info.value.status == 500
    assert sleep_recorder.waits == [0.5, 1.0, 2.0]
    assert requests_to(sandbox, RP) == 4


def test_timeout_is_retried(sandbox: SandboxServer, token_file: Path) -> None:
    sleep = SleepRecorder()
    with make_client(sandbox, token_file, timeout_s=1.0, max_retries=2, sleep=sleep) as client:
        client.recently_played()  # warm the token so only the data call is delayed
        sandbox.delay(5.0, count=1, path=RP)
        assert len(client.recently_played()) == 50
    assert sleep.waits == [0.5]


def test_timeout_exhaustion_is_a_clear_error(sandbox: SandboxServer, token_file: Path) -> None:
    sandbox.delay(2.0, path=RP)  # every request, until cleared
    with (
        make_client(sandbox, token_file, timeout_s=0.2, max_retries=1) as client,
        pytest.raises(SpotifyServerError, match="timed out"),
    ):
        client.recently_played()
    sandbox.clear_faults()


def test_malformed_json_is_retried_then_reported(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient, sleep_recorder: SleepRecorder
) -> None:
    sandbox.malformed_next(count=1, path=RP)
    assert len(sandbox_client.recently_played()) == 50
    assert sleep_recorder.waits == [0.5]
    sandbox.malformed_next(count=100, path=AF)
    with pytest.raises(SpotifyAPIError, match="malformed JSON"):
        sandbox_client.audio_features(["a" * 22])


def test_audio_features_403_raises_unavailable(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient
) -> None:
    sandbox.configure(audio_features_forbidden=True)
    with pytest.raises(AudioFeaturesUnavailable) as info:
        sandbox_client.audio_features(["a" * 22])
    assert info.value.status == 403


def test_audio_features_batches_of_100_and_nulls(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient
) -> None:
    known = [t.id for t in sandbox.catalogue.tracks[:240]]
    unknown = [f"unknown{i:015d}" for i in range(10)]
    ids = known + unknown + known[:5]  # duplicates are asked once
    features = sandbox_client.audio_features(ids)
    assert sandbox_client.calls["audio_features"] == 3
    assert requests_to(sandbox, AF) == 3
    assert set(features) == set(known) | set(unknown)
    assert all(features[i] is None for i in unknown)
    assert all(features[i] is not None and features[i]["id"] == i for i in known)  # type: ignore[index]


def test_empty_audio_features_request_makes_no_call(sandbox_client: HttpSpotifyClient) -> None:
    assert sandbox_client.audio_features([]) == {}
    assert sandbox_client.calls["audio_features"] == 0


def test_client_repr_hides_secrets(sandbox_client: HttpSpotifyClient) -> None:
    sandbox_client.recently_played()
    text = repr(sandbox_client) + repr(sandbox_client.token_store)
    assert SANDBOX_CLIENT_SECRET not in text and SANDBOX_REFRESH_TOKEN not in text
