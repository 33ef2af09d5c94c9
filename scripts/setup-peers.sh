#!/usr/bin/env bash
# Provisions the Python side of `make bench-peers`: a virtual environment
# with DuckDB (and its DuckLake and SQLite extensions from their wheels),
# delta-rs, pyiceberg, pyarrow and matplotlib, pinned in
# bench/requirements.txt. Cached outside the repository; idempotent: it is
# rebuilt only when the requirements change. Prints the environment's path.
set -euo pipefail
. "$(dirname "$0")/wheels.sh"

requirements="$(cd "$(dirname "$0")/.." && pwd)/bench/requirements.txt"
stamp="$(sha256sum "$requirements" | cut -c1-16)"
VENV="$CACHE/bench-venv-$stamp"

if [ ! -f "$VENV/.complete" ]; then
  echo "udr setup: installing the peer benchmark's Python packages into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  touch "$VENV/.complete"
fi
echo "$VENV"
