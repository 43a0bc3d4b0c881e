# Production image: a release build of portico on a slim Debian base.
FROM rust:1.85-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin portico

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home portico
COPY --from=build /src/target/release/portico /usr/local/bin/portico
COPY conf/portico.yaml /etc/portico/portico.yaml
USER portico
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/portico"]
CMD ["run", "-c", "/etc/portico/portico.yaml"]
