"""Wrapped for any year (``/wrapped?year=2024``): the year in review and a shareable PNG card."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from app import card, data, detail, queries, ui

ctx = ui.context()
years = [int(y) for y in ui.frame(ctx.fetch(queries.years_query(ctx.tz)), "years")["year"]]
raw_year = st.query_params.get("year")
if raw_year is not None and not (raw_year.isdigit() and int(raw_year) in years) and years:
    ui.url_notice(f"year={raw_year}", str(st.session_state.get("wrapped_year", years[0])))
ui.seed_from_url("wrapped_year", "year", lambda raw: raw.isdigit() and int(raw) in years)
if "wrapped_year" in st.session_state:
    st.session_state["wrapped_year"] = int(st.session_state["wrapped_year"])
title_slot = st.empty()  # the title goes above the (narrow) year picker
year = int(st.columns([1, 5])[0].selectbox("Year", years, key="wrapped_year"))
ui.keep_in_url("year", str(year))
res = ctx.fetch(queries.wrapped_queries(ctx.tz, year))
totals = ui.frame(res, "totals").iloc[0]
plays = int(totals["plays"] or 0)
minutes = float(totals["hours"] or 0) * 60
title_slot.title(f"{ui.whose(ctx)} {year} in music")
# A year the plays do not cover whole (the history starts in it, or it is this year) is said to
# be partial: "42-day streak, 60 new artists" of six weeks must not read as a whole year's.
covered = (date(year, 1, 1), date(year, 12, 31))
if plays:
    today = ui.local_day(data.hour_anchor(), ctx.tz).date()
    covered = (
        ui.local_day(totals["first_play"], ctx.tz).date() if year == min(years) else date(year, 1, 1),
        min(today, date(year, 12, 31)),
    )
    note = ui.partial_note(str(year), *covered, (date(year, 1, 1), date(year, 12, 31)))
    if note:
        st.info(note, icon=":material/timelapse:")

artists, tracks, albums = (ui.frame(res, n) for n in ("artists", "tracks", "albums"))
busiest = ui.frame(res, "busiest_day")
streaks = ui.frame(res, "streaks")
found = ui.frame(res, "discoveries").iloc[0]
mood = ui.frame(res, "mood").iloc[0]

busiest_text = (
    f"{pd.Timestamp(busiest['day'].iloc[0]):%a %d %b} ({ui.duration(float(busiest['minutes'].iloc[0]))})"
    if len(busiest)
    else "-"
)
streak_text = ui.plural(int(streaks["days"].iloc[0]), "day") if len(streaks) else "-"
found_text = (
    f"{ui.plural(int(found['new_artists']), 'artist')}, {ui.plural(int(found['new_tracks']), 'track')}"
)
mood_text = ""
if int(mood["plays_with_features"] or 0):
    mood_text = ui.mood_word(float(mood["energy"]), float(mood["valence"]))
    mood_text += f" (energy {float(mood['energy']):.2f}, valence {float(mood['valence']):.2f})"

cols = st.columns(4)
cols[0].metric("Minutes", ui.number(minutes))
cols[1].metric("Plays", ui.number(plays))
cols[2].metric("Longest streak", streak_text)
cols[3].metric(
    "New artists", ui.number(int(found["new_artists"])), help=f"First heard in {year}: {found_text}."
)
ui.untimed_note(totals)
st.markdown(
    f"**Busiest day:** {busiest_text}  \n**Discovered:** {found_text}  \n"
    f"**Mood:** {mood_text or 'no audio features for this year'}"
)

left, mid, right = st.columns(3)
for col, title, df, name_col, kind in (
    (left, "Top artists", artists, "artist", "artist"),
    (mid, "Top tracks", tracks, "track", "track"),
    (right, "Top albums", albums, "album", "album"),
):
    with col:
        st.subheader(title)
        for i, row in enumerate(df.itertuples(index=False), start=1):
            label = f"{i}. {getattr(row, name_col)} · {ui.plural(int(float(row.plays)), 'play')}"  # type: ignore[arg-type]
            if not detail.link(kind, row.id, label, row.key):  # type: ignore[arg-type]
                st.markdown(ui.md_escape(label))

summary = card.WrappedSummary(
    year=year,
    minutes=minutes,
    plays=plays,
    top_artists=[str(a) for a in artists["artist"]],
    top_tracks=[f"{t} - {a}" for t, a in zip(tracks["track"], tracks["artists"], strict=True)],
    busiest_day=busiest_text,
    longest_streak=streak_text,
    discoveries=found_text,
    mood=mood_text,
    # The year's top track's cover (its album's), else the top album's: the placeholder when neither loads.
    cover=next(
        (
            c
            for c in (
                card.cover_bytes(str(u)) for df in (tracks, albums) for u in df["image"].head(1).dropna()
            )
            if c
        ),
        None,
    ),
    # The card is shared without the page's note: its heading says the year is partial.
    starts=covered[0],
    so_far=covered[1] < date(year, 12, 31),
)
st.download_button(
    "Download the summary card (PNG)",
    data=card.summary_png(summary),
    file_name=f"wrapped-{year}.png",
    mime="image/png",
    icon=":material/download:",
)
ui.definitions_note()
