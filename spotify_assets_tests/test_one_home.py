"""Each fact of the project has one home: a second definition is a future bug.

Grep-style checks over the runtime package, the dashboard and the Spark app: the content
digest, the Parquet encoder, the bookkeeping table names, the default data directory, the
warehouse's file, the lake's folder and its prefixes are each spelled in exactly one module, and the modules the dashboard imports stay free of Dagster.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    p
    for folder in ("spotify_assets", "app", "spark")
    for p in (ROOT / folder).rglob("*.py")
    if "sandbox" not in p.relative_to(ROOT).parts
)


def _homes(pattern: str) -> list[str]:
    regex = re.compile(pattern)
    return sorted(str(p.relative_to(ROOT)) for p in SOURCES if regex.search(p.read_text()))


@pytest.mark.parametrize(
    ("fact", "pattern", "home"),
    [
        ("the content digest", r"hexdigest\(\)\[:\s*(20|DIGEST_CHARS)\s*\]", ["spotify_assets/encoding.py"]),
        ("the Parquet encoder", r"\bpq\.write_table\(|\.to_parquet\(", ["spotify_assets/encoding.py"]),
        ("the meta table's name", r"[\"']warehouse_meta[\"']", ["spotify_assets/schema.py"]),
        ("the gaps table's name", r"[\"']ingest_gaps[\"']", ["spotify_assets/schema.py"]),
        ("the default data directory", r"[\"']\.data[\"']", ["spotify_assets/settings.py"]),
        ("the recently-played window", r"RECENTLY_PLAYED_LIMIT\s*=", ["spotify_assets/spotify/client.py"]),
        # One retry loop for both API clients: only it catches a request's timeout and reads Retry-After.
        (
            "the HTTP retry loop",
            r"except\s*\(?\s*requests\.(Timeout|ConnectionError)|[\"']Retry-After[\"']\s*[,)]",
            ["spotify_assets/http_retry.py"],
        ),
        ("the local warehouse's file name", r"[\"']warehouse\.duckdb[\"']", ["spotify_assets/settings.py"]),
        # "lake" as a folder (a path, a bucket prefix); as a resource key or an asset group it is another fact.
        ("the lake's folder name", r"[\"']lake[\"'](?!\s*[:,\]\)])", ["spotify_assets/settings.py"]),
    ],
)
def test_fact_has_one_home(fact: str, pattern: str, home: list[str]) -> None:
    assert _homes(pattern) == home, f"{fact} is defined outside its one home"


#: The lake's prefixes, as the start of a string literal: the folders of ``lake_layout`` (the
#: kinds that are also schema names, ``plays`` and the like, are checked by their call sites below).
LAKE_PREFIXES = [
    "raw/recently_played",
    "quarantine/recently_played",
    "raw/exports",
    "quarantine/exports",
    "redactions/",
    "track_metadata/",
    "track_features/",
    "user_id=",
    "users/legacy_owner",
    "inbox/",
]


@pytest.mark.parametrize("prefix", LAKE_PREFIXES)
def test_lake_prefix_has_one_home(prefix: str) -> None:
    """The deletion and ``rebuild-warehouse`` derive the folders they list from ``lake_layout``: a
    prefix spelled anywhere else is a folder they would not know about."""
    assert _homes(r"[\"']" + re.escape(prefix)) == ["spotify_assets/lake_layout.py"], (
        f"the lake prefix {prefix!r} is spelled outside lake_layout.py"
    )


def test_lake_kinds_are_named_not_spelled() -> None:
    """A per-listener kind reaches ``user_dir``/``plays_day_path`` and a listing reaches the lake by
    its ``lake_layout`` name (``PLAYS_KIND``...), never as a literal: ``"plays"`` is also the plays
    table's schema name, so only the call sites can tell a lake kind spelled by hand."""
    by_hand = r"\b(user_dir|plays_day_path)\(\s*f?[\"']|\.list\(\s*f?[\"'](?!\{)|/\s*[\"'](plays|plays_csv|imports)[\"']|[\"'](plays|plays_csv|imports)/"
    assert _homes(by_hand) == []
    assert _homes(r"\b(USER_KINDS|IMPORTS_KIND|PLAYS_KIND)\s*[:=]") == ["spotify_assets/lake_layout.py"]


def test_no_magic_window_of_fifty() -> None:
    """The API's 50-play window is used by name, never as a bare 50: in the runtime, and in the
    sandbox that stands in for Spotify (which takes it from the client)."""
    assert _homes(r"[\"']limit[\"']\s*:\s*50\b|limit\s*=\s*50\b|limit\s*<=\s*50\b") == []
    sandbox = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "spotify_sandbox").rglob("*.py")
        if re.search(r"WINDOW\s*=\s*50\b|<=\s*50\b", p.read_text())
    ]
    assert sandbox == []


@pytest.mark.parametrize(
    "module", ["spotify_assets/settings.py", "spotify_assets/schema.py", "spotify_assets/encoding.py"]
)
def test_modules_the_dashboard_imports_have_no_dagster(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imported if m.startswith("dagster")}, f"{module} imports Dagster"
    assert imported & {"spotify_assets"} <= {"spotify_assets"}


def test_assets_do_not_import_the_import_package() -> None:
    """The poller asks the warehouse (``warehouse.plays_index()``); ``assets/`` never reaches into ``imports/``
    except the history asset, whose job is to run the import."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "spotify_assets" / "assets").glob("*.py")
        if p.name != "history.py" and re.search(r"spotify_assets\.imports\b", p.read_text())
    ]
    assert offenders == []


def test_no_private_names_across_modules() -> None:
    """No ``obj._name(`` on another object (``self._x(`` and ``cls._x(`` are fine) and no
    ``from spotify_assets... import _name``: modules ask each other's public questions.
    A named tuple's ``_replace``/``_asdict``/``_make`` are its documented public methods."""
    call = re.compile(r"([\w.]+)\._(?!(?:replace|asdict|make)\()[A-Za-z]\w*\(")
    private_import = re.compile(r"^from spotify_assets\S* import .*\b_[A-Za-z]\w*", re.MULTILINE)
    found: list[str] = []
    for p in (ROOT / "spotify_assets").rglob("*.py"):
        if "sandbox" in p.parts:
            continue
        text = p.read_text()
        found += [
            f"{p.relative_to(ROOT)}: {m.group(0)}"
            for m in call.finditer(text)
            if m.group(1) not in {"self", "cls"}
        ]
        found += [f"{p.relative_to(ROOT)}: {m.group(0)}" for m in private_import.finditer(text)]
    assert found == []
