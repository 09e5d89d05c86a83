#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 20s), one after the
# other; stops at the first failure (the failing input is saved under the
# package's testdata/fuzz/ and replays as a regular test from then on).
#   FUZZTIME=2m scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-20s}"
targets=(
  ./internal/health:FuzzDecodeReports
  ./internal/levels:FuzzThresholds
  ./internal/featureflags:FuzzSetValidate
  ./internal/server:FuzzFrameDecode
  ./internal/server:FuzzSubscribeFrames
  ./internal/server:FuzzHistoryQuery
  ./web:FuzzSignIn
  ./web:FuzzDashboardForms
  ./web:FuzzRedirectTarget
  ./web:FuzzSessionCookie
)
for t in "${targets[@]}"; do
  pkg="${t%%:*}" name="${t##*:}"
  echo "== $name ($pkg, $FUZZTIME)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
done
echo "all fuzz targets passed"
