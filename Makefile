# stackwatch — see README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
BIN       := $(CURDIR)/bin
GOBIN     := $(shell $(GO) env GOPATH)/bin
# The game server is built with the runtime's goroutine leak profile, so the
# sidecar can scrape /debug/pprof/goroutineleak (Go 1.26 experiment).
SERVER_GOEXPERIMENT := goroutineleakprofile
BENCHCOUNT ?= 5
# Build stamp for --version and <binary>_build_info (prometheus/common/version).
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
VERSIONPKG := github.com/prometheus/common/version
LDFLAGS    := -X $(VERSIONPKG).Version=$(VERSION) \
	-X $(VERSIONPKG).Revision=$(shell git rev-parse HEAD 2>/dev/null) \
	-X $(VERSIONPKG).Branch=$(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
FUZZTIME   ?= 3s

.PHONY: all build test lint vet fmt-check staticcheck unit fuzz generate bench demo clean

all: build

build:
	mkdir -p $(BIN)
	GOEXPERIMENT=$(SERVER_GOEXPERIMENT) $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/gameserver ./cmd/gameserver
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/sidecar ./cmd/sidecar
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/loadgen ./cmd/loadgen
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/stackwatch ./cmd/stackwatch

## test: every check CI runs: formatting, vet, staticcheck, race tests (incl.
## fuzz seed corpora and the real Prometheus/Alertmanager/Helm tests), a short
## fuzzing pass per fuzz target.
test: lint unit fuzz

lint: fmt-check vet staticcheck
	GOOS=windows $(GO) build -o /dev/null ./cmd/sidecar && GOOS=darwin $(GO) build -o /dev/null ./cmd/sidecar

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	@if command -v staticcheck >/dev/null || [ -x $(GOBIN)/staticcheck ]; then \
		PATH="$$PATH:$(GOBIN)" staticcheck ./...; \
	elif [ -n "$${CI:-}" ]; then echo "staticcheck missing (run .ci/run)"; exit 1; \
	else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; fi

unit:
	PATH="$$PATH:$(GOBIN)" $(GO) test -race -timeout 25m ./...

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

## generate: alerts/stackwatch.rules.yml and the demo's alerts/demo/, the
## dashboards and the chart's copies of both; tests fail on drift.
generate:
	PATH="$$PATH:$(GOBIN)" $(GO) generate ./...

## bench: benchmarks with their peers (mtail, panicparse, legacy server) side
## by side; figures summarised with benchstat. docs/benchmarks.md records them.
bench:
	BENCHCOUNT=$(BENCHCOUNT) scripts/bench.sh

## demo: the incident on localhost until Ctrl-C; HighNilSessionRate pages
## within three minutes when prometheus and prometheus-alertmanager are installed.
demo: build
	scripts/demo.sh

clean:
	rm -rf $(BIN) .demo bench.txt
