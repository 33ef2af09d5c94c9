# Shared by the setup scripts: where the runtime is cached, and how PyPI
# wheels are downloaded for the platform UDR runs on.
VERSION=1.5.5
CACHE="${UDR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/udr}"
DEST="$CACHE/duckdb-$VERSION"
WHEELS="$CACHE/wheels-$VERSION"

# Binary wheels only, no dependencies, into a directory.
#   download_wheels DIR PACKAGE...
download_wheels() {
  local dir="$1"
  shift
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dir" "$@"
}
