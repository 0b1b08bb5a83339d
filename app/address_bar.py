"""The address bar kept up to date without steps in the browser's history.

Streamlit's frontend turns every change of ``st.query_params`` into a history entry of its own
(``pushState``). A view's state the viewer did not change (the browser's time zone, the default
period, the period carried to another page) was written that way on arrival, so a typed link
became three entries (``/top``, ``/top?tz=…``, ``/top?tz=…&period=…``) and Back stayed on the
page. Such state is written here instead (``replace``): into this run's query parameters without
the message that makes the entry, and into the address bar with ``history.replaceState``. What
the viewer changes (a widget's callback) still goes through ``st.query_params``: one entry, which
Back undoes.

Streamlit has no public way to do this (1.67): its private names are used in this module only,
and ``test_dashboard_address_bar.py`` pins them (a contract test, as for Dagster's).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
from streamlit.runtime.state.session_state_proxy import get_session_state

#: The Streamlit release whose private names below were checked (``test_dashboard_address_bar.py``).
VERIFIED_STREAMLIT_VERSION = "1.67.0"
#: Counts this session's replacements: the script must differ from the one already on the page,
#: or Streamlit keeps the old element and does not run it again.
_COUNT_KEY = "_address_replacements"
#: The element carrying the script is hidden: it draws nothing and takes no room between blocks.
_HIDE = '<style>[data-testid="stElementContainer"]:has(.sp-address){display:none}</style>'


def replace(param: str, value: str | None) -> None:
    """Set ``param`` to ``value`` (``None``: remove it) in this run's query parameters and in the
    address bar, replacing the current history entry instead of adding one."""
    with get_session_state().query_params() as params:
        if value is None:
            params._query_params.pop(param, None)
        else:
            params._set_item_internal(param, value)
        ctx = get_script_run_ctx()
        if ctx is not None:  # what the session (and AppTest) reads as the address's query
            ctx.query_string = urlencode(params._query_params, doseq=True)
    count = st.session_state[_COUNT_KEY] = st.session_state.get(_COUNT_KEY, 0) + 1
    script = (
        "(() => { const u = new URL(window.location.href);"
        f" const k = {json.dumps(param)}, v = {json.dumps(value)};"
        " if (v === null) u.searchParams.delete(k); else u.searchParams.set(k, v);"
        " if (u.href !== window.location.href) window.history.replaceState(window.history.state, '', u.href);"
        f" }})(); /* {count} */"
    )
    st.html(f'{_HIDE}<span class="sp-address"></span><script>{script}</script>', unsafe_allow_javascript=True)
