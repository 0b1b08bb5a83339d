"""Shared page furniture: the per-run context, formatting, chart styling and the first-run page.

Charts use Streamlit's own Altair theme (``theme="streamlit"``), which follows the light or
dark mode the viewer picked; this module only fixes the accent colour and sizes, so every
chart looks like part of one app in both modes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

import altair as alt
import pandas as pd
import streamlit as st

from app import data, queries
from app.warehouse import Warehouse

ACCENT = "#1DB954"
SECOND = "#7C5CFF"
THIRD = "#FF8A3D"
TZ_KEY = "tz"

DEFINITIONS = (
    "**Definitions.** A *play* is a track streamed for at least 30 seconds (Spotify's own rule); "
    "shorter streams are kept but not counted. Podcast episodes are left out of music statistics. "
    "Minutes are the time played when Spotify reports it (account exports), otherwise the track length."
)


@dataclass(frozen=True)
class Context:
    """What every page needs: where the data is, which version of it, and the viewer's time zone."""

    wh: Warehouse
    status: data.Status
    tz: str

    def fetch(self, batch: dict[str, str]) -> dict[str, pd.DataFrame | None]:
        return data.fetch(self.wh, self.status, batch)


def default_timezone() -> str:
    tz = os.environ.get("SPOTIFY_TIMEZONE", "UTC")
    return tz if tz in queries.valid_timezones() else "UTC"


def current_tz() -> str:
    tz = st.session_state.get(TZ_KEY) or default_timezone()
    return tz if tz in queries.valid_timezones() else "UTC"


def context() -> Context:
    wh = data.warehouse()
    return Context(wh=wh, status=data.status(wh), tz=current_tz())


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


def duration(minutes: float) -> str:
    hours, mins = divmod(round(minutes), 60)
    return f"{hours} h {mins:02d} min" if hours else f"{mins} min"


def number(value: float) -> str:
    return f"{value:,.0f}"


def frame(result: dict[str, pd.DataFrame | None], name: str) -> pd.DataFrame:
    """A batch result, an empty frame when the table was missing."""
    df = result.get(name)
    return pd.DataFrame() if df is None else df


# -- charts -------------------------------------------------------------------------
def chart(c: alt.Chart | alt.LayerChart, height: int = 260) -> None:
    st.altair_chart(c.properties(height=height), theme="streamlit", width="stretch")


def recent_default(status: data.Status) -> queries.PeriodKind:
    """'Last 4 weeks' when there are recent plays, else 'All time' (an imported old history)."""
    newest = status.newest_play
    if newest is not None and datetime.now(UTC) - newest < pd.Timedelta(weeks=4):
        return "4w"
    return "all"


def period_picker(
    key: str, status: data.Status, tz: str, default: queries.PeriodKind = "all"
) -> queries.Period:
    """The period control shared by the Top, When and Mood pages."""
    kinds: list[queries.PeriodKind] = ["4w", "6m", "all", "custom"]
    choice = st.segmented_control(
        "Period",
        kinds,
        default=default,
        format_func=lambda k: queries.PERIOD_LABELS[k],
        key=f"{key}_period",
    )
    kind: queries.PeriodKind = choice or default
    if kind != "custom":
        return queries.period_for(kind, tz, now=data.hour_anchor())
    newest = status.newest_play or datetime.now(UTC)
    last = pd.Timestamp(newest).tz_convert(tz).date()
    first = (pd.Timestamp(newest) - pd.Timedelta(days=30)).tz_convert(tz).date()
    picked = st.date_input("Date range (inclusive)", value=(first, last), key=f"{key}_range")
    dates = list(picked) if isinstance(picked, tuple | list) else [picked]
    if not dates:
        return queries.Period()
    start, end = dates[0], dates[-1]
    return queries.period_for("custom", tz, first_day=start, last_day=end)


# -- first run ----------------------------------------------------------------------
def first_run(status: data.Status) -> None:
    """Shown instead of every page while there is nothing to show."""
    st.title("Your listening, your data")
    if status.state == "missing":
        st.info(
            "There is no warehouse yet. Run the pipeline once to collect your listening history:\n\n"
            "```\nmake demo\n```\n\nthen reload this page.",
            icon=":material/rocket_launch:",
        )
    else:
        st.info(
            "The warehouse exists but has no plays yet. Run `make demo` (or wait for the next "
            "scheduled pipeline run), then reload this page.",
            icon=":material/hourglass_empty:",
        )
    where = status.source_id.removeprefix("duckdb:")
    st.caption(f"Looking for the warehouse at `{where}` (set `SPOTIFY_WAREHOUSE_SNAPSHOT` to change it).")
