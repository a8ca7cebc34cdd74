# KitsuLAN in a container: one static binary (musl) with the web app inside it, in an image that
# holds nothing else (no shell, no package manager). docs/admin.md, "Docker", says how to run it.
#
#   docker build -t kitsulan .
#   docker run -d --name kitsulan -p 8080:8080 -p 3478:3478/udp -p 3479:3479/udp -v kitsulan-data:/data kitsulan
#
# Four stages: the crypto crate as WebAssembly (the web app imports it), the web app (Node 20),
# the musl binary with the web app embedded, and the final image (`scratch`: the binary, CA
# certificates for SMTP/S3/ACME over TLS, an empty /data owned by the unprivileged user).
# It builds for the architecture of the build machine (x86_64 or aarch64, e.g. with
# `docker buildx build --platform linux/arm64`): the Rust image is multi-arch, and the target is
# `<arch>-unknown-linux-musl` with Debian's musl-tools, as `make dist` builds it.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- 1. crypto/pkg: the crypto crate for the browser (crypto/build-wasm.sh) ------------------
FROM ${RUST_IMAGE} AS wasm
WORKDIR /src
RUN rustup target add wasm32-unknown-unknown
# wasm-bindgen-cli at exactly the version the root Cargo.toml pins (build-wasm.sh checks it).
COPY Cargo.toml ./
RUN version="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)" \
 && test -n "$version" \
 && cargo install wasm-bindgen-cli --version "$version"
COPY . .
RUN crypto/build-wasm.sh

# ---- 2. pwa/dist: the web app ------------------------------------------------------------------
FROM ${NODE_IMAGE} AS pwa
WORKDIR /src/pwa
COPY pwa/package.json pwa/package-lock.json ./
RUN npm ci --no-audit --no-fund
# `npm run build` generates TypeScript from ../proto and imports ../crypto/pkg.
COPY proto /src/proto
COPY pwa /src/pwa
COPY --from=wasm /src/crypto/pkg /src/crypto/pkg
RUN npm run build

# ---- 3. the kitsulan binary: static (musl), the web app embedded (server/build.rs) -------------
FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
COPY --from=pwa /src/pwa/dist pwa/dist
RUN target="$(uname -m)-unknown-linux-musl" \
 && cargo build --release --locked -p kitsulan-server --bin kitsulan --target "$target" \
 && cp "target/$target/release/kitsulan" /kitsulan \
 && /kitsulan --version
# The volume's mount point, owned by the user the server runs as: a new named volume takes this
# ownership, so the server can write its data dir without root.
RUN mkdir -p /rootfs/data && chown 10001:10001 /rootfs/data && chmod 0700 /rootfs/data

# ---- 4. the image --------------------------------------------------------------------------------
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /kitsulan /kitsulan
COPY --from=build /rootfs/data /data
# Not root: an unprivileged UID with no name (scratch has no /etc/passwd). Ports above 1024 only,
# so no capability is needed; publish them on 80/443 with `-p`.
USER 10001:10001
ENV KITSULAN_DATA_DIR=/data \
    KITSULAN_LISTEN=0.0.0.0:8080 \
    KITSULAN_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME ["/data"]
# HTTP, gRPC and the web app; the embedded TURN relay (STUN/TURN, then the relayed ports); the
# SFU of voice channels.
EXPOSE 8080/tcp 3478/udp 3479/udp 49160-49359/udp
# `kitsulan healthcheck`: GET /readyz on loopback (KITSULAN_LISTEN, or KITSULAN_ADMIN_LISTEN
# when that is set); exit 0 when ready.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["/kitsulan", "healthcheck"]
ENTRYPOINT ["/kitsulan"]
CMD ["serve"]
