"""Top tracks, artists and albums for a period, and the Spark ``top_ten_tracks`` mart."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import queries, ui

ctx = ui.context()
st.title("Top")
period = ui.period_picker("top", ctx.status, ctx.tz, default=ui.recent_default(ctx.status))
res = ctx.fetch(queries.top_queries(ctx.tz, period))
totals = ui.frame(res, "totals").iloc[0]
st.caption(f"{ui.number(totals['plays'])} plays, {ui.duration(float(totals['minutes']))} in this period.")


def _ranked(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    out["minutes"] = out["minutes"].astype(float).round(1)
    out["image"] = out["image"].fillna("")  # an empty cell, not the word "None"
    return out


def _table(df: pd.DataFrame, label_cols: dict[str, str]) -> None:
    top = int(df["plays"].max()) if len(df) else 1
    config = {
        "rank": st.column_config.NumberColumn("#", width="small"),
        "image": st.column_config.ImageColumn("", width="small"),
        "plays": st.column_config.ProgressColumn("Plays", format="%d", min_value=0, max_value=top),
        "minutes": st.column_config.NumberColumn("Minutes", format="%.0f"),
        "tracks": st.column_config.NumberColumn("Tracks"),
        "last_played": None,
        **{k: st.column_config.TextColumn(v) for k, v in label_cols.items()},
    }
    st.dataframe(df, column_config=config, hide_index=True, width="stretch", row_height=48)  # type: ignore[arg-type]


tracks, artists, albums = (ui.frame(res, n) for n in ("tracks", "artists", "albums"))
if not len(tracks):
    newest = ui.local(ctx.status.newest_play, ctx.tz, "%d %b %Y")
    st.info(f"No plays in this period. Your newest play is from {newest}; try *All time*.")
else:
    cols = st.columns(3)
    cols[0].metric(
        "#1 track",
        str(tracks.iloc[0]["track"]),
        f"{int(tracks.iloc[0]['plays'])} plays",
        delta_color="off",
        delta_arrow="off",
    )
    cols[1].metric(
        "#1 artist",
        str(artists.iloc[0]["artist"]),
        f"{int(artists.iloc[0]['plays'])} plays",
        delta_color="off",
        delta_arrow="off",
    )
    if len(albums):
        cols[2].metric(
            "#1 album",
            str(albums.iloc[0]["album"]),
            f"{int(albums.iloc[0]['plays'])} plays",
            delta_color="off",
            delta_arrow="off",
        )

tab_tracks, tab_artists, tab_albums, tab_mart = st.tabs(["Tracks", "Artists", "Albums", "Top ten (Spark)"])
with tab_tracks:
    _table(
        _ranked(tracks)[["rank", "image", "track", "artists", "album", "plays", "minutes"]]
        if len(tracks)
        else tracks,
        {"track": "Track", "artists": "Artists", "album": "Album"},
    )
with tab_artists:
    _table(
        _ranked(artists)[["rank", "image", "artist", "plays", "minutes", "tracks"]]
        if len(artists)
        else artists,
        {"artist": "Artist"},
    )
with tab_albums:
    _table(
        _ranked(albums)[["rank", "image", "album", "artist", "plays", "minutes", "tracks"]]
        if len(albums)
        else albums,
        {"album": "Album", "artist": "Artist"},
    )
with tab_mart:
    mart = ui.frame(ctx.fetch(queries.top_ten_mart_query()), "top_ten")
    if not len(mart):
        st.info(
            "The `top_ten_tracks` mart has not been computed yet: the Spark step runs at the end of `make demo`."
        )
    else:
        st.caption(
            f"All-time top ten as computed by the Spark job at {ui.local(mart['computed_at'].max(), ctx.tz)}; "
            "ties broken by minutes, then last play."
        )
        mart = mart.rename(
            columns={
                "track_name": "track",
                "artist_names": "artists",
                "album_name": "album",
                "album_image_url": "image",
                "minutes_listened": "minutes",
            }
        )
        mart["minutes"] = mart["minutes"].astype(float).round(1)
        mart["image"] = mart["image"].fillna("")
        _table(
            mart[["rank", "image", "track", "artists", "album", "plays", "minutes"]],
            {"track": "Track", "artists": "Artists", "album": "Album"},
        )
ui.definitions_note()
