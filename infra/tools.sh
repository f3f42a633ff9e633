#!/usr/bin/env bash
# Builds the command-line tools the tests need that neither pip nor Debian brings, from their Go sources
# (the Go module proxy), into .cache/tools/bin, when they are missing there:
#   helm   v4.3.2   `helm lint` and `helm template` of deploy/helm/barometre (tests/unit/test_helm.py)
# Needs Go (`go` on PATH; as root without it, Debian's golang-go is installed). helm v4.3 needs Go 1.26: an
# older Go fetches that toolchain from the Go module proxy by itself (GOTOOLCHAIN=auto). A first build
# takes a few minutes (about 3.5 CPU-minutes); later runs find the binary and do nothing. `make clean`
# removes it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.cache/tools/bin"
HELM_VERSION=v4.3.2
mkdir -p "$bin"
if [ -x "$bin/helm" ] && "$bin/helm" version --template '{{.Version}}' 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: golang-go"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go >/dev/null
  else
    echo "infra/tools.sh: Go is needed to build helm ${HELM_VERSION}: sudo apt-get install golang-go" >&2
    exit 1
  fi
fi
echo "building helm ${HELM_VERSION} into .cache/tools/bin (once; a few minutes)"
GOBIN="$bin" GOFLAGS=-mod=mod GOTOOLCHAIN=auto go install -trimpath "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
