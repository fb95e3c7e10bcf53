#!/usr/bin/env bash
# Create .venv in the checkout and install facesearch with its test, dlib, server, postgres and milvus
# extras into it (the last two: the storage backends' tests start real engines).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,dlib,server,postgres,milvus]'
