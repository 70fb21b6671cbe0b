#!/usr/bin/env bash
# Offline checks of every SAM template: template.yaml (the root, nesting the two
# applications), platform/template.yaml (the platform), example/template.yaml (the
# example services), authorizer/template.yaml (the authorizer application the platform
# nests) and the attach examples (docs/examples/attach-authorizer.yaml,
# authorizer/examples/consumer.yaml):
#   1. sam validate --lint, and cfn-lint on each SAM template itself;
#   2. the SAM translator's output of each (every AuthMode of the example, every
#      flavour of the attach example), linted;
#   3. checkov (CloudFormation framework) on each template and on each output;
#   4. pytest tests/template (security properties of the transformed templates).
# Every step runs; the exit status is non-zero if any failed.
#
# Needs a virtualenv with aws-sam-cli, cfn-lint, checkov, pytest and pyyaml:
# $VENV, default <repo>/.venv. No AWS credentials, no network, no stdin.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export SAM_CLI_TELEMETRY=0 CI=true PYTHONDONTWRITEBYTECODE=1
exec </dev/null

for tool in sam cfn-lint checkov python; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check-template: '$tool' not found in $VENV/bin; install the tools into the virtualenv first" >&2
    exit 2
  fi
done

cd "$ROOT"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
failed=()

step() {
  local name="$1"
  shift
  echo
  echo "==> $name"
  if "$@"; then
    echo "ok: $name"
  else
    echo "FAILED: $name"
    failed+=("$name")
  fi
}

# The one list of templates is templatelib's (TEMPLATES); pytest checks this reads it.
mapfile -t TEMPLATES < <(python -c 'import sys; sys.path.insert(0, "tests/template")
import templatelib as t
print("\n".join(str(p.relative_to(t.ROOT)) for p in t.TEMPLATES))')
if ((${#TEMPLATES[@]} == 0)); then
  echo "check-template: could not list the templates (tests/template/templatelib.py)" >&2
  exit 2
fi

for t in "${TEMPLATES[@]}"; do
  step "sam validate --lint ($t)" sam validate --lint --template-file "$t"
done
# cfn-lint exits non-zero on warnings too; informational rules are included.
for t in "${TEMPLATES[@]}"; do
  step "cfn-lint $t" cfn-lint --include-checks I -- "$t"
done

step "SAM translator: transform every template" python tests/template/templatelib.py "$OUT"

# Ignored on the translator's output only (the templates themselves are linted in full above):
#   W1028  SAM wraps each route of an API in Fn::If on its function's Condition, the same
#          Condition the generated RestApi already has, so one branch is "unreachable".
#   W2001  SAM substitutes the parameters it resolves at transform time (the authorizer
#          TTL), so the transformed copy no longer references them.
#   W1020  For the same reason an Fn::Sub of a parameter (an export's name) is left with
#          no variable.
#   W6001  An output built on an imported value (an API's URL names the platform's
#          endpoint); the templates say so in their cfn-lint metadata, which the
#          translator does not carry over.
#   I3042  SAM writes the partition ("arn:aws:") into the ARNs it generates; the templates
#          themselves use ${AWS::Partition} everywhere.
for out in "$OUT"/*.json; do
  step "cfn-lint transformed ($(basename "$out" .json))" cfn-lint --include-checks I --ignore-checks W1028 W2001 W1020 W6001 I3042 -- "$out"
done

# Failed checks must be fixed or suppressed in the template with a written reason
# (Metadata.checkov.skip[].comment; tests/template checks every skip has one).
checkov_run() {
  checkov --framework cloudformation --skip-download --compact --quiet -o cli -f "$1"
}
for t in "${TEMPLATES[@]}"; do
  step "checkov $t" checkov_run "$t"
done
for out in "$OUT"/*.json; do
  step "checkov transformed ($(basename "$out" .json))" checkov_run "$out"
done

step "pytest tests/template" python -m pytest -q -p no:cacheprovider tests/template

echo
if ((${#failed[@]})); then
  printf 'check-template: %d step(s) failed:\n' "${#failed[@]}"
  printf '  - %s\n' "${failed[@]}"
  exit 1
fi
echo "check-template: all checks passed"
