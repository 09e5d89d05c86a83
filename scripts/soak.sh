#!/usr/bin/env bash
# Soak test (not in CI): a real controller with 1,000 subscribers and
# 1,000 reports/s for 30 minutes, an override toggled every 10 s; RSS and
# goroutines sampled every 30 s; the verdict says whether they stayed flat
# and whether the controller logged any ERROR line. Exit status 1 if not.
#
#   scripts/soak.sh                                   # 30 minutes
#   SOAK_FOR=3m SOAK_EVERY=10s scripts/soak.sh        # a short check
#
# Environment: SOAK_FOR (30m), SOAK_EVERY (30s), SOAK_SUBS (1000),
# SOAK_REPORTS (1000 per second), SOAK_JSON (results file, optional).
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
go build -o "$work/controlplane" ./cmd/controlplane
go build -o "$work/brownout-load" ./cmd/brownout-load
args=(soak --bin "$work/controlplane" --data "$work/data"
  --subs "${SOAK_SUBS:-1000}" --services 10 --reports "${SOAK_REPORTS:-1000}"
  --soak-for "${SOAK_FOR:-30m}" --soak-every "${SOAK_EVERY:-30s}")
if [[ -n "${SOAK_JSON:-}" ]]; then args+=(--json "$SOAK_JSON"); fi
"$work/brownout-load" "${args[@]}"
