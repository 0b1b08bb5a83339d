"""A shared dashboard asks for a login (issue 14, item 2): OpenID Connect through ``st.login``.

* Served beyond loopback without a complete login, ``make dashboard`` (``app/serve.py``) does
  not start and names what to set; nothing listens.
* With one, the real dashboard (``app/serve.py`` over Alice's and Bob's plays, the users
  registry beside them) is opened in real Chromium against a real OpenID Connect provider on
  loopback (``oidc-provider-mock``): a visitor not signed in sees no plays on any address
  (``/top`` opened by URL); Alice's account sees her plays and none of Bob's, and cannot open
  his pages or Compare by URL; Bob, who opted in to household views, can open hers and
  Compare; Carol's account (allowed, no plays) sees nobody's; a refused account is told so.
* With one listener in the warehouse, an account mapped to another listener sees none of the
  one listener's plays (AppTest through the viewer hook).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.auth import AUTH_KEYS, SECRETS_ENV, accounts, may_see_household, problems
from spotify_assets_tests.fixtures.dashboard import (
    ROOT,
    build_dashboard_warehouse,
    chromium,
    household_plays,
    rendered_text,
    serve_dashboard,
    served_env,
    write_registry,
)
from spotify_assets_tests.fixtures.sockets import free_port

#: Alice's account sees her own plays only; Bob opted in to household views; Carol is allowed
#: but has no plays in the warehouse; Mallory is not listed.
ALLOWED = "alice@example.org"
HOUSEHOLD_MEMBER = "bob@example.org"
NO_PLAYS = "carol@example.org"
REFUSED = "mallory@example.org"
#: On Alice's Top page (her top track; Bob played it too).
PLAYS_TEXT = "Northern Glass"
#: Bob's own artist (Alice never played it), and Alice's (Bob never played it).
BOBS_ARTIST = "Ivy Coast"
ALICES_ARTIST = "Dune Radio"


def _secrets(folder: Path, port: int, issuer: str, mode: int = 0o600) -> Path:
    path = folder / "dashboard-secrets.toml"
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "test-cookie-secret-0123456789abcdef"\n'
        'client_id = "listening-dashboard"\n'
        'client_secret = "test-client-secret"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
        "[accounts]\n"
        f'"{ALLOWED}" = "alice"\n'
        f'"{HOUSEHOLD_MEMBER}" = "bob"\n'
        f'"{NO_PLAYS}" = "carol"\n'
        "[household]\n"
        'listeners = ["bob"]\n'
    )
    path.chmod(mode)
    return path


def _serve(env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.serve", "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_shared_without_a_login_it_refuses_to_start_and_says_what_to_set(tmp_path: Path) -> None:
    port = free_port()
    refused = _serve(served_env(SPOTIFY_DASHBOARD_ADDRESS="0.0.0.0"), port)
    assert refused.returncode == 2
    assert f"not serving on 0.0.0.0: {SECRETS_ENV} is not set" in refused.stderr
    assert all(key in refused.stderr for key in AUTH_KEYS) and "[accounts]" in refused.stderr

    readable = _secrets(tmp_path, port, "http://127.0.0.1:9", mode=0o644)
    refused = _serve(served_env(SPOTIFY_DASHBOARD_ADDRESS="0.0.0.0", **{SECRETS_ENV: str(readable)}), port)
    assert refused.returncode == 2 and f"chmod 600 {readable}" in refused.stderr

    incomplete = tmp_path / "incomplete.toml"
    incomplete.write_text('[auth]\nclient_id = "x"\n')
    incomplete.chmod(0o600)
    refused = _serve(served_env(SPOTIFY_DASHBOARD_ADDRESS="0.0.0.0", **{SECRETS_ENV: str(incomplete)}), port)
    assert refused.returncode == 2
    assert (
        "[auth] client_secret is not set" in refused.stderr
        and "[accounts] lists no allowed account" in refused.stderr
    )


def test_accounts_map_to_listeners_and_household_is_opt_in() -> None:
    settings = {
        "accounts": {"Alice@Example.org": "me", "bob@example.org": "me"},
        "household": {"listeners": []},
    }
    found = accounts(settings)
    assert sorted(found) == ["alice@example.org", "bob@example.org"]
    assert {v.listener for v in found.values()} == {"me"} and not any(v.household for v in found.values())
    assert accounts({**settings, "household": {"listeners": ["me"]}})["bob@example.org"].household
    assert not may_see_household(found["bob@example.org"])
    assert may_see_household(accounts({**settings, "household": {"listeners": ["me"]}})["bob@example.org"])
    assert may_see_household(None)  # the owner's own loopback dashboard, no login
    assert problems({}) == [
        *(f"[auth] {k} is not set" for k in AUTH_KEYS),
        "[accounts] lists no allowed account",
    ]


@pytest.fixture(scope="module")
def oidc_issuer() -> Iterator[str]:
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def login_dashboard(
    household_snapshot: Path, oidc_issuer: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real ``make dashboard`` on loopback with a login configured, over Alice's and Bob's plays."""
    port = free_port()
    folder = tmp_path_factory.mktemp("login")
    secrets = _secrets(folder, port, oidc_issuer)
    env = served_env(
        SPOTIFY_WAREHOUSE_SNAPSHOT=str(household_snapshot),
        SPOTIFY_DATA_DIR=str(household_snapshot.parent),
        SPOTIFY_TIMEZONE="UTC",
        **{SECRETS_ENV: str(secrets)},
    )
    with serve_dashboard(env, folder / "dashboard.log", port) as served:
        yield served.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def _wait_text(page, text: str) -> None:  # type: ignore[no-untyped-def]
    # ``document.body`` is briefly null while the sign-in's redirects load the next page.
    page.wait_for_function(f"!!document.body && document.body.innerText.includes({text!r})", timeout=60_000)


@contextlib.contextmanager
def _signed_in(browser, base: str, email: str, greeting: str | None = None):  # type: ignore[no-untyped-def]
    """Open ``/top`` by URL, see no plays, sign in at the provider as ``email``; yields the page
    once it shows ``greeting`` (default: "Signed in as <email>"), in a context of its own."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{base}/top", wait_until="domcontentloaded")
        _wait_text(page, "Sign in to see it")
        assert PLAYS_TEXT not in page.inner_text("body")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("input[name=sub]", timeout=60_000)  # the provider's own form
        page.fill("input[name=sub]", email)
        page.get_by_role("button", name="Authorize").click()
        _wait_text(page, greeting or f"Signed in as {email}")
        yield page
    finally:
        context.close()


def _body(page) -> str:  # type: ignore[no-untyped-def]
    """The page's text once Streamlit finished drawing it: absence is judged on the whole page."""
    return rendered_text(page)


@pytest.mark.browser
def test_an_allowed_account_signs_in_and_sees_its_plays(login_dashboard: str, browser) -> None:
    with _signed_in(browser, login_dashboard, ALLOWED) as page:
        page.goto(f"{login_dashboard}/top", wait_until="domcontentloaded")
        _wait_text(page, PLAYS_TEXT)
        _wait_text(page, ALICES_ARTIST)
        body = _body(page)
        assert "Not shared" not in body and BOBS_ARTIST not in body  # her plays, not bob's


@pytest.mark.browser
def test_a_listener_cannot_open_another_listeners_pages_by_url(login_dashboard: str, browser) -> None:
    with _signed_in(browser, login_dashboard, ALLOWED) as page:
        for path in ("top?user=bob", "top?user=sandbox-bob", "?user=bob", "compare", "compare?user=bob"):
            page.goto(f"{login_dashboard}/{path}", wait_until="domcontentloaded")
            _wait_text(page, "Not shared with you")
            body = _body(page)
            assert BOBS_ARTIST not in body and PLAYS_TEXT not in body, (path, body)


@pytest.mark.browser
def test_a_household_member_opens_another_listeners_pages_and_compare(login_dashboard: str, browser) -> None:
    with _signed_in(browser, login_dashboard, HOUSEHOLD_MEMBER) as page:
        page.goto(f"{login_dashboard}/top?user=alice", wait_until="domcontentloaded")
        _wait_text(page, ALICES_ARTIST)
        assert "Not shared" not in _body(page)
        page.goto(f"{login_dashboard}/compare?user=bob&with=alice", wait_until="domcontentloaded")
        _wait_text(page, "Taste overlap")
        assert "Not shared" not in _body(page)


@pytest.mark.browser
def test_an_allowed_account_without_plays_sees_nobody_elses(login_dashboard: str, browser) -> None:
    with _signed_in(browser, login_dashboard, NO_PLAYS) as page:
        for path in ("", "top", "top?user=alice", "compare"):
            page.goto(f"{login_dashboard}/{path}", wait_until="domcontentloaded")
            _wait_text(page, "Signed in as")
            body = _body(page)
            assert "No plays of yours yet" in body or "Not shared with you" in body, (path, body)
            assert PLAYS_TEXT not in body and BOBS_ARTIST not in body and ALICES_ARTIST not in body, (
                path,
                body,
            )


@pytest.mark.browser
def test_a_refused_account_is_told_and_sees_no_plays(login_dashboard: str, browser) -> None:
    with _signed_in(
        browser, login_dashboard, REFUSED, f"This dashboard is not shared with {REFUSED}"
    ) as page:
        page.goto(f"{login_dashboard}/top", wait_until="domcontentloaded")
        _wait_text(page, "Not shared with this account")
        assert PLAYS_TEXT not in _body(page)


def test_a_bare_streamlit_run_beyond_loopback_shows_nothing_without_a_login(
    dashboard_env: pytest.MonkeyPatch, dashboard_snapshot: Path
) -> None:
    """The app's own gate, for ``streamlit run app/streamlit_app.py --server.address 0.0.0.0``."""
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    dashboard_env.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(dashboard_snapshot))
    config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60).run()
    finally:
        config.set_option("server.address", None)
    assert [e.value for e in at.error] and SECRETS_ENV in at.error[0].value
    assert not at.metric and not at.exception


@pytest.fixture(scope="module")
def one_listener_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only Alice's plays in the warehouse (Bob registered, no plays yet), the registry beside it."""
    plays = household_plays()
    folder = tmp_path_factory.mktemp("dash_one_listener")
    snapshot = build_dashboard_warehouse(folder, plays[plays["user_id"] == "sandbox-alice"])
    write_registry(folder)
    return snapshot


@pytest.mark.parametrize(
    ("listener", "household", "sees"),
    [("bob", False, False), ("carol", False, False), ("alice", False, True), ("bob", True, True)],
)
def test_with_one_listener_in_the_warehouse_an_account_sees_only_its_own(
    dashboard_env: pytest.MonkeyPatch, one_listener_snapshot: Path, listener: str, household: bool, sees: bool
) -> None:
    """One listener's plays are not everyone's: an account mapped to a listener without plays
    (registered or not) is told so and shown nothing; household members see them, as before."""
    from streamlit.testing.v1 import AppTest

    from app.auth import VIEWER_KEY, Viewer

    dashboard_env.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(one_listener_snapshot))
    dashboard_env.setenv("SPOTIFY_DATA_DIR", str(one_listener_snapshot.parent))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60)
    at.session_state[VIEWER_KEY] = Viewer(f"{listener}@example.org", listener, household)
    at.run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    if sees:
        assert metrics.get("Plays") == "232", metrics
    else:
        assert [t.value for t in at.title] == ["No plays of yours yet"]
        assert not at.metric
