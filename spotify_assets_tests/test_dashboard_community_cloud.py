"""The dashboard deployed alone, as Streamlit Community Cloud runs it (``docs/dashboard-on-streamlit-cloud.md``).

Community Cloud clones the repository, installs the entry point's ``requirements.txt``
(``app/requirements.txt``) and nothing else, and runs ``streamlit run app/streamlit_app.py``
from the repository root (the project itself is not installed: the entry point puts the
root on ``sys.path``). Its settings come from ``st.secrets``: root-level keys become
environment variables (the ``SPOTIFY_*`` the app reads), ``[gcp_service_account]`` is the
read-only dashboard account's key. This test does the same with ``uv`` and the BigQuery
emulator, then opens the page in Chromium and reads the household's play count.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.warehouse import SERVICE_ACCOUNT_SECTION
from spotify_assets.tables import plays as plays_table
from spotify_assets.tables import tracks as tracks_table
from spotify_assets_tests.fixtures.bigquery import BigQueryEmulator
from spotify_assets_tests.fixtures.dashboard import (
    chromium,
    dashboard_features,
    dashboard_metadata,
    healthy,
    household_plays,
)
from spotify_assets_tests.fixtures.sockets import free_port

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "app" / "requirements.txt"
REQUIREMENTS_IN = ROOT / "app" / "requirements.in"
UV = Path(sys.executable).with_name("uv")
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        found = PIN.match(line.strip())
        if found:
            pins[found.group(1).lower().replace("_", "-")] = found.group(2)
    return pins


def test_the_requirements_are_the_locks_pins_and_nothing_of_the_pipeline(tmp_path: Path) -> None:
    """``app/requirements.txt`` is ``requirements.in`` compiled against ``requirements.lock``:
    recompiled it is the same, every pin is the lock's, and neither Dagster nor Spark is in it."""
    compiled = tmp_path / "requirements.txt"
    subprocess.run(
        [
            *(str(UV), "pip", "compile", "-q", str(REQUIREMENTS_IN), "-c", str(ROOT / "requirements.lock")),
            *("--python-version", "3.11", "--no-header", "--no-annotate", "-o", str(compiled)),
        ],
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    shipped = _pins(REQUIREMENTS)
    assert shipped == _pins(compiled), "app/requirements.txt is stale: recompile it (see requirements.in)"
    lock = _pins(ROOT / "requirements.lock")
    assert {name: (pin, lock.get(name)) for name, pin in shipped.items() if lock.get(name) != pin} == {}
    assert not {n for n in shipped if n.startswith(("dagster", "pyspark"))}
    assert {"streamlit", "google-cloud-bigquery", "sqlglot", "duckdb"} <= set(shipped)


#: Run in a fresh interpreter: ``st.secrets`` is a process-wide singleton, read once.
SIGNED_CLIENT = """
import json, sys
import streamlit.config
streamlit.config.set_option("secrets.files", [sys.argv[1]])
from google.oauth2 import service_account
used = []
made = service_account.Credentials.from_service_account_info
def noting(info, **kwargs):
    used.append(info["client_email"])
    return made(info, **kwargs)
service_account.Credentials.from_service_account_info = noting
from app.warehouse import from_env
wh = from_env({"SPOTIFY_DEPLOYMENT": "cloud", "SPOTIFY_GCP_PROJECT": "p", "SPOTIFY_BQ_DATASET": "d"})
wh.client().close()
print(json.dumps({"used": used, "shown": repr(wh) + wh.source_id}))
"""


def test_the_dashboard_account_from_st_secrets_signs_the_bigquery_client(tmp_path: Path) -> None:
    """Without an endpoint the client is signed with ``st.secrets["gcp_service_account"]`` (the
    read-only account's key) when present; the key is in neither the repr nor the source id."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "spotify-dashboard@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        f"[{SERVICE_ACCOUNT_SECTION}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in account.items())
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "GOOGLE_"))}
    ran = subprocess.run(
        [sys.executable, "-c", SIGNED_CLIENT, str(secrets)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert found["used"] == [account["client_email"]]
    assert "PRIVATE KEY" not in found["shown"] and "k1" not in found["shown"]


@pytest.mark.browser
def test_the_app_starts_from_its_requirements_alone(
    bigquery_emulator: BigQueryEmulator, tmp_path: Path
) -> None:
    writer = bigquery_emulator.warehouse()
    plays_table.merge_plays(writer, household_plays())
    tracks_table.merge_features(writer, dashboard_features("ok"))
    tracks_table.merge_metadata(writer, dashboard_metadata())
    expected = household_plays().query("is_play and content_type != 'episode'").shape[0]
    assert expected == 303

    venv = tmp_path / "venv"
    started = time.monotonic()
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(UV), "pip", "install", "-q", "--python", str(python), "-r", str(REQUIREMENTS)],
        check=True,
        timeout=600,
    )
    installed_s = time.monotonic() - started
    for absent in (
        "dagster",
        "pyspark",
        "spotify_assets",
    ):  # the app runs from the checkout, as on Community Cloud
        probe = subprocess.run([str(python), "-c", f"import {absent}"], capture_output=True, cwd=tmp_path)
        assert probe.returncode != 0, f"{absent} is importable in the dashboard-only venv"

    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        f'SPOTIFY_DEPLOYMENT = "cloud"\nSPOTIFY_GCP_PROJECT = "{writer.project}"\n'
        f'SPOTIFY_BQ_DATASET = "{writer.dataset}"\nSPOTIFY_BQ_ENDPOINT = "{bigquery_emulator.url}"\n'
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }  # no SPOTIFY_*, no PYTHONPATH
    log = tmp_path / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(str(python), "-m", "streamlit", "run", "app/streamlit_app.py", "--server.headless", "true"),
                *(
                    "--server.port",
                    str(port),
                    "--server.fileWatcherType",
                    "none",
                    "--secrets.files",
                    str(secrets),
                ),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not healthy(url):
            assert proc.poll() is None, f"streamlit exited {proc.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"no health answer: {log.read_text()}"
            time.sleep(0.2)
        with chromium() as browser:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_function(
                "document.querySelectorAll('[data-testid=\"stMetricValue\"]').length >= 4"
                " || document.querySelector('[data-testid=\"stException\"]') !== null",
                timeout=60_000,
            )
            assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")
            values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
        assert f"{expected}" in values, values
    finally:
        from spotify_sandbox.processes import stop_groups

        stop_groups([proc], grace_s=20)
    assert "Traceback" not in log.read_text(), log.read_text()
    print(f"dashboard-only venv installed in {installed_s:.1f}s")


pytestmark = pytest.mark.timeout(600)
