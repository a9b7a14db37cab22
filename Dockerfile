# syntax=docker/dockerfile:1
#
# The ferry binary in a small image: `docker build -t ferry .`
#
# By default it runs the HTTP API and dashboard on port 8080 over the embedded on-disk
# backend in the /data volume; set FERRY_BACKEND to use Redis or RabbitMQ instead, and
# override the command to run anything else (`docker run ferry consume jobs --exec ...`).
# A config file mounted at /etc/ferry/ferry.toml (the working directory) is read as
# ./ferry.toml. See docs/deploy.md and compose.yaml.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the build between image builds; the binary is
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ferry-cli \
    && cp target/release/ferry /usr/local/bin/ferry

FROM debian:bookworm-slim
# ca-certificates: rediss:// and amqps:// backends and HTTPS webhooks.
# curl: the health check (`curl -fsS http://127.0.0.1:8080/healthz`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin ferry \
    && mkdir -p /data /etc/ferry \
    && chown ferry:ferry /data
COPY --from=builder /usr/local/bin/ferry /usr/local/bin/ferry
USER ferry
WORKDIR /etc/ferry
VOLUME /data
ENV FERRY_BACKEND=file:/data
EXPOSE 8080
ENTRYPOINT ["ferry"]
CMD ["serve", "--bind", "0.0.0.0:8080"]
