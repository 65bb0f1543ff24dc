# One image for every service: `gauntlet serve --service NAME` (see
# docker-compose.yml). librdkafka and SQLite build from the crates' bundled
# sources with the compilers the Rust image already has.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin gauntlet

FROM debian:bookworm-slim
# curl: the compose health checks ask each service's /health.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/gauntlet /usr/local/bin/gauntlet
EXPOSE 8000
ENTRYPOINT ["gauntlet"]
