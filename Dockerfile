# The operator image: the release binary on a minimal non-root base.
#
#   docker build -t shared-storage-operator:0.1.0 .
#
# Build stage: the workspace's toolchain and locked dependencies.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p shared-storage --bin shared-storage-operator \
 && strip target/release/shared-storage-operator

# Run stage: glibc and CA certificates only, no shell, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/shared-storage-operator /usr/local/bin/shared-storage-operator
USER 65532:65532
EXPOSE 8080 6099
ENTRYPOINT ["/usr/local/bin/shared-storage-operator"]
CMD ["run"]
