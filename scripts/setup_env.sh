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
if [ ! -f "$stamp" ] || ! cmp -s setup.py "$stamp"; then
  echo "installing the project and its pinned dependencies into .venv (a few minutes) ..." >&2
  if ! { python -m pip install --upgrade pip && python -m pip install -e '.[test]'; } \
      > .venv/install.log 2>&1; then
    tail -n 40 .venv/install.log >&2
    echo "installing failed; the whole log is in .venv/install.log" >&2
    exit 1
  fi
  cp setup.py "$stamp"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
