# Builds a small image that runs `greenhouse-sync serve` as a non-root user.
#
#   docker build -t greenhouse-sync .
#   docker run -p 8080:8080 -v gs-data:/data greenhouse-sync

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin greenhouse-sync

FROM debian:bookworm-slim
# libpq and SQLite are compiled in; libssl3 serves libpq's TLS connections.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home greenhouse-sync
COPY --from=build /src/target/release/greenhouse-sync /usr/local/bin/greenhouse-sync
USER greenhouse-sync
WORKDIR /data
ENV GREENHOUSE_SYNC_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=/data/greenhouse-sync.db
EXPOSE 8080
VOLUME ["/data"]
# The slim image has no curl; the binary checks its own /healthz over loopback on the port
# of GREENHOUSE_SYNC_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["greenhouse-sync", "healthcheck"]
ENTRYPOINT ["greenhouse-sync"]
CMD ["serve"]
