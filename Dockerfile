# syntax=docker/dockerfile:1
# One image for the three binaries: nadipam-server (webhook + controller), nadipam-node-agent (installs the
# plugin on each node) and nadipam (the CNI IPAM plugin the agent copies to the host). Static musl binaries on
# distroless/static, non-root by default; the Helm chart runs the node agent as root (no capabilities) only
# because it writes root-owned host directories.
#
#   docker build -t <registry>/nadipam:0.1.0 .
ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-alpine AS build
# ring's C and assembly parts need a C compiler and the musl headers.
RUN apk add --no-cache gcc musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin nadipam-server --bin nadipam-node-agent --bin nadipam \
 && mkdir -p /out \
 && cp target/release/nadipam-server target/release/nadipam-node-agent target/release/nadipam /out/

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nadipam-server"]
