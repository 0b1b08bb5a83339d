"""Discovery: how much new music you find each month, and how much you replay."""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

from app import queries, ui

ctx = ui.context()
st.title("Discovery")
res = ctx.fetch(queries.discovery_queries(ctx.tz))
new = ui.frame(res, "new_per_month")
share = ui.frame(res, "share")
recent = ui.frame(res, "recent_artists")

# Every month from the first play to the newest, zeros included: a month without a discovery
# is a fact to show (and the newest month's figures are its own, not the last month that
# happened to have a discovery).
months = pd.to_datetime(pd.concat([new["month"], share["month"]]))
calendar = pd.date_range(months.min(), months.max(), freq="MS") if len(months) else pd.DatetimeIndex([])
new["month"] = pd.to_datetime(new["month"])
new = (
    new.set_index("month")
    .reindex(calendar, fill_value=0)
    .rename_axis("month")
    .reset_index()
    .astype({"new_tracks": int, "new_artists": int})
)
share["month"] = pd.to_datetime(share["month"])
share["repeat_plays"] = share["plays"] - share["new_plays"]
share["new_share"] = share["new_plays"] / share["plays"]
# A month the history does not cover whole is faded and said: the first month of an imported
# history counts every track as new (100%), and this month is not over (ui.partial_flags, as When).
span = ui.history_days(ctx)
MONTH = pd.DateOffset(months=1)
for df in (new, share):
    df["partial"] = ui.partial_flags(df["month"], MONTH, *span) if span else False
    df["label"] = df["month"].dt.strftime("%B %Y") + df["partial"].map({True: " (partial)", False: ""})
latest = share.iloc[-1] if len(share) else None

if latest is not None:
    month = pd.Timestamp(latest["month"]).strftime("%B %Y")
    latest_new = new.set_index("month").loc[pd.Timestamp(latest["month"])]
    new_artists, new_tracks = int(latest_new["new_artists"]), int(latest_new["new_tracks"])
    cols = st.columns(4)
    cols[0].metric(f"New artists in {month}", ui.number(new_artists))
    cols[1].metric(f"New tracks in {month}", ui.number(new_tracks))
    if bool(latest["partial"]):
        month += " so far"
    cols[2].metric(
        f"New music share, {month}",
        f"{latest['new_share']:.0%}",
        help="Share of the month's plays that went to tracks you first heard that month.",
    )
    total_new = share["new_plays"].sum()
    cols[3].metric(
        "Artists discovered, all time",
        ui.number(new["new_artists"].sum()),
        help=f"{ui.number(total_new)} plays were of tracks in their first month.",
    )

#: Partial months faded (the bars keep their colours, which tell new artists from new tracks).
FADED = alt.condition("datum.partial", alt.value(0.3), alt.value(1.0))


def _covered(month: pd.Timestamp, span: tuple[pd.Timestamp, pd.Timestamp]) -> tuple[date, date]:
    """The days of ``month`` the history covers (``span``: ``ui.history_days``)."""
    last = min(month + MONTH, span[1]) - pd.Timedelta(days=1)
    return max(month, span[0]).date(), last.date()


st.subheader("New artists and tracks per month")
long = new.melt(
    id_vars=["month", "partial", "label"],
    value_vars=["new_artists", "new_tracks"],
    var_name="kind",
    value_name="count",
)
long["kind"] = long["kind"].map({"new_artists": "new artists", "new_tracks": "new tracks"})
ui.chart(
    alt.Chart(long)
    .mark_bar()
    .encode(
        x=alt.X("utcyearmonth(month):O", title=None),
        xOffset="kind:N",
        y=alt.Y("count:Q", title=None),
        color=alt.Color(
            "kind:N",
            scale=alt.Scale(domain=["new artists", "new tracks"], range=[ui.SECOND, ui.ACCENT]),
            legend=alt.Legend(orient="top", title=None),
        ),
        opacity=FADED,
        tooltip=[alt.Tooltip("label:N", title="month"), "kind:N", "count:Q"],
    ),
    height=260,
)

st.subheader("New music vs repeats")
st.caption("Each month's plays, split by whether the track was first heard that month.")
split = share.melt(
    id_vars=["month", "plays", "partial", "label"],
    value_vars=["new_plays", "repeat_plays"],
    var_name="kind",
    value_name="n",
)
split["kind"] = split["kind"].map({"new_plays": "new this month", "repeat_plays": "heard before"})
ui.chart(
    alt.Chart(split)
    .mark_bar()
    .encode(
        x=alt.X("utcyearmonth(month):O", title=None),
        y=alt.Y("n:Q", stack="normalize", axis=alt.Axis(format="%"), title="share of plays"),
        color=alt.Color(
            "kind:N",
            scale=alt.Scale(domain=["new this month", "heard before"], range=[ui.ACCENT, ui.SECOND]),
            legend=alt.Legend(orient="top", title=None),
        ),
        opacity=FADED,
        tooltip=[alt.Tooltip("label:N", title="month"), "kind:N", alt.Tooltip("n:Q", title="plays")],
    ),
    height=240,
)
if span is not None and share["partial"].any():
    notes = [
        ui.partial_note(
            m.strftime("%B %Y"), *_covered(m, span), (m.date(), (m + MONTH - pd.Timedelta(days=1)).date())
        )
        for m in share.loc[share["partial"], "month"]
    ]
    st.caption(
        "Faded bars are partial months: in the first month of a history every track counts as new. "
        + " ".join(n for n in notes if n)
    )

st.subheader("Recent discoveries")
newest = ui.local(ctx.status.newest_play, ctx.tz, "%d %b %Y")
if not len(recent):
    st.info(
        f"No new artists in the 90 days up to your newest play ({newest}): everything you played "
        "then was by artists you already knew.",
        icon=":material/explore_off:",
    )
else:
    st.caption(f"Artists first heard in the 90 days up to your newest play ({newest}).")
    st.dataframe(
        pd.DataFrame(
            {
                "Artist": recent["artist"],
                "First heard": [ui.local(t, ctx.tz, "%d %b %Y") for t in recent["first_heard"]],
                "Plays": recent["plays"].astype(int),
                "Minutes": recent["minutes"].astype(float).round(0).astype(int),
            }
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "Plays": st.column_config.NumberColumn(format="localized"),
            "Minutes": st.column_config.NumberColumn(format="localized"),
        },
    )
ui.definitions_note()
