"""Recent plays: a searchable, filterable, paged table (filtering and paging happen in SQL)."""

from __future__ import annotations

import math
from typing import cast

import streamlit as st

from app import detail, queries, ui

PAGE_SIZE = 100

ctx = ui.context()
st.title("Recent plays")
# Two rows: the period control needs a full row (in a third of the page it was cut off).
cols = st.columns([3, 2])
ui.seed_from_url("recent_search", "q", lambda raw: len(raw) <= 200)
search = cols[0].text_input("Search", placeholder="track, artist or album", key="recent_search")
ui.keep_in_url("q", search.strip())
content_choice = cols[1].segmented_control(
    "Show", ["music", "podcasts", "all"], default="music", key="recent_content", format_func=str.capitalize
)
content = cast(queries.ContentFilter, content_choice or "music")
period = ui.period_picker("recent", ctx.status, ctx.tz)
include_short = st.toggle("Include streams under 30 s", key="recent_short")

#: Where a play came from, as a listener knows it (the privacy download's two kinds of file).
SOURCE_LABELS = {
    "api": "API",
    "extended_export": "Extended history",
    "account_export": "Account data",
    "lastfm": "Last.fm",
    "listenbrainz": "ListenBrainz",
}
sources_all = ui.frame(ctx.fetch(queries.sources_query()), "sources")
sources = st.multiselect(
    "Source",
    sources_all["source"].tolist() if len(sources_all) else [],
    key="recent_sources",
    format_func=lambda s: SOURCE_LABELS.get(s, s),
)
flt = queries.RecentFilter(
    search=search, content=content, include_short=include_short, period=period, sources=tuple(sources)
)
count = int(ui.frame(ctx.fetch(queries.recent_queries(ctx.tz, flt, PAGE_SIZE, 0)), "count")["n"].iloc[0])
pages = max(1, math.ceil(count / PAGE_SIZE))
if int(st.session_state.get("recent_page", 1)) > pages:
    st.session_state["recent_page"] = 1  # the filter shrank the result
page = int(st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="recent_page"))
res = ctx.fetch(queries.recent_queries(ctx.tz, flt, PAGE_SIZE, (page - 1) * PAGE_SIZE))
rows = ui.frame(res, "rows")
if len(rows):
    rows["image"] = rows["image"].fillna("")  # an empty cell, not the word "None"
    rows["context_type"] = rows["context_type"].fillna("")
    rows["source"] = rows["source"].map(lambda s: SOURCE_LABELS.get(s, s))
st.caption(f"{ui.number(count)} matching plays · times in {ctx.tz}")
# Clicking a row opens its track's page, as on the Top page. Every column has a width of its
# own and together they fit the page beside the sidebar at 1,400 px (about 940 px), so the
# last column is never cut off (with long names, "Source" was): a long name ends in "…" in
# its cell, and a wider window stretches the columns to fill it.
event = st.dataframe(  # type: ignore[call-overload]
    rows,
    hide_index=True,
    width="stretch",
    height="content",  # the page of rows, whole: one scroll bar (the page's), not two
    on_select="rerun",
    selection_mode="single-row",
    key="recent_table",
    column_config={
        "played_at": st.column_config.DatetimeColumn("Played at", format="YYYY-MM-DD HH:mm", width=118),
        "image": st.column_config.ImageColumn("", width=36),
        "track": st.column_config.TextColumn("Track", width=160),
        "artists": st.column_config.TextColumn("Artists", width=120),
        "album": st.column_config.TextColumn("Album", width=120),
        "minutes": st.column_config.NumberColumn("Minutes", format="%.1f", width=58),
        "content_type": st.column_config.TextColumn("Type", width=52),
        "is_play": st.column_config.CheckboxColumn("Counted", width=64),
        "source": st.column_config.TextColumn("Source", width=112),
        "context_type": st.column_config.TextColumn("From", width=58),
        "id": None,
        "key": None,
    },
    column_order=[
        "played_at",
        "image",
        "track",
        "artists",
        "album",
        "minutes",
        "is_play",
        "content_type",
        "source",
        "context_type",
    ],
)
detail.open_on_select(event, rows, "track")
ui.definitions_note()
