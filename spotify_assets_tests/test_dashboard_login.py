"""A shared dashboard asks for a login (issue 14, item 2): OpenID Connect through ``st.login``.

* Served beyond loopback without a complete login, ``make dashboard`` (``app/serve.py``) does
  not start and names what to set; nothing listens.
* With one, the real dashboard (``app/serve.py`` over the fixture warehouse) is opened in real
  Chromium against a real OpenID Connect provider on loopback (``oidc-provider-mock``): a
  visitor not signed in sees no plays on any address (``/top`` opened by URL), an allowed
  account signs in and sees its listener's pages, a refused account is told so and sees none.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.auth import AUTH_KEYS, SECRETS_ENV, accounts, may_see_household, problems
from spotify_assets_tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = "alice@example.org"
REFUSED = "mallory@example.org"
#: On the Top page of the fixture warehouse, only for a viewer allowed to see the plays.
PLAYS_TEXT = "Northern Glass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "STREAMLIT_"))}
    return env | {"SPOTIFY_DEPLOYMENT": "local", **extra}


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
        f'"{ALLOWED}" = "me"\n'
        "[household]\n"
        'listeners = ["me"]\n'
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
    port = _free_port()
    refused = _serve(_env(SPOTIFY_DASHBOARD_ADDRESS="0.0.0.0"), port)
    assert refused.returncode == 2
    assert f"not serving on 0.0.0.0: {SECRETS_ENV} is not set" in refused.stderr
    assert all(key in refused.stderr for key in AUTH_KEYS) and "[accounts]" in refused.stderr

    readable = _secrets(tmp_path, port, "http://127.0.0.1:9", mode=0o644)
    refused = _serve(_env(SPOTIFY_DASHBOARD_ADDRESS="0.0.0.0", **{SECRETS_ENV: str(readable)}), port)
    assert refused.returncode == 2 and f"chmod 600 {readable}" in refused.stderr

    incomplete = tmp_path / "incomplete.toml"
    incomplete.write_text('[auth]\nclient_id = "x"\n')
    incomplete.chmod(0o600)
    refused = _serve(_env(SPOTIFY_DASHBOARD_ADDRESS="0.0.0.0", **{SECRETS_ENV: str(incomplete)}), port)
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
    dashboard_snapshot: Path, oidc_issuer: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real ``make dashboard`` on loopback with a login configured."""
    port = _free_port()
    folder = tmp_path_factory.mktemp("login")
    secrets = _secrets(folder, port, oidc_issuer)
    env = _env(
        SPOTIFY_WAREHOUSE_SNAPSHOT=str(dashboard_snapshot),
        SPOTIFY_TIMEZONE="UTC",
        **{SECRETS_ENV: str(secrets)},
    )
    log = folder / "dashboard.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.serve",
                "--server.port",
                str(port),
                "--server.fileWatcherType",
                "none",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (scripts/test-services.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _wait_text(page, text: str) -> None:  # type: ignore[no-untyped-def]
    # ``document.body`` is briefly null while the sign-in's redirects load the next page.
    page.wait_for_function(f"!!document.body && document.body.innerText.includes({text!r})", timeout=60_000)


def _sign_in(browser, base: str, email: str):  # type: ignore[no-untyped-def]
    """Open ``/top`` by URL, see no plays, sign in at the provider as ``email``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/top", wait_until="domcontentloaded")
    _wait_text(page, "Sign in to see it")
    assert PLAYS_TEXT not in page.inner_text("body")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("input[name=sub]", timeout=60_000)  # the provider's own form
    page.fill("input[name=sub]", email)
    page.get_by_role("button", name="Authorize").click()
    return context, page


@pytest.mark.browser
def test_an_allowed_account_signs_in_and_sees_its_plays(login_dashboard: str, browser) -> None:
    context, page = _sign_in(browser, login_dashboard, ALLOWED)
    try:
        _wait_text(page, f"Signed in as {ALLOWED}")
        page.goto(f"{login_dashboard}/top", wait_until="domcontentloaded")
        _wait_text(page, PLAYS_TEXT)
        assert "Not shared" not in page.inner_text("body")
    finally:
        context.close()


@pytest.mark.browser
def test_a_refused_account_is_told_and_sees_no_plays(login_dashboard: str, browser) -> None:
    context, page = _sign_in(browser, login_dashboard, REFUSED)
    try:
        _wait_text(page, f"This dashboard is not shared with {REFUSED}")
        page.goto(f"{login_dashboard}/top", wait_until="domcontentloaded")
        _wait_text(page, "Not shared with this account")
        page.wait_for_timeout(1500)
        assert PLAYS_TEXT not in page.inner_text("body")
    finally:
        context.close()


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
