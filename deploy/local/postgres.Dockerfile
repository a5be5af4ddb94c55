# PostgreSQL from Debian's own package, for machines that cannot pull the
# official postgres image (deploy/compose.local.yml). It honours what
# docker-compose.yml gives the official image: POSTGRES_USER,
# POSTGRES_PASSWORD, PGDATA=/var/lib/postgresql/data and the *.sql and *.sh
# files of /docker-entrypoint-initdb.d, run once on an empty data folder.
#   docker build -f deploy/local/postgres.Dockerfile --build-arg BASE=platform/debian:bookworm-slim deploy/local
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# No cluster of the package's own (the data folder is made at first start).
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 0755 /docker-entrypoint-initdb.d \
 && install -d -o postgres -g postgres -m 1777 /var/run/postgresql
# /var/run/postgresql is world-writable (sticky, as /tmp is): a tmpfs mounted
# there (read-only root filesystem) takes this mode, and root as its owner.
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
USER postgres
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres", "-c", "listen_addresses=*"]
