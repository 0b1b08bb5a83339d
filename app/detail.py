"""The artist, track and album pages: one renderer, addressed by Spotify id (``?id=``), or by
names for an item without one (``?key=``: a scrobble no Spotify play matched, a local file).

Every name and row elsewhere in the app links here (``link`` builds the link), so the pages
share one layout: totals, plays over time, hour-of-day profile, the item's tracks and
albums, an artist's rank over time, and its audio-feature profile when features exist.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app import queries, ui

#: The script of each detail page (relative to ``streamlit_app.py``) and its URL path.
PAGES: dict[queries.DetailKind, str] = {
    "artist": "views/artist.py",
    "track": "views/track.py",
    "album": "views/album.py",
}
ID_PARAM, KEY_PARAM = ui.ID_PARAM, ui.KEY_PARAM


def open_on_select(event: object, df: pd.DataFrame, kind: queries.DetailKind) -> None:
    """Open the detail page of the row the viewer clicked in a table (``on_select='rerun'``).

    The browser follows the row's link (``ui.follow``) as it would a link's: one step in its
    history. ``st.switch_page`` first wrote ``?id=`` into the table page's own address, so
    Back from the detail page landed on ``/recent?id=...``.
    """
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if rows and "id" in df.columns:
        row = df.iloc[rows[0]]
        item_id, key = row["id"], row["key"] if "key" in df.columns else None
        if ui.address(item_id, key) is not None:
            ui.follow(ui.detail_href(kind, item_id, key))


def link(kind: queries.DetailKind, item_id: object, label: str, key: object = None) -> bool:
    """A link to a detail page, by the item's id or else by its names' key (``ui.address``).

    A plain anchor (``ui.link_html``), not ``st.page_link``: a page link first wrote ``?id=``
    into the current page's address, so Back from the detail page landed on ``/top?id=...``.
    """
    if ui.address(item_id, key) is not None:
        ui.links_block(ui.link_html(kind, item_id, label, key))
        return True
    return False


def render(kind: queries.DetailKind) -> None:
    ctx = ui.context()
    item_id = st.query_params.get(ID_PARAM, "")
    key = "" if item_id else st.query_params.get(KEY_PARAM, "")
    if not item_id and not key:
        st.title(kind.capitalize())
        article = "an" if kind[0] in "aeiou" else "a"
        st.info(f"Open {article} {kind} from the Top page: every name and row there leads here.")
        st.stop()
    addressed_by: queries.DetailBy = "id" if item_id else "key"
    res = ctx.fetch(queries.detail_queries(kind, item_id or key, ctx.tz, by=addressed_by))
    summary = ui.frame(res, "summary").iloc[0]
    plays = int(summary["plays"] or 0)
    if not plays:
        st.title(kind.capitalize())
        # In a code span nothing is Markdown; only a backtick would end it early.
        known_as = f"with Spotify id `{item_id}`" if item_id else f"named `{key.replace('`', chr(39))}`"
        st.warning(f"No plays of the {kind} {known_as} in your history.")
        st.stop()
    ui.keep_in_url(ID_PARAM if item_id else KEY_PARAM, item_id or key)

    art, head = st.columns([1, 8])
    with art:
        ui.cover(summary["image"], 96, str(summary["name"]))
    with head:
        st.title(str(summary["name"]))
        if kind != "artist":
            # Every artist of a track links to their page, and its album to the album's.
            credits = ui.frame(res, "credits")
            by = (
                ui.artist_links_html(
                    credits["artist_ids"].iloc[0],
                    summary["artists"],
                    summary["artist_id"],
                    summary["artist_key"],
                )
                if kind == "track" and len(credits)
                else ui.link_html(
                    "artist", summary["artist_id"], str(summary["artists"]), summary["artist_key"]
                )
            )
            album = (
                ui.link_html("album", summary["album_id"], str(summary["album"]), summary["album_key"])
                if kind == "track" and pd.notna(summary["album"])
                else ""
            )
            ui.links_block(f'<div class="sp-credits">{by}{" · " + album if album else ""}</div>')
    by_name = int(summary["by_name"] or 0)
    if key:
        st.caption(
            f"No Spotify id for this {kind}: it is known by name only (plays scrobbled to Last.fm or "
            "ListenBrainz that no Spotify play matched, or local files), so its plays are those of the same "
            "names, letter case ignored, as on the Top page."
        )
    elif by_name:
        st.caption(
            f"{ui.plural(by_name, 'play')} came from an export without Spotify ids whose tracks have not been "
            "looked up yet (the pipeline's `track_metadata` step), or from a source without them (a scrobble, "
            "a local file): they are matched by name, as on the Top page."
        )

    head_cols = st.columns(4)
    head_cols[0].metric("Plays", ui.number(plays))
    head_cols[1].metric("Minutes", ui.number(float(summary["minutes"])))
    head_cols[2].metric("First play", ui.local(summary["first_play"], ctx.tz, "%d %b %Y"))
    head_cols[3].metric("Last play", ui.local(summary["last_play"], ctx.tz, "%d %b %Y"))

    left, right = st.columns(2)
    with left:
        st.subheader("Plays over time")
        monthly = ui.frame(res, "monthly")
        span = ui.history_days(ctx)
        monthly["partial"] = (
            ui.partial_flags(monthly["month"], pd.DateOffset(months=1), *span)
            if span and len(monthly)
            else False
        )
        ui.chart(
            alt.Chart(monthly)
            .mark_bar()
            .encode(
                x=alt.X("utcyearmonth(month):O", title=None),
                y=alt.Y("plays:Q", title="plays"),
                color=alt.Color(  # partial months grey, as on the When page
                    "partial:N",
                    scale=alt.Scale(domain=[False, True], range=[ui.ACCENT, ui.MUTED]),
                    legend=None,
                ),
                tooltip=[
                    alt.Tooltip("utcyearmonth(month):O", title="month"),
                    alt.Tooltip("plays:Q", format=","),
                    alt.Tooltip("partial:N", title="partial month"),
                ],
            ),
            height=220,
        )
        if monthly["partial"].any():
            st.caption(ui.PARTIAL_CAPTION)
    with right:
        st.subheader(f"Hour of day ({ctx.tz})")
        hours = ui.frame(res, "hours").set_index("hour").reindex(range(24), fill_value=0).reset_index()
        ui.chart(
            alt.Chart(hours)
            .mark_bar(color=ui.SECOND)
            .encode(
                x=alt.X("hour:O", title=None),
                y=alt.Y("plays:Q", title="plays"),
                tooltip=["hour:O", alt.Tooltip("plays:Q", format=",")],
            ),
            height=220,
        )

    if kind == "artist":
        rank = ui.frame(res, "rank")
        st.subheader("Rank among your artists, by month")
        ui.chart(
            alt.Chart(rank)
            .mark_line(point=True, color=ui.ACCENT)
            .encode(
                x=alt.X("utcyearmonth(month):T", title=None),
                # Whole ranks only: an artist #1 every month drew one tick labelled "1.000000".
                y=alt.Y(
                    "rank:Q",
                    scale=alt.Scale(reverse=True, zero=False),
                    axis=alt.Axis(format="d", tickMinStep=1),
                    title="rank (1 = most played)",
                ),
                tooltip=[alt.Tooltip("utcyearmonth(month):T", format="%b %Y"), "rank:Q", "plays:Q"],
            ),
            height=200,
        )

    if kind in ("artist", "album"):
        tables = st.columns(2 if kind == "artist" else 1)
        with tables[0]:
            st.subheader("Top tracks")
            tracks = ui.frame(res, "tracks")
            tracks["minutes"] = tracks["minutes"].astype(float).round(0).astype(int)
            event = st.dataframe(
                tracks[["track", "plays", "minutes", "id", "key"]],
                hide_index=True,
                width="stretch",
                height="content",
                on_select="rerun",
                selection_mode="single-row",
                key=f"{kind}_tracks",
                column_config={
                    "track": "Track",
                    "plays": st.column_config.NumberColumn("Plays", format="localized"),
                    "minutes": st.column_config.NumberColumn("Minutes", format="localized"),
                    "id": None,
                    "key": None,
                },
            )
            open_on_select(event, tracks, "track")
        if kind == "artist":
            with tables[1]:
                st.subheader("Top albums")
                albums = ui.frame(res, "albums")
                albums["minutes"] = albums["minutes"].astype(float).round(0).astype(int)
                albums["image"] = albums["image"].fillna("")
                event = st.dataframe(
                    albums[["image", "album", "plays", "minutes", "id", "key"]],
                    hide_index=True,
                    width="stretch",
                    height="content",
                    on_select="rerun",
                    selection_mode="single-row",
                    key="artist_albums",
                    column_config={
                        "image": st.column_config.ImageColumn("", width=56),
                        "album": "Album",
                        "plays": st.column_config.NumberColumn("Plays", format="localized"),
                        "minutes": st.column_config.NumberColumn("Minutes", format="localized"),
                        "id": None,
                        "key": None,
                    },
                )
                open_on_select(event, albums, "album")

    features = ui.frame(res, "features").iloc[0]
    with_features = int(features["plays_with_features"] or 0)
    st.subheader("Audio features")
    if not with_features:
        st.caption(
            "No audio features for these plays: features are known by Spotify id, so a track known by "
            "name only has none (see the Mood page for why others may lack them)."
            if key
            else "No audio features for these plays (see the Mood page for why)."
        )
    else:
        cols = st.columns(5)
        cols[0].metric("Coverage", f"{with_features / plays:.0%}", help="Share of these plays with features.")
        cols[1].metric("Energy", f"{float(features['energy']):.2f}")
        cols[2].metric("Valence", f"{float(features['valence']):.2f}")
        cols[3].metric("Danceability", f"{float(features['danceability']):.2f}")
        cols[4].metric("Tempo", f"{float(features['tempo']):.0f} BPM")
    ui.definitions_note()
