#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install mulsupcon into it.
# Usage: bash scripts/bootstrap.sh            -> environment only
#        bash scripts/bootstrap.sh demo       -> then run the main job (mulsupcon demo)
#        bash scripts/bootstrap.sh test [...] -> then run the test suite (extra args go to pytest)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
PY="${PYTHON:-python3}"
venv="${MULSUPCON_VENV:-$here/.venv}"
stamp="$venv/.mulsupcon-installed"

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating virtual environment in $venv" >&2
  "$PY" -m venv "$venv"
fi
# Reinstall only when pyproject.toml changed since the last install (keeps reruns fast).
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[bootstrap] installing mulsupcon and its dependencies (first time: a few minutes)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2 || true
  "$venv/bin/python" -m pip install --quiet -e ".[test]" >&2
  touch "$stamp"
fi

what="${1:-}"
[ $# -gt 0 ] && shift
case "$what" in
  "") ;;
  demo) exec "$venv/bin/mulsupcon" demo "$@" ;;
  test) exec "$venv/bin/python" -m pytest -q -n 2 --dist loadfile "$@" ;;
  *) echo "unknown command '$what' (expected: demo | test)" >&2; exit 2 ;;
esac
