#!/usr/bin/env bash
# Tidies every module of the repository. `go mod tidy` ignores go.work, so
# a module that requires another of this repository's modules by version
# (sdk/openfeature requires sdk) cannot resolve it before it is tagged. For
# the time of the tidy, such a module gets a replace directive pointing at
# the local copy, which is dropped again afterwards: the committed go.mod
# keeps only the version requirement a consumer resolves.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off GOFLAGS=-mod=mod

# published modules: path relative to the root, and the in-repo modules each
# requires by version (module=relative directory).
tidy_published() {
  local dir=$1; shift
  (
    cd "$dir"
    for dep in "$@"; do go mod edit -replace="$dep"; done
    trap 'for dep in "$@"; do go mod edit -dropreplace="${dep%%=*}"; done' EXIT
    go mod tidy
  )
}

(cd sdk && go mod tidy)
tidy_published sdk/openfeature github.com/brownout-io/brownout/sdk=..
# The root module and the bench modules are applications and test
# harnesses, never required by anyone, so their replace directives stay.
go mod tidy
for d in bench/*/ deploy/; do (cd "$d" && go mod tidy); done
