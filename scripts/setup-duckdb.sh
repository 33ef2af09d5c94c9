#!/usr/bin/env bash
# Provisions the DuckDB runtime UDR loads at run time: libduckdb from the
# official PyPI wheel, a stub for the CPython symbols that build references,
# and the spatial/httpfs extensions. Cached outside the repository;
# idempotent; offline once cached. See DESIGN.md § DuckDB.
set -euo pipefail
. "$(dirname "$0")/wheels.sh"

EXTENSIONS=(spatial httpfs)

if [ -f "$DEST/.complete" ]; then
  exit 0
fi

echo "udr setup: provisioning DuckDB $VERSION into $DEST"
mkdir -p "$WHEELS"
packages=("duckdb==$VERSION")
for e in "${EXTENSIONS[@]}"; do packages+=("duckdb-extension-$e==$VERSION"); done

have_all=1
ls "$WHEELS"/duckdb-"$VERSION"-*.whl >/dev/null 2>&1 || have_all=0
for e in "${EXTENSIONS[@]}"; do
  ls "$WHEELS"/duckdb_extension_"$e"-"$VERSION"-*.whl >/dev/null 2>&1 || have_all=0
done
if [ "$have_all" = 0 ]; then
  download_wheels "$WHEELS" "${packages[@]}"
fi

work="$(mktemp -d "$CACHE/setup.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for whl in "$WHEELS"/*.whl; do
  python3 -m zipfile -e "$whl" "$work/unpacked"
done

mkdir -p "$work/out/extensions"
lib=$(find "$work/unpacked" -maxdepth 1 -name '_duckdb.cpython-*.so' | head -n 1)
[ -n "$lib" ] || { echo "udr setup: the duckdb wheel has no _duckdb module" >&2; exit 1; }
cp "$lib" "$work/out/libduckdb.so"

# The wheel's module references CPython symbols that nothing in the C API
# calls. Define each one (as an inert data symbol) in a stub library that is
# loaded with RTLD_GLOBAL before DuckDB.
nm -D --undefined-only "$work/out/libduckdb.so" | awk '{print $NF}' | sed 's/@.*//' \
  | grep -E '^_?Py' | sort -u | awk '{print "char " $1 "[256];"}' > "$work/pystub.c"
cc -shared -fPIC -o "$work/out/libudr_pystub.so" "$work/pystub.c"

for e in "${EXTENSIONS[@]}"; do
  f=$(find "$work/unpacked" -path "*/extensions/v$VERSION/$e.duckdb_extension" | head -n 1)
  [ -n "$f" ] || { echo "udr setup: extension $e missing from its wheel" >&2; exit 1; }
  cp "$f" "$work/out/extensions/"
done
echo "$VERSION" > "$work/out/VERSION"
touch "$work/out/.complete"

rm -rf "$DEST"
mv "$work/out" "$DEST"
echo "udr setup: DuckDB $VERSION ready"
