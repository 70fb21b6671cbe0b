#!/usr/bin/env bash
# One command for the cross-runtime comparison in docs/performance.md:
# builds the authorizer (native release build with the repository's profile), installs
# the AWS Lambda runtime interface clients for Node.js (npm aws-lambda-ric) and Python
# (PyPI awslambdaric) under target/bench-runtimes/, runs harness.py and draws the SVG.
#
#   bash authorizer/benches/runtimes/run.sh [harness options, e.g. --runs 5]
#
# Writes docs/bench/runtimes.json and docs/bench/runtimes.svg (set OUT_DIR to write
# elsewhere). Needs cargo, node (>= 20) with npm, python3 (>= 3.9), and for
# aws-lambda-ric's native part (it builds curl and aws-lambda-cpp from source):
# cmake, make, g++, autoconf, automake, libtool.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
deps="$root/target/bench-runtimes"
out_dir="${OUT_DIR:-$root/docs/bench}"
mkdir -p "$deps" "$out_dir"

need() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "run.sh: '$tool' is not installed; the comparison needs cargo, node and npm, python3," >&2
      echo "  and cmake, autoconf, automake, libtool, make, g++ to build aws-lambda-ric's native client" >&2
      echo "  once (Debian/Ubuntu: apt-get install cmake autoconf automake libtool build-essential)" >&2
      exit 1
    fi
  done
}
need cargo node npm python3

echo "== cargo build --release -p authorizer" >&2
(cd "$root" && cargo build --release -p authorizer)

# Python: a virtualenv with the pinned runtime interface client, rebuilt when the pins change.
py="$deps/python"
if ! cmp -s "$here/python/requirements.txt" "$py/requirements.txt" 2>/dev/null; then
  echo "== installing awslambdaric into $py" >&2
  rm -rf "$py"
  python3 -m venv "$py"
  "$py/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
  cp "$here/python/requirements.txt" "$py/requirements.txt"
fi

# Node.js: the pinned aws-lambda-ric from the lockfile (compiles its native client once).
nd="$deps/node"
if ! cmp -s "$here/node/package-lock.json" "$nd/package-lock.json" 2>/dev/null \
  || [ ! -f "$nd/node_modules/aws-lambda-ric/dist/rapid-client.node" ]; then
  need cmake autoconf automake libtoolize make g++
  echo "== installing aws-lambda-ric into $nd (builds its native client: a few minutes)" >&2
  rm -rf "$nd"
  mkdir -p "$nd"
  cp "$here/node/package.json" "$here/node/package-lock.json" "$nd/"
  # node-gyp builds against the installed node's headers instead of downloading them.
  nodedir="$(dirname "$(dirname "$(command -v node)")")"
  (cd "$nd" && npm_config_nodedir="$nodedir" npm ci --no-audit --no-fund)
fi

echo "== harness" >&2
python3 "$here/harness.py" \
  --rust "$root/target/release/authorizer" \
  --node-ric "$nd/node_modules/aws-lambda-ric/bin/index.mjs" \
  --python "$py/bin/python" \
  --out "$out_dir/runtimes.json" "$@"
python3 "$here/plot.py" "$out_dir/runtimes.json" "$out_dir/runtimes.svg"
echo "wrote $out_dir/runtimes.json and $out_dir/runtimes.svg" >&2
