# Sourced by run_local.sh and run_tests.sh: creates .venv with the pinned packages if missing
# and activates it. Re-installs when setup.py changed since the last install.
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$PYTHON" --version) ..." >&2
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
stamp=.venv/.installed-setup-py
set -o pipefail  # a failed pip must fail the install, whatever awk says
if [ ! -f "$stamp" ] || ! cmp -s setup.py "$stamp"; then
  # One dot per package pip collects, so minutes of downloading do not look like a hang; pip's
  # whole output goes to .venv/install.log. Unbuffered, so each dot appears when it happens.
  printf "installing the project and its pinned dependencies into .venv (3 to 5 minutes) " >&2
  if ! { PYTHONUNBUFFERED=1 python -m pip install --upgrade pip \
        && PYTHONUNBUFFERED=1 python -m pip install -e '.[test]'; } 2>&1 \
      | tee .venv/install.log | awk '/^Collecting /{printf "."; fflush()}' >&2; then
    echo >&2
    tail -n 40 .venv/install.log >&2
    echo "installing failed; the whole log is in .venv/install.log" >&2
    exit 1
  fi
  echo " done" >&2
  cp setup.py "$stamp"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
