# UDR — the two commands first.
SWIFT ?= swift
SETUP_STAMP := $(or $(UDR_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/udr)/duckdb-1.5.5/.complete

.PHONY: run test test-peers test-python test-wheel python setup build bench bench-python bench-peers stress clean-demo

## Build, set up, and show UDR's main job on a demo repository.
run: setup build
	.build/debug/udr demo --path demo-repo

## Set up, build, and run the whole test suite.
test: setup
	$(SWIFT) build --build-tests
	UDR_S3_VENV=$$(scripts/setup-s3.sh) $(SWIFT) test --skip-build
	$(MAKE) test-python
	$(MAKE) test-wheel
	$(MAKE) test-peers

## The Python package (python/udr) installed into a virtual environment of
## its own, over the Swift library the debug build makes, and its pytest suite.
PYTHON_VENV = venv=$$(scripts/setup-python.sh) && "$$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./python
test-python: setup
	$(SWIFT) build --product udr_python
	$(PYTHON_VENV) && UDR_S3_VENV=$$(scripts/setup-s3.sh) UDR_LIBRARY=$(CURDIR)/.build/debug/libudr_python.so "$$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests

## The library the Python package ships: release, the Swift standard
## library linked in (it loads where Swift is not installed).
PYTHON_LIBRARY := .build-python/release/libudr_python.so
$(PYTHON_LIBRARY): FORCE
	$(SWIFT) build -c release --product udr_python --scratch-path .build-python -Xswiftc -static-stdlib

## The wheel, installed into a fresh virtual environment, with no Swift
## toolchain on the library path.
test-wheel: setup $(PYTHON_LIBRARY)
	scripts/test-wheel.sh $(PYTHON_LIBRARY)

## Build the library and install the package with it into the current
## Python (`make python PYTHON=…` for another interpreter).
python: setup $(PYTHON_LIBRARY)
	strip -s -o python/udr/libudr_python.so $(PYTHON_LIBRARY)
	$(or $(PYTHON),python3) -m pip install ./python

FORCE:

## The peer benchmark's harness at a tiny scale: every system must give the
## same answers every night (needs the debug build `test` makes).
test-peers: setup
	venv=$$(scripts/setup-peers.sh) && "$$venv/bin/python" bench/test_peers.py --udr-driver .build/debug/udr-bench \
	  --weed "$$(scripts/setup-s3.sh)/bin/weed"

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
	$(if $(BENCH_ARGS),,$(MAKE) bench-python)

## The Python package against DuckDB and DuckLake in one Python process,
## over the library the wheel ships (release).
bench-python: setup $(PYTHON_LIBRARY)
	scripts/setup-bench.sh
	$(PYTHON_VENV) && UDR_LIBRARY=$(CURDIR)/$(PYTHON_LIBRARY) "$$venv/bin/python" bench/python_bench.py \
	  --extensions "$$(. scripts/wheels.sh && echo "$$DEST")/extensions" $(PYBENCH_ARGS)

## UDR against DuckLake, Delta, Iceberg and Parquet copies on the nightly
## refresh; results in bench/results/. SCALE=1 is the full parcel pipeline.
bench-peers: setup
	$(SWIFT) build -c release --product udr-bench
	venv=$$(scripts/setup-peers.sh) && "$$venv/bin/python" bench/peers.py --udr-driver .build/release/udr-bench \
	  --weed "$$(scripts/setup-s3.sh)/bin/weed" \
	  --scale $(or $(SCALE),0.1) $(PEERS_ARGS)

## Crash safety at length: 2,000 writers killed at random instants (STRESS_KILLS to change).
stress: setup
	$(SWIFT) build --product udr-harness
	.build/debug/udr-harness crash --kills $(or $(STRESS_KILLS),2000) --parallel 2

clean-demo:
	rm -rf demo-repo
