"""Import: Spotify's privacy export uploaded in the browser, into the listener's own plays.

The same import as ``spotify-assets import`` (``imports.command.run_import``: the deployment's
stores from the one resource factory, the runner's exactly-once merge under the warehouse's
writer lock, the same report), so a second upload of the same file adds nothing. Whose plays
and where the bytes wait: ``app/uploads.py`` (refused for anyone but the listener; nothing is
imported on a dashboard served beyond loopback without a login). The pages read the snapshot
the writer republishes when the import ends, so the new totals are read after it.

The import needs the pipeline's packages (Dagster among them); a dashboard-only install (the
Community Cloud app) says so instead of offering an upload.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import streamlit as st

from app import auth, data, ui, uploads

if TYPE_CHECKING:
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    from spotify_assets.imports.runner import ProgressEvent


def run(files: list[UploadedFile], user_id: str | None, who: str) -> None:
    """Import ``files`` as ``user_id``'s plays, with a progress bar, then the report and totals."""
    from spotify_assets.deployments import deployment_settings
    from spotify_assets.imports.command import run_import
    from spotify_assets.imports.owner import mismatch
    from spotify_assets.imports.parsers import FileFormatError
    from spotify_assets.settings import MissingSettings
    from spotify_assets.users.adoption import ImportOwnerUnknown

    before = ui.seen(ctx.wh, data.status(ctx.wh), user_id).rows
    bar = st.progress(0.0, text="Importing...")

    def on_progress(event: ProgressEvent) -> None:
        share = event.done_bytes / event.total_bytes if event.total_bytes else 0.0
        bar.progress(min(1.0, share), text=f"Importing... {event.rows_read:,} rows read")

    with uploads.private_folder() as folder:
        try:
            export = uploads.save_uploads(((f.name, f.getbuffer()) for f in files), folder)
            refused = mismatch(export, user_id) if user_id is not None else None
            if refused:
                raise uploads.Refused(f"Not imported: {refused}.")
            report = run_import(
                export,
                deployment_settings(),
                on_progress,
                user_id=user_id,
                source=uploads.described(f.name for f in files),
            )
        except (
            uploads.Refused,
            FileNotFoundError,
            FileFormatError,
            ImportOwnerUnknown,
            MissingSettings,
        ) as exc:
            bar.empty()
            st.error(str(exc))
            return
    bar.progress(1.0, text="Imported")
    (st.warning if report.files_failed else st.success)(
        f"{ui.plural(report.added, 'play')} added to {who} history"
        + (
            f"; {ui.plural(report.files_failed, 'file')} could not be read (below)."
            if report.files_failed
            else "."
        )
    )
    st.code(report.render(), language=None)
    after = ui.seen(ctx.wh, data.status(ctx.wh), user_id).rows
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
    f"**Account data** (`StreamingHistory_music_*.json`). Upload the .zip, or its JSON files, into "
    f"**{whose}** plays. Plays already here are skipped, so uploading the same file twice adds nothing."
)
files = st.file_uploader(
    "Your privacy export",
    type=list(uploads.UPLOAD_TYPES),
    accept_multiple_files=True,
    key="import_files",
    help=f"Up to {st.get_option('server.maxUploadSize')} MB per file (Streamlit's server.maxUploadSize). "
    "The files are read from a private temporary folder and deleted after the import.",
)
if st.button("Import", type="primary", disabled=not files, key="import_start"):
    run(list(files or []), target, whose)
