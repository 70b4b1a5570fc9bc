# berth's two entry points are `make demo` (the main job) and `make test` (every test; the root-only
# ones too when run as root). Both install what they need on a fresh Debian machine.

GO        ?= go
TAGS      := seccomp,osusergo,netgo,runc_nocriu
BIN       := bin/berth
# berth-shim runs libcontainer's side of a container: start, init, exec, healthcheck probes and
# teardown. berth-monitor (static, no cgo, ~2 MB) is each container's long-lived monitor, and
# also the --init reaper inside containers; berth-seccomp (C, static, ~0.8 MB) loads the
# precompiled seccomp program in front of every container process.
SHIM      := bin/berth-shim
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
IS_ROOT   := $(shell [ "$$(id -u)" = 0 ] && echo yes)
# Debian packages: cgo+seccomp for the runtime, busybox for test images, iproute2/nftables to
# inspect what the tests create, curl for the demo.
APT_PKGS  := libseccomp-dev pkg-config busybox-static iproute2 nftables curl skopeo umoci docker-registry

export CGO_ENABLED := 1

.PHONY: all build deps test test-unit test-root demo demo-down bench clean docs

all: build

deps:
ifeq ($(IS_ROOT),yes)
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
else
	@for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo "note: $$p is not installed; run 'make deps' as root to install it"; done
endif

build: deps
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth
	$(GO) build -tags $(TAGS) -ldflags '-s -w -extldflags=-static' -o $(SHIM) ./runtime/shim
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/berth-monitor ./runtime/monitor/berth-monitor
	$(CC) -static -O2 -Wall -Wextra -Werror -o bin/berth-seccomp runtime/loader/berth-seccomp.c

test-unit:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

# Root-only tests: namespaces, mounts, bridges. One package at a time, so that tests which
# create host-wide objects (bridges, nft tables, cgroups) never race each other.
test-root:
ifeq ($(IS_ROOT),yes)
	$(GO) test -count=1 -p 1 -timeout 40m -tags integration,$(TAGS) ./...
else
	@echo "skipping root-only tests: not root"
endif

test: deps test-unit test-root

demo: build
	./examples/demo.sh $(BIN)

demo-down:
	$(BIN) -f examples/hello/compose.yaml down -v

docs:
	$(GO) run ./cmd/berth __gendocs docs/cli

clean:
	rm -rf bin
