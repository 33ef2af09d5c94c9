#!/usr/bin/env bash
# Builds the Python wheel with the Swift library linked against the Swift
# standard library statically, installs it into a fresh virtual environment
# and runs a round trip there with no Swift toolchain on the library path.
#   scripts/test-wheel.sh LIBRARY   (a libudr_python.so built with -static-stdlib)
set -euo pipefail
. "$(dirname "$0")/wheels.sh"
library="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ldd "$library" | grep -q 'libswift'; then
  echo "test-wheel: $library needs the Swift runtime:" >&2
  ldd "$library" | grep libswift >&2
  exit 1
fi
cp -r "$root/python" "$work/src"
rm -rf "$work/src/build" "$work/src"/*.egg-info
strip -s -o "$work/src/udr/libudr_python.so" "$library"
python3 -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/dist" "$work/src" >&2
wheel="$(ls "$work"/dist/udr-*.whl)"
echo "test-wheel: built $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" pandas==3.1.1 >&2
cd "$work"
env -i HOME="$HOME" PATH=/usr/bin:/bin UDR_CACHE_DIR="$CACHE" "$work/venv/bin/python" - <<'PY'
import os, tempfile
import pandas as pd
import udr
assert not any("swift" in p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p)
with tempfile.TemporaryDirectory() as d:
    repo = udr.Repository.init(d + "/repo")
    df = pd.DataFrame({"k": range(100), "v": [i * 0.5 for i in range(100)]})
    repo.write("t", df, key=["k"])
    assert repo.query("SELECT * FROM t ORDER BY k").to_pandas().equals(df)
    print("test-wheel: the installed wheel wrote and read a table, with no Swift toolchain on the library path")
PY
