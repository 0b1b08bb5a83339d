"""Mood: what the audio features say about your listening, or why there are none."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app import queries, ui

UNAVAILABLE = (
    "**Audio features are unavailable.** Spotify closed its audio-features endpoint to apps "
    "created after November 2024 and answers *403 Forbidden*, so the pipeline stored these tracks "
    "as `unavailable` instead of inventing numbers. To get features from another provider, set "
    "`SPOTIFY_FEATURES_PROVIDER=reccobeats` and run the pipeline again (`make demo`); "
    "unavailable tracks are retried on every run."
)

ctx = ui.context()
st.title("Mood")
period = ui.period_picker("mood", ctx.status, ctx.tz)
res = ctx.fetch(queries.mood_queries(ctx.tz, period))
status = ui.frame(res, "status")
counts = status.groupby("status")["tracks"].sum() if len(status) else pd.Series(dtype="int64")
ok = int(counts.get("ok", 0))
unavailable = int(counts.get("unavailable", 0))

if not ok:
    if unavailable:
        st.warning(UNAVAILABLE, icon=":material/block:")
        st.caption(f"{ui.number(unavailable)} tracks are waiting for features.")
    elif len(status):
        st.info(
            "None of the feature providers knew features for your tracks yet.", icon=":material/search_off:"
        )
    else:
        st.info(
            "No audio features yet: the `audio_features` step of the pipeline has not run. Run `make demo`.",
            icon=":material/hourglass_empty:",
        )
    ui.definitions_note()
    st.stop()

summary = ui.frame(res, "summary").iloc[0]
plays_all = int(summary["plays"])
plays_with = int(summary["plays_with_features"])
if unavailable:
    st.caption(f"{ui.number(unavailable)} tracks have no features yet (provider refused).")
if not plays_with:
    st.info("None of the plays in this period have audio features.")
    st.stop()

cols = st.columns(5)
cols[0].metric(
    "Coverage",
    f"{plays_with / plays_all:.0%}" if plays_all else "-",
    help="Share of plays whose track has audio features; the averages use those plays.",
)
cols[1].metric("Energy", f"{float(summary['energy']):.2f}")
cols[2].metric(
    "Valence", f"{float(summary['valence']):.2f}", help="Musical positiveness, 0 (sad) to 1 (happy)."
)
cols[3].metric("Danceability", f"{float(summary['danceability']):.2f}")
cols[4].metric("Tempo", f"{float(summary['tempo']):.0f} BPM")
without_id = int(summary["plays_without_id"] or 0)
st.caption(
    f"Features known for {plays_with / plays_all:.0%} of plays ({ui.number(plays_with)} of "
    f"{ui.number(plays_all)}); the figures below describe those plays only."
    + (
        f" {ui.plural(without_id, 'play')} have no Spotify id (scrobbles no Spotify play matched, local "
        "files), so no features can be looked up for them."
        if without_id
        else ""
    )
)

st.subheader("Mood map")
st.caption("Each dot is a track you played (size = plays); energy against valence.")
points = ui.frame(res, "map")
quadrants = pd.DataFrame(
    {
        "x": [0.02, 0.98, 0.02, 0.98],
        "y": [0.98, 0.98, 0.02, 0.02],
        "label": ["tense / angry", "happy / upbeat", "sad / low", "calm / content"],
        "align": ["left", "right", "left", "right"],
    }
)
scatter = (
    alt.Chart(points)
    .mark_circle(color=ui.ACCENT, opacity=0.7)
    .encode(
        x=alt.X("valence:Q", scale=alt.Scale(domain=[0, 1]), title="valence (positiveness)"),
        y=alt.Y("energy:Q", scale=alt.Scale(domain=[0, 1]), title="energy"),
        size=alt.Size("plays:Q", legend=None, scale=alt.Scale(range=[20, 600])),
        tooltip=[
            "track:N",
            "artists:N",
            "plays:Q",
            alt.Tooltip("energy:Q", format=".2f"),
            alt.Tooltip("valence:Q", format=".2f"),
        ],
    )
)
# Guides and labels get an explicit colour: Vega's default black vanishes on the dark theme.
rules = alt.Chart(pd.DataFrame({"v": [0.5]})).mark_rule(color=ui.MUTED, strokeDash=[4, 4], opacity=0.8)
labels = [
    alt.Chart(quadrants[quadrants["align"] == side])
    .mark_text(color=ui.MUTED, fontSize=12, align=side, baseline="middle")
    .encode(x="x:Q", y="y:Q", text="label:N")
    for side in ("left", "right")
]
ui.chart(scatter + rules.encode(x="v:Q") + rules.encode(y="v:Q") + labels[0] + labels[1], height=380)

left, right = st.columns(2)
with left:
    st.subheader("Tempo")
    ui.chart(
        alt.Chart(ui.frame(res, "tempo"))
        .mark_bar(color=ui.SECOND)
        .encode(
            x=alt.X("bpm:Q", bin=alt.Bin(step=5, binned=True), title="BPM"),
            x2="bpm_end:Q",
            y=alt.Y("plays:Q"),
            tooltip=["bpm:Q", "plays:Q"],
        )
        .transform_calculate(bpm_end="datum.bpm + 5"),
        height=220,
    )
with right:
    st.subheader("Danceability")
    ui.chart(
        alt.Chart(ui.frame(res, "danceability"))
        .mark_bar(color=ui.THIRD)
        .encode(
            x=alt.X("danceability:Q", bin=alt.Bin(step=0.05, binned=True), title="danceability"),
            x2="d_end:Q",
            y=alt.Y("plays:Q"),
            tooltip=["danceability:Q", "plays:Q"],
        )
        .transform_calculate(d_end="datum.danceability + 0.05"),
        height=220,
    )

st.subheader("Monthly trend")
monthly = ui.frame(res, "monthly").melt(
    id_vars=["month", "plays"], value_vars=["energy", "valence", "danceability"], var_name="feature"
)
ui.chart(
    alt.Chart(monthly)
    .mark_line(point=True)
    .encode(
        x=alt.X("utcyearmonth(month):T", title=None),
        y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title="play-weighted average"),
        color=alt.Color(
            "feature:N",
            scale=alt.Scale(
                domain=["energy", "valence", "danceability"], range=[ui.ACCENT, ui.SECOND, ui.THIRD]
            ),
            legend=alt.Legend(orient="top", title=None),
        ),
        tooltip=[
            alt.Tooltip("utcyearmonth(month):T", format="%b %Y"),
            "feature:N",
            alt.Tooltip("value:Q", format=".2f"),
        ],
    ),
    height=260,
)
ui.definitions_note()
