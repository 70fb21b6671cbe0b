#!/usr/bin/env bash
# Publishes the svcauth applications to the Serverless Application Repository, in two
# steps, because SAR takes a nested application only when it is published there itself
# (docs/design.md, "Publishing"):
#
#   scripts/publish.sh authorizer             # 1. svcauth-authorizer; prints its ApplicationId
#   scripts/publish.sh platform APPLICATION_ID  # 2. svcauth-platform, nesting that application
#
# Both need AWS credentials and the Region to publish in (AWS_REGION / --region through
# SAM's usual configuration), `sam` and `cargo lambda` (scripts/setup-tools.sh). To let
# other accounts deploy the platform, share the authorizer application with them first
# (aws serverlessrepo put-application-policy): SAR deploys a nested application only
# where the deploying account may read it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
export SAM_CLI_TELEMETRY=0
cd "$ROOT"
OUT=.aws-sam/publish
mkdir -p "$OUT"

publish() {  # template, name
  sam build --template-file "$1" --build-dir "$OUT/$2" </dev/null
  sam package --template-file "$OUT/$2/template.yaml" --output-template-file "$OUT/$2.packaged.yaml" --resolve-s3
  sam publish --template "$OUT/$2.packaged.yaml"
}

case "${1:-}" in
  authorizer)
    publish authorizer/template.yaml authorizer
    echo "publish: next, scripts/publish.sh platform <the ApplicationId above>"
    ;;
  platform)
    [ -n "${2:-}" ] || { echo "usage: scripts/publish.sh platform APPLICATION_ID" >&2; exit 2; }
    # Next to the original, so its relative paths (CodeUri, ReadmeUrl, LicenseUrl) hold.
    tmp=platform/.publish-template.yaml
    trap 'rm -f "$tmp"' EXIT
    python3 scripts/publishable.py "$2" platform/template.yaml >"$tmp"
    publish "$tmp" platform
    ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
