# Local stand-in for the official postgres:15-bookworm image, built from Debian's
# postgresql-15 package (scripts/base-images.sh). It honours the variables the compose file
# gives the official image (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA) and PGPORT.
ARG DEBIAN_IMAGE=spotify-local/debian:bookworm
FROM ${DEBIAN_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql

COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
# The postgres account is created by the Debian package, its uid chosen there.
# hadolint ignore=DL3066
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
