"""Import in the app (issue 25, item 5): whose plays an upload goes into, where its bytes wait,
and the Import page's refusals (AppTest over the two-listener household; the upload itself is
driven in a real browser, ``test_dashboard_import_browser.py``).
"""

from __future__ import annotations

import json
import shutil
import stat
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from app import uploads
from app.auth import Viewer
from app.listeners import Listener
from spotify_assets_tests.fixtures.dashboard import (
    ALICE,
    BOB,
    HOUSEHOLD,
    build_dashboard_warehouse,
    household_plays,
    write_registry,
)
from spotify_assets_tests.test_dashboard import _text
from spotify_assets_tests.test_dashboard_household import _open

KNOWN = {uid: Listener(uid, name, label) for uid, (name, label) in HOUSEHOLD.items()}
ALICE_ONLY = Viewer("alice@example.org", "alice", household=False)
ALICE_HOUSEHOLD = Viewer("alice@example.org", "alice", household=True)
PAGE = str(Path(__file__).resolve().parent.parent / "app" / "views" / "import_export.py")


# -- whose plays ----------------------------------------------------------------------
def test_a_signed_in_listener_imports_into_their_own_plays_only():
    assert uploads.upload_target(ALICE_ONLY, ALICE, True, KNOWN, "0.0.0.0") == ALICE
    # A household member looking at everyone imports into their own plays, not "everyone's".
    assert uploads.upload_target(ALICE_HOUSEHOLD, None, True, KNOWN, "0.0.0.0") == ALICE
    with pytest.raises(uploads.Refused, match=r"only your own listening history \(Alice\)"):
        uploads.upload_target(ALICE_HOUSEHOLD, BOB, True, KNOWN, "0.0.0.0")


def test_the_owner_on_loopback_imports_into_the_chosen_listener():
    assert uploads.upload_target(None, BOB, True, KNOWN, "127.0.0.1") == BOB
    # One listener: the command's own default (``import_owner``), as `spotify-assets import` without --user.
    assert uploads.upload_target(None, None, False, KNOWN, "127.0.0.1") is None
    with pytest.raises(uploads.Refused, match="choose whose export this is"):
        uploads.upload_target(None, None, True, KNOWN, "127.0.0.1")


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.20", "listening.example.org"])
def test_nothing_is_imported_beyond_loopback_without_a_sign_in(address):
    with pytest.raises(uploads.Refused, match="beyond this machine without a sign-in"):
        uploads.upload_target(None, BOB, True, KNOWN, address)


# -- where the bytes wait ---------------------------------------------------------------
def test_uploads_wait_in_a_private_folder_that_is_removed_after(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with uploads.private_folder() as folder:
        assert folder.parent == tmp_path
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        export = uploads.save_uploads([("Streaming_History_Audio_2024_0.json", b"[]")], folder)
        assert (export / "Streaming_History_Audio_2024_0.json").read_bytes() == b"[]"
    assert not folder.exists()
    with pytest.raises(RuntimeError), uploads.private_folder() as folder:
        raise RuntimeError("the import failed")
    assert not folder.exists()


def test_uploads_keep_their_own_names_and_nothing_else(tmp_path):
    export = uploads.save_uploads(
        [("../../etc/StreamingHistory_music_0.json", b"[]"), ("C:\\x\\StreamingHistory_music_1.json", b"[]")],
        tmp_path,
    )
    assert sorted(p.name for p in export.iterdir()) == [
        "StreamingHistory_music_0.json",
        "StreamingHistory_music_1.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_one_zip_is_the_export(tmp_path):
    body = tmp_path / "made.zip"
    with zipfile.ZipFile(body, "w") as zf:
        zf.writestr("Spotify Extended Streaming History/Streaming_History_Audio_2024_0.json", "[]")
    (tmp_path / "in").mkdir()
    export = uploads.save_uploads([("my_spotify_data.zip", body.read_bytes())], tmp_path / "in")
    assert export == tmp_path / "in" / "my_spotify_data.zip" and zipfile.is_zipfile(export)


def test_lastfm_and_listenbrainz_files_are_exports_too(tmp_path):
    files = [("scrobbles.csv", b"uts,utc_time,artist\n"), ("listens.jsonl", b"{}\n"), ("more.json", b"[]")]
    export = uploads.save_uploads(files, tmp_path)
    assert sorted(p.name for p in export.iterdir()) == ["listens.jsonl", "more.json", "scrobbles.csv"]
    assert {"csv", "jsonl", "zip", "json"} <= set(uploads.UPLOAD_TYPES)


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ([], "Choose the export"),
        ([("a.zip", b"PK"), ("b.zip", b"PK")], "one .zip"),
        ([("a.zip", b"PK"), ("StreamingHistory_music_0.json", b"[]")], "not both"),
        ([("notes.txt", b"hi")], "Not an export file: notes.txt"),
        ([("a.zip", b"PK"), ("scrobbles.csv", b"uts")], "not both"),
        ([("x.json", b"[]"), ("dir/x.json", b"[]")], "same file name twice: x.json"),
        ([("export.zip", b"not a zip")], "not a .zip archive"),
        ([("..", b"[]")], "not a file name"),
    ],
)
def test_what_is_not_an_export_is_refused(tmp_path, files, why):
    with pytest.raises(uploads.Refused, match=why):
        uploads.save_uploads(files, tmp_path)


# -- the import itself -----------------------------------------------------------------
def _plays(data_dir: Path, user_id: str) -> int:
    con = duckdb.connect(str(data_dir / "warehouse.snapshot.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM bq_plays WHERE user_id = ?", [user_id]).fetchone()
        assert row is not None
        return int(row[0])
    finally:
        con.close()


@pytest.fixture
def household_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The two-listener household's data directory, the environment ``start_import`` reads set to
    it (local mode), and the temporary folder uploads wait in: (data directory, temp folder)."""
    data, scratch = tmp_path / "data", tmp_path / "tmp"
    scratch.mkdir()
    build_dashboard_warehouse(data, household_plays())
    write_registry(data)
    for var in ("SPOTIFY_WAREHOUSE_SNAPSHOT", "SPOTIFY_CLIENT_ID", "SPOTIFY_KEEP_IP_ADDRESSES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SPOTIFY_DEPLOYMENT", "local")
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return data, scratch


def _finished(job: uploads.ImportJob) -> uploads.ImportJob:
    job.wait(300)
    assert not job.running
    return job


def test_an_upload_is_imported_once_into_the_listener_and_its_bytes_are_gone(tmp_path, household_import):
    """``start_import`` as the page calls it: the command's import into the deployment's stores."""
    from spotify_sandbox.exports import FOLDER, generate_export

    data, scratch = household_import
    export = tmp_path / "my_spotify_data.zip"
    summary = generate_export(
        export, 200, seed=5, start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2021, 1, 1, tzinfo=UTC)
    )
    bob, alice = _plays(data, BOB), _plays(data, ALICE)
    upload = [(export.name, export.read_bytes())]

    first = _finished(uploads.start_import(upload, BOB))
    assert first.error is None and first.report is not None
    assert first.report.added == summary.expected_added > 0
    assert first.report.path == export.name  # named by the upload, not its temporary copy
    assert first.share == 1.0 and first.rows_read == summary.rows
    assert (_plays(data, BOB), _plays(data, ALICE)) == (bob + first.report.added, alice)

    again = _finished(uploads.start_import(upload, BOB))
    assert again.report is not None and again.report.added == 0
    assert _plays(data, BOB) == bob + first.report.added

    # Alice's export (her Spotify id in every row's ``username``) is not Bob's to import.
    member = next(n for n in zipfile.ZipFile(export).namelist() if "Audio" in n)
    rows = [{**row, "username": ALICE} for row in json.loads(zipfile.ZipFile(export).read(member))]
    theirs = [("Streaming_History_Audio_2020_7.json", json.dumps(rows).encode())]
    refused = _finished(uploads.start_import(theirs, BOB))
    assert refused.report is None
    assert refused.error is not None and f"belongs to Spotify user {ALICE}, not {BOB}" in refused.error
    assert (_plays(data, BOB), _plays(data, ALICE)) == (bob + first.report.added, alice)
    assert FOLDER in member
    assert [p.name for p in scratch.iterdir() if p.name.startswith("spotify-")] == []


def _lastfm_csv(path: Path, rows: int, start: datetime) -> Path:
    """A Last.fm exporter's CSV (the header shape): ``rows`` scrobbles a track length apart."""
    lines = ["uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid"]
    for i in range(rows):
        uts = int(start.timestamp()) + i * 240
        when = datetime.fromtimestamp(uts, UTC).strftime("%d %b %Y, %H:%M")
        lines.append(f'{uts},"{when}",Vinyl Band {i % 3},,Side A,,Groove {i},')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_lastfm_upload_is_imported_once_into_the_listener(tmp_path, household_import):
    """A Last.fm CSV uploaded on the page goes through the same import as the command's (its
    source told by content): its scrobbles become Bob's plays without a Spotify id, once."""
    data, scratch = household_import
    csv_file = _lastfm_csv(tmp_path / "scrobbles.csv", 12, datetime(2019, 6, 1, tzinfo=UTC))
    bob, alice = _plays(data, BOB), _plays(data, ALICE)
    upload = [(csv_file.name, csv_file.read_bytes())]

    first = _finished(uploads.start_import(upload, BOB))
    assert first.error is None and first.report is not None, first.error
    assert first.report.added == 12
    assert (_plays(data, BOB), _plays(data, ALICE)) == (bob + 12, alice)
    again = _finished(uploads.start_import(upload, BOB))
    assert again.report is not None and again.report.added == 0
    assert _plays(data, BOB) == bob + 12
    assert [p.name for p in scratch.iterdir() if p.name.startswith("spotify-")] == []


# -- the page ---------------------------------------------------------------------------
def _import_page(monkeypatch, snapshot, viewer=None, **params):  # type: ignore[no-untyped-def]
    return _open(monkeypatch, snapshot, "import_export", viewer, **params)


def test_the_page_is_listed_and_offers_the_upload_for_the_chosen_listener(dashboard_env, household_snapshot):
    at = _import_page(dashboard_env, household_snapshot, user="bob")
    assert at.title[0].value == "Import your history"
    assert "into **Bob's** plays" in _text(at)
    assert not at.error
    assert at.button(key="import_start").disabled  # nothing chosen yet: nothing to import


def test_the_page_asks_whose_export_it_is_among_several_listeners(dashboard_env, household_snapshot):
    at = _import_page(dashboard_env, household_snapshot)
    assert "choose whose export this is" in at.error[0].value
    assert not [b for b in at.button if b.key == "import_start"]


def test_a_household_member_cannot_import_into_another_listener(dashboard_env, household_snapshot):
    at = _import_page(dashboard_env, household_snapshot, ALICE_HOUSEHOLD, user="bob")
    assert "only your own listening history (Alice)" in at.error[0].value
    assert not [b for b in at.button if b.key == "import_start"]
    own = _import_page(dashboard_env, household_snapshot, ALICE_HOUSEHOLD)
    assert "into **Alice's** plays" in _text(own) and not own.error


def test_the_page_itself_refuses_beyond_loopback_without_a_sign_in(dashboard_env, household_snapshot):
    """The page's own guard, behind ``auth.gate``'s: the page script run on its own, as if served on 0.0.0.0."""
    dashboard_env.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(household_snapshot))
    dashboard_env.setenv("SPOTIFY_DATA_DIR", str(household_snapshot.parent))
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.query_params["user"] = "bob"
        at.run()
    finally:
        st_config.set_option("server.address", before)
    assert not at.exception, at.exception
    assert "without a sign-in, so it imports nothing" in at.error[0].value
    assert not [b for b in at.button if b.key == "import_start"]


# -- A new household member, no plays yet (issue 25: the picker stopped every page) -----------
CAROL = "sandbox-carol"
CAROL_SIGNED_IN = Viewer("carol@example.org", "carol", household=False)


@pytest.fixture
def with_new_member(household_snapshot: Path, tmp_path: Path) -> Path:
    """The household's snapshot, and a registry where Carol was just added (``users add``): no plays."""
    snapshot = tmp_path / household_snapshot.name
    shutil.copyfile(household_snapshot, snapshot)
    registry = tmp_path / "users" / "users.json"
    registry.parent.mkdir()
    users = json.loads((household_snapshot.parent / "users" / "users.json").read_text())
    users["users"].append(
        {"name": "carol", "user_id": CAROL, "display_name": "Carol", "added_at": "2024-05-01T00:00:00+00:00"}
    )
    registry.write_text(json.dumps(users))
    return snapshot


def test_a_new_member_signed_in_reaches_the_import_page(dashboard_env, with_new_member):
    overview = _open(dashboard_env, with_new_member, None, CAROL_SIGNED_IN)
    assert overview.title[0].value == "No plays of yours yet"  # every other page: nothing to show...
    links = [(link.proto.label, link.proto.page) for link in overview.get("page_link")]
    assert links == [("Import your history", "import")], links  # ...and the way to bring them in
    at = _import_page(dashboard_env, with_new_member, CAROL_SIGNED_IN)
    assert at.title[0].value == "Import your history"
    assert "into **Carol's** plays" in _text(at) and not at.error
    assert [b for b in at.button if b.key == "import_start"]


def test_the_owner_imports_for_a_new_member(dashboard_env, with_new_member):
    at = _import_page(dashboard_env, with_new_member, user="carol")
    assert "into **Carol's** plays" in _text(at) and not at.error
    picker = next(s for s in at.sidebar.selectbox if s.label == "Listener")
    assert picker.value == CAROL and "Carol" in picker.options
    # Elsewhere Carol is no listener yet: the pages show plays, and she has none.
    top = _open(dashboard_env, with_new_member, "top", user="carol")
    assert "There is no listener 'carol' you may see here." in top.error[0].value
