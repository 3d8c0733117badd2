#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh) and runs the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export M2RL_CACHE="${M2RL_CACHE:-$PWD/work/cache}"
set +e
python -m pytest -q -n 2 --timeout=900 "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is not a pass.
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$rc"
