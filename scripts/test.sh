#!/usr/bin/env bash
# The project's test command (README "Test"), also what CI runs (.ci/run):
# installs the tools, checks formatting and lints, runs every Rust test (the tests
# start their own moto_server on 127.0.0.1), invokes the sample events through
# `cargo lambda`, and checks template.yaml (sam validate, cfn-lint, checkov, pytest).
# SVCAUTH_SAM_BUILD=1 also runs `sam build`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { echo; echo "==> $*"; }
# Disk left and the size of target/ after each build step: a full disk shows up as
# the linker dying with SIGBUS, which says nothing about the cause.
disk() { echo "disk: $(df -Ph . | awk 'NR==2 {print $4 " free"}'), target/ $(du -sh target 2>/dev/null | cut -f1)"; }

step "tools"
bash scripts/setup-tools.sh
export PATH="$PWD/.venv/bin:$PATH"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
disk

step "cargo test"
cargo test --workspace --locked
disk

step "sample events through cargo lambda"
bash scripts/invoke-events.sh --check

step "template checks"
bash scripts/check-template.sh

# The cross-runtime plot and its table in docs/performance.md must be drawn from the
# committed results (running the comparison itself takes minutes:
# authorizer/benches/runtimes/run.sh).
step "benchmark plot drawn from its results"
python3 authorizer/benches/runtimes/plot.py --check docs/bench/runtimes.json docs/bench/runtimes.svg docs/performance.md

# `sam build` cross-compiles three release binaries for arm64 with fat LTO (and, on a
# clean clone, the whole AWS SDK for arm64 first): too long for every CI run on top
# of the above. It is a
# separate command (scripts/sam-build.sh, README "Test"); SVCAUTH_SAM_BUILD=1 adds it.
if [ "${SVCAUTH_SAM_BUILD:-0}" = 1 ]; then
  step "sam build"
  bash scripts/sam-build.sh
fi
echo
echo "all checks passed"
