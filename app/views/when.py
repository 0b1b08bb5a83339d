"""When: hour x weekday heatmap in the viewer's time zone, listening over time, streaks, sessions."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app import data, queries, ui

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
#: Weeks start on Monday (the SQL's ``date_trunc('week')``, ISO 8601). Bars are drawn from
#: each period's first day to the next's, labelled by that Monday's date: Vega's own week
#: unit counts Sunday weeks and labels a January Monday "W00".
STEP = {"day": pd.DateOffset(days=1), "week": pd.DateOffset(weeks=1), "month": pd.DateOffset(months=1)}
LABEL = {"day": "%a %d %b %Y", "week": "Week of Mon %d %b %Y", "month": "%B %Y"}
#: A timeline narrower than this many periods is drawn at this width, not one bar per page.
MIN_PERIODS = 8

ctx = ui.context()
st.title("When you listen")
left, right = st.columns([3, 1])
with left:
    period = ui.period_picker("when", ctx.status, ctx.tz)
with right:
    ui.seed_from_url("when_grain", "by", lambda raw: raw in queries.GRAINS, "week")
    grain_choice = st.segmented_control(
        "Over time by", list(queries.GRAINS), key="when_grain", format_func=str.capitalize
    )
grain: queries.Grain = grain_choice or "week"
ui.keep_in_url("by", grain)
res = ctx.fetch(queries.when_queries(ctx.tz, period, grain))
heat = ui.frame(res, "heatmap")
timeline = ui.frame(res, "timeline")
streaks = ui.frame(res, "streaks")
sessions = ui.frame(res, "sessions")
extent = ui.frame(res, "extent")

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
        ui.plural(int(best["days"]), "day"),
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
        f"{ui.plural(int(top['plays']), 'play')} on {ui.local(top['started'], ctx.tz, '%d %b %Y')}",
        delta_color="off",
        delta_arrow="off",
        help=f"Time played in the session with the most; a session ends after "
        f"{queries.SESSION_GAP_MINUTES} minutes without a play.",
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
        tooltip=[
            "weekday:N",
            "hour:O",
            alt.Tooltip("plays:Q", format=","),
            alt.Tooltip("minutes:Q", format=","),
        ],
    ),
    height=260,
)


def _local_day(value: object) -> pd.Timestamp:
    return pd.Timestamp(ui.local(value, ctx.tz, "%Y-%m-%d"))  # type: ignore[arg-type]


# A period is partial when the range shown does not cover all of it: the first one when the
# range (or the history) starts after its first day, the last one when the range ends (or
# today is) before its last day. Unmarked, such periods read as dips.
st.subheader(f"Listening per {grain}")
first_play = extent["first_play"].iloc[0]
range_start = _local_day(period.start if period.start is not None else first_play)
range_end = _local_day(period.end) if period.end is not None else _local_day(data.hour_anchor())
range_end += pd.Timedelta(days=1) if period.end is None else pd.Timedelta(0)
timeline["period"] = pd.to_datetime(timeline["period"])
timeline["period_end"] = timeline["period"] + STEP[grain]
timeline["partial"] = ui.partial_flags(timeline["period"], STEP[grain], range_start, range_end)
timeline["label"] = timeline["period"].dt.strftime(LABEL[grain]) + timeline["partial"].map(
    {True: " (partial)", False: ""}
)
timeline["minutes"] = timeline["minutes"].astype(float).round(0)
# Minutes, or plays where none of them has a known length (ui.charted).
measure = ui.charted(timeline)
domain_end = max(timeline["period_end"].max(), timeline["period"].min() + MIN_PERIODS * STEP[grain])
# Each bar covers its period (less a small gap); the scale is UTC because the SQL already
# returns local calendar dates, which the browser must not shift into its own zone.
timeline["bar_end"] = timeline["period"] + (timeline["period_end"] - timeline["period"]) * 0.85


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


ui.chart(
    alt.Chart(timeline)
    .mark_bar(cornerRadiusTopLeft=2, cornerRadiusTopRight=2)
    .encode(
        x=alt.X(
            "period:T",
            title=None,
            scale=alt.Scale(type="utc", domain=[_ms(timeline["period"].min()), _ms(domain_end)]),
            axis=alt.Axis(format="%d %b %Y" if grain != "month" else "%b %Y"),
        ),
        x2="bar_end:T",
        y=alt.Y(f"{measure}:Q", title=measure),
        y2=alt.datum(0),
        color=alt.Color(
            "partial:N",
            scale=alt.Scale(domain=[False, True], range=[ui.ACCENT, ui.MUTED]),
            legend=alt.Legend(
                title=None, orient="top", labelExpr="datum.value ? 'partial period' : 'whole period'"
            ),
        ),
        tooltip=[
            alt.Tooltip("label:N", title=grain),
            alt.Tooltip("plays:Q", format=","),
            alt.Tooltip("minutes:Q", format=","),
        ],
    ),
    height=240,
)
if timeline["partial"].any():
    st.caption(f"{ui.PARTIAL_CAPTION} Weeks start on Monday.")

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
            f"{ui.plural(int(sessions['n_sessions'].iloc[0]), 'session')}, "
            f"{ui.duration(float(sessions['avg_minutes'].iloc[0]))} played on average. "
            "*Played* adds up the plays' lengths; *Span* runs from the end of the first play to the "
            f"end of the last and includes pauses under {queries.SESSION_GAP_MINUTES} min (the first "
            "play's own length is not in it, since Spotify records when a play ended)."
        )
    table = pd.DataFrame(
        {
            "Started": [ui.local(t, ctx.tz) for t in sessions["started"]],
            "Ended": [ui.local(t, ctx.tz) for t in sessions["ended"]],
            "Plays": sessions["plays"].astype(int),
            "Played": [ui.duration(float(m)) for m in sessions["minutes"]],
            "Span": [
                ui.duration((ui.utc(e) - ui.utc(b)).total_seconds() / 60)
                for b, e in zip(sessions["started"], sessions["ended"], strict=True)
            ],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
ui.definitions_note()
