"""Import in the app (issue 25, item 5) in a real headless browser, in light and dark: a privacy
export uploaded on the Import page lands in the chosen listener's plays, once.

The served dashboard (``make dashboard``'s process) over a fresh copy of the two-listener
household per test, its data directory the pipeline's (writer ``warehouse.duckdb``, the
published snapshot, the lake, the users registry), so the page's import writes where the
pipeline writes and the dashboard reads what the writer published. The export is the
sandbox's generator (``spotify_sandbox.exports``); the expected counts are its own.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from spotify_assets_tests.fixtures.dashboard import (
    ALICE,
    BOB,
    CHROMIUM,
    build_dashboard_warehouse,
    chromium,
    dashboard_features,
    dashboard_metadata,
    dashboard_top_ten,
    household_plays,
    rendered_text,
    serve_dashboard,
    served_env,
    write_registry,
)
from spotify_assets_tests.test_dashboard_browser import SHOTS
from spotify_assets_tests.test_dashboard_finished_browser import _contrast
from spotify_sandbox.exports import FOLDER, generate_export

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test-services.sh)"
    ),
]

SCHEMES = ["light", "dark"]
#: Years no fixture play falls in: nothing of the export is a duplicate of the household's plays.
EXPORT_SPAN = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


@pytest.fixture
def household_dir(tmp_path: Path) -> Path:
    """Alice and Bob, written by the pipeline's writer into a data directory of their own."""
    folder = tmp_path / "data"
    plays = household_plays()
    build_dashboard_warehouse(
        folder, plays, dashboard_features("ok"), dashboard_top_ten(plays), dashboard_metadata()
    )
    write_registry(folder)
    return folder


@pytest.fixture
def served(household_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """The dashboard over ``household_dir``; yields its URL, its temp folder and its log."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = served_env(
        SPOTIFY_DATA_DIR=str(household_dir),
        SPOTIFY_TIMEZONE="UTC",
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        TMPDIR=str(scratch),
    )
    log = tmp_path / "dashboard.log"
    with serve_dashboard(env, log) as dash:
        yield dash.url, scratch, log


def _plays(data_dir: Path, user_id: str) -> int:
    """The listener's rows in the snapshot the dashboard reads (the writer's published copy)."""
    con = duckdb.connect(str(data_dir / "warehouse.snapshot.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM bq_plays WHERE user_id = ?", [user_id]).fetchone()
        assert row is not None
        return int(row[0])
    finally:
        con.close()


def _page(browser, url: str, scheme: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, color_scheme=scheme)
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(
        "document.querySelector('h1') && document.querySelector('h1').innerText.includes('Import your history')",
        timeout=60_000,
    )
    rendered_text(page)
    return context, page


def _upload(page, *files: Path) -> None:  # type: ignore[no-untyped-def]
    """Choose ``files`` in the uploader, wait until Streamlit holds them, then press Import."""
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(f) for f in files])
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid=\"stFileChip\"]').length >= {len(files)}"
        " && !document.querySelector('[data-testid=\"stFileChipIconSpinner\"]')",
        timeout=60_000,
    )
    button = page.get_by_role("button", name="Import", exact=True)
    page.wait_for_function(
        "[...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Import' && !b.disabled)",
        timeout=60_000,
    )
    rendered_text(page)
    button.click()


def _import(page, *files: Path) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Upload ``files`` and wait for the report: the plays it says it added, and the page's text."""
    _upload(page, *files)
    page.wait_for_function(
        "!!document.querySelector('[data-testid=\"stCode\"]') && document.body.innerText.includes('Plays in ')",
        timeout=120_000,
    )
    text = rendered_text(page)
    report = page.inner_text('[data-testid="stCode"]')
    found = re.search(r"plays added\s+([\d,]+)", report)
    assert found, report
    return int(found.group(1).replace(",", "")), text


def _others_export(tmp_path: Path, owner: str) -> Path:
    """An extended-history file whose rows carry ``owner`` as their ``username`` (as Spotify writes it)."""
    folder = tmp_path / "theirs"
    generate_export(folder, 20, seed=3, start=EXPORT_SPAN[0], end=EXPORT_SPAN[1])
    source = next((folder / FOLDER).glob("Streaming_History_Audio_*.json"))
    rows = [{**row, "username": owner} for row in json.loads(source.read_text())]
    out = tmp_path / "Streaming_History_Audio_2020_9.json"
    out.write_text(json.dumps(rows))
    return out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_an_upload_lands_in_the_chosen_listeners_plays_once(browser, served, household_dir, tmp_path, scheme):
    url, scratch, log = served
    export = tmp_path / "my_spotify_data.zip"
    summary = generate_export(export, 300, seed=11, start=EXPORT_SPAN[0], end=EXPORT_SPAN[1])
    assert zipfile.is_zipfile(export) and summary.expected_added > 0
    bob, alice = _plays(household_dir, BOB), _plays(household_dir, ALICE)

    context, page = _page(browser, f"{url}/import?user=bob", scheme)
    try:
        added, text = _import(page, export)
        # The command's report, for this upload, with the generator's own counts.
        assert added == summary.expected_added
        assert f"Imported {export.name}" in text
        quarantined = re.search(r"quarantined\s+([\d,]+)", page.inner_text('[data-testid="stCode"]'))
        assert quarantined and int(quarantined.group(1).replace(",", "")) == summary.no_content
        # Exactly the added plays, all Bob's, in the snapshot the pages read; the page says the new total.
        assert _plays(household_dir, BOB) == bob + added
        assert _plays(household_dir, ALICE) == alice
        assert f"Plays in Bob's history: {bob + added:,} (before this import: {bob:,})" in text
        bar = page.locator('[data-testid="stProgress"] [role="progressbar"]')
        assert bar.get_attribute("aria-valuenow") == "100", bar.get_attribute("aria-valuenow")
        # The report reads on this theme's background.
        colors = page.evaluate(
            """() => { const rgb = s => (s.match(/\\d+(\\.\\d+)?/g) || []).slice(0, 3).map(Number);
              const code = document.querySelector('[data-testid="stCode"] code');
              const pre = document.querySelector('[data-testid="stCode"] pre');
              return [rgb(getComputedStyle(code).color), rgb(getComputedStyle(pre).backgroundColor)]; }"""
        )
        assert _contrast(*colors) >= 4.5, colors
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"import-{scheme}.png"))
    finally:
        context.close()

    # The same file again, uploaded afresh: every row is already there.
    context, page = _page(browser, f"{url}/import?user=bob", scheme)
    try:
        again, text = _import(page, export)
        assert again == 0
        assert "0 plays added to Bob's history" in text
        assert _plays(household_dir, BOB) == bob + added
    finally:
        context.close()

    # The bytes waited in a private folder that is gone now, and never reached the log.
    assert [p.name for p in scratch.iterdir() if p.name.startswith("spotify-")] == []
    first_row = json.loads(zipfile.ZipFile(export).read(f"{FOLDER}/{_audio_member(export)}"))[0]
    assert first_row["ts"] not in log.read_text()


def _audio_member(export: Path) -> str:
    names = [Path(n).name for n in zipfile.ZipFile(export).namelist()]
    return next(n for n in names if n.startswith("Streaming_History_Audio_"))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_another_listeners_export_is_refused(browser, served, household_dir, tmp_path, scheme):
    url, _, _ = served
    theirs = _others_export(tmp_path, ALICE)
    bob, alice = _plays(household_dir, BOB), _plays(household_dir, ALICE)
    context, page = _page(browser, f"{url}/import?user=bob", scheme)
    try:
        _upload(page, theirs)
        page.wait_for_function(
            "document.body.innerText.includes('Not imported')",
            timeout=120_000,
        )
        text = rendered_text(page)
        assert f"belongs to Spotify user {ALICE}, not {BOB}" in text
        assert "plays added" not in text
    finally:
        context.close()
    assert (_plays(household_dir, BOB), _plays(household_dir, ALICE)) == (bob, alice)


CAROL = "sandbox-carol"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_new_member_brings_their_history_from_the_dashboard(
    browser, served, household_dir, tmp_path, scheme
):
    """Carol was just added (``users add``) and has no plays: the Import page still opens for her
    (the listener picker stopped every page before), and her export becomes her plays."""
    url, _, _ = served
    registry = household_dir / "users" / "users.json"
    users = json.loads(registry.read_text())
    users["users"].append(
        {"name": "carol", "user_id": CAROL, "display_name": "Carol", "added_at": "2024-05-01T00:00:00+00:00"}
    )
    registry.write_text(json.dumps(users))
    export = tmp_path / "my_spotify_data.zip"
    summary = generate_export(export, 120, seed=5, start=EXPORT_SPAN[0], end=EXPORT_SPAN[1])
    alice, bob = _plays(household_dir, ALICE), _plays(household_dir, BOB)
    assert _plays(household_dir, CAROL) == 0

    context, page = _page(browser, f"{url}/import?user=carol", scheme)
    try:
        assert "into Carol's plays" in rendered_text(page)
        added, text = _import(page, export)
        assert added == summary.expected_added > 0
        assert f"Plays in Carol's history: {added:,} (before this import: 0)" in text
    finally:
        context.close()
    assert (_plays(household_dir, CAROL), _plays(household_dir, ALICE), _plays(household_dir, BOB)) == (
        added,
        alice,
        bob,
    )


@pytest.fixture
def fresh_served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The dashboard over a fresh install's data directory: no warehouse, no registry, nothing."""
    data = tmp_path / "fresh"
    data.mkdir()
    env = served_env(SPOTIFY_DATA_DIR=str(data), SPOTIFY_TIMEZONE="UTC", DAGSTER_HOME=str(tmp_path / "dh"))
    with serve_dashboard(env, tmp_path / "dashboard.log") as dash:
        yield dash.url, data


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_fresh_install_brings_a_lastfm_history_in_from_the_welcome_page(
    browser, fresh_served, tmp_path, scheme
):
    """The first visit of a fresh install: the welcome page's link opens Import (it opened the
    welcome page again before), a Last.fm CSV uploaded there becomes the plays, and Overview shows them."""
    from spotify_assets_tests.test_dashboard_import import _lastfm_csv

    url, data = fresh_served
    scrobbles = _lastfm_csv(tmp_path / "scrobbles.csv", 15, datetime(2019, 6, 1, tzinfo=UTC))
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, color_scheme=scheme)
    page = context.new_page()
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_function(
            "document.body.innerText.includes('Or upload your export here')", timeout=60_000
        )
        page.get_by_text("Or upload your export here").click()
        page.wait_for_function(
            "document.querySelector('h1') && document.querySelector('h1').innerText.includes('Import your history')",
            timeout=60_000,
        )
        assert page.url.rstrip("/").endswith("/import"), page.url
        added, text = _import(page, scrobbles)
        assert added == 15, text
        assert "Last.fm" in page.inner_text('[data-testid="stCode"]')
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_function(
            "[...document.querySelectorAll('[data-testid=\"stMetric\"]')].some(m => m.innerText.includes('Plays'))",
            timeout=60_000,
        )
        body = rendered_text(page)
        assert "Your listening, your data" not in body
        assert "Vinyl Band" in body
        page.screenshot(path=str(SHOTS / f"import-fresh-{scheme}.png"))
    finally:
        context.close()
    con = duckdb.connect(str(data / "warehouse.snapshot.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM bq_plays").fetchone()
    finally:
        con.close()
    assert row is not None and int(row[0]) == 15
