# kadtracker developer targets. `make test` is what CI runs (see .ci/run).

GO       ?= go
BIN      := bin/kadtracker
DATA_DIR ?= $(HOME)/.kadtracker
ARGS     ?=
FUZZTIME ?= 10s

.PHONY: all build run test bench fuzz fmt vet generate clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/kadtracker

# make run ARGS='--mdns --bootstrap /ip4/.../p2p/...'
run: build
	./$(BIN) run --data-dir '$(DATA_DIR)' $(ARGS)

# End-to-end tests are ordinary Go tests that build the binary themselves,
# so ./... covers them.
test: vet
	$(GO) test -race -count=1 -timeout 30m ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# A short pass over every fuzz target of every package, FUZZTIME each.
# Crashers land in the package's testdata/fuzz/ and fail the run.
fuzz:
	@set -e; \
	for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
		fns=$$($(GO) test -list '^Fuzz' $$pkg) || exit 1; \
		for fn in $$(printf '%s\n' "$$fns" | grep '^Fuzz'); do \
			echo "== $$pkg $$fn"; \
			$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

generate:
	$(GO) generate ./...

clean:
	rm -rf bin
