"""Take the README's dashboard screenshot (``docs/img/dashboard.png``) again, so it can be re-taken
whenever the pages change: the Overview as a first visit sees it, from the served app (``make
dashboard``'s own process) over ``make demo``'s warehouse, in the project's headless Chromium.

    make demo && .venv/bin/python scripts/dashboard_screenshot.py [--data-dir DIR] [--out PATH]

The browser and the server are the browser tests' (``spotify_assets_tests/fixtures/dashboard.py``):
the same process ``make dashboard`` runs, and a Chromium that refuses anything off loopback, so
the picture holds nothing the app would not draw offline. It is taken once the page has finished
running and every chart is drawn, never after a fixed wait.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spotify_assets.settings import data_dir  # noqa: E402
from spotify_assets_tests.fixtures.dashboard import (  # noqa: E402
    chromium,
    rendered_text,
    serve_dashboard,
    served_env,
)

OUT = ROOT / "docs" / "img" / "dashboard.png"
#: A laptop's window: the sidebar, the headline numbers and the start of the charts.
VIEWPORT = {"width": 1280, "height": 800}
#: Every chart on the page has drawn (Vega renders after Streamlit's run ends).
CHARTS_DRAWN_JS = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .every(c => c.querySelector('canvas, svg'))"""


def take(data: Path, out: Path, scheme: str = "light") -> str:
    """Serve the dashboard over ``data``, screenshot its Overview into ``out``; returns the page's text."""
    if not (data / "warehouse.snapshot.duckdb").exists():
        raise SystemExit(f"No warehouse in {data}: run `make demo` first (or pass --data-dir).")
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as scratch:
        env = served_env(SPOTIFY_DATA_DIR=str(data), SPOTIFY_TIMEZONE="UTC")
        with serve_dashboard(env, Path(scratch) / "dashboard.log") as served, chromium() as browser:
            context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)  # type: ignore[arg-type]
            try:
                page = context.new_page()
                page.goto(served.url, wait_until="domcontentloaded")
                page.wait_for_function(
                    "document.querySelector('h1') && document.querySelector('h1').innerText.includes('Overview')",
                    timeout=120_000,
                )
                text = rendered_text(page, timeout_ms=120_000)
                page.wait_for_function(CHARTS_DRAWN_JS, timeout=60_000)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
            finally:
                context.close()
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="make demo's data directory (default: its own)"
    )
    parser.add_argument(
        "--out", type=Path, default=OUT, help=f"where the PNG goes (default: {OUT.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    text = take((args.data_dir or data_dir()).resolve(), args.out)
    newest = next((line for line in text.splitlines() if line.startswith("Newest play")), "")
    print(f"{args.out}: the Overview ({newest or 'no freshness line'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
