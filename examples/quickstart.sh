#!/usr/bin/env bash
# Quickstart: run the fleetd agent on the example fleets, following a local
# Git repository made from examples/fleets, against the local Docker engine.
# Needs Go, git and Docker; pulls nothing (the example images are FROM
# scratch and built from examples/app).
#
#   ./examples/quickstart.sh           start the agent (Ctrl-C stops it; containers stay)
#   ./examples/quickstart.sh --down    remove the example's containers and networks (volumes stay)
#
# While it runs, commit a change to the demo repository and watch it roll out:
#   cd .demo/repo && sed -i 's/^GREETING=.*/GREETING=hello again/' shop/.env && git commit -qam greeting
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${FLEETD_DEMO_DIR:-$PWD/.demo}
export FLEETD_INSTANCE=demo FLEETD_STATE_DIR="$demo/state"

# Static: the ingress image is built from this binary.
CGO_ENABLED=0 go build -tags grpcnotrace -o bin/fleetd ./cmd/fleetd
if [ "${1:-}" = "--down" ]; then
  mkdir -p "$demo/empty"
  exec bin/fleetd apply --repo "$demo/empty" --host demo --allow-mass-prune
fi

if [ ! -d "$demo/repo/.git" ]; then
  mkdir -p "$demo"
  cp -r examples/fleets "$demo/repo"
  # The example's images copy this static binary into FROM scratch.
  for ctx in "$demo"/repo/*/app; do
    CGO_ENABLED=0 go build -trimpath -o "$ctx/app" ./examples/app
  done
  git -C "$demo/repo" init -q -b main
  git -C "$demo/repo" add -A -f
  git -C "$demo/repo" -c user.name=demo -c user.email=demo@example.invalid commit -qm "example fleets"
fi

cat > "$demo/config.yaml" <<CONFIG
host: {name: demo}
source:
  url: $demo/repo
  ref: main
  interval: 5s
listen: 127.0.0.1:9750
state_dir: $demo/state
instance: demo
CONFIG

bin/fleetd validate "$demo/repo" --host demo
cat <<MSG

Starting the agent (Ctrl-C stops it). In another terminal:
  bin/fleetd status                                  # fleets, revisions, drift
  curl -s http://127.0.0.1:18080/                    # the example app, through fleetd's ingress
  cd $demo/repo && sed -i 's/^GREETING=.*/GREETING=hello again/' shop/.env && git commit -qam greeting
  docker stop shop-store-1                           # healed within seconds
MSG
exec bin/fleetd run --config "$demo/config.yaml"
