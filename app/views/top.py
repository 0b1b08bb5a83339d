"""Top tracks, artists and albums for a period, and the Spark ``top_ten_tracks`` mart."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data, detail, queries, ui

ctx = ui.context()
st.title("Top")
period = ui.period_picker("top", ctx.status, ctx.tz)
previous = queries.previous_period(period, now=data.hour_anchor())
res = ctx.fetch(
    {**queries.top_queries(ctx.tz, period, previous=previous), **queries.pending_lookups_query(period)}
)
ui.headline_metrics(res, period)


def _ranked(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    out["minutes"] = out["minutes"].astype(float).round(0).astype(int)
    out["image"] = out["image"].fillna("")  # an empty cell, not the word "None"
    return out


def _table(df: pd.DataFrame, label_cols: dict[str, str], kind: queries.DetailKind, key: str) -> None:
    """A ranked table shown whole (``height="content"``: no box of eight rows to scroll in),
    numbers with thousands separators, and narrow number columns so the last one is not cut."""
    top = int(df["plays"].max()) if len(df) else 1
    config = {
        "rank": st.column_config.NumberColumn("#", width=40),
        "image": st.column_config.ImageColumn("", width=56),
        "plays": st.column_config.ProgressColumn(
            "Plays", format="localized", min_value=0, max_value=top, width=140
        ),
        "minutes": st.column_config.NumberColumn("Minutes", format="localized", width=90),
        "tracks": st.column_config.NumberColumn("Tracks", format="localized", width=80),
        "last_played": None,
        "id": None,
        "key": None,
        **{k: st.column_config.TextColumn(v) for k, v in label_cols.items()},
    }
    # Clicking a row opens its detail page.
    event = st.dataframe(  # type: ignore[call-overload]
        df,
        column_config=config,
        hide_index=True,
        width="stretch",
        height="content",
        row_height=48,
        on_select="rerun",
        selection_mode="single-row",
        key=key,
    )
    detail.open_on_select(event, df, kind)


tracks, artists, albums = (ui.frame(res, n) for n in ("tracks", "artists", "albums"))
if not len(tracks):
    newest = ui.local(ctx.status.newest_play, ctx.tz, "%d %b %Y")
    st.info(f"No plays in this period. Your newest play is from {newest}; try *All time*.")
else:
    cols = st.container(key=ui.WIDE_ONLY_KEY).columns(3)
    for col, label, df, name, kind in (
        (cols[0], "#1 track", tracks, "track", "track"),
        (cols[1], "#1 artist", artists, "artist", "artist"),
        (cols[2], "#1 album", albums, "album", "album"),
    ):
        if len(df):
            with col:
                ui.name_card(label, str(df.iloc[0][name]), ui.plural(int(df.iloc[0]["plays"]), "play"))
                detail.link(kind, df.iloc[0]["id"], f"Open the {kind}", df.iloc[0]["key"])  # type: ignore[arg-type]
    pending = ui.frame(res, "pending")
    pending_plays = int(pending["plays"].iloc[0] or 0) if len(pending) else 0
    if pending_plays:
        st.caption(
            f"{ui.plural(pending_plays, 'play')} of {ui.plural(int(pending['tracks'].iloc[0]), 'track')} "
            "lack Spotify ids or a cover (an export has neither) and have not been looked up yet: the "
            "next update looks them up on Spotify. Until then they count by name, and a name known "
            "only from them opens its page by name and has no cover."
        )


def _cards(df: pd.DataFrame, name: str, kind: str, by: str | None = None) -> None:
    """The first ten as cover cards (``by``: the artist line under a track or album); the full list follows."""
    top = _ranked(df.head(10)) if len(df) else df
    ui.card_grid(
        [
            {
                "rank": r["rank"],
                "name": r[name],
                "sub": (f"{r[by]} · " if by and r.get(by) else "") + ui.plural(int(r["plays"]), "play"),
                "image": r["image"],
                "id": r["id"],
                "key": r["key"],
            }
            for r in top.to_dict("records")
        ],
        kind,
    )


tab_tracks, tab_artists, tab_albums, tab_mart = st.tabs(["Tracks", "Artists", "Albums", "Top ten, all time"])
with tab_tracks:
    _cards(tracks, "track", "track", by="artists")
    _table(
        _ranked(tracks)[["rank", "image", "track", "artists", "album", "plays", "minutes", "id", "key"]]
        if len(tracks)
        else tracks,
        {"track": "Track", "artists": "Artists", "album": "Album"},
        "track",
        "top_tracks_table",
    )
with tab_artists:
    _cards(artists, "artist", "artist")
    _table(
        _ranked(artists)[["rank", "image", "artist", "plays", "minutes", "tracks", "id", "key"]]
        if len(artists)
        else artists,
        {"artist": "Artist"},
        "artist",
        "top_artists_table",
    )
with tab_albums:
    _cards(albums, "album", "album", by="artist")
    _table(
        _ranked(albums)[["rank", "image", "album", "artist", "plays", "minutes", "tracks", "id", "key"]]
        if len(albums)
        else albums,
        {"album": "Album", "artist": "Artist"},
        "album",
        "top_albums_table",
    )
with tab_mart:
    # One Spark job ranks everyone's plays and each listener's: the picked scope's rows.
    mart_res = ctx.fetch(queries.top_ten_mart_query(ctx.user))
    mart = ui.frame(mart_res, "top_ten")
    whose = "This listener's" if ctx.user else "All-time"
    if not len(mart):
        st.info(
            "The all-time top ten has not been counted yet"
            + (" for this listener" if ctx.user else "")
            + ": it is counted at the end of `make demo` and again each time new plays arrive."
        )
    else:
        inputs = ui.frame(mart_res, "mart_input")
        seen = int(inputs["seen"].iloc[0] or 0) if len(inputs) else 0
        now = int(inputs["now"].iloc[0] or 0) if len(inputs) else 0
        st.caption(
            f"{whose} top ten, counted on {ui.local(mart['computed_at'].max(), ctx.tz)} "
            f"({ctx.tz}) over {ui.plural(seen, 'play')} of tracks; a tie goes to the track with more "
            "minutes, then to the one played last."
        )
        if now > seen:
            st.warning(
                f"{ui.plural(now - seen, 'play')} arrived after this was computed. The top ten is counted "
                "again each time new plays arrive (while `make dev` runs); the tabs beside this one are "
                "always current.",
                icon=":material/update:",
            )
        mart = mart.rename(
            columns={
                "track_name": "track",
                "artist_names": "artists",
                "album_name": "album",
                "album_image_url": "image",
                "minutes_listened": "minutes",
                "track_id": "id",
            }
        )
        mart["minutes"] = mart["minutes"].astype(float).round(0).astype(int)
        mart["image"] = mart["image"].fillna("")
        _table(
            mart[["rank", "image", "track", "artists", "album", "plays", "minutes", "id", "key"]],
            {"track": "Track", "artists": "Artists", "album": "Album"},
            "track",
            "top_mart_table",
        )
ui.definitions_note()
