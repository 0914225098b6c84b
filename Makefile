# vigil's build, run, test, bench and lint targets.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/vigilhq/vigil/pipeline.Version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: build run test bench lint tools clean

## build: the static vigil binary in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vigil ./cmd/vigil

## run: vigil on its embedded default config (ships to $$LOKI_URL, or prints)
run:
	$(GO) run ./cmd/vigil

## tools: the real servers the integration tests talk to (VictoriaLogs)
tools: $(BIN)/victoria-logs

$(BIN)/victoria-logs: tools/victorialogs/go.mod tools/victorialogs/go.sum
	cd tools/victorialogs && $(GO) build -o ../../$(BIN)/victoria-logs github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs

## test: the whole test suite, race detector on (integration tests use bin/)
test: build tools
	CGO_ENABLED=1 $(GO) test -race -timeout 40m ./...

## bench: component benchmarks, then the end-to-end harness (see bench/README.md)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench/cmd/harness -scenario all

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
