#!/usr/bin/env bash
# Builds the upstream peers of the side-by-side comparisons from the Go
# module proxy, at the versions pinned by each peer's go.mod/go.sum, into
# $REPO/.cache/bench/bin. Go's module and build caches are the ones
# tests/k8s/build.sh uses ($REPO/.cache/go), so the Kubernetes modules are
# downloaded once for both. A peer is rebuilt only when its sources change.
#
#   bench/peers/build.sh                   build every peer
#   bench/peers/build.sh matching          build the named peers only
#
# Peers: matching    -> .cache/bench/bin/matching         (FindMatchingVolume replay)
#        mock        -> .cache/bench/bin/csi-mock-driver  (csi-test's mock CSI driver;
#                     csi-driver-host-path is not served by the module proxy)
#        provisioner -> .cache/bench/bin/csi-provisioner  (CSI external-provisioner;
#                     its go.mod copies upstream's k8s.io replace lines)
# Exits non-zero, naming the peer and Go's error, if any peer fails to build.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export GOMODCACHE="$REPO/.cache/go/mod"
export GOCACHE="$REPO/.cache/go/cache"
export GOFLAGS="-buildvcs=false -mod=readonly"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
OUT="$REPO/.cache/bench/bin"
mkdir -p "$OUT" "$GOMODCACHE" "$GOCACHE"

# peer name -> (module dir, package, output binary)
declare -A PKG=([matching]=. [mock]=github.com/kubernetes-csi/csi-test/v4/cmd/mock-driver
    [provisioner]=github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner)
declare -A BIN=([matching]=matching [mock]=csi-mock-driver [provisioner]=csi-provisioner)

build() {
    local peer="$1" dir="$HERE/$1" bin="$OUT/${BIN[$1]}" stamp want
    want="$(cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go 2>/dev/null | sha256sum | cut -d' ' -f1) $(go env GOVERSION)"
    stamp="$bin.stamp"
    if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "peer $peer: up to date ($bin)" >&2
        return 0
    fi
    echo "==> building peer $peer into $bin" >&2
    rm -f "$bin" "$stamp"
    if ! (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$bin" "${PKG[$peer]}"); then
        # A missing go.sum entry hides the cause; asking the proxy shows it.
        echo "peer $peer: FAILED to build; the module proxy says:" >&2
        (cd "$dir" && GOFLAGS=-buildvcs=false go mod download 2>&1 | sed 's/^/    /' >&2) || true
        return 1
    fi
    echo "$want" >"$stamp"
}

peers=("$@")
[[ ${#peers[@]} -gt 0 ]] || peers=(matching mock provisioner)
failed=()
for p in "${peers[@]}"; do
    [[ -n "${PKG[$p]:-}" ]] || { echo "build.sh: unknown peer $p (known: ${!PKG[*]})" >&2; exit 2; }
    build "$p" || failed+=("$p")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "build.sh: peers that did not build: ${failed[*]}" >&2
    exit 1
fi
