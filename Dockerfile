# One image for every process of the deployment (see docker-compose.yaml): the Dagster
# code location (default command), webserver, daemon, Spark master/worker and Streamlit.
# Sharing the image keeps the Python/PySpark versions of the Spark driver (the code
# location) and the Spark workers identical, which PySpark requires.
#
# Base image: the official Python image by default. Without a registry, build the same
# Debian bookworm + Python 3.11 base from Debian packages (scripts/base-images.sh) and pass
#   --build-arg BASE_IMAGE=spotify-local/python:3.11-bookworm
# Offline / air-gapped: fill wheelhouse/ on a connected machine (scripts/wheelhouse.sh); when
# it holds wheels, every Python package is installed from it with --no-index and the build
# reaches no package index (Debian packages still come from the Debian mirror).
#
# Size (~2 GB, see README "Image size"): the Spark distribution inside the pyspark wheel
# (jars, ~450 MB), the Java 17 runtime (~220 MB), pyarrow/pandas/duckdb/numpy, Dagster + its
# GraphQL webserver, the Google Cloud clients and Streamlit. Not in it: the dev extras of the
# lock (pytest, ruff, mypy, playwright, emulators), uv and pip's caches, the wheelhouse, apt
# lists, the tests and benchmarks (.dockerignore).
# The tag is pinned here; checkov cannot see through the build argument.
#checkov:skip=CKV_DOCKER_7:the base image is ARG BASE_IMAGE, default the pinned python:3.11.11-slim-bookworm
ARG BASE_IMAGE=python:3.11.11-slim-bookworm

# ---- builder: resolve the pinned lock file into a self-contained virtualenv ----------
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never

# Empty but for its README unless scripts/wheelhouse.sh filled it (git-ignored).
COPY wheelhouse/ /wheelhouse/
# /wheelhouse/offline.env switches pip and uv to the wheelhouse only when it holds wheels.
# uv lives in its own venv (/opt/uv), not in the image's: it is a build tool. Same uv
# version as the Makefile, so the image resolves exactly what `make venv` does.
RUN set -- /wheelhouse/*.whl; \
    if [ -e "$1" ]; then \
        echo "wheelhouse: $# wheels, installing with --no-index / --offline"; \
        printf 'export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse UV_OFFLINE=1 UV_FIND_LINKS=/wheelhouse\n' \
          >/wheelhouse/offline.env; \
    else \
        echo "wheelhouse: empty, installing from the package index"; : >/wheelhouse/offline.env; \
    fi \
    && . /wheelhouse/offline.env \
    && python -m venv /opt/uv \
    && /opt/uv/bin/pip install "uv==0.13.8" \
    && python -m venv /opt/venv

WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock file or pyproject changes.
# The runtime requirements only (no dev extras), each at the version the lock pins.
COPY requirements.lock pyproject.toml ./
RUN . /wheelhouse/offline.env \
    && /opt/uv/bin/uv pip compile -q pyproject.toml -c requirements.lock --python-version 3.11 -o /tmp/runtime.txt \
    && /opt/uv/bin/uv pip install --python /opt/venv/bin/python -r /tmp/runtime.txt

# ---- project: the package itself, on top of the dependencies -------------------------
# Its own stage, so the runtime copies the (1.4 GB) dependency venv as one layer that stays
# cached, and a code change only re-copies the project's own few files.
FROM builder AS project
# Not editable: the runtime stage has no source tree.
COPY README.md ./
COPY spotify_assets ./spotify_assets
COPY spotify_sandbox ./spotify_sandbox
COPY spark ./spark
# The files the install adds (its RECORD: packages, dist-info, the console script), plus their
# bytecode, gathered under /opt/project-files with their absolute paths.
RUN . /wheelhouse/offline.env \
    && /opt/uv/bin/uv pip install --python /opt/venv/bin/python --no-deps . \
    && site=/opt/venv/lib/python3.11/site-packages \
    && cut -d, -f1 "$site"/spotify_assets-*.dist-info/RECORD >/tmp/record \
    && while read -r f; do \
         path="$(realpath -m "$site/$f")"; \
         mkdir -p "/opt/project-files$(dirname "$path")" && cp -a "$path" "/opt/project-files$path"; \
         pyc_dir="$(dirname "$path")/__pycache__"; \
         if [ -d "$pyc_dir" ]; then mkdir -p "/opt/project-files$pyc_dir" \
           && cp -a "$pyc_dir"/. "/opt/project-files$pyc_dir"/; fi; \
       done </tmp/record

# ---- runtime -------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# Java for Spark (PySpark 4 needs 17+); tini reaps the JVMs and Dagster run subprocesses
# and forwards signals so `docker stop` shuts runs down cleanly.
# Debian package versions are not pinned: bookworm's security updates replace them, and a
# pinned version disappears from the mirror; the base image tag pins the release instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

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
COPY --from=project /opt/project-files/ /

WORKDIR /opt/dagster/app
# The Streamlit dashboard and the Spark job as files (spark-submit spark/top_ten.py).
COPY app ./app
COPY spark ./spark
# Instance config: Postgres storage, queued runs; workspace points at the code server.
COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/dagster_home/

# data: lake/warehouse (local mode); spark-exchange: the Spark driver's temporary files (its
# TMPDIR in compose), on a volume the Spark workers mount at the same path so executors read
# what the driver wrote; secrets: the 0600 Spotify token store (SPOTIFY_TOKEN_FILE), on its own
# volume that only the code location mounts. A named volume copies the ownership below.
RUN mkdir -p /opt/dagster/data /opt/dagster/spark-exchange /opt/dagster/secrets /opt/dagster/dagster_home/storage \
    && chown -R dagster:dagster /opt/dagster/data /opt/dagster/spark-exchange /opt/dagster/secrets \
       /opt/dagster/dagster_home \
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
