# gatewayd: `make run` starts the daemon with the embedded example config,
# `make test` runs the whole suite (what CI runs).
GO       ?= go
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" (no crasher) when a duration
# -fuzztime ends on a loaded machine (golang/go#75804, fixed in 1.27); a
# count has no deadline to race. 20000 runs are 1-7 s for most targets
# here, about 40 s for FuzzJournalBytes.
FUZZTIME ?= 20000x

.PHONY: run build test deps lint unit fuzz bench

run:
	$(GO) run ./cmd/gatewayd serve

build:
	$(GO) build -o bin/gatewayd ./cmd/gatewayd

test: deps lint unit fuzz

deps:
	./scripts/test-deps.sh

# staticcheck is pinned and fetched through the module proxy; it is not a
# dependency of the daemon, so it stays out of go.mod.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy and commit the result"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# Short coverage-guided runs on top of the committed seed corpora (which
# `unit` already replays).
fuzz:
	@set -e; for spec in $$(./scripts/fuzz-targets.sh); do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "fuzz $$fn ($$pkg), $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./authn/ ./store/
