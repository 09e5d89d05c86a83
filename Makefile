# Brownout — common tasks. CI calls these targets only.
GO        ?= go
PKGS      := ./...
# Every module besides the root; go.work ties them together for local
# development, and each is vetted and tested on its own.
SUBMODS   := sdk sdk/openfeature bench/resilience deploy bench/peers
ADDR      ?= 127.0.0.1:8080
DATA      ?= ./data
DEMO_DATA ?= ./data-demo
# In workspace mode (go.work) the go command stamps the commit into a
# binary only when asked; ask whenever this is a git checkout, so that
# `controlplane version` and brownout_build_info name it.
BUILDVCS  := $(shell git rev-parse --git-dir >/dev/null 2>&1 && echo -buildvcs=true)

.PHONY: image all generate check-generated fmt fmt-check vet lint test test-pg test-short tidy build run bench fuzz soak clean

all: build

## generate: regenerate templ pages (templ is pinned as a Go tool in go.mod)
generate:
	$(GO) tool templ generate -path web

## check-generated: fail when generated files are stale or unformatted
check-generated:
	$(GO) tool templ generate -path web
	$(GO) tool templ fmt web
	git diff --exit-code -- web || (echo "generated templ files are stale: run make generate and commit" >&2; exit 1)

## fmt: format Go and templ sources
fmt:
	gofmt -w $$(git ls-files '*.go')
	$(GO) tool templ fmt web

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_templ.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	@for m in $(SUBMODS); do (cd $$m && $(GO) vet ./...) || exit 1; done

lint: fmt-check vet

## test-pg: only the tests that need PostgreSQL (127.0.0.1:5432 as postgres, or BROWNOUT_TEST_POSTGRES): the store's contract suite, webhook delivery by several replicas, the three-replica and the database-loss end-to-end tests
test-pg:
	$(GO) test -race -count=1 ./internal/storage/postgres/...
	$(GO) test -race -count=1 -run 'TestReplicas' ./internal/notify/
	$(GO) test -race -count=1 -run 'TestReplicas|TestDatabaseLoss' ./test/e2e/

## test: vet, gofmt check and the whole suite under the race detector
test: lint
	$(GO) test -race -count=1 $(PKGS)
	@for m in $(SUBMODS); do echo "== $$m"; (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done

test-short: lint
	$(GO) test -short -race -count=1 $(PKGS)
	@for m in $(SUBMODS); do echo "== $$m"; (cd $$m && $(GO) test -short -race -count=1 ./...) || exit 1; done

## tidy: go mod tidy in every module (go mod tidy ignores go.work; see docs/releasing.md)
tidy:
	scripts/tidy.sh

build:
	$(GO) build $(BUILDVCS) -o bin/controlplane ./cmd/controlplane
	$(GO) build $(BUILDVCS) -o bin/brownout-load ./cmd/brownout-load

## image: an OCI image (bin/image, plus bin/image.tar) without a container engine,
## validated with crane; runs as nonroot on a read-only root file system
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGE_TAG  ?= brownout/controlplane:$(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build $(BUILDVCS) -trimpath -o bin/linux-$(IMAGE_ARCH)/controlplane ./cmd/controlplane
	cd deploy && SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) $(GO) run ./image \
		--binary ../bin/linux-$(IMAGE_ARCH)/controlplane --arch $(IMAGE_ARCH) \
		--version "$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" --commit "$$(git rev-parse HEAD)" \
		--tag $(IMAGE_TAG) --layout ../bin/image --tarball ../bin/image.tar
	cd deploy && $(GO) tool crane validate --tarball ../bin/image.tar

## run: the controller with demo services (SQLite in ./data-demo, apart from a real ./data)
run:
	$(GO) run ./cmd/controlplane serve --addr $(ADDR) --data $(DEMO_DATA) --demo

## bench: short versions of every benchmark and load measurement
bench:
	@if [ -x scripts/bench.sh ]; then scripts/bench.sh; fi
	@if [ -x bench/resilience/compare.sh ]; then cd bench/resilience && ./compare.sh; fi

## fuzz: every fuzz target for a fixed time (FUZZTIME, default 20s each)
fuzz:
	scripts/fuzz.sh

## soak: 30 minutes, 1,000 subscribers, 1,000 reports/s (not in CI)
soak:
	scripts/soak.sh

clean:
	rm -rf bin
