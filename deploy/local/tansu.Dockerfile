# The tansu broker (the one `make up` runs), for deploy/compose.local.yml in
# place of the apache/kafka image. The binary comes from the context folder
# (scripts/images.sh copies the one `make tools` installed); it needs only
# glibc. Durable storage in sqlite under /var/lib/kafka/data, the folder
# docker-compose.yml gives the Kafka service a volume for.
#   docker build -f deploy/local/tansu.Dockerfile --build-arg BASE=platform/debian:bookworm-slim <folder holding tansu>
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN groupadd --system --gid 10001 tansu \
 && useradd --system --uid 10001 --gid tansu --home-dir /var/lib/kafka/data --shell /usr/sbin/nologin tansu \
 && install -d -o tansu -g tansu -m 0700 /var/lib/kafka/data
COPY tansu /usr/local/bin/tansu
# tansu reads these (and CLUSTER_ID) from the environment. A relative sqlite
# path: tansu mangles absolute ones.
ENV LISTENER_URL=tcp://0.0.0.0:9092 \
    ADVERTISED_LISTENER_URL=tcp://localhost:9092 \
    STORAGE_ENGINE=sqlite://tansu.db
WORKDIR /var/lib/kafka/data
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/tansu"]
CMD ["broker"]
