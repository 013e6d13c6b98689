# syntax=docker/dockerfile:1.7
#
# One Dockerfile, one image per binary, picked with --target:
#
#   docker build --target gameserver -t ghcr.io/stackwatch/gameserver:0.1.0 .
#   docker build --target sidecar    -t ghcr.io/stackwatch/sidecar:0.1.0 .
#   docker build --target loadgen    -t ghcr.io/stackwatch/loadgen:0.1.0 .
#   docker build --target stackwatch -t ghcr.io/stackwatch/stackwatch:0.1.0 .
#
# The images are static binaries on distroless/static as uid 65532 (nonroot),
# matching the Helm chart's securityContext (runAsNonRoot, read-only root
# filesystem, no capabilities). Not built in CI: Docker does not run there.

ARG GO_VERSION=1.26.8
# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot (65532), no shell.
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

# ---- build base: sources and modules, shared by the per-binary stages below
# so `--target gameserver` compiles the game server only.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# BuildKit fills these in for the platform being built (docker build --platform).
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ENV GOOS=$TARGETOS GOARCH=$TARGETARCH

FROM build AS build-gameserver
# Build stamp for --version and gameserver_build_info{version}, e.g. 0.1.0.
ARG VERSION=dev
# The runtime's goroutine-leak profile (/debug/pprof/goroutineleak) exists only
# in binaries built with this experiment; the sidecar uses it when served.
ARG GAMESERVER_GOEXPERIMENT=goroutineleakprofile
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOEXPERIMENT=$GAMESERVER_GOEXPERIMENT \
    go build -ldflags "-s -w -X github.com/prometheus/common/version.Version=$VERSION" -o /out/gameserver ./cmd/gameserver

FROM build AS build-sidecar
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w" -o /out/sidecar ./cmd/sidecar

FROM build AS build-loadgen
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w" -o /out/loadgen ./cmd/loadgen

FROM build AS build-stackwatch
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w" -o /out/stackwatch ./cmd/stackwatch

# ---- runtime images. -s -w drops the symbol table and DWARF, not pclntab:
# stack traces keep function names and file:line, so the sidecar's crash
# grouping and pprof's in-process symbolization are unaffected.
FROM ${RUNTIME_IMAGE} AS runtime
USER 65532:65532
WORKDIR /app

FROM runtime AS gameserver
COPY --from=build-gameserver /out/gameserver /usr/local/bin/gameserver
# 7000: game traffic. 7060: admin (/metrics, /healthz, /readyz), on every
# interface so Prometheus and probes reach it. /debug/pprof stays on
# 127.0.0.1:7061 (goroutine dumps carry player data), for the sidecar in the
# same pod. Beyond loopback the server refuses the built-in development ticket
# secret: mount the real one at /run/secrets/ticket-secret.
EXPOSE 7000 7060
ENTRYPOINT ["/usr/local/bin/gameserver"]
CMD ["-game=wilddig", "-listen=:7000", "-secret-file=/run/secrets/ticket-secret", \
     "-admin=:7060", "-pprof=127.0.0.1:7061", "-log-dir=/app/log", "-data-dir=/data"]

FROM runtime AS loadgen
COPY --from=build-loadgen /out/loadgen /usr/local/bin/loadgen
ENTRYPOINT ["/usr/local/bin/loadgen"]

# The developer and operator toolbox: analyze, dumps, report.
FROM runtime AS stackwatch
COPY --from=build-stackwatch /out/stackwatch /usr/local/bin/stackwatch
ENTRYPOINT ["/usr/local/bin/stackwatch"]

# The sidecar is last so a plain `docker build .` gives the sidecar image.
FROM runtime AS sidecar
COPY --from=build-sidecar /out/sidecar /usr/local/bin/sidecar
# 39190: /metrics, /healthz, /readyz and the /api/v1 API. Beyond loopback the
# API needs a bearer token: mount it at /run/secrets/sidecar-token. -service
# names the game server beside it; -target is its loopback pprof listener.
EXPOSE 39190
ENTRYPOINT ["/usr/local/bin/sidecar"]
CMD ["-service=wilddiggr", "-log-dir=/app/log", "-data-dir=/sidecar-data", "-listen=:39190", \
     "-token-file=/run/secrets/sidecar-token", "-target=http://127.0.0.1:7061"]
