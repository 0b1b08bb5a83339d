"""Issue 25, item 4: one period across pages, honoured everywhere, partial periods said.

Same method as ``test_dashboard_defects.py``: Streamlit's AppTest on fixture warehouses, the
expected figures counted from the fixture with pandas, never read back from the page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest

from spotify_assets.schema import conform
from spotify_assets_tests.fixtures.dashboard import (
    BOB,
    build_dashboard_warehouse,
    dashboard_plays,
    first_day_plays,
)
from spotify_assets_tests.test_dashboard import _app, _metrics, _text
from spotify_assets_tests.test_dashboard_defects import _chart_data, _charts

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
FEB = (date(2024, 2, 1), date(2024, 2, 29))
#: Pages with a period control, by the key of their control (``<page>_period``).
PERIOD_PAGES = ("overview", "top", "when", "mood", "recent")


def _music() -> pd.DataFrame:
    plays = dashboard_plays()
    return plays[plays["is_play"] & (plays["content_type"] != "episode")]


def _pick(at: AppTest, page: str, first: date, last: date) -> None:
    at.segmented_control(key=f"{page}_period").set_value("custom").run()
    at.date_input(key=f"{page}_range").set_value((first, last)).run()
    assert not at.exception, at.exception


@pytest.fixture(scope="module")
def recent_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A listener whose newest play is yesterday: the default period is the last 4 weeks."""
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    plays = pd.concat([dashboard_plays(), first_day_plays(day)], ignore_index=True)
    return build_dashboard_warehouse(tmp_path_factory.mktemp("dash_recent"), conform(plays, "plays"))


# -- Overview honours the period --------------------------------------------------------------
def test_overview_daily_minutes_and_last_play_cover_the_period_only(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot)
    _pick(at, "overview", *FEB)
    music = _music()
    feb = music[(music["played_at"] >= "2024-02-01T00:00Z") & (music["played_at"] < "2024-03-01T00:00Z")]
    minutes = feb["duration_ms"].sum() / 60_000
    assert _metrics(at)["Minutes per day"] == f"{minutes / 29:,.0f}"  # 29 days, quiet ones included
    daily = _chart_data(next(c for c in _charts(at) if "minutes" in str(c.proto.spec)))
    days = pd.to_datetime(daily["day"])
    assert (days.min(), days.max(), len(daily)) == (
        pd.Timestamp("2024-02-01"),
        pd.Timestamp("2024-02-29"),
        29,
    )
    assert float(daily["minutes"].sum()) == pytest.approx(minutes)
    newest = feb.sort_values("played_at").iloc[-1]
    assert f"**Last played:** {newest['track_name']}" in _text(at)
    assert "Your listening from 01 Feb 2024 to 14 Feb 2024 (UTC)." in _text(at)


def test_overview_of_a_period_without_plays_says_so(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot)
    _pick(at, "overview", date(2023, 6, 1), date(2023, 6, 30))
    assert [i.value for i in at.info] == ["No plays in this period."]
    assert not at.metric and not _charts(at)  # no zeros, no "+0", no other period's chart
    assert "Your listening from" not in _text(at) and "Last played" not in _text(at)


def test_an_unchanged_headline_has_no_green_arrow(dashboard_env, dashboard_snapshot):
    """Jan 15-19 holds 5 evenings of 8 plays, as do the 5 days before it: "+0", grey, no arrow."""
    at = _app(dashboard_env, dashboard_snapshot)
    _pick(at, "overview", date(2024, 1, 15), date(2024, 1, 19))
    plays = next(m for m in at.metric if m.label == "Plays")
    assert (plays.value, plays.delta) == ("40", "+0")
    assert (plays.proto.color, plays.proto.direction) == (
        Metric.MetricColor.GRAY,
        Metric.MetricDirection.NONE,
    )


# -- One period across pages, one default ---------------------------------------------------------
def test_the_period_follows_the_listener_across_pages(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "top")
    _pick(at, "top", *FEB)
    for page in PERIOD_PAGES:
        at.query_params.clear()  # as the sidebar's page links do: the new page's URL has no parameters
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, at.exception
        assert at.segmented_control(key=f"{page}_period").value == "custom", page
        assert at.date_input(key=f"{page}_range").value == FEB, page
        assert (at.query_params["period"], at.query_params["from"], at.query_params["to"]) == (
            "custom",
            "2024-02-01",
            "2024-02-29",
        ), page
    at.segmented_control(key="recent_period").set_value("6m").run()
    at.query_params.clear()
    at.switch_page("views/when.py").run()
    assert at.segmented_control(key="when_period").value == "6m"
    assert at.query_params["period"] == "6m" and "from" not in at.query_params


@pytest.mark.parametrize(("snapshot", "default"), [("dashboard_snapshot", "all"), ("recent_snapshot", "4w")])
def test_every_page_opens_on_the_same_default(dashboard_env, request, snapshot, default):
    """Recent plays: the last 4 weeks everywhere; an old imported history: all time everywhere."""
    path = request.getfixturevalue(snapshot)
    for page in PERIOD_PAGES:
        at = _app(dashboard_env, path, None if page == "overview" else page)
        assert at.segmented_control(key=f"{page}_period").value == default, page
        assert at.query_params["period"] == default, page


# -- Invalid link values ------------------------------------------------------------------------
def _opened(dashboard_env: pytest.MonkeyPatch, snapshot: Path, page: str, **params: str) -> AppTest:
    dashboard_env.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(snapshot))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)  # a browser opening /<page>?<params>: the frame sees them first
    at.run()
    at.query_params.clear()
    at.query_params.update(params)
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PERIOD_PAGES)
def test_an_invalid_period_in_the_link_is_said_and_the_default_shown(dashboard_env, dashboard_snapshot, page):
    at = _opened(dashboard_env, dashboard_snapshot, page, period="decade")
    notices = [i.value for i in at.info if "period=decade" in i.value]
    assert notices == ["The link's `period=decade` is not one this page knows: showing All time."]
    assert at.segmented_control(key=f"{page}_period").value == "all"
    assert at.query_params["period"] == "all"


def test_an_invalid_custom_range_in_the_link_is_said(dashboard_env, dashboard_snapshot):
    at = _opened(dashboard_env, dashboard_snapshot, "top", period="custom", to="2024-02-30")
    assert any("from=&to=2024-02-30" in i.value for i in at.info), [i.value for i in at.info]


def test_an_invalid_year_in_the_link_is_said_and_the_newest_shown(dashboard_env, dashboard_snapshot):
    at = _opened(dashboard_env, dashboard_snapshot, "wrapped", year="1999")
    assert [i.value for i in at.info][:1] == [
        "The link's `year=1999` is not one this page knows: showing 2024."
    ]
    assert at.query_params["year"] == "2024"


# -- Partial periods said and greyed ----------------------------------------------------------
def test_wrapped_says_a_year_the_history_starts_in_is_partial(dashboard_env, dashboard_snapshot):
    """The fixture's history starts on 10 Jan 2024 (and ends 29 Mar, a year long over)."""
    at = _opened(dashboard_env, dashboard_snapshot, "wrapped", year="2024")
    assert [i.value for i in at.info] == [
        "2024 is partial here: your history starts on 10 Jan 2024, so these figures cover 10 Jan - 31 Dec 2024 only."
    ]


def test_wrapped_says_this_year_is_not_over(dashboard_env, recent_snapshot):
    today = datetime.now(UTC).date()
    at = _opened(dashboard_env, recent_snapshot, "wrapped", year=str(today.year))
    notes = [i.value for i in at.info]
    if today == date(today.year, 12, 31):
        assert notes == []
    else:
        assert notes == [
            f"{today.year} is partial here: it is not over yet, so these figures cover "
            f"01 Jan - {today:%d %b %Y} only."
        ]


def test_household_wrapped_is_titled_with_the_listeners_name(dashboard_env, household_snapshot):
    dashboard_env.setenv("SPOTIFY_DATA_DIR", str(household_snapshot.parent))  # the registry: Bob's name
    at = _opened(dashboard_env, household_snapshot, "wrapped", user=BOB, year="2024")
    assert at.title[0].value == "Bob's 2024 in music"
    at = _opened(dashboard_env, household_snapshot, "wrapped", year="2024")
    assert at.title[0].value == "Everyone's 2024 in music"


def test_discovery_fades_and_says_the_first_month_of_the_history(dashboard_env, dashboard_snapshot):
    """January 2024 starts on the 10th: its 100% new is a partial month's, faded and said."""
    at = _app(dashboard_env, dashboard_snapshot, "discovery")
    for chart in _charts(at)[:2]:
        data = _chart_data(chart)
        flagged = sorted({pd.Timestamp(m).strftime("%Y-%m") for m in data.loc[data["partial"], "month"]})
        assert flagged == ["2024-01"], flagged
        assert "datum.partial" in chart.proto.spec  # drawn faded
    assert (
        "January 2024 is partial here: your history starts on 10 Jan 2024, so these figures cover "
        "10 Jan - 31 Jan 2024 only."
    ) in _text(at)


def test_detail_charts_grey_partial_months(dashboard_env, dashboard_snapshot):
    at = _opened(dashboard_env, dashboard_snapshot, "artist", id="a1")
    monthly = next(c for c in _charts(at) if '"partial"' in c.proto.spec)
    data = _chart_data(monthly)
    assert sorted(pd.Timestamp(m).strftime("%Y-%m") for m in data.loc[data["partial"], "month"]) == [
        "2024-01"
    ]
    assert "#8A8F98" in monthly.proto.spec  # ui.MUTED, When's grey
