"""Import: an export (Spotify's privacy export, Last.fm's or ListenBrainz's) uploaded in the browser, into
the listener's own plays; on a fresh install too, where the welcome page links here.

The same import as ``spotify-assets import`` (``imports.command.run_import``: the deployment's
stores from the one resource factory, the runner's exactly-once merge under the warehouse's
writer lock, the same report), so a second upload of the same file adds nothing. Whose plays
and where the bytes wait: ``app/uploads.py`` (refused for anyone but the listener; nothing is
imported on a dashboard served beyond loopback without a login). The import runs on a thread
of its own (``uploads.start_import``): a click while it runs reruns the page, which follows the
same import instead of stopping it. The pages read the snapshot the writer republishes when the
import ends, so the new totals are read after it.

The import needs the pipeline's packages (Dagster among them); a dashboard-only install (the
Community Cloud app) says so instead of offering an upload.
"""

from __future__ import annotations

import importlib.util

import streamlit as st

from app import auth, data, ui, uploads

#: The session's import (``uploads.ImportJob``), with whose history it went into and its count before.
JOB_KEY = "_import_job"


def show(job: uploads.ImportJob, who: str, before: int) -> None:
    """The import's progress while it runs, then the command's report and the new totals."""
    bar = st.progress(job.share, text="Importing...")
    while job.running:
        bar.progress(job.share, text=f"Importing... {job.rows_read:,} rows read")
        job.wait(0.25)
    if job.error is not None or job.report is None:
        bar.empty()
        st.error(job.error or "The import stopped; plays merged before it stay.")
        return
    report = job.report
    bar.progress(1.0, text="Imported")
    failed = (
        f"; {ui.plural(report.files_failed, 'file')} could not be read (below)" if report.files_failed else ""
    )
    said = f"{ui.plural(report.added, 'play')} added to {who} history{failed}."
    if report.files_failed:
        st.warning(said)
    else:
        st.success(said)
    st.code(report.render(), language=None)
    # Read after the import: the writer republished the snapshot the pages read.
    after = ui.seen(ctx.wh, data.status(ctx.wh), job.user_id).rows
    st.markdown(f"Plays in {who} history: **{after:,}** (before this import: {before:,}).")


viewer = auth.current_viewer()
ctx = ui.context()
home = ui.household(ctx, viewer)
st.title("Import your history")
try:
    target = uploads.upload_target(
        viewer, ctx.user, home.several, home.known, st.get_option("server.address")
    )
except uploads.Refused as exc:
    st.error(str(exc))
    st.stop()
whose = f"{home.label(target)}'s" if target is not None else "your"
if importlib.util.find_spec("dagster") is None:
    st.info(
        "Importing runs the pipeline's import, which this dashboard-only install does not have: "
        "run `spotify-assets import PATH` where the pipeline runs."
    )
    st.stop()
st.markdown(
    "Spotify sends your listening history when you ask for it under *Account → Privacy → Download "
    "your data*: the **Extended streaming history** (`Streaming_History_Audio_*.json`) or the "
    "**Account data** (`StreamingHistory_music_*.json`). A **Last.fm** exporter's CSV or JSON pages and a "
    "**ListenBrainz** export (its .zip, or JSON) are taken too: a listen Spotify also played counts once. "
    f"Upload the .zip, or its files, into **{whose}** plays. Plays already here are skipped, so "
    "uploading the same file twice adds nothing."
)
files = st.file_uploader(
    "Your export",
    type=list(uploads.UPLOAD_TYPES),
    accept_multiple_files=True,
    key="import_files",
    help=f"Up to {st.get_option('server.maxUploadSize')} MB per file (Streamlit's server.maxUploadSize). "
    "The files are read from a private temporary folder and deleted after the import.",
)
running = st.session_state.get(JOB_KEY)
busy = running is not None and running[0].running
if st.button("Import", type="primary", disabled=not files or busy, key="import_start"):
    before = ui.seen(ctx.wh, data.status(ctx.wh), target).rows
    job = uploads.start_import([(f.name, f.getvalue()) for f in files or []], target)
    st.session_state[JOB_KEY] = (job, whose, before)
if JOB_KEY in st.session_state:
    show(*st.session_state[JOB_KEY])
