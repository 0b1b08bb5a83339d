"""Entry point of ``make dashboard``: navigation, sidebar and the first-run guard.

``streamlit run`` puts only this file's folder on ``sys.path``; the repository root is added
so the pages can import ``app.*`` and ``spotify_assets.*`` the same way the tests do.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402
from PIL import Image  # noqa: E402

from app import auth, queries, ui  # noqa: E402

# The tab's icon drawn here (the brand's green), served by this server: a Material icon as
# page_icon makes every page load fetch its SVG from fonts.gstatic.com, an emoji from a CDN.
st.set_page_config(
    page_title="Listening insights", page_icon=Image.new("RGB", (32, 32), "#1DB954"), layout="wide"
)

# Before anything is read: a shared dashboard shows nothing to a visitor not signed in and allowed.
auth.gate()
#: Whose plays this visitor may see (``None``: the owner); the pages ask the same hook.
viewer = auth.current_viewer()

ctx = ui.context()

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/top.py", title="Top", icon=":material/trophy:"),
    st.Page("views/when.py", title="When", icon=":material/schedule:"),
    st.Page("views/mood.py", title="Mood", icon=":material/mood:"),
    st.Page("views/discovery.py", title="Discovery", icon=":material/explore:"),
    st.Page("views/recent.py", title="Recent plays", icon=":material/history:"),
    st.Page("views/wrapped.py", title="Wrapped", icon=":material/celebration:"),
    # Upload a privacy export into the signed-in listener's plays (app/uploads.py says whose).
    st.Page(ui.IMPORT_PAGE, title="Import", icon=":material/upload:", url_path=ui.IMPORT_PATH),
    # Opened from names and rows, by Spotify id (/artist?id=..., /track?id=..., /album?id=...) or,
    # for an item without one, by names' key (/track?key=artist|track).
    st.Page("views/artist.py", title="Artist", url_path="artist", visibility="hidden"),
    st.Page("views/track.py", title="Track", url_path="track", visibility="hidden"),
    st.Page("views/album.py", title="Album", url_path="album", visibility="hidden"),
]

#: The URL path of every page above but the default (a page file's path is its name). Spelled
#: out rather than read from the pages: ``st.Page`` attributes are unset outside ``streamlit run``.
READY_PATHS = ["top", "when", "mood", "discovery", "recent", "wrapped", "import", "compare", "artist", "track", "album"]  # fmt: skip

if ctx.status.state != "ready":
    # Every address the ready app has opens the welcome page, so a bookmarked or shared
    # link (``/top``) on a fresh install explains what to do instead of "Page not found";
    # but Import, where a fresh install's history comes in (the welcome page links to it).
    def welcome() -> None:
        ui.first_run(ctx.status)

    welcome_pages = [
        st.Page(welcome, title="Welcome", url_path="welcome", default=True),
        st.Page(ui.IMPORT_PAGE, title="Import", url_path=ui.IMPORT_PATH, visibility="hidden"),
    ] + [
        st.Page(welcome, title=path.capitalize(), url_path=path, visibility="hidden")
        for path in READY_PATHS
        if path != ui.IMPORT_PATH
    ]
    first = st.navigation(welcome_pages, position="hidden")
    if first.url_path == ui.IMPORT_PATH:
        # Whose history: the registry's listeners (``users add``), none of whom has plays yet.
        ui.listener_picker(ui.household(ctx, viewer), viewer, importing=True)
    first.run()
    st.stop()

home = ui.household(ctx, viewer)
# Compare is always registered and listed only where two listeners may be compared: the page
# itself refuses a viewer without household views, so a shared /compare link says why
# instead of "Page not found".
compare: Literal["visible", "hidden"] = "visible" if home.several and home.everyone else "hidden"
PAGES.insert(
    8, st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:", visibility=compare)
)
page = st.navigation(PAGES)
# The Import page also opens for a listener without plays yet: their history comes in there.
ui.listener_picker(home, viewer, importing=page.url_path == ui.IMPORT_PATH)

with st.sidebar:
    zones = sorted(queries.valid_timezones())
    if ui.TZ_KEY not in st.session_state:
        st.session_state[ui.TZ_KEY] = ui.default_timezone()
    st.selectbox(
        "Time zone",
        zones,
        key=ui.TZ_KEY,
        help="Hours, days and months are shown in this zone. It starts as your browser's and is kept in the link.",
        on_change=ui.changed_in_url,
        args=(ui.TZ_PARAM, ui.TZ_KEY),
    )
    ui.keep_in_url(ui.TZ_PARAM, st.session_state[ui.TZ_KEY])
    # A context made after the picker: the freshness of the plays this viewer sees, not the warehouse's.
    ui.freshness_lines(ui.context())

page.run()
