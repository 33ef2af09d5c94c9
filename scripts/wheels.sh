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

# A virtual environment with a requirements file installed, cached outside
# the repository and rebuilt only when the file changes; prints its path.
#   venv_for NAME REQUIREMENTS
venv_for() {
  local name="$1" requirements="$2" stamp venv
  stamp="$(sha256sum "$requirements" | cut -c1-16)"
  venv="$CACHE/$name-$stamp"
  if [ ! -f "$venv/.complete" ]; then
    echo "udr setup: installing $requirements into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    touch "$venv/.complete"
  fi
  echo "$venv"
}
