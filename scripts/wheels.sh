# Shared by the setup scripts: download PyPI wheels for the platform UDR
# runs on (binary only, no dependencies) into a directory.
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
