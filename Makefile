# kadtracker developer targets. The README's two commands are `make run`
# and `make test`; both work on a fresh Debian machine with Go.

GO       ?= go
BIN      := bin/kadtracker
DATA_DIR ?= $(HOME)/.kadtracker
ARGS     ?=
FUZZTIME ?= 10s
# make install puts the binary in $(PREFIX)/bin: /usr/local/bin for root,
# ~/.local/bin (on the PATH of most desktop sessions) for anyone else.
PREFIX   ?= $(if $(filter 0,$(shell id -u)),/usr/local,$(HOME)/.local)

# make install-units installs the systemd unit that fits who runs it: the
# system unit (DynamicUser, StateDirectory, sandboxed) for root, the user
# unit for anyone else. UNIT_SCOPE=system or user chooses.
UNIT_SCOPE         ?= $(if $(filter 0,$(shell id -u)),system,user)
SYSTEMD_SYSTEM_DIR ?= /etc/systemd/system
SYSTEMD_USER_DIR   ?= $(HOME)/.config/systemd/user
UNITS              := cmd/kadtracker/dist/systemd

# Stamp the module version and VCS revision into the binary (`kadtracker
# version`), whatever GOFLAGS says.
BUILDFLAGS := -buildvcs=auto

# Tests never reach the public Internet: the daemon refuses the public
# rendezvous and bootstrap lists while this is set.
export KADTRACKER_NO_PUBLIC_NETWORK := 1

.PHONY: all build install install-units install-launchd image release run deps test tidy-check bench fuzz fmt vet generate clean

all: build

build:
	$(GO) build $(BUILDFLAGS) -o $(BIN) ./cmd/kadtracker

install: build
	install -d '$(DESTDIR)$(PREFIX)/bin'
	install -m 0755 $(BIN) '$(DESTDIR)$(PREFIX)/bin/kadtracker'
	@case ":$$PATH:" in *':$(PREFIX)/bin:'*) ;; *) echo "note: $(PREFIX)/bin is not on your PATH; add it to use kadtracker by name";; esac

# The unit runs the binary `make install` put in $(PREFIX)/bin.
install-units:
ifeq ($(UNIT_SCOPE),system)
	install -d '$(DESTDIR)$(SYSTEMD_SYSTEM_DIR)'
	sed 's|/usr/local/bin/kadtracker|$(PREFIX)/bin/kadtracker|' $(UNITS)/kadtracker.service > '$(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/kadtracker.service'
	@echo "installed $(DESTDIR)$(SYSTEMD_SYSTEM_DIR)/kadtracker.service; start it with:"
	@echo "  systemctl daemon-reload && systemctl enable --now kadtracker"
else ifeq ($(UNIT_SCOPE),user)
	install -d '$(DESTDIR)$(SYSTEMD_USER_DIR)'
	sed 's|%h/.local/bin/kadtracker|$(PREFIX)/bin/kadtracker|' $(UNITS)/user/kadtracker.service > '$(DESTDIR)$(SYSTEMD_USER_DIR)/kadtracker.service'
	@echo "installed $(DESTDIR)$(SYSTEMD_USER_DIR)/kadtracker.service; start it with:"
	@echo "  systemctl --user daemon-reload && systemctl --user enable --now kadtracker"
else
	$(error UNIT_SCOPE must be system or user, not $(UNIT_SCOPE))
endif

# make install-launchd installs the launchd user agent (macOS): the
# binary make install put in $(PREFIX)/bin, the data directory in
# ~/Library/Application Support/kadtracker, the log in ~/Library/Logs.
LAUNCH_AGENTS ?= $(HOME)/Library/LaunchAgents
LAUNCHD_PLIST := cmd/kadtracker/dist/launchd/io.github.kadtracker.plist
install-launchd:
	install -d '$(DESTDIR)$(LAUNCH_AGENTS)' '$(DESTDIR)$(HOME)/Library/Logs'
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@HOME@|$(HOME)|g' $(LAUNCHD_PLIST) > '$(DESTDIR)$(LAUNCH_AGENTS)/io.github.kadtracker.plist'
	@echo "installed $(DESTDIR)$(LAUNCH_AGENTS)/io.github.kadtracker.plist; start it with:"
	@echo "  launchctl bootstrap gui/$$(id -u) '$(LAUNCH_AGENTS)/io.github.kadtracker.plist'"

# A container image with no base image: the static binary on scratch
# (cmd/kadtracker/dist/container/Containerfile). podman from Debian, or
# CONTAINER=buildah (bud) or docker.
CONTAINER ?= podman
IMAGE     ?= localhost/kadtracker
image:
	rm -rf bin/image && mkdir -p bin/image/data
	CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -trimpath -o bin/image/kadtracker ./cmd/kadtracker
	$(CONTAINER) $(if $(filter buildah,$(CONTAINER)),bud,build) -t $(IMAGE) -f cmd/kadtracker/dist/container/Containerfile bin/image

# Static binaries for each platform in bin/release/. The windows ones do
# not build yet: package netsim uses Unix process groups (README, Windows).
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
release:
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
		echo "== $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build $(BUILDFLAGS) -trimpath \
			-o bin/release/kadtracker-$$os-$$arch$$ext ./cmd/kadtracker; \
	done

# make run ARGS='--bootstrap /ip4/.../p2p/...'
run: build
	KADTRACKER_NO_PUBLIC_NETWORK= ./$(BIN) run --data-dir '$(DATA_DIR)' $(ARGS)

# What the tests need: Debian packages (BitTorrent clients, namespaces,
# miniupnpd, chromium) and the Go modules. Does nothing when all is there.
deps:
	bash .ci/deps

# End-to-end tests are ordinary Go tests that build the binary themselves,
# so ./... covers them.
test: deps tidy-check vet
	$(GO) test -race -count=1 -timeout 30m ./...

# go.mod and go.sum must be what `go mod tidy` makes of them.
tidy-check:
	@tmp=$$(mktemp -d) && cp go.mod go.sum "$$tmp"/ && $(GO) mod tidy && \
	if cmp -s go.mod "$$tmp"/go.mod && cmp -s go.sum "$$tmp"/go.sum; then rm -rf "$$tmp"; else \
		echo "go mod tidy changes go.mod/go.sum: commit its result" >&2; \
		diff -u "$$tmp"/go.mod go.mod >&2; cp "$$tmp"/go.mod "$$tmp"/go.sum .; rm -rf "$$tmp"; exit 1; fi

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
