FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p warpengine

FROM debian:bookworm-slim
COPY --from=build /src/target/release/warpengine /usr/local/bin/warpengine
EXPOSE 6379
# Inside a container the server must listen on every interface; protected mode would then
# refuse the other containers, so it is switched off here (set requirepass in production).
ENTRYPOINT ["warpengine", "--bind", "0.0.0.0", "--set", "protected-mode=no"]
