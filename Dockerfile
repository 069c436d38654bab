# syntax=docker/dockerfile:1
# The ramsecrets image: one binary on a distroless base, no shell, uid 65532.
# It runs every mode: init, run, exec, proxy, inject, check (the command is the first arg).
#
#   docker build -t ramsecrets:0.1.0 .
#   docker run --rm ramsecrets:0.1.0 --version
#
# The build stage and the runtime share Debian 12's glibc; the binary needs only libc,
# libm and libgcc_s, which the distroless "cc" image carries.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs hot-symbols.txt ./
COPY src ./src
# Cache mounts keep the registry and the target directory between builds; the binary is
# copied out because a cache mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked \
 && install -D -m 0555 target/dist/ramsecrets /out/ramsecrets

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ramsecrets /usr/local/bin/ramsecrets
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ramsecrets"]
CMD ["--help"]
