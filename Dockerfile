# syntax=docker/dockerfile:1
# The convotrail image: one image for every process (workers, sink, webhook intake,
# read API, lag exporter, init jobs); the command line picks which one, e.g.
#   docker run --rm convotrail:0.1.0 worker --processor bounces --metrics-port 9100
# Built and run by docker-compose.yml (deploy/compose/README.md) and the Helm chart.

# Builder: builds the project's wheel and installs it with its dependencies into a
# virtualenv, the only thing the final stage takes. Every compiled dependency
# (confluent-kafka with librdkafka, rocksdict, psycopg[binary], cryptography) ships
# manylinux wheels that bundle their C libraries, so no compiler or -dev package is
# needed here either.
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY convotrail/ convotrail/
COPY processors/ processors/
COPY connectors/ connectors/
COPY schemas/ schemas/

# The pip cache lives in a BuildKit cache mount: a rebuild after a code change does
# not download every dependency again, and no cache ends up in a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/convotrail \
    && python -m pip wheel --no-deps --wheel-dir /dist . \
    && /opt/convotrail/bin/pip install /dist/convotrail-*.whl

# Final: the same Python base (the virtualenv's interpreter links to it), the
# virtualenv, a non-root user; no pip cache, no sources, no build tools.
FROM python:3.11.14-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="convotrail" \
      org.opencontainers.image.description="Kafka event backbone for customer-support conversations: workers, SQL sink, webhook intake, read API." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# In a container a process must listen on every interface to be reached at all;
# the read API still refuses a non-loopback bind without CONVOTRAIL_API_TOKENS.
ENV PATH="/opt/convotrail/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONVOTRAIL_HOME=/var/lib/convotrail \
    CONVOTRAIL_METRICS_HOST=0.0.0.0 \
    CONVOTRAIL_INTAKE_HOST=0.0.0.0 \
    CONVOTRAIL_API_HOST=0.0.0.0

# A fixed uid/gid, so volume ownership and a Kubernetes securityContext
# (runAsUser/fsGroup 10001) agree with the image.
RUN groupadd --system --gid 10001 convotrail \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/convotrail --shell /usr/sbin/nologin convotrail \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/convotrail

COPY --from=builder /opt/convotrail /opt/convotrail

USER 10001:10001
WORKDIR /var/lib/convotrail
# CONVOTRAIL_HOME: a worker's RocksDB state (restored from its changelog when lost,
# so a volume only saves restore time), the SQLite default database.
VOLUME ["/var/lib/convotrail"]

# Intake 8025, read API 8080, worker metrics 9100, sink metrics 9101, lag exporter 9102.
EXPOSE 8025 8080 9100 9101 9102

ENTRYPOINT ["convotrail"]
CMD ["--help"]
