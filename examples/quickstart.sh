#!/usr/bin/env bash
# Quickstart: build the example application and run fleetd on the example
# fleets in examples/fleets against the local Docker engine. Needs Go and
# Docker; pulls nothing (the example images are FROM scratch and built from
# examples/app).
set -euo pipefail
cd "$(dirname "$0")/.."

# The example's images copy this static binary into FROM scratch.
for ctx in examples/fleets/*/app; do
  CGO_ENABLED=0 go build -trimpath -o "$ctx/app" ./examples/app
done
go build -o bin/fleetd ./cmd/fleetd

bin/fleetd validate examples/fleets "$@"
bin/fleetd apply --repo examples/fleets "$@"
bin/fleetd diff --repo examples/fleets "$@"
echo
echo "Try it: curl -s http://$(docker port shop-web-1 8080)/ ; edit examples/fleets/shop/compose.yaml and rerun bin/fleetd apply --repo examples/fleets"
