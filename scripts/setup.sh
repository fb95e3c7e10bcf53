#!/usr/bin/env bash
# Create .venv in the checkout and install facesearch with its test, dlib, server, postgres, milvus and ray
# extras into it (postgres and milvus: the storage backends' tests start real engines; ray: `enroll --ray`'s
# tests start a local Ray cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,dlib,server,postgres,milvus,ray]'
