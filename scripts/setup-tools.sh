#!/usr/bin/env bash
# Installs every tool the tests and checks use into ./.venv (a Python virtualenv):
# cargo-lambda, moto[server], SAM CLI, cfn-lint, checkov, boto3, pytest.
# Idempotent: a second run only checks the versions.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-tools.txt
echo "tools ready in $VENV: $("$VENV/bin/cargo-lambda" lambda --version), moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)'), $("$VENV/bin/sam" --version)"
