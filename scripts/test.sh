#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Peers the integration tests use for real (promtool, Alertmanager, kcat, Chromium), from Debian.
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v kcat >/dev/null || need+=(kcat)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing Debian packages: ${need[*]} (sudo apt-get install ${need[*]})" >&2
  fi
fi

python3 -m pip install -q -e '.[test]'

ruff check .
# watchkeeper/<name> links to ./<name>: one package, so mypy checks every subpackage under its import name.
mypy watchkeeper
# The layers contract in pyproject.toml: an import that points back up (say agents -> watchkeeper) fails here.
lint-imports --no-cache
# The docs site (docs/, mkdocs.yml) builds without a warning: broken links and missing pages fail here.
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"

set +e
python3 -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure of the suite, not a pass, so say so.
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit $rc
