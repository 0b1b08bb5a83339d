"""Overview: the headline numbers, freshness and a daily-minutes sparkline."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app import data, now_playing, queries, ui

ctx = ui.context()
st.title("Overview")
now_playing.now_playing(ctx.user)
period = ui.period_picker("overview", ctx.status, ctx.tz)
previous = queries.previous_period(period, now=data.hour_anchor())
res = ctx.fetch(queries.overview_queries(ctx.tz, period, previous))
totals = ui.frame(res, "totals").iloc[0]
daily = ui.frame(res, "daily")
last = ui.frame(res, "last_track")
top_artist = ui.frame(res, "top_artist")
podcasts = ui.frame(res, "podcasts")

if not int(totals["plays"] or 0):
    # Zeros, "+0" arrows and another period's charts would read as figures; say it instead.
    st.info("No plays in this period.")
    ui.definitions_note()
    st.stop()

st.caption(
    f"Your listening from {ui.local(totals['first_play'], ctx.tz, '%d %b %Y')} "
    f"to {ui.local(totals['last_play'], ctx.tz, '%d %b %Y')} ({ctx.tz})."
)

ui.headline_metrics(res, period)

# Zero-fill the (small, already aggregated) daily series over the period's days, so quiet days
# show as dips and the average counts them: from the period's first day (all time: the first
# play's) to its last (an open end: today, the hour the period is anchored to).
if len(daily):
    daily["day"] = pd.to_datetime(daily["day"])
    first_day = ui.local_day(period.start, ctx.tz) if period.start is not None else daily["day"].min()
    if period.end is not None:
        last_day = ui.local_day(period.end - pd.Timedelta(microseconds=1), ctx.tz)
    elif period.start is not None:
        last_day = max(daily["day"].max(), ui.local_day(data.hour_anchor(), ctx.tz))
    else:
        last_day = daily["day"].max()
    days = pd.date_range(first_day, last_day, freq="D")
    daily = daily.set_index("day").reindex(days, fill_value=0).rename_axis("day").reset_index()

# Minutes, or plays where no play of the period has a known length (ui.charted).
measure = ui.charted(daily)
row2 = st.columns([2, 1, 1, 1])
with row2[0]:
    avg = float(daily[measure].mean()) if len(daily) else 0.0
    st.metric(
        f"{measure.capitalize()} per day",
        f"{avg:,.0f}" if measure == "minutes" or avg >= 10 else f"{avg:,.1f}",
        chart_data=daily[measure].round(1).tolist() if len(daily) >= ui.FEW_DAYS else None,
        chart_type="area",
        help=f"Average over the {ui.plural(len(daily), 'day')} of this period, including days without music.",
    )
if len(last):
    row = last.iloc[0]
    row2[1].metric(
        "Last play",
        ui.age(pd.Timestamp(row["played_at"]).to_pydatetime()),
        help=f"{row['track_name']} - {row['artist_names']} ({ui.local(row['played_at'], ctx.tz)})",
    )
row2[2].metric(
    ui.ARRIVED_LABEL,
    ui.age(ctx.status.published_at),
    help="When your newest plays reached this dashboard from Spotify (or from an imported history).",
)
if len(top_artist):
    with row2[3]:
        ui.name_card(
            "#1 artist",
            str(top_artist.iloc[0]["artist"]),
            ui.plural(int(top_artist.iloc[0]["plays"]), "play"),
        )

if len(last):
    row = last.iloc[0]
    art, text = st.columns([1, 12])
    with art:
        ui.cover(row["album_image_url"], 64, str(row["album_name"] or ""))
    text.markdown(
        f"**Last played:** {row['track_name']} - {row['artist_names']}  \n"
        f"{row['album_name'] or ''} · {ui.local(row['played_at'], ctx.tz)}"
    )

hourly = ui.frame(res, "hourly")
if len(daily) >= ui.FEW_DAYS:
    st.subheader(f"{measure.capitalize()} per day")
    ui.chart(
        alt.Chart(daily)
        .mark_area(color=ui.ACCENT, opacity=0.35, line={"color": ui.ACCENT})
        .encode(
            x=alt.X("utcyearmonthdate(day):T", title=None),
            y=alt.Y(f"{measure}:Q", title=measure),
            tooltip=[
                alt.Tooltip("utcyearmonthdate(day):T", format="%a %d %b %Y"),
                alt.Tooltip("minutes:Q", format=",.0f"),
                alt.Tooltip("plays:Q", format=","),
            ],
        ),
        height=220,
    )
elif len(hourly):
    # A first day: one point of a daily area chart draws nothing, so show its hours.
    measure = ui.charted(hourly)
    st.subheader(f"{measure.capitalize()} per hour")
    hourly["minutes"] = hourly["minutes"].astype(float).round(0)
    ui.chart(
        alt.Chart(hourly)
        .mark_bar(color=ui.ACCENT, cornerRadiusTopLeft=2, cornerRadiusTopRight=2)
        .encode(
            x=alt.X("utcyearmonthdatehours(hour):O", title=None, axis=alt.Axis(format="%H:00", labelAngle=0)),
            y=alt.Y(f"{measure}:Q", title=measure),
            tooltip=[
                alt.Tooltip("utcyearmonthdatehours(hour):O", title="hour", format="%a %d %b %H:00"),
                alt.Tooltip("minutes:Q", format=",.0f"),
                alt.Tooltip("plays:Q", format=","),
            ],
        )
        .properties(width=alt.Step(36)),
        height=220,
        stretch=False,
    )

pod = podcasts.iloc[0] if len(podcasts) else None
if pod is not None and int(pod["episodes"]):
    st.caption(
        f"Plus {ui.number(pod['episodes'])} podcast episodes ({float(pod['hours']):,.1f} h), not counted above."
    )
ui.definitions_note()
