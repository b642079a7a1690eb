# Tributary. `make run` and `make test` do all their own set-up on a fresh machine.
SHELL := /bin/bash
NODE_TEST := node --import tsx --test --test-concurrency=4 --test-timeout=300000
# Unit tests live beside the code; conformance, fault and regression suites under server/test.
TEST_FILES = $(shell find server/src server/test client/src -name '*.test.ts' -not -path '*/node_modules/*' | sort)
RUN_ARGS ?= --local-root .data/objects --cache-dir .data/cache

.PHONY: install gen gen-check typecheck lint tidy build run test test-unit bench soak

node_modules/.package-lock.json: package.json package-lock.json server/package.json client/package.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.package-lock.json

gen: install
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" npx buf lint
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" npx buf generate

# gen/ is committed; this fails when it is not what `buf generate` makes of proto/.
gen-check: install
	@tmp=$$(mktemp -d) && cp -r gen "$$tmp/before" && \
	  PATH="$(CURDIR)/node_modules/.bin:$$PATH" npx buf generate && \
	  diff -r "$$tmp/before" gen && rm -rf "$$tmp" || { echo "gen/ is stale: run make gen and commit"; exit 1; }
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" npx buf lint

typecheck: install
	npx tsc --noEmit -p .

lint: install
	npx biome check .

tidy: install
	npx biome check --write .

build: gen-check typecheck

run: build
	node --import tsx server/src/main.ts serve $(RUN_ARGS)

test: build lint
	scripts/with-moto.sh $(NODE_TEST) $(TEST_FILES)

bench: build
	scripts/with-moto.sh node --import tsx bench/engine-bench.ts

soak: build
	scripts/with-moto.sh env TRIBUTARY_SOAK=1 $(NODE_TEST) server/test/fault/*.test.ts
