"""The sandbox speaks the Spotify Web API: endpoints, shapes, OAuth, errors, semantics, knobs (real HTTP)."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from spotify_sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    SandboxServer,
)

AUTH = (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
RP = "/v1/me/player/recently-played"
ID_RE = re.compile(r"^[0-9A-Za-z]{22}$")
PLAYED_AT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def user_token(sb: SandboxServer, refresh_token: str = SANDBOX_REFRESH_TOKEN) -> str:
    r = requests.post(
        f"{sb.url}/api/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}, auth=AUTH
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def app_token(sb: SandboxServer) -> str:
    r = requests.post(f"{sb.url}/api/token", data={"grant_type": "client_credentials"}, auth=AUTH)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def get(sb: SandboxServer, path: str, token: str, **params: Any) -> requests.Response:
    return requests.get(f"{sb.url}{path}", params=params, headers={"Authorization": f"Bearer {token}"})


def ms(played_at: str) -> int:
    return round(datetime.fromisoformat(played_at.replace("Z", "+00:00")).timestamp() * 1000)


# -- accounts service -------------------------------------------------------------------------------


def test_client_credentials_token_shape(sandbox: SandboxServer) -> None:
    r = requests.post(f"{sandbox.url}/api/token", data={"grant_type": "client_credentials"}, auth=AUTH)
    body = r.json()
    assert r.status_code == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
    assert "refresh_token" not in body


@pytest.mark.parametrize("auth", [None, ("sandbox-client-id", "wrong"), ("other", SANDBOX_CLIENT_SECRET)])
def test_token_endpoint_rejects_bad_client_auth(sandbox: SandboxServer, auth: tuple[str, str] | None) -> None:
    r = requests.post(f"{sandbox.url}/api/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_unknown_refresh_token_is_invalid_grant(sandbox: SandboxServer) -> None:
    r = requests.post(
        f"{sandbox.url}/api/token", data={"grant_type": "refresh_token", "refresh_token": "nope"}, auth=AUTH
    )
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}


def test_authorize_redirects_with_code_and_state_and_code_is_single_use(sandbox: SandboxServer) -> None:
    redirect_uri = "http://127.0.0.1:9/callback"
    r = requests.get(
        f"{sandbox.url}/authorize",
        params={
            "client_id": SANDBOX_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "user-read-recently-played",
            "state": "xyz",
        },
        allow_redirects=False,
    )
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect_uri}
    first = requests.post(f"{sandbox.url}/api/token", data=form, auth=AUTH)
    assert first.status_code == 200
    body = first.json()
    assert body["scope"] == "user-read-recently-played" and body["refresh_token"] and body["access_token"]
    assert get(sandbox, RP, body["access_token"], limit=1).status_code == 200
    assert user_token(sandbox, body["refresh_token"])  # the new refresh token works
    again = requests.post(f"{sandbox.url}/api/token", data=form, auth=AUTH)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_authorize_rejects_unknown_client(sandbox: SandboxServer) -> None:
    r = requests.get(
        f"{sandbox.url}/authorize",
        params={"client_id": "nope", "response_type": "code", "redirect_uri": "http://127.0.0.1:9/cb"},
        allow_redirects=False,
    )
    assert r.status_code == 400


def test_rotation_issues_new_refresh_token_and_invalidates_old(sandbox: SandboxServer) -> None:
    sandbox.configure(rotate_refresh_tokens=True)
    r = requests.post(
        f"{sandbox.url}/api/token",
        data={"grant_type": "refresh_token", "refresh_token": SANDBOX_REFRESH_TOKEN},
        auth=AUTH,
    )
    new = r.json()["refresh_token"]
    assert new != SANDBOX_REFRESH_TOKEN
    assert not sandbox.is_refresh_token_valid(SANDBOX_REFRESH_TOKEN)
    old = requests.post(
        f"{sandbox.url}/api/token",
        data={"grant_type": "refresh_token", "refresh_token": SANDBOX_REFRESH_TOKEN},
        auth=AUTH,
    )
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    assert user_token(sandbox, new)


# -- recently played --------------------------------------------------------------------------------


def test_recently_played_needs_a_user_token(sandbox: SandboxServer) -> None:
    r = get(sandbox, RP, app_token(sandbox), limit=50)
    assert r.status_code == 401
    assert r.json()["error"]["status"] == 401 and r.json()["error"]["message"]
    anonymous = requests.get(f"{sandbox.url}{RP}")
    assert anonymous.status_code == 401 and set(anonymous.json()) == {"error"}


def test_expired_tokens_answer_401_access_token_expired(sandbox: SandboxServer) -> None:
    token = user_token(sandbox)
    assert get(sandbox, RP, token, limit=1).status_code == 200
    assert sandbox.expire_tokens() >= 1
    r = get(sandbox, RP, token, limit=1)
    assert r.status_code == 401
    assert r.json() == {"error": {"status": 401, "message": "The access token expired"}}


def test_recently_played_shape(sandbox_module: SandboxServer) -> None:
    r = get(sandbox_module, RP, user_token(sandbox_module), limit=50)
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"items", "next", "cursors", "limit", "href"}
    items = body["items"]
    assert len(items) == 50 and body["limit"] == 50 and body["next"] is None
    played = [ms(i["played_at"]) for i in items]
    assert played == sorted(played, reverse=True) and len(set(played)) == 50
    assert body["cursors"] == {"after": str(played[0]), "before": str(played[-1])}
    assert played[0] <= ms("2026-11-20T21:00:00.000Z")
    item = items[0]
    assert PLAYED_AT_RE.match(item["played_at"])
    track = item["track"]
    assert {
        "id", "name", "uri", "href", "type", "duration_ms", "popularity", "explicit", "is_local",
        "track_number", "disc_number", "external_ids", "external_urls", "preview_url", "artists", "album",
    } <= set(track)  # fmt: skip
    assert ID_RE.match(track["id"]) and track["uri"] == f"spotify:track:{track['id']}"
    assert track["type"] == "track" and track["is_local"] is False
    artist = track["artists"][0]
    assert (
        ID_RE.match(artist["id"])
        and artist["type"] == "artist"
        and artist["uri"].startswith("spotify:artist:")
    )
    album = track["album"]
    assert [(im["height"], im["width"]) for im in album["images"]] == [(640, 640), (300, 300), (64, 64)]
    assert album["images"][0]["url"].startswith("data:image/png;base64,")  # no CDN: offline
    assert re.match(r"^\d{4}(-\d\d(-\d\d)?)?$", album["release_date"])
    assert album["release_date_precision"] in {"year", "month", "day"}
    contexts = [i["context"] for i in items if i["context"] is not None]
    assert contexts and all({"type", "uri", "href", "external_urls"} <= set(c) for c in contexts)
    # favourites repeat (Zipf-like taste)
    ids = [i["track"]["id"] for i in items]
    assert len(set(ids)) < len(ids)


def test_plays_are_spaced_by_track_duration(sandbox_module: SandboxServer) -> None:
    items = sandbox_module.recently_played_truth()
    oldest_first = list(reversed(items))
    for prev, cur in itertools.pairwise(oldest_first):
        gap = ms(cur["played_at"]) - ms(prev["played_at"])
        # the next play ended at least 30 s (a counted play) after the previous one ended
        assert gap >= 30_000


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 51}, {"limit": "abc"}, {"limit": 10, "after": 1, "before": 2}, {"after": "x"}],
)
def test_recently_played_validation(sandbox_module: SandboxServer, params: dict[str, object]) -> None:
    r = get(sandbox_module, RP, user_token(sandbox_module), **params)
    assert r.status_code == 400
    assert r.json()["error"]["status"] == 400


def test_before_paging_follows_next(sandbox_module: SandboxServer) -> None:
    token = user_token(sandbox_module)
    first = get(sandbox_module, RP, token, limit=20).json()
    assert first["next"] and "before=" in first["next"]
    second = requests.get(first["next"], headers={"Authorization": f"Bearer {token}"}).json()
    assert len(second["items"]) == 20
    assert ms(second["items"][0]["played_at"]) < ms(first["items"][-1]["played_at"])
    third = requests.get(second["next"], headers={"Authorization": f"Bearer {token}"}).json()
    assert len(third["items"]) == 10 and third["next"] is None  # only 50 plays are ever available


def test_after_cursor_semantics_follow_the_clock(sandbox: SandboxServer) -> None:
    token = user_token(sandbox)
    newest = get(sandbox, RP, token, limit=50).json()["cursors"]["after"]
    nothing = get(sandbox, RP, token, limit=50, after=newest).json()
    assert nothing["items"] == [] and nothing["cursors"] is None and nothing["next"] is None
    sandbox.advance(3600)  # Friday 21:00-22:00, an evening hour
    fresh = get(sandbox, RP, token, limit=50, after=newest).json()
    assert fresh["items"], "an evening hour has plays"
    assert all(ms(i["played_at"]) > int(newest) for i in fresh["items"])
    truth = sandbox.plays_between(datetime.fromisoformat("2026-11-20T21:00:00+00:00"), sandbox.now())
    assert [i["played_at"] for i in reversed(fresh["items"])] == [t["played_at"] for t in truth]


def test_set_now_and_night_hours_are_silent(sandbox: SandboxServer) -> None:
    night = sandbox.plays_between("2026-11-01T00:00:00Z", "2026-11-20T00:00:00Z")
    assert night
    assert all(not ("T00" <= p["played_at"][10:13] < "T06") for p in night)
    sandbox.set_now("2026-11-10T12:00:00Z")
    items = sandbox.recently_played_truth()
    assert len(items) == 50 and items[0]["played_at"] <= "2026-11-10T12:00:00.000Z"


def test_same_seed_same_plays_other_seed_other_plays() -> None:
    with SandboxServer(seed=7) as a, SandboxServer(seed=7) as b, SandboxServer(seed=8) as c:
        pa, pb, pc = (get(s, RP, user_token(s), limit=50).json()["items"] for s in (a, b, c))
    assert pa == pb
    assert [i["played_at"] for i in pa] != [i["played_at"] for i in pc]


def test_local_file_and_episode_knobs(sandbox: SandboxServer) -> None:
    sandbox.configure(local_file_ratio=0.2, episode_ratio=0.2)
    items = get(sandbox, RP, user_token(sandbox), limit=50).json()["items"]
    local = [i["track"] for i in items if i["track"].get("is_local")]
    episodes = [i for i in items if i["track"]["type"] == "episode"]
    assert local and episodes
    assert all(
        t["id"] is None and t["uri"].startswith("spotify:local:") and t["album"]["images"] == []
        for t in local
    )
    assert all(
        e["track"]["show"]["uri"].startswith("spotify:show:") and "album" not in e["track"] for e in episodes
    )
    sandbox.configure(local_file_ratio=0.0, episode_ratio=0.0)
    plain = get(sandbox, RP, user_token(sandbox), limit=50).json()["items"]
    assert all(i["track"]["type"] == "track" and not i["track"]["is_local"] for i in plain)
    assert [i["played_at"] for i in plain] == [
        i["played_at"] for i in items
    ]  # knobs swap content, not timing


# -- audio features ---------------------------------------------------------------------------------


def test_audio_features_shape_nulls_and_determinism(sandbox_module: SandboxServer) -> None:
    ids = list(dict.fromkeys(i["track"]["id"] for i in sandbox_module.recently_played_truth()))[:5]
    r = get(sandbox_module, "/v1/audio-features", app_token(sandbox_module), ids=",".join([*ids, "0" * 22]))
    feats = r.json()["audio_features"]
    assert r.status_code == 200 and len(feats) == 6 and feats[-1] is None
    first = feats[0]
    assert (
        first["id"] == ids[0]
        and first["type"] == "audio_features"
        and first["uri"] == f"spotify:track:{ids[0]}"
    )
    assert set(first) == {
        "id", "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
        "instrumentalness", "liveness", "valence", "tempo", "time_signature", "duration_ms", "type", "uri",
        "track_href", "analysis_url",
    }  # fmt: skip
    assert 0 <= first["danceability"] <= 1 and -1 <= first["key"] <= 11
    with SandboxServer() as other:
        again = get(other, "/v1/audio-features", user_token(other), ids=ids[0]).json()["audio_features"][0]
    assert again == first


def test_audio_features_limits_and_forbidden_knob(sandbox: SandboxServer) -> None:
    token = app_token(sandbox)
    too_many = get(sandbox, "/v1/audio-features", token, ids=",".join(["a" * 22] * 101))
    assert too_many.status_code == 400 and too_many.json()["error"]["status"] == 400
    sandbox.configure(audio_features_forbidden=True)
    r = get(sandbox, "/v1/audio-features", token, ids="a" * 22)
    assert r.status_code == 403 and r.json()["error"]["status"] == 403


# -- fault knobs, over HTTP as well ------------------------------------------------------------------


def test_http_controls_drive_faults_clock_and_stats(sandbox: SandboxServer) -> None:
    control = f"{sandbox.url}/_sandbox"
    token = user_token(sandbox)
    assert requests.post(
        f"{control}/faults", json={"status": 429, "count": 2, "path": RP, "retry_after": 7}
    ).ok
    first, second, third = (get(sandbox, RP, token, limit=1) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "7"
    assert first.json() == {"error": {"status": 429, "message": "API rate limit exceeded"}}
    assert requests.post(f"{control}/faults", json={"status": 502}).ok
    assert get(sandbox, "/v1/audio-features", token, ids="x").status_code == 502
    now = requests.post(f"{control}/clock", json={"advance_seconds": 90}).json()["now"]
    assert now.startswith("2026-11-20T21:01:30")
    assert (
        requests.post(f"{control}/clock", json={"now": "2026-11-21T08:00:00Z"})
        .json()["now"]
        .startswith("2026-11-21T08:00:00")
    )
    assert requests.post(f"{control}/malformed", json={"count": 1}).ok
    with pytest.raises(json.JSONDecodeError):
        json.loads(get(sandbox, RP, token, limit=1).text)
    assert requests.post(f"{control}/settings", json={"audio_features_forbidden": True}).ok
    assert get(sandbox, "/v1/audio-features", token, ids="x").status_code == 403
    assert requests.post(f"{control}/expire-tokens").json()["expired"] >= 1
    assert get(sandbox, RP, token, limit=1).json()["error"]["message"] == "The access token expired"
    stats = requests.get(f"{control}/stats").json()
    assert stats["requests"][f"GET {RP}"] == 5
    assert stats["requests"]["GET /v1/audio-features"] == 2
    assert stats["grant_types"] == {"refresh_token": 1}
    assert stats["statuses"]["429"] == 2
    plays = requests.get(
        f"{control}/plays", params={"start": "2026-11-20T20:00:00Z", "end": "2026-11-20T21:00:00Z"}
    )
    assert plays.json()["items"] == sandbox.plays_between("2026-11-20T20:00:00Z", "2026-11-20T21:00:00Z")


def test_recently_played_walks_back_only_a_few_hours(sandbox: SandboxServer) -> None:
    """The hot path builds the hours just before now, not the whole history."""
    sandbox.recently_played_truth()
    built = sandbox.listener.hour.cache_info().currsize
    assert 0 < built < 48
