#!/usr/bin/env bash
# Installs every tool the tests and checks use into ./.venv (a Python virtualenv):
# cargo-lambda, moto[server], SAM CLI, cfn-lint, checkov, boto3, pytest.
# Idempotent: a second run only checks the versions.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
# The local gateway's tests run its printed `curl` lines (SigV4 ones need curl >= 7.75).
if ! command -v curl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq curl >/dev/null
  else
    echo "setup-tools: curl is needed (install it with your package manager)" >&2
    exit 2
  fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-tools.txt
echo "tools ready in $VENV: $("$VENV/bin/cargo-lambda" lambda --version), moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)'), $("$VENV/bin/sam" --version)"
