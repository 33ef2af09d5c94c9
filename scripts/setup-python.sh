#!/usr/bin/env bash
# Provisions the virtual environment `make test` tests the Python package
# in: pyarrow, pandas, polars, DuckDB and pytest, pinned in
# python/requirements-test.txt. Cached outside the repository; idempotent:
# rebuilt only when the requirements change. Prints the environment's path.
set -euo pipefail
. "$(dirname "$0")/wheels.sh"

requirements="$(cd "$(dirname "$0")/.." && pwd)/python/requirements-test.txt"
stamp="$(sha256sum "$requirements" | cut -c1-16)"
VENV="$CACHE/python-venv-$stamp"

if [ ! -f "$VENV/.complete" ]; then
  echo "udr setup: installing the Python package's test dependencies into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  touch "$VENV/.complete"
fi
echo "$VENV"
