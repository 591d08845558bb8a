#!/usr/bin/env bash
# Builds the fleetd image from a static binary; pulls nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-fleetd:latest}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -tags grpcnotrace -trimpath -ldflags "-s -w -X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o "$ctx/fleetd" ./cmd/fleetd
cp /etc/ssl/certs/ca-certificates.crt "$ctx/" 2>/dev/null || : > "$ctx/ca-certificates.crt"
cp packaging/Dockerfile "$ctx/Dockerfile"
docker build -t "$tag" "$ctx"
echo "built $tag"
