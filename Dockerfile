# syntax=docker/dockerfile:1
# The auditlake image: `docker build -t auditlake .`, then `docker run --rm auditlake export …`
# (see README, "Running on a schedule").

# Build: the toolchain the project is tested with, the locked dependencies. Without the default
# `simulator` feature: the image runs exports, not `demo`/`simulate`, so it leaves out the
# simulated Zendesk and its web server. The simulator crate is still copied: it is a workspace
# member, and Cargo reads every member's manifest.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY src ./src
COPY schemas ./schemas
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --no-default-features \
    && install -m 0755 target/release/auditlake /auditlake

# Run: glibc, CA certificates (TLS to Zendesk and the object store), no shell, no root.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /auditlake /usr/local/bin/auditlake
USER nonroot
ENTRYPOINT ["/usr/local/bin/auditlake"]
