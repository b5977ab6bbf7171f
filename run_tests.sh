#!/usr/bin/env bash
# Same set-up as run_local.sh, then lint and the whole test suite. Extra arguments go to pytest.
# Runner tests whose runner is not fetched (scripts/fetch_runners.sh) skip; -rs prints why.
set -euo pipefail
cd "$(dirname "$0")"
source ./scripts/setup_env.sh
python -m pipeline.demo --data_dir data
ruff check .
ruff format --check .
python -m pytest -n 2 -rs "$@"
