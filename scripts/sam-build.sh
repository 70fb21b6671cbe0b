#!/usr/bin/env bash
# Builds the functions of template.yaml with `sam build` (cargo-lambda, arm64,
# provided.al2023) into .aws-sam/build: those of the nested applications too (the
# platform, its three authorizer instances, the example). Extra arguments go to sam
# build, e.g.
#   scripts/sam-build.sh Platform/KeyAuthorizer/AuthorizerFunction
# Needs Rust (cargo) and a virtualenv ($VENV, default <repo>/.venv) with aws-sam-cli
# and cargo-lambda (the PyPI package brings Zig for cross-compiling).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

for tool in cargo cargo-lambda sam; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "sam-build: '$tool' not found. Install Rust (https://rustup.rs) and" >&2
    echo "  python3 -m venv .venv && .venv/bin/pip install aws-sam-cli cargo-lambda" >&2
    exit 2
  fi
done

cd "$ROOT"
# Functions that run the same binary share one build (same CodeUri and Metadata) within
# a template; across nested stacks cargo's shared target/ makes the repeats cheap.
exec sam build --template-file template.yaml "$@" </dev/null
