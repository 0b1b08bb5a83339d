"""When: hour x weekday heatmap in the viewer's time zone, listening over time, streaks, sessions."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app import queries, ui

# UTC time units: the SQL already returns local calendar dates, the browser must not shift them.
TIME_UNITS: dict[str, Any] = {"day": "utcyearmonthdate", "week": "utcyearweek", "month": "utcyearmonth"}
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

ctx = ui.context()
st.title("When you listen")
left, right = st.columns([3, 1])
with left:
    period = ui.period_picker("when", ctx.status, ctx.tz, default="all")
with right:
    grain_choice = st.segmented_control(
        "Over time by", list(queries.GRAINS), default="week", key="when_grain", format_func=str.capitalize
    )
grain: queries.Grain = grain_choice or "week"
res = ctx.fetch(queries.when_queries(ctx.tz, period, grain))
heat = ui.frame(res, "heatmap")
timeline = ui.frame(res, "timeline")
streaks = ui.frame(res, "streaks")
sessions = ui.frame(res, "sessions")

if not len(heat):
    st.info("No plays in this period.")
    st.stop()

# Peak hour and weekday from the (at most 168-cell) aggregate.
by_hour = heat.groupby("hour")["plays"].sum()
by_dow = heat.groupby("dow")["plays"].sum()
peak_hour = int(by_hour.idxmax())
cols = st.columns(4)
cols[0].metric("Peak hour", f"{peak_hour:02d}:00", help=f"The hour with the most plays, in {ctx.tz}.")
cols[1].metric("Busiest day", WEEKDAYS[int(by_dow.idxmax()) - 1])
if len(streaks):
    best = streaks.iloc[0]
    cols[2].metric(
        "Longest streak",
        f"{int(best['days'])} days",
        f"{pd.Timestamp(best['first_day']):%d %b %Y} - {pd.Timestamp(best['last_day']):%d %b %Y}",
        delta_color="off",
        delta_arrow="off",
        help="Consecutive days with at least one play.",
    )
if len(sessions):
    top = sessions.iloc[0]
    cols[3].metric(
        "Longest session",
        ui.duration(float(top["minutes"])),
        f"{int(top['plays'])} plays on {ui.local(top['started'], ctx.tz, '%d %b %Y')}",
        delta_color="off",
        delta_arrow="off",
        help=f"A session ends after {queries.SESSION_GAP_MINUTES} minutes without a play.",
    )

st.subheader(f"Hour of day x weekday ({ctx.tz})")
grid = pd.MultiIndex.from_product([range(1, 8), range(24)], names=["dow", "hour"])
heat = heat.set_index(["dow", "hour"]).reindex(grid, fill_value=0).reset_index()
heat["weekday"] = heat["dow"].map(lambda d: WEEKDAYS[int(d) - 1])
heat["minutes"] = heat["minutes"].astype(float).round(0)
ui.chart(
    alt.Chart(heat)
    .mark_rect(cornerRadius=3)
    .encode(
        x=alt.X("hour:O", title="hour"),
        y=alt.Y("weekday:N", sort=WEEKDAYS, title=None),
        # Translucent-to-accent reads on light and dark backgrounds alike.
        color=alt.Color("plays:Q", title="plays", scale=alt.Scale(range=["rgba(29,185,84,0.06)", ui.ACCENT])),
        tooltip=["weekday:N", "hour:O", "plays:Q", "minutes:Q"],
    ),
    height=260,
)

st.subheader(f"Listening per {grain}")
timeline["minutes"] = timeline["minutes"].astype(float).round(0)
ui.chart(
    alt.Chart(timeline)
    .mark_bar(color=ui.ACCENT, cornerRadiusTopLeft=2, cornerRadiusTopRight=2)
    .encode(
        x=alt.X("period:T", timeUnit=TIME_UNITS[grain], title=None),
        y=alt.Y("minutes:Q", title="minutes"),
        tooltip=[alt.Tooltip("period:T", title=f"{grain} from", format="%d %b %Y"), "plays:Q", "minutes:Q"],
    ),
    height=240,
)

left, right = st.columns(2)
with left:
    st.subheader("Longest streaks")
    table = pd.DataFrame(
        {
            "From": pd.to_datetime(streaks["first_day"]).dt.strftime("%d %b %Y"),
            "To": pd.to_datetime(streaks["last_day"]).dt.strftime("%d %b %Y"),
            "Days": streaks["days"].astype(int),
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
with right:
    st.subheader("Longest sessions")
    if len(sessions):
        st.caption(
            f"{ui.number(sessions['n_sessions'].iloc[0])} sessions, "
            f"{ui.duration(float(sessions['avg_minutes'].iloc[0]))} on average."
        )
    table = pd.DataFrame(
        {
            "Started": [ui.local(t, ctx.tz) for t in sessions["started"]],
            "Ended": [ui.local(t, ctx.tz, "%H:%M") for t in sessions["ended"]],
            "Plays": sessions["plays"].astype(int),
            "Length": [ui.duration(float(m)) for m in sessions["minutes"]],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
ui.definitions_note()
