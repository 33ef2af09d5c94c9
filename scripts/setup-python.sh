#!/usr/bin/env bash
# Provisions the virtual environment `make test` tests the Python package
# in: pyarrow, pandas, polars, DuckDB and pytest, pinned in
# python/requirements-test.txt. Cached outside the repository; idempotent:
# rebuilt only when the requirements change. Prints the environment's path.
set -euo pipefail
. "$(dirname "$0")/wheels.sh"
venv_for python-venv "$(cd "$(dirname "$0")/.." && pwd)/python/requirements-test.txt"
