"""Compare: two listeners of the household side by side (``/compare?user=<id>&with=<id>``).

A household-wide page: shown only where ``auth.may_see_household`` allows (the owner's own
dashboard, listeners who opted in); anyone else is refused before a play is read.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app import auth, detail, listeners, queries, ui

WITH_PARAM = "with"
FEATURES = [("energy", "Energy"), ("valence", "Valence"), ("danceability", "Danceability")]


def side_by_side(frame: pd.DataFrame, x: alt.X, y: alt.Y, tooltip: list[Any], height: int = 260) -> None:
    """Bars of the two listeners next to each other (``xOffset``), each in their own colour."""
    ui.chart(
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=x,
            xOffset="listener:N",
            y=y,
            color=alt.Color("listener:N", scale=alt.Scale(range=[ui.ACCENT, ui.SECOND]), title=None),
            tooltip=tooltip,
        ),
        height=height,
    )


viewer = auth.current_viewer()
ctx = ui.context()
home = ui.household(ctx, viewer)
if not home.everyone:
    ui.refuse(
        "Compare shows two listeners' plays side by side; it is shared only with listeners who opted in."
    )
st.title("Compare")
if not home.several:
    st.info("Compare needs two listeners with plays: add one with `spotify-assets users add NAME`.")
    st.stop()

a = ctx.user or home.ids[0]
others = [uid for uid in home.ids if uid != a]
asked = listeners.resolve(st.query_params.get(WITH_PARAM), home.known)
if "compare_with" not in st.session_state or st.session_state["compare_with"] not in others:
    st.session_state["compare_with"] = asked if asked in others else others[0]
b: str = st.selectbox(f"Compare {home.label(a)} with", others, key="compare_with", format_func=home.label)
ui.keep_in_url(WITH_PARAM, b)
ui.keep_in_url(ui.USER_PARAM, a)
period = ui.period_picker("compare", ctx.status, ctx.tz)
res = ctx.household().fetch(queries.compare_queries(ctx.tz, period, a, b))
la, lb = home.label(a), home.label(b)
st.caption(
    f"The listener picked in the sidebar (**{la}**) and **{lb}**. *Shared* artists and tracks are those "
    f"both played in the period; the taste overlap is the Jaccard index of their top {queries.OVERLAP_TOP} artists."
)

ov = ui.frame(res, "overlap").iloc[0]
union = int(ov["top_union"])
cols = st.columns(4)
cols[0].metric(
    "Taste overlap",
    f"{int(ov['top_shared']) / union:.0%}" if union else "-",
    help=f"Artists in both top {queries.OVERLAP_TOP} lists, over the artists in either.",
)
cols[1].metric("Shared artists", ui.number(int(ov["shared_artists"])))
for col, who, plays, shared in (
    (cols[2], la, ov["plays_a"], ov["shared_plays_a"]),
    (cols[3], lb, ov["plays_b"], ov["shared_plays_b"]),
):
    col.metric(
        f"{who}: plays on shared artists",
        f"{int(shared) / int(plays):.0%}" if int(plays) else "-",
        help=f"{ui.number(int(shared))} of {ui.plural(int(plays), 'play')}.",
    )


# One above the other: side by side, six columns of the artists table do not fit half a page.
# Each list is shown whole (no box of ten rows to scroll in), with thousands separators, and a
# click on a row opens its artist's or track's page, as on the Top page.
def _shared(df: pd.DataFrame, config: dict[str, Any], kind: queries.DetailKind, key: str) -> None:
    event = st.dataframe(  # type: ignore[call-overload]
        df,
        hide_index=True,
        width="stretch",
        height="content",
        on_select="rerun",
        selection_mode="single-row",
        key=key,
        column_config={
            f"{la} plays": st.column_config.NumberColumn(f"{la} plays", format="localized"),
            f"{lb} plays": st.column_config.NumberColumn(f"{lb} plays", format="localized"),
            "id": None,
            "key": None,
            **config,
        },
    )
    detail.open_on_select(event, df, kind)


with st.container():
    st.subheader("Shared artists")
    artists = ui.frame(res, "shared_artists")
    if len(artists):
        _shared(
            pd.DataFrame(
                {
                    "Artist": artists["artist"],
                    f"{la} plays": artists["plays_a"],
                    f"{lb} plays": artists["plays_b"],
                    "Found first": [
                        la if w == "a" else lb if w == "b" else "same day" for w in artists["first"]
                    ],
                    f"{la} first": [ui.local(t, ctx.tz, "%d %b %Y") for t in artists["first_a"]],
                    f"{lb} first": [ui.local(t, ctx.tz, "%d %b %Y") for t in artists["first_b"]],
                    "id": artists["id"],
                    "key": artists["key"],
                }
            ),
            {},
            "artist",
            "compare_artists",
        )
        st.caption("Click a row to open the artist's page.")
    else:
        st.info("No artist both of them played in this period.")
with st.container():
    st.subheader("Shared tracks")
    tracks = ui.frame(res, "shared_tracks")
    if len(tracks):
        _shared(
            pd.DataFrame(
                {
                    "Track": tracks["track"],
                    "Artists": tracks["artists"],
                    f"{la} plays": tracks["plays_a"],
                    f"{lb} plays": tracks["plays_b"],
                    "id": tracks["id"],
                    "key": tracks["key"],
                }
            ),
            {},
            "track",
            "compare_tracks",
        )
        st.caption("Click a row to open the track's page.")
    else:
        st.info("No track both of them played in this period.")

st.subheader("Hour of day")
hours = ui.frame(res, "hours")
if len(hours):
    hours = hours.assign(
        listener=[la if w == "a" else lb for w in hours["who"]],
        share=hours["plays"] / hours.groupby("who")["plays"].transform("sum"),
    )
    side_by_side(
        hours,
        x=alt.X("hour:O", title=f"Hour ({ctx.tz})"),
        y=alt.Y("share:Q", title="Share of plays", axis=alt.Axis(format="%")),
        tooltip=["listener:N", "hour:O", "plays:Q", alt.Tooltip("share:Q", format=".0%")],
    )

st.subheader("Audio features")
feat = ui.frame(res, "features")
feat = feat[feat["plays_with_features"] > 0] if len(feat) else feat
if len(feat):
    long = pd.DataFrame(
        [
            {"listener": la if row["who"] == "a" else lb, "feature": label, "value": float(row[key])}
            for _, row in feat.iterrows()
            for key, label in FEATURES
        ]
    )
    side_by_side(
        long,
        x=alt.X("feature:N", title=None),
        y=alt.Y("value:Q", title="Average (0-1)", scale=alt.Scale(domain=[0, 1])),
        tooltip=["listener:N", "feature:N", alt.Tooltip("value:Q", format=".2f")],
        height=220,
    )
    st.caption(
        " · ".join(
            f"{la if row['who'] == 'a' else lb}: tempo {float(row['tempo']):.0f} BPM over "
            f"{ui.plural(int(row['plays_with_features']), 'play')} with features "
            f"({int(row['plays_with_features']) / int(row['plays']):.0%} of their plays: features are known "
            "by Spotify id, so plays without one have none)"
            for _, row in feat.iterrows()
        )
    )
else:
    st.info("No audio features for these plays yet.")
ui.definitions_note()
