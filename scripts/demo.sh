#!/usr/bin/env bash
# Set up, enroll the sample gallery and identify a photo, in the checkout's own index/ and db/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA=${FACESEARCH_DATA:-../shared/data}
.venv/bin/facesearch models
.venv/bin/facesearch enroll "$DATA/fixtures/known"
.venv/bin/facesearch list
mkdir -p out
.venv/bin/facesearch query "$DATA/fixtures/queries/obama_and_biden.jpg" --annotate out/obama_and_biden.jpg
echo "Annotated photo written to out/obama_and_biden.jpg"
