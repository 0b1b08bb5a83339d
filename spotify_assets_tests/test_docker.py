"""Offline checks of the container deployment: Dockerfile, .dockerignore, docker-compose.yaml, deploy/.

No Docker engine runs in CI, so nothing here builds or starts a container. What is checked:
the Dockerfile's structure and that everything it COPYs exists and survives .dockerignore;
the compose file's services, dependencies, health checks and wiring (ports, hostnames, the
workspace), that every variable it interpolates is documented in deploy/.env.example; and,
for real, that the image's HEALTHCHECK command succeeds against a running code server
started with the image's own CMD (on loopback, with a stand-in definitions file).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = REPO_ROOT / "docker-compose.yaml"
ENV_EXAMPLE = REPO_ROOT / "deploy" / ".env.example"
WORKSPACE = REPO_ROOT / "deploy" / "workspace.yaml"

EXPECTED_SERVICES = {
    "postgres",
    "code-location",
    "dagster-webserver",
    "dagster-daemon",
    "spark-master",
    "spark-worker",
    "spark-connect",
    "streamlit",
    "scrobble-server",
}


# --- Dockerfile --------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), args
    return [str(v) for v in value]


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text())


def _stage(instructions: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    """The instructions of the stage ``FROM ... AS name``."""
    stage: list[tuple[str, str]] | None = None
    for keyword, args in instructions:
        if keyword == "FROM":
            if stage is not None:
                break
            if args.lower().endswith(f" as {name}"):
                stage = []
            continue
        if stage is not None:
            stage.append((keyword, args))
    assert stage is not None, f"no stage {name}"
    return stage


def _build_args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """``ARG NAME=default`` lines (the global ones before the first FROM included)."""
    out: dict[str, str] = {}
    for keyword, args in instructions:
        if keyword == "ARG" and "=" in args:
            name, _, default = args.partition("=")
            out[name.strip()] = default.strip()
    return out


def test_multi_stage_build_on_a_pinned_slim_bookworm_base_chosen_by_build_arg(
    instructions: list[tuple[str, str]],
) -> None:
    froms = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "builder + runtime"
    # Both stages on the one base image, a build argument (the Debian-package base of
    # scripts/base-images.sh replaces it where no registry is reachable).
    assert froms[0] == froms[-1] == "${BASE_IMAGE}", froms
    assert set(froms) <= {"${BASE_IMAGE}", "builder"}, froms
    default = _build_args(instructions)["BASE_IMAGE"]
    _, _, tag = default.partition(":")
    assert tag and tag != "latest", f"{default} must carry an explicit version tag"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", default), default
    # Same Python minor as the virtualenv the tests run in (the lock was resolved for it).
    assert tag.startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    # The local stand-in is bookworm + Python 3.11 too.
    local = (REPO_ROOT / "deploy" / "base-images" / "python.Dockerfile").read_text()
    assert "python3-venv" in local and "python-is-python3" in local


def test_builder_installs_the_locked_runtime_requirements_with_the_makefiles_uv(
    instructions: list[tuple[str, str]],
) -> None:
    builder = " ".join(args for _, args in _stage(instructions, "builder"))
    project = " ".join(args for _, args in _stage(instructions, "project"))
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert makefile_uv
    assert f'"uv=={makefile_uv.group(1)}"' in builder
    # Runtime requirements only (no dev extras), every version constrained by the lock.
    assert "uv pip compile -q pyproject.toml -c requirements.lock" in builder
    assert "--extra" not in builder
    assert "uv pip install --python /opt/venv/bin/python -r /tmp/runtime.txt" in builder
    assert "--no-deps ." in project and "--no-deps ." not in builder
    # Offline from the wheelhouse when it holds wheels: no index, no network for uv.
    assert "COPY wheelhouse/ /wheelhouse/" in DOCKERFILE.read_text()
    assert "PIP_NO_INDEX=1" in builder and "UV_OFFLINE=1" in builder
    # The wheelhouse, uv and the build tree stay in the build stages: the runtime takes the
    # dependency venv (a layer that stays cached) and the project's own installed files.
    runtime = _stage(instructions, "runtime")
    copies = [args for keyword, args in runtime if keyword == "COPY" and "--from=" in args]
    assert copies == ["--from=builder /opt/venv /opt/venv", "--from=project /opt/project-files/ /"]


def test_runtime_has_java_tini_a_non_root_user_and_a_healthcheck(instructions: list[tuple[str, str]]) -> None:
    runtime = _stage(instructions, "runtime")
    runs = " ".join(args for keyword, args in runtime if keyword == "RUN")
    assert "openjdk-17-jre-headless" in runs and "tini" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs

    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "runtime must switch user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "last USER must be a numeric non-root uid"
    assert f"--uid {uid}" in runs, "the uid must be created in the image"

    env = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in env

    (healthcheck,) = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    assert "CMD" in healthcheck and "grpc-health-check" in healthcheck

    (entrypoint,) = [args for keyword, args in runtime if keyword == "ENTRYPOINT"]
    assert _exec_form(entrypoint)[0].endswith("/tini")
    (cmd,) = [args for keyword, args in runtime if keyword == "CMD"]
    command = _exec_form(cmd)
    assert command[:3] == ["dagster", "code-server", "start"]
    module = command[command.index("-m") + 1]
    assert module == "spotify_assets.definitions"
    assert (REPO_ROOT / Path(*module.split("."))).with_suffix(".py").is_file()
    assert command[command.index("-h") + 1] == "0.0.0.0"


def _dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.removeprefix("**/")
        parts = path.split("/")
        # A pattern matches the path itself or any of its parent directories.
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(c, pat) or fnmatch.fnmatch(c.split("/")[-1], pat) for c in candidates):
            ignored = not negate
    return ignored


def test_every_copied_path_exists_and_survives_dockerignore(instructions: list[tuple[str, str]]) -> None:
    patterns = _dockerignore_patterns()
    sources: list[str] = []
    for keyword, args in instructions:
        if keyword != "COPY" or "--from=" in args:
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        sources.extend(words[:-1])
    assert {"requirements.lock", "spotify_assets", "spark", "deploy/dagster.yaml"} <= set(sources)
    for src in sources:
        assert (REPO_ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not _ignored(src, patterns), f"COPY {src}: excluded by .dockerignore"


def test_the_project_stage_copies_every_package_the_distribution_installs(
    instructions: list[tuple[str, str]],
) -> None:
    """A top-level package pyproject.toml installs but the image lacks fails at import in the stack.

    ``[tool.setuptools.packages.find] include`` names the packages by pattern; every top-level
    package of the repository that matches one must be COPYed into the project stage before
    ``uv pip install .``, or the wheel built there silently lacks it. Packages .dockerignore
    keeps out on purpose (the tests, which ``spotify_assets*`` also matches) are the exception.
    """
    import tomllib

    find = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    patterns = _dockerignore_patterns()
    packages = {
        d.name
        for d in REPO_ROOT.iterdir()
        if (d / "__init__.py").exists()
        and any(fnmatch.fnmatch(d.name, p) for p in find["include"])
        and not _ignored(d.name, patterns)
    }
    assert {"spotify_assets", "spark"} <= packages
    copied = {shlex.split(args)[0] for keyword, args in _stage(instructions, "project") if keyword == "COPY"}
    assert packages <= copied, f"not copied into the project stage: {sorted(packages - copied)}"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context() -> None:
    patterns = _dockerignore_patterns()
    for path in (
        ".venv",
        ".venv-bqemulator",
        ".data",
        ".git",
        ".tools",
        ".pytest_cache",
        "spotify_assets/__pycache__",
        "terraform/.terraform",
        "terraform/terraform.tfstate",
        "terraform/terraform.tfstate.backup",
        "terraform/terraform.tfvars",
        "deploy/.env",
        "deploy/secrets",
    ):
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    # The wheelhouse is the offline build's input: in the context, out of git.
    assert not _ignored("wheelhouse/pyspark-4.3.0-py2.py3-none-any.whl", patterns)
    for path, tracked in (("wheelhouse/x.whl", False), ("wheelhouse/README.md", True)):
        proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT, capture_output=True)
        assert (proc.returncode == 0) is not tracked, path


# --- docker-compose.yaml --------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_has_every_service_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == EXPECTED_SERVICES
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}


def test_compose_start_order_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    s = compose["services"]
    healthy = "service_healthy"
    # The warm Spark server is optional for the code location (its runs fall back without it).
    assert _depends(s["code-location"]) == {
        "postgres": healthy,
        "spark-master": healthy,
        "spark-connect": "service_started",
    }
    assert _depends(s["spark-connect"]) == {"spark-master": healthy}
    assert _depends(s["dagster-webserver"]) == {"postgres": healthy, "code-location": healthy}
    assert _depends(s["dagster-daemon"]) == {"postgres": healthy, "code-location": healthy}
    assert _depends(s["spark-worker"]) == {"spark-master": healthy}
    assert _depends(s["streamlit"]) == {"code-location": healthy}


def test_compose_uses_one_image_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert s["code-location"]["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    image = s["code-location"]["image"]
    for name in EXPECTED_SERVICES - {"postgres"}:
        assert s[name]["image"] == image, f"{name} must run the project image (same Python/PySpark)"
    default = re.fullmatch(r"\$\{POSTGRES_IMAGE:-(.+)\}", s["postgres"]["image"])
    assert default and re.fullmatch(r"postgres:15(\.\d+)?-bookworm", default.group(1))


def test_compose_wiring_matches_workspace_and_spark_master(compose: dict[str, Any]) -> None:
    s = compose["services"]
    code_cmd = s["code-location"]["command"]
    assert code_cmd[:3] == ["dagster", "code-server", "start"]
    port = int(code_cmd[code_cmd.index("-p") + 1])

    # The webserver and daemon find the code server through deploy/workspace.yaml.
    from dagster._core.workspace.config_schema import process_workspace_config

    workspace = yaml.safe_load(WORKSPACE.read_text())
    assert process_workspace_config(workspace).success
    (entry,) = workspace["load_from"]
    assert entry["grpc_server"]["host"] == "code-location"
    assert entry["grpc_server"]["port"] == port
    workspace_in_image = "/opt/dagster/dagster_home/workspace.yaml"
    for name in ("dagster-webserver", "dagster-daemon"):
        cmd = s[name]["command"]
        assert cmd[cmd.index("-w") + 1] == workspace_in_image
    assert re.search(
        r"COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/dagster_home/", DOCKERFILE.read_text()
    )

    master_cmd = s["spark-master"]["command"]
    master_url = (
        f"spark://{master_cmd[master_cmd.index('--host') + 1]}:{master_cmd[master_cmd.index('--port') + 1]}"
    )
    assert master_url == "spark://spark-master:7077"
    assert master_url in s["spark-worker"]["command"]
    example = _env_example()
    assert example["SPOTIFY_SPARK_MASTER"] == master_url

    # The code location's runs are clients of the spark-connect service, itself on the master.
    connect_cmd = s["spark-connect"]["command"]
    assert connect_cmd[:3] == ["python", "-m", "spark.connect_server"]
    assert connect_cmd[connect_cmd.index("--master") + 1] == master_url
    remote = s["code-location"]["environment"]["SPOTIFY_SPARK_REMOTE"]
    connect_port = connect_cmd[connect_cmd.index("--port") + 1]
    assert remote == f"${{SPOTIFY_SPARK_REMOTE:-sc://{s['spark-connect']['hostname']}:{connect_port}}}"
    assert example["SPOTIFY_SPARK_REMOTE"] == f"sc://spark-connect:{connect_port}"
    assert connect_port in " ".join(s["spark-connect"]["healthcheck"]["test"])
    # Healthy only once warmed up: the first pipeline run gets a warm server too.
    assert "--warm-up" in connect_cmd
    ready = connect_cmd[connect_cmd.index("--ready-file") + 1]
    assert ready in " ".join(s["spark-connect"]["healthcheck"]["test"])

    streamlit_cmd = s["streamlit"]["command"]
    # app/serve.py: headless streamlit run, and no start beyond loopback without the login.
    assert streamlit_cmd[:3] == ["python", "-m", "app.serve"]
    # Streamlit reads its secrets file only when the name ends in .toml (else: no login, nothing shown).
    login = s["streamlit"]["environment"]["SPOTIFY_DASHBOARD_SECRETS"]
    assert login == "/run/secrets/dashboard-login.toml"
    (mounted,) = [x for x in s["streamlit"]["secrets"] if isinstance(x, dict)]
    assert mounted == {"source": "dashboard_login", "target": Path(login).name}


def test_the_scrobble_server_serves_the_published_port_and_shares_the_code_locations_data(
    compose: dict[str, Any],
) -> None:
    """The door listens on 0.0.0.0 inside its container for the loopback-published port (the
    port its health check asks too), and lands listens where the code location's inbox sensor
    looks: the same data directory on the same volume (the lake's inbox locally, the users'
    registry and token hashes, now playing), the same deployment switch and bucket in the cloud."""
    from spotify_assets.scrobbles.server import DEFAULT_PORT, VALIDATE_PATH

    s = compose["services"]
    door = s["scrobble-server"]
    command = door["command"]
    assert command[:2] == ["spotify-assets", "scrobble-server"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert port == str(DEFAULT_PORT)
    assert door["ports"] == [f"127.0.0.1:${{SCROBBLE_SERVER_PORT:-{DEFAULT_PORT}}}:{port}"]
    assert _env_example()["SCROBBLE_SERVER_PORT"] == str(DEFAULT_PORT)
    assert f"http://127.0.0.1:{port}{VALIDATE_PATH}" in " ".join(door["healthcheck"]["test"])
    data = s["code-location"]["environment"]["SPOTIFY_DATA_DIR"]
    assert door["environment"]["SPOTIFY_DATA_DIR"] == data
    data_volume = next(v for v in s["code-location"]["volumes"] if v.endswith(f":{data}"))
    assert door["volumes"] == [data_volume]
    assert door["environment"]["SPOTIFY_DEPLOYMENT"] == "${SPOTIFY_DEPLOYMENT:-local}"
    # Cloud mode: the lake is the bucket, written with the pipeline's identity.
    from spotify_assets.resources.cloud import REQUIRED_CLOUD_ENV

    assert set(REQUIRED_CLOUD_ENV) | {"SPOTIFY_GCS_PREFIX", "SPOTIFY_GCS_ENDPOINT"} <= set(
        door["environment"]
    )
    assert door["environment"]["GOOGLE_APPLICATION_CREDENTIALS"] == "/run/secrets/gcp_credentials"
    assert door["secrets"] == ["gcp_credentials"]


def test_compose_publishes_ports_on_loopback_only(compose: dict[str, Any]) -> None:
    # The Connect server runs any Spark code it is sent and has no token (see the compose file):
    # its port stays on the compose network.
    assert "ports" not in compose["services"]["spark-connect"]
    published = [p for svc in compose["services"].values() for p in svc.get("ports", [])]
    assert published, "the UI ports should be published"
    for mapping in published:
        assert str(mapping).startswith("127.0.0.1:"), f"{mapping} would expose an unauthenticated UI"


def test_only_the_code_location_gets_the_spotify_secrets(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert s["code-location"]["env_file"] == ["deploy/.env"]
    for name in EXPECTED_SERVICES - {"code-location"}:
        service = s[name]
        assert "env_file" not in service, name
        env = service.get("environment", {})
        assert not {"SPOTIFY_CLIENT_SECRET", "SPOTIFY_REFRESH_TOKEN"} & set(env), name
    # The dashboard runs as the read-only service account.
    assert (
        s["streamlit"]["environment"]["GOOGLE_APPLICATION_CREDENTIALS"]
        == "/run/secrets/gcp_dashboard_credentials"
    )
    assert s["streamlit"]["secrets"] == [
        "gcp_dashboard_credentials",
        {"source": "dashboard_login", "target": "dashboard-login.toml"},
    ]
    assert set(compose["secrets"]) == {"gcp_credentials", "gcp_dashboard_credentials", "dashboard_login"}
    # The Connect server computes on what a run hands it: no key, no lake, read-only exchange.
    assert "secrets" not in s["spark-connect"]
    assert s["spark-connect"]["volumes"] == ["spark-exchange:/opt/dagster/spark-exchange:ro"]
    # The Spotify token store sits on a volume only the code location mounts.
    token_dir = str(Path(s["code-location"]["environment"]["SPOTIFY_TOKEN_FILE"]).parent)
    mounts = {name: [v.split(":")[1] for v in svc.get("volumes", [])] for name, svc in s.items()}
    assert [n for n, targets in mounts.items() if token_dir in targets] == ["code-location"]
    assert f"chmod 0700 {token_dir}" in DOCKERFILE.read_text()


def _env_example() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    return dict(pairs)


def test_env_example_documents_every_variable(compose: dict[str, Any]) -> None:
    example = _env_example()
    required = {
        "SPOTIFY_DEPLOYMENT",
        "SPOTIFY_CLIENT_ID",
        "SPOTIFY_CLIENT_SECRET",
        "SPOTIFY_REFRESH_TOKEN",
        "SPOTIFY_GCP_PROJECT",
        "SPOTIFY_GCS_BUCKET",
        "SPOTIFY_BQ_DATASET",
        "SPOTIFY_BQ_STAGING_DATASET",
        "SPOTIFY_BQ_LOCATION",
        "SPOTIFY_SPARK_MASTER",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "DAGSTER_POSTGRES_USER",
        "DAGSTER_POSTGRES_PASSWORD",
        "DAGSTER_POSTGRES_DB",
        "DAGSTER_POSTGRES_HOST",
        "DAGSTER_POSTGRES_PORT",
    }
    assert required <= set(example)
    # Every ${VAR} compose interpolates is documented there too.
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert interpolated <= set(example), interpolated - set(example)
    # Every DAGSTER_POSTGRES_* that deploy/dagster.yaml reads is documented.
    read_by_instance = set(
        re.findall(r"env: (DAGSTER_[A-Z_]+)", (REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    )
    assert read_by_instance and read_by_instance <= set(example)
    # Each variable has a comment somewhere above it (its section or its own line).
    lines = ENV_EXAMPLE.read_text().splitlines()
    assert lines[0].startswith("#")
    # No secret values in the example.
    assert example["SPOTIFY_CLIENT_SECRET"] == "" and example["SPOTIFY_REFRESH_TOKEN"] == ""


def test_real_env_and_keys_are_git_ignored() -> None:
    for path in ("deploy/.env", "deploy/secrets/gcp-credentials.json"):
        proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT, capture_output=True)
        assert proc.returncode == 0, f"{path} is not git-ignored"


# --- the image's health check against its own entry point, for real ---------------------------

STAND_IN_DEFS = """
import dagster as dg

@dg.asset
def stand_in() -> int:
    return 1

defs = dg.Definitions(assets=[stand_in])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthcheck_argv(port: int) -> list[str]:
    (args,) = [a for k, a in _instructions(DOCKERFILE.read_text()) if k == "HEALTHCHECK"]
    argv = _exec_form(args[args.index("CMD") + 3 :].strip())
    argv[argv.index("-p") + 1] = str(port)
    return [str(Path(sys.executable).parent / argv[0]), *argv[1:]]


@pytest.fixture
def code_server(tmp_path: Path) -> Iterator[int]:
    """The Dockerfile's CMD (with -h 127.0.0.1, a free port and a stand-in -f file) as a real process."""
    (cmd_args,) = [a for k, a in _instructions(DOCKERFILE.read_text()) if k == "CMD"]
    argv = _exec_form(cmd_args)
    port = _free_port()
    argv[argv.index("-p") + 1] = str(port)
    argv[argv.index("-h") + 1] = "127.0.0.1"
    module_at = argv.index("-m")
    defs_file = tmp_path / "stand_in_defs.py"
    defs_file.write_text(STAND_IN_DEFS)
    argv[module_at : module_at + 2] = ["-f", str(defs_file)]
    argv[0] = str(Path(sys.executable).parent / argv[0])
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.timeout(180)
def test_image_healthcheck_fails_without_a_server_and_passes_against_the_entry_point(
    code_server: int, tmp_path: Path
) -> None:
    from dagster._grpc.client import DagsterGrpcClient

    # Wait for the server in-process (each `dagster` CLI call pays seconds of imports);
    # start-up time is not asserted, only that the image's own check then passes.
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    # While the server starts: the check must fail where nothing listens (it can fail at all).
    refused = subprocess.run(
        _healthcheck_argv(_free_port()), capture_output=True, text=True, timeout=60, env=env
    )
    assert refused.returncode != 0

    client = DagsterGrpcClient(port=code_server, host="127.0.0.1")
    deadline = time.monotonic() + 120
    while client.health_check_query() != "SERVING" and time.monotonic() < deadline:
        time.sleep(0.25)
    proc = subprocess.run(_healthcheck_argv(code_server), capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gRPC connection successful" in proc.stdout


def test_every_hadolint_ignore_is_explained() -> None:
    """An inline ``# hadolint ignore=`` must follow a comment saying why (like checkov skips)."""
    lines = DOCKERFILE.read_text().splitlines()
    ignores = [i for i, line in enumerate(lines) if "hadolint ignore=" in line]
    for i in ignores:
        above = lines[i - 1].strip() if i else ""
        assert above.startswith("#") and len(above) > 30, (
            f"line {i + 1}: hadolint ignore without a reason above it"
        )


# --- the test stack (deploy/compose-test.yaml, run by scripts/compose-test.sh) ----------------

COMPOSE_TEST = REPO_ROOT / "deploy" / "compose-test.yaml"
COMPOSE_TEST_SCRIPT = REPO_ROOT / "scripts" / "compose-test.sh"
COMPOSE_CHECK = REPO_ROOT / "scripts" / "compose_check.py"


def test_spark_driver_and_workers_share_the_drivers_temporary_folder(compose: dict[str, Any]) -> None:
    """The top-ten job's input/output live in the driver's TMPDIR; executors must see that path."""
    s = compose["services"]
    tmpdir = s["code-location"]["environment"]["TMPDIR"]
    for name in ("code-location", "spark-worker", "spark-connect"):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in s[name]["volumes"]}
        assert mounts.get(tmpdir) == "spark-exchange", f"{name} does not mount the exchange at {tmpdir}"
    assert "spark-exchange" in compose["volumes"]
    assert "/opt/dagster/spark-exchange" in DOCKERFILE.read_text()  # created, owned by the user


def test_the_test_stack_is_the_shipped_file_plus_a_sandbox_service() -> None:
    """The compose test starts what users run: the override adds the sandbox API and changes no
    shipped service (no network, command, environment or port of theirs), and the script passes
    no other compose file."""
    override = yaml.safe_load(COMPOSE_TEST.read_text())
    assert set(override) == {"services"}, "the override may add services only (no networks, volumes, ...)"
    assert set(override["services"]) == {"sandbox"}
    assert not EXPECTED_SERVICES & set(override["services"])
    sandbox = override["services"]["sandbox"]
    assert "network_mode" not in sandbox and "networks" not in sandbox  # compose's default network
    assert sandbox["image"] == yaml.safe_load(COMPOSE.read_text())["services"]["code-location"]["image"]
    assert "ports" not in sandbox  # its controls are loopback-only: the checks exec into it
    command = sandbox["command"]
    assert command[:2] == ["spotify-assets", "sandbox"]
    assert "SPOTIFY_SANDBOX_URL" in _env_example()
    assert f":{command[command.index('--port') + 1]}/" in " ".join(sandbox["healthcheck"]["test"])
    script = COMPOSE_TEST_SCRIPT.read_text()
    files = re.findall(r" -f (\$[^\s\"]+)", script)
    assert files == ["$REPO_ROOT/docker-compose.yaml", "$REPO_ROOT/deploy/compose-test.yaml"]
    assert "--env-file $PROJECT_DIR/deploy/.env" in script
    assert "--project-directory $PROJECT_DIR" in script
    assert not (REPO_ROOT / "deploy" / "compose-test.cloud.yaml").exists()


def _configure(tmp_path: Path, deployment: str) -> tuple[dict[str, str], Path]:
    """``compose_check.py configure`` as the script runs it, into a temp project folder."""
    project = tmp_path / "project"
    env = {
        "SPOTIFY_STACK_PROJECT_DIR": str(project),
        "SPOTIFY_STACK_PG_PASSWORD": "pg-secret",
        "SPOTIFY_STACK_POSTGRES_IMAGE": "spotify-local/postgres:15-bookworm",
        "SPOTIFY_STACK_WEB_PORT": "41000",
        "SPOTIFY_STACK_SPARK_UI_PORT": "41001",
        "SPOTIFY_STACK_STREAMLIT_PORT": "41002",
        "SPOTIFY_STACK_SCROBBLE_PORT": "41003",
        "SPOTIFY_STACK_OIDC_PORT": "41004",
        "SPOTIFY_STACK_DEPLOYMENT": deployment,
        "SPOTIFY_STACK_GATEWAY": "172.30.0.1",
        "SPOTIFY_STACK_GCP_PROJECT": "p",
        "SPOTIFY_STACK_GCS_BUCKET": "b",
        "SPOTIFY_STACK_BQ_DATASET": "d",
        "SPOTIFY_STACK_BQ_STAGING_DATASET": "s",
        "SPOTIFY_STACK_GCS_PORT": "41005",
        "SPOTIFY_STACK_BQ_PORT": "41006",
    }
    stack_env = tmp_path / "stack.env"
    stack_env.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    proc = subprocess.run(
        [sys.executable, str(COMPOSE_CHECK), "configure"],
        env={**os.environ, "SPOTIFY_STACK_ENV": str(stack_env)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = project / "deploy" / ".env"
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", written.read_text(), flags=re.MULTILINE)), project


@pytest.mark.parametrize("deployment", ["local", "cloud"])
def test_the_test_stacks_env_is_the_example_filled_in(tmp_path: Path, deployment: str) -> None:
    from app.auth import problems, read_settings

    values, project = _configure(tmp_path, deployment)
    example = _env_example()
    assert list(values)[: len(example)] == list(example), "every line of the example, in its order"
    filled = {k for k in example if values[k] != example[k]}
    allowed = {
        "SPOTIFY_DEPLOYMENT",
        "SPOTIFY_SANDBOX_URL",
        "DAGSTER_POSTGRES_PASSWORD",
        "POSTGRES_IMAGE",
        "DAGSTER_WEBSERVER_PORT",
        "SPARK_MASTER_UI_PORT",
        "DASHBOARD_PORT",
        "SCROBBLE_SERVER_PORT",
    }
    cloud = {
        "SPOTIFY_GCP_PROJECT",
        "SPOTIFY_GCS_BUCKET",
        "SPOTIFY_BQ_DATASET",
        "SPOTIFY_BQ_STAGING_DATASET",
        "SPOTIFY_GCS_ENDPOINT",
        "SPOTIFY_BQ_ENDPOINT",
    }
    assert filled <= allowed | (cloud if deployment == "cloud" else set()), filled
    assert set(values) == set(example), "nothing added beyond the example's variables"
    assert values["SPOTIFY_DEPLOYMENT"] == deployment
    assert values["SPOTIFY_SANDBOX_URL"] == "http://sandbox:8000"
    assert (
        values["SPOTIFY_CLIENT_ID"]
        == values["SPOTIFY_CLIENT_SECRET"]
        == values["SPOTIFY_REFRESH_TOKEN"]
        == ""
    )
    if deployment == "cloud":
        assert values["SPOTIFY_BQ_ENDPOINT"] == "http://172.30.0.1:41006"
        assert values["SPOTIFY_GCS_ENDPOINT"] == "http://172.30.0.1:41005"
    # The paths the example names, relative to the (temp) project folder; all 0600.
    login = project / values["DASHBOARD_LOGIN_FILE"]
    for path in (
        project / "deploy" / ".env",
        login,
        project / values["GCP_CREDENTIALS_FILE"],
        project / values["GCP_DASHBOARD_CREDENTIALS_FILE"],
    ):
        assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600, path
        if os.geteuid() == 0:
            assert path.stat().st_uid == 10001, path  # the image's user reads the mounted secrets
    settings = read_settings(login)
    assert problems(settings) == []  # a complete login: app/serve.py starts on 0.0.0.0
    assert settings["auth"]["server_metadata_url"].startswith("http://172.30.0.1:41004/")
    assert settings["auth"]["redirect_uri"] == "http://127.0.0.1:41002/oauth2callback"


# --- the image runs what it ships (issue 23, item 1) -------------------------------------------

#: The code the image ships: the installed packages and the dashboard's folder (Dockerfile COPY).
SHIPPED = ("spotify_assets", "spotify_sandbox", "spark", "app")


def _runtime_distributions() -> set[str]:
    """Every distribution a runtime-only install has: pyproject.toml's ``[project].dependencies``
    and their requirements, transitively, with the markers evaluated as the image's builder
    evaluates them (no dev extra; a requirement's own extras followed). Read from the installed
    metadata of this virtualenv, which holds the lock's pins."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    todo = [(Requirement(r), "") for r in pyproject["project"]["dependencies"]]
    seen: set[str] = set()
    done: set[tuple[str, str]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = str(canonicalize_name(req.name))
        for wanted in ["", *sorted(req.extras)]:
            if (name, wanted) in done:
                continue
            done.add((name, wanted))
            seen.add(name)
            todo += [(Requirement(r), wanted) for r in metadata.requires(name) or []]
    return seen


def _shipped_files() -> list[Path]:
    return sorted(
        p for pkg in SHIPPED for p in (REPO_ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts
    )


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in ``path`` that are neither the standard
    library nor the project's own packages (lazy imports inside functions included: a
    deployed process reaches them too)."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(SHIPPED) - {"__future__"}


def test_every_module_the_image_ships_imports_only_runtime_dependencies() -> None:
    """A module the image ships that imports a package only the dev extra installs fails in the
    deployment (issue 23: ``app.queries`` and sqlglot). Each third-party import of every shipped
    file (found by walking the packages, not listed) must come from a distribution a runtime-only
    install has. The image itself is checked too: ``scripts/image_imports.py`` imports every
    shipped module inside the stack's streamlit container (``make compose-test``)."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    runtime = _runtime_distributions()
    assert {"dagster", "streamlit", "pyspark", "grpcio"} <= runtime  # pyspark[connect]
    assert "pytest" not in runtime and "playwright" not in runtime  # the dev extra stays out
    # st.login (app/auth.py) runs Authlib's Starlette client, which imports httpx: neither is imported
    # by the project's own files, so the walk below cannot see them (the image lacked httpx and the
    # deployed sign-in failed; the compose test's browser caught it). Streamlit's `auth` extra.
    from importlib.metadata import requires

    auth_extra = [
        r.split(";")[0].split(">")[0].strip() for r in requires("streamlit") or [] if 'extra == "auth"' in r
    ]
    assert auth_extra and {str(canonicalize_name(r)) for r in auth_extra} <= runtime, auth_extra
    provided = metadata.packages_distributions()
    files = _shipped_files()
    assert len(files) > 60 and any(p.parts[-3:] == ("app", "views", "top.py") for p in files)
    missing: dict[str, list[str]] = {}
    for path in files:
        for name in sorted(_third_party_imports(path)):
            dists = {str(canonicalize_name(d)) for d in provided.get(name, [])}
            if not dists & runtime:
                missing.setdefault(
                    f"{name} (from {sorted(dists) or 'no installed distribution'})", []
                ).append(str(path.relative_to(REPO_ROOT)))
    assert not missing, f"shipped modules import what a runtime-only install lacks: {missing}"
