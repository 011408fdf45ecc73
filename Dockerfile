# syntax=docker/dockerfile:1
# imgate's origin: `imgate-origin serve` with headless Chromium and the fonts
# cards need. The edge is not in here: it is a Spin component (spin.toml).
#
#   docker build -t imgate-origin .
#   docker run -p 8081:8081 -e IMGATE_EDGE_TOKEN=… -e IMGATE_BUCKET=… imgate-origin
#
# The same image runs the other commands, e.g. the scheduled warm-up:
#   docker run imgate-origin warm --sitemap https://shop.example.com/sitemap.xml

ARG DEBIAN=bookworm

FROM rust:1.95-slim-${DEBIAN} AS build
WORKDIR /src
COPY . .
# Without the `dev` feature: the local stack (a loopback S3 server) has no
# place in production. Caches keep rebuilds incremental.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p imgate-origin --no-default-features \
    && install -m 0755 target/release/imgate-origin /usr/local/bin/imgate-origin

FROM debian:${DEBIAN}-slim AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Everything the origin needs at run time comes from one list, the same one CI
# installs. Versions are the Debian release's (security updates included), so
# they are not pinned here.
COPY origin/runtime-packages.txt /tmp/runtime-packages.txt
# hadolint ignore=DL3008
RUN apt-get update \
    && grep -Ev '^[[:space:]]*(#|$)' /tmp/runtime-packages.txt \
       | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/imgate imgate
COPY --from=build /usr/local/bin/imgate-origin /usr/local/bin/imgate-origin
COPY templates /etc/imgate/templates

# JSON logs for the log pipeline; Chromium from the package above; listen on
# all interfaces inside the container (the task's security group limits who
# reaches it).
ENV IMGATE_ORIGIN_LISTEN=0.0.0.0:8081 \
    IMGATE_TEMPLATES=/etc/imgate/templates \
    IMGATE_CHROMIUM=/usr/lib/chromium/chromium-headless-shell \
    IMGATE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/imgate
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["imgate-origin", "healthcheck"]
ENTRYPOINT ["imgate-origin"]
CMD ["serve"]
