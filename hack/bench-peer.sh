#!/usr/bin/env bash
# bench-peer.sh runs our operator and Argo Rollouts side by side on one local
# cluster (`make bench-peer`; test/bench/peer says what it measures).
#
# Outside the network namespace, with the module proxy at hand, it builds
# what the run needs: Argo Rollouts' controller once, from the module proxy,
# through hack/tools/argo-rollouts (nothing of Argo's source is in this repo;
# its go line may ask for a newer toolchain, which GOTOOLCHAIN=auto fetches
# through the proxy) into bin/argo-rollouts-<version>/, and the bench itself;
# it makes sure PostgreSQL and Prometheus are installed. Then it runs the
# bench inside a private network namespace with only loopback up: Argo's
# controller binds its metrics and health ports on every interface, with no
# flag to change that, and nothing of the bench may listen on a shared
# interface. Inside, nothing reaches the proxy (GOPROXY=off).
#
# Environment: K8S_BIN (the control plane's binaries, required), and the
# bench's own: PEER_ROUNDS (fault and abort rounds at 1s, default 10),
# PEER_ROUNDS_15S (at 15s, default PEER_ROUNDS), PEER_ABORT_ROUNDS (abort
# rounds per setting, default as the fault rounds), PEER_SETTINGS (default
# "1s,15s"; "none" runs only the N upgrades), PEER_HEALTHY_ROUNDS
# (healthy upgrades per setting, figure 4, default 3; 0 skips),
# PEER_HEALTHY_PAUSE (their pause, default 10s), PEER_N (concurrent
# upgrades per tool, figures 6 and 7, default 50; 0 skips), PEER_N_SCRAPE
# (their scrape and analysis interval, default 15s), PEER_IDLE_WINDOW (the
# quiet window with the N parked, default 60s).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod=$root/hack/tools/argo-rollouts
log() { printf 'bench-peer: %s\n' "$*" >&2; }

: "${K8S_BIN:?K8S_BIN must name the control plane binaries (make bench-peer sets it)}"

version=$(awk '$0 ~ /github.com\/argoproj\/argo-rollouts v/ {for (i = 1; i <= NF; i++) if ($i ~ /^v[0-9]/) {print $i; exit}}' "$mod/go.mod")
out=$root/bin/argo-rollouts-$version
bin=$out/rollouts-controller
if [[ ! -x $bin ]]; then
  log "building Argo Rollouts $version's controller into $out (once; a few minutes)"
  mkdir -p "$out"
  start=$SECONDS
  (cd "$mod" && GOTOOLCHAIN=auto CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=${version#v}" -o "$bin.partial" \
    github.com/argoproj/argo-rollouts/cmd/rollouts-controller)
  mv "$bin.partial" "$bin"
  log "built in $((SECONDS - start))s"
fi
argo_dir=$(cd "$mod" && GOTOOLCHAIN=auto go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)
bash "$root/hack/install-postgres.sh" >/dev/null
prometheus=$(bash "$root/hack/install-prometheus.sh")
(cd "$root" && go build -o bin/bench-peer ./test/bench/peer && go build -o /dev/null ./test/fakedify)

if [[ $EUID -eq 0 ]]; then
  netns=(unshare --net)
else
  # Without root, a user namespace maps this user to root inside it.
  netns=(unshare --user --map-root-user --net)
fi
log "running in a private network namespace (loopback only)"
cd "$root"
exec "${netns[@]}" -- env GOPROXY=off GOFLAGS=-mod=readonly PROMETHEUS_BIN="$prometheus" K8S_BIN="$K8S_BIN" \
  ARGO_ROLLOUTS_BIN="$bin" ARGO_ROLLOUTS_DIR="$argo_dir" ARGO_ROLLOUTS_VERSION="$version" \
  bash -c 'ip link set lo up && exec "$@"' bash "$root/bin/bench-peer" "$@"
