# syntax=docker/dockerfile:1.7
#
# One image for every PHLO runner process; the command picks the service:
#   phlo-gateway | phlo-worker | phlo-callback | phlo-carrier-sim | phlo migrate | phlo serve
#
# Build:  docker build -t phlo-runner .          (BuildKit: the default builder since Docker 23)
#
# Dependency caching: BuildKit cache mounts rather than the "stub sources" trick. The Cargo registry,
# the git checkouts and target/ live in cache mounts that survive between builds, so a source change
# recompiles only the workspace crates that changed (cargo's own fingerprints decide), and adding a
# crate under crates/ or services/ needs no Dockerfile edit (stub layers must list every member and
# its targets, and silently rebuild everything when one is missed). Cache mounts are not part of the
# image, so the binaries are copied out of target/ inside the same RUN. On a CI runner without a
# persistent builder the cache is cold and the build is a plain `cargo build --release --locked`.

# Pinned to the toolchain of rust-toolchain.toml (1.95.0). rust-toolchain.toml itself is left out of the
# context (.dockerignore) so rustup never tries to download a toolchain or components inside the build.
FROM rust:1.95.0-bookworm AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY services ./services
# Embedded into the binaries at compile time (sqlx::migrate!); the runtime image does not need them.
COPY migrations ./migrations
# The sample PHLOs `phlo dev` loads, embedded at compile time (include_str!).
COPY docs/examples ./docs/examples
# No compile-checked queries (no sqlx::query! macros), so no DATABASE_URL or .sqlx offline data is needed.
RUN --mount=type=cache,id=phlo-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=phlo-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=phlo-target,target=/src/target \
    cargo build --release --locked \
      --bin phlo --bin phlo-gateway --bin phlo-worker --bin phlo-callback --bin phlo-carrier-sim \
 && mkdir -p /out \
 && cp target/release/phlo target/release/phlo-gateway target/release/phlo-worker \
       target/release/phlo-callback target/release/phlo-carrier-sim /out/

FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to the carrier, to customers' webhooks and HTTP Request nodes, and to a managed
# Postgres. No curl: health checks use bash's /dev/tcp (/usr/local/bin/phlo-healthcheck).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 phlo \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin phlo
COPY --from=builder /out/ /usr/local/bin/
COPY --chmod=0755 deploy/docker/healthcheck /usr/local/bin/phlo-healthcheck
USER 10001:10001
ENV PHLO_LOG_FORMAT=json \
    PHLO_GATEWAY_ADDR=0.0.0.0:8080 \
    PHLO_WORKER_ADDR=0.0.0.0:9090 \
    PHLO_CALLBACK_ADDR=0.0.0.0:9091 \
    SIM_ADDR=0.0.0.0:8070
EXPOSE 8080 9090 9091 8070
# tini as PID 1: forwards SIGTERM to the service (graceful shutdown) and reaps children.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["phlo-gateway"]
# Readiness of the gateway (the default command); compose and Kubernetes set their own per service.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["phlo-healthcheck", "8080", "/readyz"]
