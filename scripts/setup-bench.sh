#!/usr/bin/env bash
# Provisions what `make bench` compares UDR with: the DuckLake extension and
# the SQLite extension its catalog needs, from the official PyPI wheels of
# the DuckDB version UDR uses. Cached next to the runtime; idempotent.
set -euo pipefail
. "$(dirname "$0")/wheels.sh"

EXTENSIONS=(ducklake sqlite_scanner)

[ -f "$DEST/.complete" ] || "$(dirname "$0")/setup-duckdb.sh"
[ -f "$DEST/.bench-complete" ] && exit 0

echo "udr setup: provisioning the DuckLake and SQLite extensions $VERSION into $DEST"
mkdir -p "$WHEELS"
packages=()
for e in "${EXTENSIONS[@]}"; do
  ls "$WHEELS"/duckdb_extension_"$e"-"$VERSION"-*.whl >/dev/null 2>&1 || packages+=("duckdb-extension-$e==$VERSION")
done
if [ "${#packages[@]}" -gt 0 ]; then
  download_wheels "$WHEELS" "${packages[@]}"
fi
work="$(mktemp -d "$CACHE/setup.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for e in "${EXTENSIONS[@]}"; do
  python3 -m zipfile -e "$(ls "$WHEELS"/duckdb_extension_"$e"-"$VERSION"-*.whl | head -n 1)" "$work/$e"
  f=$(find "$work/$e" -path "*/extensions/v$VERSION/$e.duckdb_extension" | head -n 1)
  [ -n "$f" ] || { echo "udr setup: extension $e missing from its wheel" >&2; exit 1; }
  cp "$f" "$DEST/extensions/$e.duckdb_extension.tmp"
  mv "$DEST/extensions/$e.duckdb_extension.tmp" "$DEST/extensions/$e.duckdb_extension"
done
touch "$DEST/.bench-complete"
