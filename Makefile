# Tributary. `make run` and `make test` do all their own set-up on a fresh machine.
SHELL := /bin/bash
# Node 24 LTS where the machine's Node is older than 22 (scripts/ensure-node.sh fetches it from
# the npm registry into .tools/); every recipe, npx and the test runner use the node it names.
NODE_BIN := $(shell scripts/ensure-node.sh)
ifeq ($(NODE_BIN),)
$(error scripts/ensure-node.sh found no usable Node)
endif
export PATH := $(NODE_BIN):$(PATH)
# TAP output whatever the Node version (Node 22+ defaults to the spec reporter): CI counts the
# `# pass N` / `# fail N` lines.
NODE_TEST := node --import tsx --test --test-reporter=tap --test-concurrency=4 --test-timeout=300000
# Unit tests live beside the code; conformance, fault and regression suites under server/test.
TEST_FILES = $(shell find protocol/src server/src server/test client/src -name '*.test.ts' -not -path '*/node_modules/*' | sort)
RUN_ARGS ?= --local-root .data/objects --cache-dir .data/cache

.PHONY: install gen gen-check typecheck console packages pack browser-deps lint tidy build run test test-unit bench bench-peers soak

node_modules/.package-lock.json: package.json package-lock.json protocol/package.json server/package.json client/package.json
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
	  diff -r "$$tmp/before" gen && rm -rf "$$tmp" || \
	  { echo "gen/ is stale: run make gen and commit"; exit 1; }
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" npx buf lint

typecheck: install
	npx tsc --noEmit -p .
	npx tsc --noEmit -p server/console

# The web console's browser bundle (server/console/dist/, not committed), served at /console.
console: install
	node scripts/build-console.mjs

# Debian's Chromium for the console browser test (as root; CI machines start without it).
browser-deps:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "browser-deps: not root, not installing chromium (the browser test skips)"; fi; }

# Each package's dist/ (compiled JavaScript and declarations): the protocol first, since the
# client and the server compile against its build, as an installed package would.
packages: install console
	rm -rf protocol/dist client/dist server/dist
	npx tsc -p protocol/tsconfig.build.json
	npx tsc -p protocol/tsconfig.gen.json
	npx tsc -p client/tsconfig.build.json
	npx tsc -p server/tsconfig.build.json

# The three publishable tarballs in .packs/, which the pack-and-install test installs
# (server/test/packages/pack-install.test.ts).
pack: packages
	rm -rf .packs && mkdir .packs
	npm pack --ignore-scripts --silent --pack-destination .packs \
	  --workspace protocol --workspace client --workspace server >/dev/null
	@ls -l .packs

lint: install
	npx biome check .

tidy: install
	npx biome check --write .

build: gen-check typecheck console packages

run: build
	node scripts/tributary-dev.mjs serve $(RUN_ARGS)

test: browser-deps build lint pack
	TRIBUTARY_PACKS_DIR="$(CURDIR)/.packs" scripts/with-moto.sh $(NODE_TEST) $(TEST_FILES)

bench: build
	scripts/with-moto.sh sh -c 'node --import tsx bench/engine-bench.ts && node --import tsx bench/api-bench.ts && node --import tsx bench/catch-up-bench.ts && node --import tsx bench/catch-up-bench.ts --mode s3 --mib 128 --rounds 2 && node --import tsx bench/catch-up-bench.ts --mode s3 --cold --mib 64 --rounds 1 && node --import tsx bench/catch-up-bench.ts --mode s3 --cold --from-chunks --mib 128 --rounds 1 && node --import tsx bench/cold-read-bench.ts && node --import tsx bench/bottomless-bench.ts && node --import tsx bench/peers-bench.ts'

# The comparison with Redis Streams and NATS JetStream alone (issue 12; also the last part of
# `make bench`); TRIBUTARY_BENCH_SECONDS=0.5 makes it a smoke run of under a minute.
bench-peers: build
	scripts/with-moto.sh node --import tsx bench/peers-bench.ts

# Fault suites with more iterations, and the API fuzz targets with fresh seeds for
# TRIBUTARY_FUZZ_SECONDS (60) each.
soak: build
	scripts/with-moto.sh env TRIBUTARY_SOAK=1 $(NODE_TEST) server/test/fault/*.test.ts server/test/fuzz/*.test.ts
