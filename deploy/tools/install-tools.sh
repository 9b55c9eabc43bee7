#!/usr/bin/env bash
# Installs the command-line tools the test suite drives that neither PyPI nor Debian
# provides at the wanted version: helm, which tests/deploy/test_helm.py uses to lint and
# render deploy/helm/convotrail. Built from source through the Go module proxy (a
# pinned version, so every machine renders the chart alike) into
# ${CONVOTRAIL_CACHE:-~/.cache/convotrail}/bin, where the tests look for it.
# Idempotent: a tool already built at the pinned version is kept.
set -euo pipefail

HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.22.0
BIN="${CONVOTRAIL_CACHE:-$HOME/.cache/convotrail}/bin"

if ! command -v go >/dev/null 2>&1; then
  echo "error: go is not on PATH: the Go toolchain builds helm ${HELM_VERSION} for the" \
    "chart tests (go 1.26+, or 1.21+ which fetches the 1.26 toolchain itself)" >&2
  exit 1
fi

# `go version -m` reads the module version the binary was built from (helm's own
# `helm version` says only v3.22 when built with go install).
built_version() {
  go version -m "$1" 2>/dev/null | awk -v mod="$HELM_MODULE" '$1 == "mod" && $2 == mod {print $3}'
}

if [ -x "$BIN/helm" ] && [ "$(built_version "$BIN/helm")" = "$HELM_VERSION" ]; then
  exit 0
fi
echo "building helm ${HELM_VERSION} into $BIN (go install; a few minutes the first time)"
mkdir -p "$BIN"
GOBIN="$BIN" go install "${HELM_MODULE}/cmd/helm@${HELM_VERSION}"
echo "helm ${HELM_VERSION}: $BIN/helm"
