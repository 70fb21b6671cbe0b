#!/usr/bin/env bash
# Load run of the local gateway on loopback (docs/local.md, "Load run").
#
# Builds local-gateway and its load generator (debug profile, the workspace's
# target/), then for each scenario starts the gateway on a free 127.0.0.1 port and runs
# a bounded load against it: fixed concurrency, fixed duration (LOAD_SECS, default 30,
# at most 60), capped request count. Prints one result line per scenario:
#   cached    REQUEST authorizer, same key: decided from the authorizer result cache
#   uncached  REQUEST authorizer with --authorizer-ttl 0: the authorizer runs every call
#   sigv4     AWS_IAM route: SigV4 verified (and the role's policy) on every call
# Function logs are at WARN so the numbers measure the gateway, not log formatting.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${LOAD_SECS:-30}"
CONC="${LOAD_CONCURRENCY:-8}"
if [ "$SECS" -gt 60 ]; then echo "LOAD_SECS is at most 60" >&2; exit 2; fi

cargo build -q -p local-gateway --bins
GW=target/debug/local-gateway
LOAD=target/debug/local-gateway-load
STUDENT=6b1f0c52-3f0e-4a8e-9d55-2f1f4c3c9a10
KEY=$(sed -n 's/.*"tutor-service": "\(svcauth_[^"]*\)".*/\1/p' dev/dev-keys.json)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

run() { # label, gateway args, load args...
  local label="$1" gwargs="$2"; shift 2
  local port out pid
  port=$(free_port)
  out=$(mktemp)
  RUST_LOG=warn "$GW" --port "$port" $gwargs >"$out" 2>/dev/null &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; rm -f "$out"' RETURN
  for _ in $(seq 1 100); do
    grep -q "Ctrl-C stops" "$out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "Ctrl-C stops" "$out" || { echo "the gateway did not start" >&2; return 1; }
  "$LOAD" --label "$label" --duration "$SECS" --concurrency "$CONC" \
    --url "http://127.0.0.1:$port$1" "${@:2}"
}

echo "local-gateway load run: $SECS s per scenario, $CONC connections, debug build, $(nproc) cores shared with the load generator"
run cached "" "/identitykey/v1/internal/users/$STUDENT" -H "x-service-api-key: $KEY"
run uncached "--authorizer-ttl 0" "/identitykey/v1/internal/users/$STUDENT" -H "x-service-api-key: $KEY"
run sigv4 "" "/identityiam/v1/internal/users/$STUDENT" --sigv4 AKIAIOSFODNN7EXAMPLE
