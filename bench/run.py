"""``make bench``: every benchmark against its alternatives in one run, written to bench/RESULTS.md.

    python -m bench.run [--quick] [--out bench/RESULTS.md]

Each measured variant runs in its own subprocess (its own peak RSS, no warm caches shared
with another variant); every figure is the median of its runs with min-max. Ratios compare
variants measured in this same run on the same data. Nothing is asserted: the report says
which targets are met. See bench/README.md for what each alternative is and why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = ROOT / "bench" / ".work"
WORK = DEFAULT_WORK
SEED = 7
PLAYS_END = datetime(2026, 11, 20, tzinfo=UTC)
#: The top-ten section's household: five listeners (a Spotify app in development mode allows five),
#: so the measured job ranks each listener's plays and everyone's, as the pipeline's does.
TOPTEN_LISTENERS = 5


@dataclass
class Plan:
    import_sizes: list[int]
    import_repeats: dict[int, int]
    alt_sizes: list[int]  # pandas->CSV at these sizes
    dlt_sizes: list[int]
    rowwise_rows: int  # the row-wise CSV load stops after this many rows (it runs at ~100 rows/s)
    tick_histories: tuple[int, int]
    tick_repeats: int
    hourly_cold_repeats: int
    topten_sizes: list[int]
    topten_repeats: int
    dashboard_plays: int
    dashboard_rounds: int
    notes: list[str] = field(default_factory=list)
    #: Quick mode only proves every section runs (its figures are not measurements): it runs the
    #: Python sections beside the Spark ones and starts one Connect server for both Spark
    #: sections, instead of one each.
    side_by_side: bool = False
    #: Options for every JVM the run starts (``JAVA_TOOL_OPTIONS``); empty = the JVM's defaults.
    jvm_options: str = ""
    #: The top-ten engines run. Quick mode leaves out ``spark`` (an in-process JVM, cold and
    #: warm), as it leaves out the hourly run without the Connect server (``hourly_cold_repeats``
    #: 0): each is one more JVM start-up, the most CPU a quick run spends, and the pipeline's own
    #: in-process Spark is tested beside it (``test_spark_connect``'s fallback); the full bench
    #: measures both.
    topten_engines: tuple[str, ...] = ("duckdb", "pandas", "spark", "spark-connect")


#: Quick mode's JVMs live a minute, so they skip the optimising (C2) compiler and the parallel
#: collector's threads, CPU a short run never earns back on two cores shared with the Python lane
#: (at load 10-19: the Connect server ready in 13 s instead of 29, the warm top-ten step 2.5 s
#: instead of 12.5). The full bench keeps the JVM's defaults: those are what it measures.
SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


#: A table cell quick mode leaves out (the full bench measures it).
NOT_RUN = "full bench only"


QUICK = Plan(
    import_sizes=[5_000],
    import_repeats={5_000: 1},
    alt_sizes=[5_000],
    dlt_sizes=[5_000],
    rowwise_rows=50,  # enough rows to give a rate; at ~100 rows/s each row is 10 ms of the run
    tick_histories=(1_000, 20_000),
    tick_repeats=1,
    hourly_cold_repeats=0,
    topten_sizes=[50_000],
    topten_repeats=1,
    dashboard_plays=10_000,
    dashboard_rounds=1,
    notes=[
        "Quick mode proves each section runs; its figures are not measurements: the import, tick and "
        "dashboard sections ran beside the Spark ones, which shared one Connect server; every JVM "
        f"ran with `{SHORT_LIVED_JVM}`.",
    ],
    side_by_side=True,
    jvm_options=SHORT_LIVED_JVM,
    topten_engines=("duckdb", "pandas", "spark-connect"),
)
FULL = Plan(
    import_sizes=[10_000, 100_000, 1_000_000],
    import_repeats={10_000: 3, 100_000: 2, 1_000_000: 1},
    rowwise_rows=500,  # what the full runs in RESULTS.md used (the plan was not passed on before)
    alt_sizes=[10_000, 100_000, 1_000_000],
    dlt_sizes=[10_000, 100_000],
    tick_histories=(10_000, 1_000_000),
    tick_repeats=3,
    hourly_cold_repeats=2,
    topten_sizes=[10_000, 100_000, 1_000_000, 10_000_000],
    topten_repeats=3,
    dashboard_plays=1_000_000,
    dashboard_rounds=3,
    notes=[
        "Imports at 1,000,000 rows ran once per variant (time budget), 100k twice, 10k three times.",
        "dlt ran at 10k and 100k only: at ~1k rows/s on this machine 1M rows would take ~15 minutes.",
    ],
)


# -- helpers ----------------------------------------------------------------------------------
def fig(values: list[float], digits: int = 2) -> str:
    """``median (min-max, n=k)``, the one format for every figure."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f} (n=1)"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f}, n={len(values)})"


def med(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def py(*args: str, timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m ...`` from the repo root; return the JSON its last stdout line holds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> list[str]:
    mem = ""
    try:
        kib = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, IndexError):
        pass
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, IndexError):
        cpu = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())[0]
    load = ", load average at start {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    return [
        f"- Machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}){mem}{load}",
        f"- Python {platform.python_version()}; "
        + ", ".join(
            f"{d} {version(d)}"
            for d in ("duckdb", "pandas", "pyarrow", "pyspark", "dagster", "dlt", "streamlit")
        ),
    ]


# -- 1 + 5a: import ---------------------------------------------------------------------------
def bench_import(plan: Plan) -> tuple[list[str], dict[str, Any]]:
    has_dlt = version("dlt") != "not installed"
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for n in plan.import_sizes:
        export = WORK / "exports" / f"{n}"
        if not export.exists():
            log(f"generating a {n:,}-row export (seed {SEED})")
            from spotify_sandbox.exports import generate_export

            generate_export(export, n, seed=SEED)
        # The floor right before ours, at every size: their ratio is the import's target.
        variants = ["duckdb_floor", "ours"]
        if n in plan.alt_sizes:
            variants += ["pandas_csv"]
        if n in plan.dlt_sizes and has_dlt:
            variants += ["dlt"]
        if n == plan.import_sizes[0]:
            variants += ["pandas_csv_rowwise"]
        for variant in variants:
            reps = 1 if variant == "pandas_csv_rowwise" else plan.import_repeats[n]
            for _ in range(reps):
                work = WORK / "import" / variant
                shutil.rmtree(work, ignore_errors=True)
                log(f"import {variant} {n:,}")
                results.setdefault((variant, n), []).append(
                    py(
                        "bench.import_variants",
                        "--variant",
                        variant,
                        "--export",
                        str(export),
                        "--work",
                        str(work),
                        "--rowwise-rows",
                        str(plan.rowwise_rows),
                    )
                )
    lines = [
        "## 1. History import",
        "",
        "Seeded extended-history export (`spotify_sandbox.exports`, seed 7) into the plays table "
        "of a fresh DuckDB warehouse. Rows/s counts rows read; peak RSS is the variant's own process.",
        "",
        "| rows | variant | wall s | rows/s | peak RSS MiB | plays in table |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    figures: dict[str, Any] = {}
    for (variant, n), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        secs = [r["seconds"] for r in runs]
        if variant == "pandas_csv_rowwise":
            loaded = runs[0]["loaded"]
            rate = loaded / runs[0]["load_seconds"]
            lines.append(
                f"| {loaded:,} (sample) | pandas -> CSV -> row-wise executemany (load step only) | "
                f"{runs[0]['load_seconds']:.2f} | {rate:,.0f} | {runs[0]['peak_rss_mb']:.0f} | {runs[0]['rows']:,} |"
            )
            figures["rowwise_rate"] = rate
            continue
        rates = [n / s for s in secs]
        lines.append(
            f"| {n:,} | {variant} | {fig(secs)} | {fig(rates, 0)} | "
            f"{fig([r['peak_rss_mb'] for r in runs], 0)} | {runs[0]['rows']:,} |"
        )
        figures[f"{variant}:{n}"] = {
            "seconds": med(secs),
            "rate": med(rates),
            "rss": max(r["peak_rss_mb"] for r in runs),
        }
    if not has_dlt:
        lines.append("")
        lines.append('dlt not installed: the dlt comparison was skipped (`uv pip install "dlt[duckdb]"`).')
    lines += ["", "Ratios (ours vs the alternative, same size, same run; > 1 means ours is faster):", ""]
    for n in plan.import_sizes:
        ours = figures.get(f"ours:{n}")
        if not ours:
            continue
        parts = []
        for alt in ("pandas_csv", "dlt"):
            other = figures.get(f"{alt}:{n}")
            if other:
                parts.append(f"vs {alt} {ratio(other['seconds'], ours['seconds'])}")
        if "rowwise_rate" in figures:
            parts.append(f"vs pandas row-wise load (rate) {ratio(ours['rate'], figures['rowwise_rate'])}")
        floor = figures.get(f"duckdb_floor:{n}")
        if floor:
            parts.append(f"ours / DuckDB floor {ratio(ours['seconds'], floor['seconds'])} (target <= 1.5x)")
        lines.append(f"- {n:,} rows: " + ", ".join(parts))
        ours_last = f"{n:,}"
    biggest = max(plan.import_sizes)
    ours = figures[f"ours:{biggest}"]
    verdicts = []
    for alt, target in (("pandas_csv", 10.0), ("dlt", 2.0)):
        sizes = [n for n in plan.import_sizes if f"{alt}:{n}" in figures and f"ours:{n}" in figures]
        if sizes:
            n = max(sizes)
            r = figures[f"{alt}:{n}"]["seconds"] / figures[f"ours:{n}"]["seconds"]
            verdicts.append(
                f"{alt} at {n:,}: {r:.2f}x, target {target:g}x {'met' if r >= target else 'MISSED'}"
            )
    floor = figures.get(f"duckdb_floor:{biggest}")
    if floor:
        r = ours["seconds"] / floor["seconds"]
        verdicts.append(
            f"ours / DuckDB floor at {biggest:,}: {r:.2f}x, target <= 1.5x {'met' if r <= 1.5 else 'MISSED'}"
        )
    if "rowwise_rate" in figures:
        r = figures[f"ours:{max(plan.import_sizes)}"]["rate"] / figures["rowwise_rate"]
        verdicts.append(f"row-wise load rate: {r:.0f}x, target 10x {'met' if r >= 10 else 'MISSED'}")
    lines += [
        "",
        "Verdicts (largest size measured): " + "; ".join(verdicts) + ".",
        "",
        f"Targets: >= 10x the seed's way (a), >= 2x dlt (b), peak RSS < 1 GiB. At {ours_last} rows ours peaked at "
        f"{ours['rss']:.0f} MiB ({'met' if ours['rss'] < 1024 else 'MISSED'}).",
        "",
    ]
    figures["ours_split"] = results[("ours", biggest)][0]
    return lines, figures


# -- 2: tick ----------------------------------------------------------------------------------
def bench_tick(plan: Plan) -> list[str]:
    out = {}
    for h in plan.tick_histories:
        log(f"tick with {h:,} plays of history")
        out[h] = py(
            "bench.tick",
            "--history",
            str(h),
            "--repeats",
            str(plan.tick_repeats),
            "--work",
            str(WORK / "tick"),
        )
    small, big = plan.tick_histories
    lines = [
        "## 2. Hourly tick cost vs history size",
        "",
        "The real pipeline (fetch, features, lake, warehouse merge; `dg.materialize` in process) against the "
        "sandbox API, 50 new plays, warehouse pre-filled with synthetic plays older than the sandbox clock. "
        "A first, uncounted run in each process pays the one-off imports.",
        "",
        "| history | wall s | token calls | recently-played calls | features calls | expected (token + rp + features) |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for h, r in out.items():
        runs = r["runs"]
        e = r["expected_calls"]
        lines.append(
            f"| {h:,} | {fig([x['seconds'] for x in runs])} | {runs[-1]['token']} | {runs[-1]['recently_played']} | "
            f"{runs[-1]['features']} | {e['token']} + {e['recently_played']} + {e['features']} "
            f"(ceil({r['new_tracks']} new unknown tracks / 100)) |"
        )
    ms = med([x["seconds"] for x in out[big]["runs"]])
    ss = med([x["seconds"] for x in out[small]["runs"]])
    calls_ok = all(
        x["token"] == r["expected_calls"]["token"]
        and x["recently_played"] == r["expected_calls"]["recently_played"]
        and x["features"] == r["expected_calls"]["features"]
        for r in out.values()
        for x in r["runs"]
    )
    lines += [
        "",
        f"Ratio {big:,} / {small:,} history: {ratio(ms, ss)} (target <= 1.2: {'met' if ms / ss <= 1.2 else 'MISSED'}). "
        f"API calls as expected: {'yes' if calls_ok else 'NO (see the table)'}. "
        f"Requests seen in the last run: `{json.dumps(out[big]['runs'][-1]['requests'])}`.",
        "",
    ]
    return lines


def bench_hourly_run(plan: Plan, history: int, remote: str = "") -> list[str]:
    """The whole hourly job (top ten included), with and without the warm Spark Connect server
    (``remote``: one already running; else bench.tick starts its own)."""
    log(f"hourly run with the warm Spark Connect server, {history:,} plays of history")
    warm = py(*tick_args(history, plan.tick_repeats, "warm"), *(["--remote", remote] if remote else []))[
        "runs"
    ]
    cold: list[dict[str, Any]] = []
    for _ in range(plan.hourly_cold_repeats):
        log(f"hourly run without it (in-process Spark started by the run), {history:,} plays of history")
        cold += py(*tick_args(history, 1, "cold"))["runs"]
    lines = [
        "## 2b. The whole hourly run, top ten included",
        "",
        f"As section 2 ({history:,} plays of history, 50 new), all five pipeline assets. *Warm*: `top_ten_tracks` "
        "is a client of a Spark Connect server started beforehand, as `make dev` does (a fresh client session "
        "per run). *Without it*: the run starts its own in-process `local[*]` JVM (each figure from a fresh "
        "process). Targets: the Spark step < 3 s warm, the whole run < 5 s.",
        "",
        "| Spark | whole run s | top_ten_tracks step s | the four other steps s |",
        "|---|---:|---:|---:|",
    ]
    figures = {}
    for label, runs in (("warm Connect server", warm), ("without it (in-process JVM)", cold)):
        if not runs:
            lines.append(f"| {label} | {NOT_RUN} | {NOT_RUN} | {NOT_RUN} |")
            figures[label] = (math.nan, math.nan)
            continue
        whole = [r["seconds"] for r in runs]
        spark = [r["steps"].get("top_ten_tracks", math.nan) for r in runs]
        rest = [sum(v for k, v in r["steps"].items() if k != "top_ten_tracks") for r in runs]
        lines.append(f"| {label} | {fig(whole)} | {fig(spark)} | {fig(rest)} |")
        figures[label] = (med(whole), med(spark))
    whole_w, spark_w = figures["warm Connect server"]
    lines += [
        "",
        f"Warm: Spark step {spark_w:.2f} s (target < 3 s: {'met' if spark_w < 3 else 'MISSED'}), whole run "
        f"{whole_w:.2f} s (target < 5 s: {'met' if whole_w < 5 else 'MISSED'}); without the server the run takes "
        + (
            f"{ratio(figures['without it (in-process JVM)'][0], whole_w)} as long."
            if cold
            else "(not run: quick mode)."
        ),
        "",
    ]
    return lines


def tick_args(history: int, repeats: int, spark: str) -> list[str]:
    work = WORK / f"tick-{spark}"
    return [
        "bench.tick",
        "--history",
        str(history),
        "--repeats",
        str(repeats),
        "--work",
        str(work),
        "--spark",
        spark,
    ]


# -- 3 + 5b: top ten --------------------------------------------------------------------------
def bench_topten(plan: Plan, remote: str = "", remote_startup: float = 0.0) -> list[str]:
    """Every engine on the same plays; ``remote``: a Connect server already running (started in
    ``remote_startup`` seconds) for the spark-connect engine, else it starts its own."""
    from bench.synth import write_parquet

    rows = []
    agree = True
    table: dict[int, dict[str, dict[str, Any]]] = {}
    for n in plan.topten_sizes:
        src = WORK / "plays" / f"{n}-{TOPTEN_LISTENERS}-listeners.parquet"
        if not src.exists():
            log(f"writing {n:,} synthetic plays of {TOPTEN_LISTENERS} listeners to Parquet")
            write_parquet(n, PLAYS_END, src, SEED, users=TOPTEN_LISTENERS)
        for engine in plan.topten_engines:
            log(f"top ten {engine} {n:,}")
            shared = ["--remote", remote] if remote and engine == "spark-connect" else []
            table.setdefault(n, {})[engine] = py(
                "bench.topten", "--engine", engine, "--input", str(src), "--out", str(WORK / "topten" / engine),
                "--repeats", str(plan.topten_repeats), *shared,
            )  # fmt: skip
            if shared:
                table[n][engine]["startup_seconds"] = remote_startup
        ids = {json.dumps(r["ranking"]) for r in table[n].values()}
        agree = agree and len(ids) == 1
    for n, engines in table.items():
        d = engines["duckdb"]["runs"]
        p = engines["pandas"]["runs"]
        c = engines["spark-connect"]
        # Warm: the Connect server's runs after its first (the first also warms the JVM's code).
        warm = c["runs"][1:] or c["runs"]
        inproc_cell, cold_cell, cold_ratio = NOT_RUN, NOT_RUN, NOT_RUN
        if "spark" in engines:
            s = engines["spark"]
            cold = s["startup_seconds"] + s["runs"][0]
            inproc_cell, cold_cell = fig(s["runs"][1:] or s["runs"]), f"{cold:.2f} (n=1)"
            cold_ratio = ratio(cold, med(d))
        rows.append(
            f"| {n:,} | {fig(d, 3)} | {fig(p, 3)} | {fig(warm)} | {inproc_cell} | {cold_cell} | "
            f"{ratio(med(warm), med(d))} | {cold_ratio} | {ratio(med(p), med(d))} |"
        )
    big = max(table)
    warm = table[big]["spark-connect"]["runs"][1:] or table[big]["spark-connect"]["runs"]
    spark_ratio = med(warm) / med(table[big]["duckdb"]["runs"])
    server_start = table[big]["spark-connect"]["startup_seconds"]
    return [
        "## 3. Top ten (and 5. its scaling curve)",
        "",
        f"Same seeded Parquet plays for all engines, spread over a household of {TOPTEN_LISTENERS} listeners; "
        "each run reads Parquet, ranks each listener's top ten and everyone's (the pipeline's one job) and "
        "writes those rows as Parquet. Spark is `spark/top_ten.py`'s `run()`: *warm* on a Spark Connect server "
        "(`spark/connect_server.py`, `local[*]`, a fresh client session per run, as `make dev` runs it), "
        "*in-process* on a `local[*]` session configured by `SparkResource` (runs after its first), *cold* "
        "= that session's start-up + first run (a run without the warm server).",
        "",
        "| plays | DuckDB s | pandas s | Spark warm s (Connect) | Spark in-process s | "
        "Spark cold s (start-up + first run) | Spark warm/DuckDB | Spark cold/DuckDB | pandas/DuckDB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"All engines return the same rows (scope, rank, track id): {'yes' if agree else 'NO'}. "
        f"Target (Spark warm within 5x DuckDB, at {big:,}): "
        f"{spark_ratio:.1f}x, {'met' if spark_ratio <= 5 else 'MISSED'}. "
        f"The Connect server's own start-up (once per `make dev`): {server_start:.1f} s.",
        "",
    ]


# -- 4: dashboard -----------------------------------------------------------------------------
def bench_dashboard(plan: Plan) -> list[str]:
    from bench.dashboard_render import TARGET_S, WARM_TARGET_S

    log(f"dashboard over {plan.dashboard_plays:,} plays")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench.dashboard_render", "--plays", str(plan.dashboard_plays)]
    cmd += ["--rounds", str(plan.dashboard_rounds)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    head = [
        "## 4. Dashboard",
        "",
        f"`bench/dashboard_render.py` over a {plan.dashboard_plays:,}-play warehouse: each page rendered with "
        f"Streamlit's AppTest, cold (caches cleared) and warm; median of {plan.dashboard_rounds} round(s). "
        f"Targets: cold < {TARGET_S} s, warm < {WARM_TARGET_S} s per page (the Everyone rows; the script also prints "
        "one listener's).",
        "",
    ]
    if proc.returncode != 0:
        return [*head, f"dashboard_render failed ({proc.returncode}): `{proc.stderr.strip()[-500:]}`", ""]
    rows = re.findall(r"^(\w+)\s+([\d.]+)\s+([\d.]+)", proc.stdout, re.M)
    body = ["| page | cold s | warm s | target |", "|---|---:|---:|---|"]
    body += [
        f"| {p} | {c} | {w} | {'met' if float(c) < TARGET_S and float(w) < WARM_TARGET_S else 'MISSED'} |"
        for p, c, w in rows
    ]
    return [*head, *body, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="CI-sized: small data, few repeats")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="scratch folder (default bench/.work)")
    parser.add_argument(
        "--sections",
        default="import,tick,hourly,topten,dashboard",
        help="comma-separated subset to run (a partial run writes only those sections)",
    )
    parser.add_argument("--topten-sizes", help="comma-separated play counts for the top-ten section")
    args = parser.parse_args(argv)
    global WORK  # one scratch folder for the whole run, chosen once here
    WORK = Path(args.work)
    plan = QUICK if args.quick else FULL
    chosen = set(args.sections.split(","))
    if args.topten_sizes:
        plan = replace(plan, topten_sizes=[int(x) for x in args.topten_sizes.split(",")])
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    if plan.jvm_options:  # inherited by every subprocess and JVM this run starts
        given = os.environ.get("JAVA_TOOL_OPTIONS", "")
        os.environ["JAVA_TOOL_OPTIONS"] = f"{given} {plan.jvm_options}".strip()
    header = [
        "# Benchmark results",
        "",
        f"- Mode: {'quick' if args.quick else 'full'}; date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"git {_git_rev()}",
        *machine(),
        "- Every figure: median (min-max, n=runs). Ratios are between variants measured in this one run.",
        *[f"- Note: {n}" for n in plan.notes],
        "",
    ]

    def import_section() -> list[str]:
        import_lines, figures = bench_import(plan)
        split = figures["ours_split"]
        import_lines += [
            f"Where our import's time goes (largest size): warehouse lookups {split['lookup_seconds']:.1f} s, "
            f"landing the plays' Parquet in the lake {split.get('landing_seconds', 0.0):.1f} s "
            f"({split.get('lake_plays_files', 0):,} files: one per day, the pipeline's layout), "
            f"merges from the lake {split['merge_seconds']:.1f} s, the rest "
            f"({split['seconds'] - split['lookup_seconds'] - split.get('landing_seconds', 0.0) - split['merge_seconds']:.1f} s) "
            "reading and parsing (DuckDB's JSON reader), landing the raw files, chunking and keys.",
            "",
        ]
        return import_lines

    def python_sections() -> dict[str, list[str]]:
        done = {}
        if "import" in chosen:
            done["import"] = timed("import", import_section)
        if "tick" in chosen:
            done["tick"] = timed("tick", lambda: bench_tick(plan))
        return done

    def dashboard_section() -> dict[str, list[str]]:
        return (
            {"dashboard": timed("dashboard", lambda: bench_dashboard(plan))} if "dashboard" in chosen else {}
        )

    def spark_sections() -> dict[str, list[str]]:
        wanted = [s for s in ("hourly", "topten") if s in chosen]
        with contextlib.ExitStack() as stack:
            remote, startup = "", 0.0
            if plan.side_by_side and wanted:
                remote, startup = shared_connect_server(stack)
                log(f"Connect server ready in {startup:.1f} s")
            done = {}
            if "hourly" in wanted:
                done["hourly"] = timed(
                    "hourly", lambda: bench_hourly_run(plan, plan.tick_histories[0], remote)
                )
            if "topten" in wanted:
                done["topten"] = timed("topten", lambda: bench_topten(plan, remote, startup))
        return done

    if plan.side_by_side:
        # Two lanes of about the same length (quick mode, load ~2: import + tick ~56 s, the Connect
        # server + hourly + top ten ~50 s, the dashboard ~10 s after the server has stopped).
        with ThreadPoolExecutor(max_workers=2) as pool:
            lanes = [
                pool.submit(python_sections),
                pool.submit(lambda: {**spark_sections(), **dashboard_section()}),
            ]
            by_name = {k: v for lane in lanes for k, v in lane.result().items()}
    else:
        by_name = {**python_sections(), **spark_sections(), **dashboard_section()}
    sections = [
        by_name[name] for name in ("import", "tick", "hourly", "topten", "dashboard") if name in by_name
    ]
    if chosen != {"import", "tick", "hourly", "topten", "dashboard"}:
        header.insert(-1, f"- Partial run: sections {args.sections} only.")
    footer = [f"Total benchmark wall time: {time.perf_counter() - started:.0f} s.", ""]
    text = "\n".join([*header, *(line for s in sections for line in s), *footer])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    log(f"wrote {args.out}")
    return 0


def timed(name: str, section: Callable[[], list[str]]) -> list[str]:
    """Run one section and log its wall time (where a run's time goes, for trimming quick mode)."""
    t0 = time.perf_counter()
    lines = section()
    log(f"section {name} took {time.perf_counter() - t0:.1f} s")
    return lines


def shared_connect_server(stack: contextlib.ExitStack) -> tuple[str, float]:
    """Start one Spark Connect server (as the top-ten section's own) for both Spark sections;
    stopped when ``stack`` closes. Returns its URL and its start-up seconds."""
    from spark.connect_server import SparkConnectServer

    log("starting one Spark Connect server for the hourly and top-ten sections")
    t0 = time.perf_counter()
    server = SparkConnectServer(master="local[*]", log_path=WORK / "connect-server.log", driver_memory="2g")
    stack.enter_context(server)
    return server.url, time.perf_counter() - t0


def _git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
