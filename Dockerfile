FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin gauntlet

FROM debian:bookworm-slim
COPY --from=build /src/target/release/gauntlet /usr/local/bin/gauntlet
ENTRYPOINT ["gauntlet"]
