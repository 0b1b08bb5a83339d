"""`make bench QUICK=1` still works: the quick run writes every section with numeric figures.

No timing is asserted (timings are for people, in bench/RESULTS.md); this checks the scripts
run end to end on real parts (subprocess imports, the sandbox, DuckDB, Spark, the dashboard).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURE = r"\d+\.\d+ \((?:\d+\.\d+-\d+\.\d+, )?n=\d+\)"


@pytest.mark.timeout(600)
def test_quick_bench_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out), "--work", str(tmp_path / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for heading in (
        "## 1. History import",
        "## 2. Hourly tick cost vs history size",
        "## 3. Top ten",
        "## 4. Dashboard",
    ):
        assert heading in text
    assert "- Machine: " in text and "duckdb " in text
    # Import: ours and the pandas->CSV alternative, each with a figure and the same row count.
    ours = re.search(rf"^\| 5,000 \| ours \| ({FIGURE}) \| .* \| ([\d,]+) \|$", text, re.M)
    pandas = re.search(rf"^\| 5,000 \| pandas_csv \| ({FIGURE}) \| .* \| ([\d,]+) \|$", text, re.M)
    assert ours and pandas, text
    assert ours.group(2) == pandas.group(2)
    assert re.search(r"vs pandas_csv \d+\.\d+x", text)
    # The engine's floor beside ours, and their ratio (the import's target).
    assert re.search(rf"^\| 5,000 \| duckdb_floor \| ({FIGURE}) \|", text, re.M)
    assert re.search(r"ours / DuckDB floor \d+\.\d+x \(target <= 1\.5x\)", text)
    assert "vs dlt " in text or "dlt not installed" in text
    # Tick: both history sizes with a wall figure and the API calls counted.
    assert re.search(rf"^\| 1,000 \| {FIGURE} \| \d+ \| 1 \| \d+ \|", text, re.M)
    assert re.search(rf"^\| 20,000 \| {FIGURE} \| \d+ \| 1 \| \d+ \|", text, re.M)
    assert re.search(r"Ratio 20,000 / 1,000 history: \d+\.\d+x", text)
    # The whole hourly run with and without the warm Spark Connect server, step times included.
    assert "## 2b. The whole hourly run, top ten included" in text
    assert re.search(rf"^\| warm Connect server \| {FIGURE} \| {FIGURE} \| {FIGURE} \|$", text, re.M)
    # Quick mode starts no in-process JVM (the most CPU it would spend); the full bench measures those.
    in_process = r"without it \(in-process JVM\)"
    assert re.search(
        rf"^\| {in_process} \| full bench only \| full bench only \| full bench only \|$", text, re.M
    )
    # Top ten: the engines agree on the result and every cell run is a number.
    assert re.search(
        r"^\| 50,000 \| \d+\.\d+ .*\| full bench only \| full bench only \| \d+\.\d+x \| full bench only \| \d+\.\d+x \|$",
        text,
        re.M,
    )
    assert "All engines return the same rows (scope, rank, track id): yes" in text
    # Dashboard: the six pages, each with cold and warm seconds.
    pages = re.findall(r"^\| (\w+) \| (\d+\.\d+) \| (\d+\.\d+) \| (?:met|MISSED) \|$", text, re.M)
    assert {p[0] for p in pages} >= {"overview", "top", "when", "mood", "discovery", "recent"}
