# UDR — the two commands first.
SWIFT ?= swift
SETUP_STAMP := $(or $(UDR_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/udr)/duckdb-1.5.5/.complete

.PHONY: run test setup build bench stress clean-demo

## Build, set up, and show UDR's main job on a demo repository.
run: setup build
	.build/debug/udr demo --path demo-repo

## Set up, build, and run the whole test suite.
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## Install the DuckDB runtime and extensions (cached outside the repository).
setup: $(SETUP_STAMP)

$(SETUP_STAMP):
	scripts/setup-duckdb.sh

build:
	$(SWIFT) build --product udr

## Benchmarks against raw DuckDB (release build).
bench: setup
	scripts/setup-bench.sh
	$(SWIFT) build -c release --product udr-bench
	$(SWIFT) build -c release --product udr-harness
	.build/release/udr-bench $(BENCH_ARGS)

## Crash safety at length: 2,000 writers killed at random instants (STRESS_KILLS to change).
stress: setup
	$(SWIFT) build --product udr-harness
	.build/debug/udr-harness crash --kills $(or $(STRESS_KILLS),2000) --parallel 2

clean-demo:
	rm -rf demo-repo
