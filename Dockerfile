# One image for every process of the deployment (see docker-compose.yaml): the Dagster
# code location (default command), webserver, daemon, Spark master/worker and Streamlit.
# Sharing the image keeps the Python/PySpark versions of the Spark driver (the code
# location) and the Spark workers identical, which PySpark requires.

# ---- builder: resolve the pinned lock file into a self-contained virtualenv ----------
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never

# Same uv version as the Makefile, so the image resolves exactly what `make venv` does.
RUN pip install --no-cache-dir "uv==0.13.8" \
    && python -m venv /opt/venv

WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN uv pip install --python /opt/venv/bin/python -r requirements.lock

# Then the project itself (not editable: the runtime stage has no source tree).
COPY pyproject.toml README.md ./
COPY spotify_assets ./spotify_assets
COPY spark ./spark
RUN uv pip install --python /opt/venv/bin/python --no-deps .

# ---- runtime -------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm AS runtime

# Java for Spark (PySpark 4 needs 17+); tini reaps the JVMs and Dagster run subprocesses
# and forwards signals so `docker stop` shuts runs down cleanly.
# Debian package versions are not pinned: bookworm's security updates replace them, and a
# pinned version disappears from the mirror; the base image tag pins the release instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --create-home --home-dir /home/dagster \
       --shell /usr/sbin/nologin dagster

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    SPOTIFY_DATA_DIR=/opt/dagster/data \
    SPARK_HOME=/opt/venv/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/venv/bin/python

COPY --from=builder /opt/venv /opt/venv

WORKDIR /opt/dagster/app
# The Streamlit dashboard and the Spark job as files (spark-submit spark/top_ten.py).
COPY app ./app
COPY spark ./spark
# Instance config: Postgres storage, queued runs; workspace points at the code server.
COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/dagster_home/

# data: lake/warehouse (local mode) and Spark scratch; secrets: the 0600 Spotify token store
# (SPOTIFY_TOKEN_FILE), on its own volume that only the code location mounts.
RUN mkdir -p /opt/dagster/data /opt/dagster/secrets /opt/dagster/dagster_home/storage \
    && chown -R dagster:dagster /opt/dagster/data /opt/dagster/secrets /opt/dagster/dagster_home \
    && chmod 0700 /opt/dagster/secrets

# Numeric, so runtimes that check runAsNonRoot (Kubernetes) can verify it without /etc/passwd.
USER 10001:10001

# 4000: code server (gRPC). Other services publish their own ports in docker-compose.yaml.
EXPOSE 4000

# Overridden per service in docker-compose.yaml; this one fits the default command.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "spotify_assets.definitions"]
