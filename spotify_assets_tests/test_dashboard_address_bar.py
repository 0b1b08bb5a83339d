"""The contract of ``app/address_bar.py``, the dashboard's one module beneath Streamlit's public API.

It writes a view's state into the address bar without a step in the browser's history (issue 25:
a typed link's first load pushed ``?tz=`` and ``&period=`` as entries of their own). An upgrade
of Streamlit must fail here, naming what to re-check, rather than bring the extra entries back
or break the pages: this file pins the version and each private name the module relies on. What
it does for the viewer is tested in a browser, ``test_dashboard_history_browser.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import streamlit
from streamlit.runtime.scriptrunner_utils.script_run_context import ScriptRunContext
from streamlit.runtime.state.query_params import QueryParams

from app import address_bar

STATIC_JS = Path(streamlit.__file__).parent / "static" / "static" / "js"


def test_installed_streamlit_is_the_verified_release() -> None:
    assert streamlit.__version__ == address_bar.VERIFIED_STREAMLIT_VERSION, (
        f"Streamlit {streamlit.__version__} is installed; app/address_bar.py was verified against "
        f"{address_bar.VERIFIED_STREAMLIT_VERSION}. Check the names this file lists on the new "
        "release, and that the browser test still passes, then bump VERIFIED_STREAMLIT_VERSION."
    )


def test_the_private_names_are_there() -> None:
    params = QueryParams()
    params._set_item_internal("tz", "UTC")
    assert params._query_params == {"tz": "UTC"}
    assert "query_string" in ScriptRunContext.__dataclass_fields__


def test_the_frontend_still_pushes_on_every_query_change_and_skips_an_unchanged_one() -> None:
    """Why the module exists (a push per change) and why it works (no push when the address bar
    already holds the query): both in the frontend's ``handlePageInfoChanged``."""
    bundle = next(
        p.read_text() for p in STATIC_JS.glob("index.*.js") if "handlePageInfoChanged" in p.read_text()
    )
    handler = re.search(r"handlePageInfoChanged=.{0,400}", bundle)
    assert handler, "handlePageInfoChanged is gone: re-check how the frontend writes the address"
    assert "document.location.search" in handler.group(0) and "pushState" in handler.group(0), handler.group(
        0
    )
