#!/usr/bin/env bash
# Runs the authorizer locally under `cargo lambda watch` (the Lambda runtime API
# emulator, on 127.0.0.1), invokes it with every events/authorizer-*.json exactly as a
# user would with `cargo lambda invoke --data-file`, and prints each decision.
# The authorizer reads the development keys' hashes from dev/dev-store.json
# (SVCAUTH_KEY_SOURCE=file, from authorizer/Cargo.toml's [package.metadata.lambda.env];
# run from the repository root), the same build a deployment makes.
#
# usage: scripts/invoke-events.sh [--check]
#   --check  also compare each decision with the expected one and exit 1 on a mismatch
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
bash scripts/setup-tools.sh >/dev/null

check=${1:-}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
setsid cargo lambda watch -p authorizer --invoke-address 127.0.0.1 --invoke-port "$port" --ignore-changes >"$log" 2>&1 &
watch_pid=$!
trap 'kill -- -"$watch_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then break; fi
  sleep 0.2
done

declare -A expected=(
  [authorizer-valid-key]="Allow tutor-service"
  [authorizer-header-other-case]="Allow tutor-service"
  [authorizer-route-outside-permissions]="Allow tutor-service"
  [authorizer-legacy-key]="Allow reporting-service"
  [authorizer-admin-key]="Allow admin-service"
  [authorizer-missing-key]="Unauthorized"
  [authorizer-invalid-key]="Unauthorized"
  [authorizer-malformed-key]="Unauthorized"
  [authorizer-revoked-key]="Unauthorized"
  [authorizer-expired-key]="Unauthorized"
  [authorizer-duplicated-header]="Unauthorized"
  # A Bearer token: this authorizer runs with SVCAUTH_ACCEPT unset (api-key only).
  [authorizer-token-bearer]="Unauthorized"
)
failures=0
for f in events/authorizer-*.json; do
  name=$(basename "$f" .json)
  out=$(cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "$port" authorizer --data-file "$f" 2>&1 || true)
  if grep -q '"principalId"' <<<"$out"; then
    got=$(python3 -c 'import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); print("Allow", r["principalId"])' <<<"$out")
    routes=$(python3 -c 'import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(" ".join(x.split("/",1)[1] for s in r["policyDocument"]["Statement"] for x in s["Resource"]))' <<<"$out")
    printf '%-42s %-28s policy: %s\n' "$name" "$got" "$routes"
  elif grep -q 'Unauthorized' <<<"$out"; then
    got="Unauthorized"
    printf '%-42s %s\n' "$name" "$got"
  else
    got="error"
    printf '%-42s error:\n%s\n' "$name" "$out"
  fi
  if [ "$check" = "--check" ] && [ "${expected[$name]:-?}" != "$got" ]; then
    echo "  expected: ${expected[$name]:-(no expectation for this event)}" >&2
    failures=$((failures + 1))
  fi
done
echo
echo "audit lines (what the authorizer logged):"
grep -o 'decision="[a-z]*" reason="[a-z_]*" service_id="[a-z-]*"' "$log" || true
if [ "$check" = "--check" ]; then
  [ "$failures" -eq 0 ] || { echo "$failures event(s) gave an unexpected decision" >&2; exit 1; }
  echo "all ${#expected[@]} sample events gave the expected decision"
fi
