# edgeseo in a container: built in one stage, run from a slim image as a non-root user.
#   docker build -t edgeseo .
#   docker run -p 8080:8080 -p 9090:9090 -e EDGESEO_ADMIN_TOKEN=... \
#     -v "$PWD/rules:/etc/edgeseo/rules:ro" -v "$PWD/certs:/etc/edgeseo/certs:ro" edgeseo
# The demo, without rules of your own: docker run -p 8080:8080 edgeseo demo --listen 0.0.0.0:8080

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin edgeseo

FROM debian:bookworm-slim
# ca-certificates: origins reached over HTTPS are verified against the system's roots as well.
# Unpinned on purpose: Debian stable only takes security fixes, so the latest is the patched one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin edgeseo \
    && mkdir -p /etc/edgeseo/rules /etc/edgeseo/certs
COPY --from=build /src/target/release/edgeseo /usr/local/bin/edgeseo
# The demo's rules, so that `edgeseo demo` runs as it is; mount your own over them.
COPY rules /etc/edgeseo/rules
WORKDIR /etc/edgeseo
VOLUME ["/etc/edgeseo/rules", "/etc/edgeseo/certs"]
USER 10001:10001
EXPOSE 8080 8443 9090
# SIGTERM drains in-flight requests within server.toml's drain_timeout; give `docker stop` more
# time than that (docker stop -t 20).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/edgeseo"]
CMD ["serve", "--rules", "/etc/edgeseo/rules", "--certs", "/etc/edgeseo/certs", \
     "--listen", "0.0.0.0:8080", "--admin", "0.0.0.0:9090"]
