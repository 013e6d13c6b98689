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
FUZZTIME   ?= 3s

.PHONY: all build test lint vet fmt-check staticcheck unit fuzz generate bench demo clean

all: build

build:
	mkdir -p $(BIN)
	GOEXPERIMENT=$(SERVER_GOEXPERIMENT) $(GO) build -o $(BIN)/gameserver ./cmd/gameserver
	$(GO) build -o $(BIN)/sidecar ./cmd/sidecar
	$(GO) build -o $(BIN)/loadgen ./cmd/loadgen
	$(GO) build -o $(BIN)/stackwatch ./cmd/stackwatch

## test: every check CI runs: formatting, vet, staticcheck, race tests (incl.
## fuzz seed corpora and the real Prometheus/Alertmanager/Helm tests), a short
## fuzzing pass per fuzz target.
test: lint unit fuzz

lint: fmt-check vet staticcheck

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

generate:
	PATH="$$PATH:$(GOBIN)" $(GO) generate ./...

## bench: benchmarks with their peers (mtail, panicparse, legacy server) side
## by side; figures summarised with benchstat. docs/benchmarks.md records them.
bench:
	BENCHCOUNT=$(BENCHCOUNT) scripts/bench.sh

demo: build
	scripts/demo.sh

clean:
	rm -rf $(BIN) .demo bench.txt
