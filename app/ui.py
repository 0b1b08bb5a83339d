"""Shared page furniture: the per-run context, formatting, chart styling and the first-run page.

Charts use Streamlit's own Altair theme (``theme="streamlit"``), which follows the light or
dark mode the viewer picked; this module only fixes the accent colour and sizes, so every
chart looks like part of one app in both modes.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from urllib.parse import urlencode

import altair as alt
import pandas as pd
import streamlit as st

from app import address_bar, auth, data, listeners, queries
from app.warehouse import Warehouse

ACCENT = "#1DB954"
SECOND = "#7C5CFF"
THIRD = "#FF8A3D"
#: Guides and labels drawn inside charts (quadrant names, reference lines). Vega's default is
#: black, invisible on the dark theme; this grey has a contrast of at least 3:1 on both
#: Streamlit backgrounds (#FFFFFF and #0E1117).
MUTED = "#8A8F98"
TZ_KEY = "tz"
#: Query parameters that carry a view's state, so a copied link reopens the same view.
TZ_PARAM = "tz"
#: The listener picker: the widget, the URL parameter (a Spotify id, or a registry name on
#: the way in) and the listener every page of this run is for (``None``: everyone).
USER_KEY, USER_PARAM, SCOPE_KEY = "user", "user", "_scope_user"
#: The picker's choice for the whole household.
EVERYONE = ""
#: The Import page (``app/views/import_export.py``): its script, and its address.
IMPORT_PAGE, IMPORT_PATH = "views/import_export.py", "import"

DEFINITIONS = (
    "**Definitions.** A *play* is a track streamed for at least 30 seconds (Spotify's own rule); "
    "shorter streams are kept but not counted. Podcast episodes are left out of music statistics. "
    "Minutes are the time played when Spotify reports it (account exports), otherwise the track length; "
    "a play of unknown length (a scrobble without a duration) counts as a play with 0 minutes. "
    "Plays without a Spotify id (scrobbles no Spotify play matched, local files) count like any other, "
    "grouped with the Spotify track of the same artist and title (letter case ignored)."
)


@dataclass(frozen=True)
class Context:
    """What every page needs: where the data is, which version of it, and the viewer's time zone.

    ``status`` is what the pages may *show* (the newest play, the period bounds derived from it,
    freshness): the plays of ``user`` only, read through ``fetch`` like any page's batch
    (``seen``). ``warehouse`` is the whole warehouse's status, never shown: its version keys
    every cache, so another listener's new plays still refresh a household-wide view.
    """

    wh: Warehouse
    status: data.Status
    tz: str
    #: The listener whose plays the pages show (a Spotify id), ``None`` for everyone.
    user: str | None = None
    #: The whole warehouse's status (the cache version); ``None``: ``status`` is the whole one.
    warehouse: data.Status | None = None

    def fetch(self, batch: dict[str, str]) -> dict[str, pd.DataFrame | None]:
        """Run a page's batch, restricted to ``user``'s plays (``queries.for_listener``)."""
        scoped = {name: queries.for_listener(sql, self.user) for name, sql in batch.items()}
        return data.fetch(self.wh, self.warehouse or self.status, scoped)

    def household(self) -> Context:
        """The same context for everyone's plays (the Compare page filters by its own pair)."""
        whole = self.warehouse or self.status
        return replace(self, user=None, status=seen(self.wh, whole, None), warehouse=whole)


def seen(wh: Warehouse, whole: data.Status, user: str | None) -> data.Status:
    """The status of the plays ``user`` sees (``None``: everyone's), for the page frame.

    The same restriction as every page (``Context.fetch``, hence ``queries.for_listener``) over
    ``queries.freshness_query``: the newest play, the count and when plays last arrived are the
    viewer's own, never the warehouse's (whose newest play may be another listener's). Cached
    under the whole warehouse's version like any batch. The state stays the warehouse's: a
    listener without plays of their own is told so by ``listener_picker``.
    """
    if whole.state != "ready":
        return whole
    ctx = Context(wh=wh, status=whole, tz="UTC", user=user, warehouse=whole)
    found = frame(ctx.fetch(queries.freshness_query()), "freshness")
    row = found.iloc[0] if len(found) else None
    return replace(
        whole,
        newest_play=None if row is None else data.aware(row["newest"]),
        rows=0 if row is None else int(row["n"]),
        published_at=None if row is None else data.aware(row["arrived"]),
    )


def default_timezone() -> str:
    """The zone a new visitor sees: the link's ``tz=``, the browser's, ``SPOTIFY_TIMEZONE``, then UTC.

    The browser's zone comes first among the defaults because the dashboard is read by the
    listener on their own device; the environment variable is for a server that renders for
    someone elsewhere, and for browsers that do not say.
    """
    valid = queries.valid_timezones()
    for candidate in (st.query_params.get(TZ_PARAM), st.context.timezone, os.environ.get("SPOTIFY_TIMEZONE")):
        if candidate and candidate in valid:
            return candidate
    return "UTC"


def current_tz() -> str:
    tz = st.session_state.get(TZ_KEY) or default_timezone()
    return tz if tz in queries.valid_timezones() else "UTC"


def seed_from_url(key: str, param: str, allowed: Callable[[str], bool], default: str | None = None) -> None:
    """Give widget ``key`` its first value from the URL's ``param`` (or ``default``).

    Widgets are then created without a ``default``/``value`` of their own, so Session State
    is their one source and a later change is written back by :func:`keep_in_url`.
    """
    if key in st.session_state:
        return
    raw = st.query_params.get(param)
    if raw is not None and allowed(raw):
        st.session_state[key] = raw
    elif default is not None:
        st.session_state[key] = default


def keep_in_url(param: str, value: str | None) -> None:
    """Write a view's state into the address bar (``None`` or empty removes the parameter),
    replacing the history entry (``address_bar``): arriving on a page, by a typed link or from
    another page, adds no step to Back. A change the viewer makes is a step of its own
    (``changed_in_url``, from the widget's callback)."""
    if value:
        if st.query_params.get(param) != value:
            address_bar.replace(param, value)
    elif param in st.query_params:
        address_bar.replace(param, None)


def changed_in_url(param: str, widget: str) -> None:
    """A widget's callback: the viewer changed ``param``; the new address is a history entry."""
    value = st.session_state.get(widget)
    if value:
        st.query_params[param] = str(value)
    elif param in st.query_params:
        del st.query_params[param]


def context() -> Context:
    """This run's context, for the listener the picker chose (``SCOPE_KEY``; call it after
    ``listener_picker`` for anything shown: before it, on a first run, the scope is not set yet)."""
    wh = data.warehouse()
    scope = st.session_state.get(SCOPE_KEY)
    user = scope if isinstance(scope, str) else None
    whole = data.status(wh)
    return Context(wh=wh, status=seen(wh, whole, user), tz=current_tz(), user=user, warehouse=whole)


#: When the viewer's newest plays reached the dashboard, in a listener's words (not "pipeline").
ARRIVED_LABEL = "Plays last arrived"


def freshness_lines(ctx: Context) -> None:
    """The sidebar's freshness: the newest play and when plays last arrived, of the plays the
    viewer sees (``Context.status``); the date too, so "2 y ago" says which day."""
    newest = ctx.status.newest_play
    when = f" ({local(newest, ctx.tz, '%d %b %Y')})" if newest is not None else ""
    st.caption(f"Newest play **{age(newest)}**{when}  \n{ARRIVED_LABEL} **{age(ctx.status.published_at)}**")


@dataclass(frozen=True)
class Household:
    """The listeners with plays (busiest first), their labels, and whom this viewer may see."""

    ids: list[str]
    known: dict[str, listeners.Listener]
    allowed: list[str]
    everyone: bool

    def label(self, user_id: str) -> str:
        if user_id == EVERYONE:
            return EVERYONE_LABEL
        # A signed-in listener with no plays yet is in neither the warehouse nor, maybe, the registry.
        return self.known.get(user_id, listeners.Listener(user_id)).label

    @property
    def several(self) -> bool:
        return len(self.ids) > 1


EVERYONE_LABEL = "Everyone"


def household(ctx: Context, viewer: auth.Viewer | None) -> Household:
    """The listeners with plays and the registry's; before the first play (the Import page of a
    fresh install) only the registry's, without reading a warehouse that may not exist yet."""
    whole = ctx.warehouse or ctx.status
    found = (
        frame(ctx.household().fetch(queries.listeners_query()), "listeners")
        if whole.state == "ready"
        else None
    )
    ids = [str(u) for u in found["user_id"]] if found is not None and len(found) else []
    known = {uid: listeners.Listener(uid) for uid in ids} | listeners.registry()
    return Household(ids, known, listeners.visible(viewer, ids, known), auth.may_see_household(viewer))


def refuse(message: str) -> None:
    """End the page with a refusal: nothing of another listener's plays is read or shown."""
    st.title("Not shared with you")
    st.error(message)
    st.stop()


def with_registered(home: Household) -> Household:
    """``home`` with the registry's listeners who have no plays yet (a household member just added
    by ``spotify-assets users add``), for the Import page: their history arrives through it."""
    new = [uid for uid in home.known if uid not in home.ids]
    return replace(home, ids=home.ids + new, allowed=home.allowed + [u for u in new if home.everyone])


def listener_picker(home: Household, viewer: auth.Viewer | None, *, importing: bool = False) -> str | None:
    """The sidebar's listener picker, kept in the URL as ``user=``; returns whose plays to show.

    Hidden while the warehouse has one listener (or only the single-user layout's null ids):
    then every page shows every play to the owner and to household members, as before. A
    signed-in listener who has not opted in to household views is offered only themselves, and
    a link to another listener's page (``?user=<other>``) is refused before any page reads a
    play. Such a listener with no plays in the warehouse is told so and shown nothing, with
    one listener or several: the one listener's plays are not theirs. ``importing`` (the Import
    page) lets them through, and offers the owner the registry's listeners without plays too
    (``with_registered``): a new household member's history comes in there.
    """
    mine = listeners.own_id(viewer, home.known) if viewer is not None and not home.everyone else None
    if mine is not None and mine not in home.ids:
        st.session_state[SCOPE_KEY] = mine
        if importing:
            return mine
        st.title("No plays of yours yet")
        st.info(
            f"Signed in as {home.label(mine)}: this dashboard holds no plays of yours yet. They appear "
            "after the pipeline's first run for you (`spotify-assets users add` registers a listener), "
            "or bring your whole history now:"
        )
        st.page_link(IMPORT_PAGE, label="Import your history", icon=":material/upload:")
        st.stop()
    if importing:
        home = with_registered(home)
    if not home.several:
        st.session_state[SCOPE_KEY] = mine
        return mine
    raw = st.query_params.get(USER_PARAM)
    asked = listeners.resolve(raw, home.known)
    if raw and (asked is None or asked not in home.allowed):
        if viewer is not None and not home.everyone and asked is not None:
            refuse(
                "This dashboard shows you your own listening only; another listener's page is not shared with you."
            )
        refuse(f"There is no listener {raw!r} you may see here.")
    options = ([EVERYONE] if home.everyone else []) + (
        home.allowed or ([listeners.own_id(viewer, home.known)] if viewer else [])
    )
    if st.session_state.get(USER_KEY) not in options:
        st.session_state.pop(USER_KEY, None)
    if USER_KEY not in st.session_state:
        st.session_state[USER_KEY] = asked if asked in options else options[0]
    with st.sidebar:
        chosen = st.selectbox(
            "Listener",
            options,
            key=USER_KEY,
            format_func=home.label,
            help="Every page shows this listener's plays.",
            on_change=changed_in_url,
            args=(USER_PARAM, USER_KEY),
        )
    user = chosen or None
    keep_in_url(USER_PARAM, user)
    st.session_state[SCOPE_KEY] = user
    return user


def whose(ctx: Context) -> str:
    """Whose listening a page's title names: the picked listener by name ("Bob's"), everyone's
    in a household, "Your" where there is one listener (the owner reading their own)."""
    if ctx.user is not None:
        return f"{listeners.registry().get(ctx.user, listeners.Listener(ctx.user)).label}'s"
    return "Everyone's" if st.session_state.get(USER_KEY) == EVERYONE else "Your"


def partial_note(shown: str, first: date, last: date, whole: tuple[date, date]) -> str | None:
    """The line that says a period is partial (``None`` when the plays cover all of ``whole``):
    the history starts inside it, or it is not over yet. ``first``/``last`` are the local days
    the data covers, ``shown`` names the period ("2025", "November 2024")."""
    starts, ends = first > whole[0], last < whole[1]
    if not (starts or ends):
        return None
    why = [f"your history starts on {first:%d %b %Y}"] if starts else []
    why += ["it is not over yet"] if ends else []
    return f"{shown} is partial here: {' and '.join(why)}, so these figures cover {first:%d %b} - {last:%d %b %Y} only."


def definitions_note() -> None:
    st.caption(DEFINITIONS)


# -- formatting ---------------------------------------------------------------------
def age(then: datetime | None, now: datetime | None = None) -> str:
    """'5 min ago', '3 h ago', '12 days ago' - how old a moment is, for freshness."""
    if then is None:
        return "unknown"
    now = now or datetime.now(UTC)
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    days = seconds / 86400
    if days < 60:
        return f"{days:.0f} d ago"
    if days < 730:
        return f"{days / 30.4:.0f} mo ago"
    return f"{days / 365.25:.1f} y ago"


def local(ts: datetime | pd.Timestamp | None, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if ts is None or pd.isna(ts):
        return "-"
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return stamp.tz_convert(tz).strftime(fmt)


def local_day(ts: object, tz: str) -> pd.Timestamp:
    """The local calendar day of an instant, as a naive midnight (how the daily series is keyed)."""
    return pd.Timestamp(local(ts, tz, "%Y-%m-%d"))  # type: ignore[arg-type]


def utc(ts: object) -> pd.Timestamp:
    """An instant as an aware UTC timestamp (DuckDB returns some naive, meaning UTC)."""
    stamp = pd.Timestamp(ts)  # type: ignore[arg-type]
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def duration(minutes: float) -> str:
    hours, mins = divmod(round(minutes), 60)
    return f"{hours} h {mins:02d} min" if hours else f"{mins} min"


def number(value: float) -> str:
    return f"{value:,.0f}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 day', '2 days', '1,204 plays'."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def name_card(label: str, name: str, detail: str = "", href: str | None = None) -> None:
    """A headline that is a name (an artist, a track): wraps instead of being cut off.

    ``st.metric`` truncates its value to one line ("The Lone..."); names are long, so they
    get this card, and ``st.metric`` is kept for numbers.
    """
    shown = f"[{md_escape(name)}]({href})" if href else md_escape(name)
    st.markdown(
        f"<small>{html_escape(label)}</small>\n\n**{shown}**"
        + (f"  \n<small>{html_escape(detail)}</small>" if detail else ""),
        unsafe_allow_html=True,
    )


#: Cover placeholder: a note on a neutral square, drawn under every cover (see ``card_grid_html``).
PLACEHOLDER_ART = (
    "data:image/svg+xml;utf8,"
    "%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64'%3E"
    "%3Crect width='64' height='64' fill='%237f7f7f' fill-opacity='0.18'/%3E"
    "%3Cpath d='M26 44a6 6 0 1 1-4-5.7V20l20-4v22a6 6 0 1 1-4-5.7V22l-12 2.4z' fill='%237f7f7f' fill-opacity='0.6'/%3E"
    "%3C/svg%3E"
)
#: Covers that may go into CSS: plain http(s) URLs, and base64 data images (no quote or
#: bracket can occur in either, so neither can leave the ``url('...')``).
_SAFE_URL = re.compile(
    r"^(https?://[^\s'\"()<>\\]+|data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=]+)$"
)


def cover_layers(image: object) -> str:
    """The CSS ``background-image`` of a cover: the cover (when safe) over the placeholder."""
    url = str(image or "")
    return (f"url('{url}'), " if _SAFE_URL.match(url) else "") + f'url("{PLACEHOLDER_ART}")'


def cover_html(image: object, size: int, label: str = "") -> str:
    """One cover of ``size`` px as HTML: as on the cards, a cover that cannot load leaves the
    placeholder, never a broken-image icon (which ``st.image`` would show offline)."""
    return (
        f'<div role="img" aria-label="{html_escape(label)}" class="sp-cover" style="width:{int(size)}px;'
        f"height:{int(size)}px;border-radius:6px;background-size:cover;background-position:center;"
        f'background-image: {html_escape(cover_layers(image))}"></div>'
    )


def cover(image: object, size: int, label: str = "") -> None:
    """``cover_html`` on the page."""
    st.html(cover_html(image, size, label))


#: Links look like links in both themes: underlined, in the theme's link colour (Streamlit's own
#: Markdown links: #244FB4 on light, #85B8F8 on dark, both above 4.5:1 on their background).
#: ``light-dark`` follows the colour scheme Streamlit sets; ``LinkText`` is the fallback.
LINK_CSS = (
    "<style>a.sp-link{color:LinkText;color:light-dark(#244FB4,#85B8F8);text-decoration:underline;"
    "text-underline-offset:2px;text-decoration-thickness:1px}a.sp-link:hover{text-decoration-thickness:2px}"
    "</style>"
)
#: The detail pages' id parameter (``/track?id=<Spotify id>``).
ID_PARAM = "id"
#: Their parameter for an item known by names only (``/track?key=<artist>|<track>``, lower-cased:
#: ``queries.DetailBy``); a row's ``key`` column holds it.
KEY_PARAM = "key"


def carried_params() -> tuple[str, ...]:
    """The query parameters a link carries from the page it is on (the viewer's zone, listener
    and period): the page it opens then has nothing to add to its address, since every addition
    Streamlit makes is a step of its own in the browser's history (a Back that stays put)."""
    return (TZ_PARAM, USER_PARAM, PERIOD_PARAM, FROM_PARAM, TO_PARAM)


def address(item_id: object, key: object = None) -> dict[str, str] | None:
    """The parameter that opens an item's detail page: its Spotify id, else its names' key
    (a scrobble or local file); None when it has neither (the row opens nothing)."""
    if isinstance(item_id, str) and item_id:
        return {ID_PARAM: item_id}
    if isinstance(key, str) and key:
        return {KEY_PARAM: key}
    return None


def detail_href(kind: str, item_id: object, key: object = None) -> str:
    """The address of a detail page (``./track?id=...`` or ``?key=...``) with this page's
    carried parameters."""
    params = (address(item_id, key) or {}) | {
        p: st.query_params[p] for p in carried_params() if st.query_params.get(p)
    }
    return f"./{kind}?{urlencode(params)}"


def link_html(kind: str, item_id: object, label: str, key: object = None) -> str:
    """``label`` as a link to a detail page (a plain anchor: one history entry, as a link should
    be), by id or else by names' key (``address``), or as text when the item has neither."""
    text = html_escape(label)
    if address(item_id, key) is not None:
        href = detail_href(kind, item_id, key)
        return f'<a class="sp-link" href="{html_escape(href)}" target="_self">{text}</a>'
    return text


def artist_links_html(
    artist_ids: object, artist_names: object, primary_id: object = None, primary_key: object = None
) -> str:
    """Each artist of a track as a link ("The Gentle Mirrors, The Midnight Shadows": two links).

    ``artist_ids`` and ``artist_names`` are the play's comma-joined lists. A name may hold a
    comma itself ("Tyler, The Creator"): when the two lists do not pair up, the whole name
    links to the primary artist instead of guessing.
    """
    names_text = str(artist_names or "")
    ids = [i.strip() for i in str(artist_ids or "").split(",")]
    names = names_text.split(", ")
    if artist_ids and len(ids) == len(names) > 0:
        return ", ".join(link_html("artist", i, n) for i, n in zip(ids, names, strict=True))
    return link_html("artist", primary_id, names_text, primary_key)


def follow(href: str) -> None:
    """Send the browser to ``href`` (a page of this app) as if a link to it was clicked."""
    st.html(f"<script>window.location.assign({json.dumps(href)});</script>", unsafe_allow_javascript=True)
    st.stop()


def links_block(html_text: str) -> None:
    """Links (``link_html``) on the page, with their style."""
    st.html(LINK_CSS + html_text)


def card_grid_html(rows: list[dict[str, object]], kind: str) -> str:
    """Cards (cover, rank, name, a detail line) as HTML; each name links to its detail page.

    The cover is a CSS background with the placeholder as a second layer below it: a cover
    that cannot load (offline, an expired CDN link, none known yet) leaves the placeholder
    showing, never a broken-image icon, and no script is needed. Only plain http(s) URLs are
    put into the CSS; anything else gets the placeholder alone.
    """
    cards = []
    for row in rows:
        layers = cover_layers(row.get("image"))
        name = html_escape(str(row.get("name") or "—"))
        title = link_html(kind, row.get("id"), str(row.get("name") or "—"), row.get("key"))
        cards.append(
            '<div class="sp-card">'
            f'<div class="sp-art" role="img" aria-label="{name}" style="background-image: {html_escape(layers)}"></div>'
            f'<div class="sp-name"><span class="sp-rank">{html_escape(str(row.get("rank", "")))}</span> {title}</div>'
            f'<div class="sp-sub">{html_escape(str(row.get("sub") or ""))}</div>'
            "</div>"
        )
    style = (
        "<style>.sp-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(132px,1fr));gap:14px;"
        "margin:6px 0 14px}.sp-art{aspect-ratio:1;border-radius:6px;background-size:cover;"
        "background-position:center}.sp-name{font-weight:600;font-size:.9rem;margin-top:6px;"
        "overflow-wrap:anywhere}.sp-rank{opacity:.6}"
        ".sp-sub{font-size:.8rem;opacity:.7}</style>"
    )
    return LINK_CSS + style + '<div class="sp-grid">' + "".join(cards) + "</div>"


def card_grid(rows: list[dict[str, object]], kind: str) -> None:
    """``card_grid_html`` on the page."""
    if rows:
        st.html(card_grid_html(rows, kind))


def md_escape(text: str) -> str:
    """Text shown inside Markdown as itself (track names contain ``*``, ``_``, ``[``...)."""
    return re.sub(r"([\\`*_\[\]<>|~$#])", r"\\\1", text)


def html_escape(text: str) -> str:
    return html.escape(text, quote=True)


def frame(result: dict[str, pd.DataFrame | None], name: str) -> pd.DataFrame:
    """A batch result, an empty frame when the table was missing."""
    df = result.get(name)
    return pd.DataFrame() if df is None else df


def mood_word(energy: float, valence: float) -> str:
    """The Mood map's quadrant for an average energy and valence (the same four names)."""
    if energy >= 0.5:
        return "happy / upbeat" if valence >= 0.5 else "tense / angry"
    return "calm / content" if valence >= 0.5 else "sad / low"


HEADLINES: list[tuple[str, str, str]] = [
    ("Plays", "plays", ",.0f"),
    ("Hours listened", "hours", ",.1f"),
    ("Tracks", "tracks", ",.0f"),
    ("Artists", "artists", ",.0f"),
    ("Albums", "albums", ",.0f"),
]


#: The headline numbers' container (Streamlit gives it the class ``st-key-<key>``).
HEADLINES_KEY = "sp_headlines"
#: Blocks a phone does without (``st-key-sp_wide_only``): Top's "#1" cards repeat its list's first rows.
WIDE_ONLY_KEY = "sp_wide_only"
#: At phone width Streamlit stacks columns one per row: five numbers filled a screen. There
#: they wrap three to a row instead, and ``WIDE_ONLY_KEY`` blocks are left out.
NARROW_CSS = (
    "<style>@media (max-width: 640px){"
    f".st-key-{HEADLINES_KEY} [data-testid='stHorizontalBlock']{{flex-flow:row wrap!important;gap:.25rem .75rem}}"
    f".st-key-{HEADLINES_KEY} [data-testid='stColumn']{{flex:1 1 28%!important;min-width:28%!important;"
    "width:auto!important}"
    f".st-key-{HEADLINES_KEY} [data-testid='stMetricValue']{{font-size:1.75rem}}"
    f".st-key-{WIDE_ONLY_KEY}{{display:none!important}}"
    "}</style>"
)


def headline_metrics(result: dict[str, pd.DataFrame | None], period: queries.Period) -> None:
    """The period's headline numbers, each with its change against the period just before.

    The previous period has the same length (``queries.previous_period``); for all time there
    is none, and the numbers stand alone.
    """
    totals = frame(result, "totals").iloc[0]
    previous = frame(result, "previous")
    before = previous.iloc[0] if len(previous) else None
    box = st.container(key=HEADLINES_KEY)
    box.html(NARROW_CSS)
    cols = box.columns(len(HEADLINES))
    for col, (label, key, fmt) in zip(cols, HEADLINES, strict=True):
        value = float(totals[key] or 0)
        change = None if before is None else value - float(before[key] or 0)
        delta = None if change is None else format(change, "+" + fmt)
        # No change is neither good nor bad: no green arrow for "+0".
        same = change is not None and format(change, fmt) in (format(0, fmt), format(-0.0, fmt))
        col.metric(
            label,
            format(value, fmt),
            delta,
            delta_color="off" if same else "normal",
            delta_arrow="off" if same else "auto",
        )
    if before is not None and period.start is not None:
        end = period.end or data.hour_anchor()
        days = (end - period.start).total_seconds() / 86400
        st.caption(f"Changes are against the {plural(round(days), 'day')} before this period.")
    untimed_note(totals)


def charted(series: pd.DataFrame) -> str:
    """The column a chart of ``series`` (with ``plays`` and ``minutes``) draws: minutes, unless no
    play in it has a known length (a history of scrobbles without durations), where a minutes
    chart would be a flat line at 0: then plays."""
    if len(series) and float(series["minutes"].sum()) == 0 and float(series["plays"].sum()) > 0:
        return "plays"
    return "minutes"


def untimed_note(totals: pd.Series) -> None:
    """What the minutes cover, when some plays have no known length (``queries.totals_query``'s
    ``untimed``: scrobbles without a duration). They count as plays, with 0 minutes: an
    estimate would be a figure nobody measured."""
    untimed, plays = int(totals.get("untimed") or 0), int(totals.get("plays") or 0)
    if untimed and plays:
        st.caption(
            f"Minutes cover {number(plays - untimed)} of {plural(plays, 'play')} ({(plays - untimed) / plays:.0%}): "
            f"{plural(untimed, 'play')} of unknown length (scrobbles without a duration) count 0 minutes."
        )


# -- partial periods ----------------------------------------------------------------
def history_days(ctx: Context) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The local days the viewer's history covers: from their first play's day to the end of
    today (exclusive), as naive midnights; ``None`` without plays. Cached with the frame's batch."""
    found = frame(ctx.fetch(queries.freshness_query()), "freshness")
    if not len(found) or pd.isna(found["oldest"].iloc[0]):
        return None
    return local_day(found["oldest"].iloc[0], ctx.tz), local_day(data.hour_anchor(), ctx.tz) + pd.Timedelta(
        days=1
    )


def partial_flags(
    starts: pd.Series, step: pd.DateOffset, range_start: pd.Timestamp, range_end: pd.Timestamp
) -> pd.Series:
    """Which periods (``starts``, local midnights, each ``step`` long) the range shown does not
    cover whole: the first when the range (or the history) starts after its first day, the last
    when the range ends (or today is) before its last day. Unmarked, such periods read as dips
    (or, for discoveries, as a month where everything was new); every chart greys them."""
    starts = pd.to_datetime(starts)
    return (starts < range_start) | (starts + step > range_end)


#: The caption under a chart with greyed periods.
PARTIAL_CAPTION = (
    "Grey bars are partial periods: the range shown starts or ends inside them, so they are not dips."
)


# -- charts -------------------------------------------------------------------------
#: Fewer days than this and a per-day chart is a lonely bar or an invisible area.
FEW_DAYS = 3


def chart(c: alt.Chart | alt.LayerChart, height: int = 260, *, stretch: bool = True) -> None:
    """Draw a chart in the app's theme; ``stretch=False`` keeps a chart of few bars at its own
    width (``alt.Step``) instead of one bar spread across the page."""
    st.altair_chart(c.properties(height=height), theme="streamlit", width="stretch" if stretch else "content")


def recent_default(status: data.Status) -> queries.PeriodKind:
    """The one default period of every page: 'Last 4 weeks' when there are recent plays, else
    'All time' (an imported old history, whose last 4 weeks would be empty)."""
    newest = status.newest_play
    if newest is not None and datetime.now(UTC) - newest < pd.Timedelta(weeks=4):
        return "4w"
    return "all"


PERIOD_PARAM, FROM_PARAM, TO_PARAM = "period", "from", "to"
#: The period every page shows, in Session State under keys no widget owns: Streamlit drops a
#: widget's state when its page is left, so each page's control is seeded from these and
#: writes back to them (``_remember_period``); one period across pages, one default.
PERIOD_STATE, RANGE_STATE = "_period", "_period_range"


def _iso_date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def url_notice(value: str, shown: str) -> None:
    """The one line a link with a value this page cannot show gets (instead of a silent fallback):
    ``value`` is the link's ``name=value``, ``shown`` what the page shows instead."""
    st.info(f"The link's `{value}` is not one this page knows: showing {shown}.", icon=":material/link_off:")


def _url_range() -> tuple[date, date] | None:
    """The link's ``from``/``to`` days, when both are there and in order (``None`` if absent)."""
    raw_first, raw_last = st.query_params.get(FROM_PARAM), st.query_params.get(TO_PARAM)
    if raw_first is None and raw_last is None:
        return None
    first, last = _iso_date(raw_first or ""), _iso_date(raw_last or "")
    if first is None or last is None or first > last:
        url_notice(
            f"{FROM_PARAM}={raw_first or ''}&{TO_PARAM}={raw_last or ''}",
            "the 30 days up to your newest play",
        )
        return None
    return first, last


def _remember_period(widget: str) -> None:
    """A page's control changed: the choice becomes every page's, and the link's."""
    choice = st.session_state.get(widget)
    if choice in queries.PERIOD_LABELS:
        st.session_state[PERIOD_STATE] = choice
        st.query_params[PERIOD_PARAM] = choice


def _remember_range(widget: str) -> None:
    picked = st.session_state.get(widget)
    if isinstance(picked, tuple | list) and len(picked) == 2:
        st.session_state[RANGE_STATE] = (picked[0], picked[1])
        # One message, one history entry for one pick (two assignments were two entries).
        st.query_params.update({FROM_PARAM: picked[0].isoformat(), TO_PARAM: picked[1].isoformat()})


def shared_period(status: data.Status) -> queries.PeriodKind:
    """The period of this visit: a valid ``period=`` in the link, else the one chosen on any page
    this session, else ``recent_default``. An invalid ``period=`` gets ``url_notice``."""
    default = recent_default(status)
    raw = st.query_params.get(PERIOD_PARAM)
    if raw is not None and raw in queries.PERIOD_LABELS:
        st.session_state[PERIOD_STATE] = raw
    elif raw is not None:
        shown = st.session_state.get(PERIOD_STATE, default)
        url_notice(f"{PERIOD_PARAM}={raw}", queries.PERIOD_LABELS[shown])
    kind = st.session_state.setdefault(PERIOD_STATE, default)
    return kind if kind in queries.PERIOD_LABELS else default


def period_picker(key: str, status: data.Status, tz: str) -> queries.Period:
    """The period control every period page shows, one period across pages, kept in the URL.

    ``?period=4w|6m|all|custom`` and, for a custom range, ``&from=YYYY-MM-DD&to=YYYY-MM-DD``
    (local days, inclusive), so a copied link reopens the same view; moving to another page
    keeps the period (Session State, ``PERIOD_STATE``), whose control is ``{key}_period``.
    """
    kinds: list[queries.PeriodKind] = list(queries.PERIOD_LABELS)
    widget = f"{key}_period"
    kind = shared_period(status)
    st.session_state[widget] = kind
    st.segmented_control(
        "Period",
        kinds,
        format_func=lambda k: queries.PERIOD_LABELS[k],
        key=widget,
        on_change=_remember_period,
        args=(widget,),
    )
    keep_in_url(PERIOD_PARAM, kind)
    if kind != "custom":
        keep_in_url(FROM_PARAM, None)
        keep_in_url(TO_PARAM, None)
        return queries.period_for(kind, tz, now=data.hour_anchor())
    range_key = f"{key}_range"
    linked = _url_range()
    if linked is not None and linked == st.session_state.get(RANGE_STATE):
        linked = None  # the link says what this session already shows
    if linked is not None:
        st.session_state[RANGE_STATE] = linked
    if RANGE_STATE not in st.session_state:
        newest = status.newest_play or datetime.now(UTC)
        last = pd.Timestamp(newest).tz_convert(tz).date()
        first = (pd.Timestamp(newest) - pd.Timedelta(days=30)).tz_convert(tz).date()
        st.session_state[RANGE_STATE] = (first, last)
    if range_key not in st.session_state or linked is not None:
        st.session_state[range_key] = st.session_state[RANGE_STATE]
    picked = st.date_input(
        "Date range (inclusive)", key=range_key, on_change=_remember_range, args=(range_key,)
    )
    dates = list(picked) if isinstance(picked, tuple | list) else [picked]
    if not dates:
        return queries.Period()
    start, end = dates[0], dates[-1]
    if len(dates) == 2:  # a range half picked stays out of the link until its end is picked
        keep_in_url(FROM_PARAM, start.isoformat())
        keep_in_url(TO_PARAM, end.isoformat())
    return queries.period_for("custom", tz, first_day=start, last_day=end)


# -- first run ----------------------------------------------------------------------
ONBOARDING = """
**1. Connect your Spotify account** (new plays arrive every hour from then on). Create an app
at [developer.spotify.com](https://developer.spotify.com/dashboard) with the redirect URI
`http://127.0.0.1:8888/callback`, then in the project folder:

```
export SPOTIFY_CLIENT_ID=your-client-id SPOTIFY_CLIENT_SECRET=your-client-secret
.venv/bin/spotify-assets auth
make demo
```

**2. Bring your whole history.** Spotify only shares your last 50 plays; for the years before,
ask for *Extended streaming history* on your [account's privacy page](https://www.spotify.com/account/privacy/)
(it arrives by e-mail within 30 days) and import the zip. A Last.fm CSV or a ListenBrainz export
imports the same way, each listen counted once:

```
.venv/bin/spotify-assets import ~/Downloads/my_spotify_data.zip
```

**Just looking?** `make demo` without an account fills the dashboard with a year of a
made-up listener's plays.
"""


def first_run(status: data.Status) -> None:
    """Shown instead of every page (whatever its address) while there is nothing to show."""
    st.title("Your listening, your data")
    if status.state == "missing":
        st.info(
            "Nothing here yet: your listening history has not been collected. Two steps and "
            "this page fills with your top artists, your hours and your discoveries.",
            icon=":material/rocket_launch:",
        )
    else:
        st.info(
            "Connected, but no plays have arrived yet: play a few songs on Spotify (a track counts "
            "after 30 seconds) and wait for the next hourly run, or import your history below.",
            icon=":material/hourglass_empty:",
        )
    st.markdown(ONBOARDING)
    st.page_link(IMPORT_PAGE, label="Or upload your export here", icon=":material/upload:")
    where = status.source_id.removeprefix("duckdb:")
    st.caption(f"Reading the warehouse at `{where}` (set `SPOTIFY_WAREHOUSE_SNAPSHOT` to change it).")
