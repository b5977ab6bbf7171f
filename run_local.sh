#!/usr/bin/env bash
# Sets up .venv if missing, builds the embedded demo if missing, then scores the sample images
# on DirectRunner into out/demo/. Extra arguments go to the job: ./run_local.sh --batch_size 8
set -euo pipefail
cd "$(dirname "$0")"
source ./scripts/setup_env.sh
python -m pipeline.demo --data_dir data
exec python -m pipeline.run \
  --input 'data/sample/*/*.png' \
  --output out/demo \
  --overwrite \
  "$@"
