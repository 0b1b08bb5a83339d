# Local stand-in for the official python:3.11-slim-bookworm image, built from Debian packages
# only (scripts/base-images.sh): for machines that reach a Debian mirror but no container
# registry. FROM is the debootstrap'ed bookworm root file system, imported as an image.
# Python is Debian's 3.11 (bookworm's 3.11.2, not python.org's 3.11.x): same minor as the lock.
ARG DEBIAN_IMAGE=spotify-local/debian:bookworm
FROM ${DEBIAN_IMAGE}

# Same shape as the official image: `python` on PATH, venv support, UTF-8, no cache files.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv python-is-python3 \
    && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
