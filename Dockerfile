# syntax=docker/dockerfile:1
# The alerthaven image: the `ingest` and `publisher` binaries on a small
# Debian, run as a non-root user. compose/docker-compose.yml builds it (as
# alerthaven:local); by hand:
#   docker build -t alerthaven:local .
#   docker run --rm alerthaven:local ingest --help
# The same image runs compose's one-shot `config` service, which renders the
# Prometheus and Alertmanager templates with scripts/render-config.sh (bash).

# --- build: both binaries, release profile, exactly the locked dependencies.
# librdkafka (bundled by rdkafka-sys) and OpenSSL (vendored by openssl-src,
# for Kafka's TLS and SASL) are compiled from C here: they need a C toolchain,
# make, cmake and perl (in the rust image).
FROM rust:1.95.0-trixie AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The source revision for *_build_info (no .git is copied in):
#   docker build --build-arg ALERTHAVEN_REVISION=$(git rev-parse --short=12 HEAD) .
ARG ALERTHAVEN_REVISION=unknown
ENV ALERTHAVEN_REVISION=$ALERTHAVEN_REVISION
COPY . .
# The registry and target caches survive between builds (BuildKit); the
# binaries are copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ingest --bin publisher \
    && install -D -m 0755 -t /out target/release/ingest target/release/publisher

# --- runtime: glibc matches the builder's (both Debian 13, trixie).
FROM debian:13.2-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 alerthaven \
    && useradd --system --uid 10001 --gid alerthaven --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin alerthaven \
    # Owned by the user so that a named volume mounted here (compose's
    # rendered configs) starts out writable by it.
    && install -d -o alerthaven -g alerthaven /var/lib/alerthaven/config
COPY --from=build /out/ingest /out/publisher /usr/local/bin/
# Listen on every interface inside a container (the binaries default to
# 127.0.0.1); JSON logs for log collectors.
ENV INGEST_SERVER__HOST=0.0.0.0 \
    INGEST_LOG__FORMAT=json \
    PUBLISHER_SERVER__HOST=0.0.0.0 \
    PUBLISHER_LOG__FORMAT=json
USER 10001:10001
# ingest's HTTP port and the publisher's /healthz, /readyz, /metrics port.
EXPOSE 8080 9102
CMD ["ingest"]
