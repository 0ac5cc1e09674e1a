#!/usr/bin/env bash
# Builds the real control plane the e2e tests run — etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler — and the real node's kubelet
# and kubectl (tests/node/), from the Go module proxy, at the versions pinned
# in tests/k8s/versions.env and resolved by the wrapper modules
# tests/k8s/kube and tests/k8s/etcd (their go.mod/go.sum are committed so every
# machine resolves the same dependency graph).
#
# Output: $REPO/.cache/k8s/bin/<KUBE_VERSION>/{kube-apiserver,...,kubelet,kubectl,etcd}.
# Go's module and build caches live under $REPO/.cache/go so CI can keep them.
# Does nothing when the binaries for the pinned versions already exist.
#
# With --e2e it also builds Kubernetes' own end-to-end test binary, e2e.test
# (`go test -c k8s.io/kubernetes/test/e2e` in the same wrapper module, so the
# suite is the one of the control plane's and the kubelet's version),
# agnhost (k8s.io/kubernetes/test/images/agnhost, the suite's utility image's
# binary, same version) and the ginkgo CLI (the version e2e.test links, as
# the module resolves it; it runs e2e.test's specs in parallel), and from
# external-snapshotter (wrapper module tests/k8s/snapshotter, SNAPSHOTTER_VERSION)
# snapshot-controller, csi-snapshotter and the VolumeSnapshot CRDs (into
# snapshot-crds/), which tests/storage-e2e/ runs as the external storage
# conformance suite.
#
#   tests/k8s/build.sh            build (or reuse) the binaries, print their dir
#   tests/k8s/build.sh --e2e      the same plus e2e.test, agnhost, ginkgo
#                                 and external-snapshotter
#   tests/k8s/build.sh --resolve  re-create the wrapper modules' go.mod/go.sum
#                                 from versions.env (after bumping a version)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

export GOMODCACHE="$REPO/.cache/go/mod"
export GOCACHE="$REPO/.cache/go/cache"
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

OUT="$REPO/.cache/k8s/bin/$KUBE_VERSION"
STAMP="$OUT/.versions"
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

resolve_kube() {
    local dir="$HERE/kube" minor="${KUBE_VERSION#v1.}" gomod m
    rm -f "$dir/go.mod" "$dir/go.sum"
    (cd "$dir" && go mod init berth.local/k8s-kube >/dev/null 2>&1)
    gomod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
        sed -n 's/.*"GoMod": "\([^"]*\)".*/\1/p')"
    [[ -f "$gomod" ]] || { echo "build.sh: cannot download k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
    # Every staging module k8s.io/kubernetes replaces with ./staging/... is
    # published as its own module at v0.<minor>.<patch>.
    for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$gomod"); do
        (cd "$dir" && go mod edit -replace="$m=$m@v0.$minor")
    done
    # `tool` directives keep the commands' packages (and so go.sum) resolved.
    (cd "$dir" && go get -tool $(printf "k8s.io/kubernetes/cmd/%s@$KUBE_VERSION " "${KUBE_CMDS[@]}"))
    # e2e.test is a test package: no `tool` directive can name it, so resolve
    # its test-only imports (ginkgo, gomega, k8s.io/sample-apiserver, ...)
    # into go.mod/go.sum by listing them once; agnhost's and ginkgo's likewise.
    (cd "$dir" && go list -mod=mod -test -deps k8s.io/kubernetes/test/e2e >/dev/null &&
        go list -mod=mod -deps k8s.io/kubernetes/test/images/agnhost \
            github.com/onsi/ginkgo/v2/ginkgo >/dev/null)
}

resolve_etcd() {
    local dir="$HERE/etcd"
    rm -f "$dir/go.mod" "$dir/go.sum"
    (cd "$dir" && go mod init berth.local/k8s-etcd >/dev/null 2>&1 &&
        go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
}

SNAPSHOTTER_MODULE=github.com/kubernetes-csi/external-snapshotter/v8
SNAPSHOTTER_CMDS=(snapshot-controller csi-snapshotter)

resolve_snapshotter() {
    local dir="$HERE/snapshotter"
    rm -f "$dir/go.mod" "$dir/go.sum"
    (cd "$dir" && go mod init berth.local/k8s-snapshotter >/dev/null 2>&1 &&
        go get -tool $(printf "$SNAPSHOTTER_MODULE/cmd/%s@$SNAPSHOTTER_VERSION " "${SNAPSHOTTER_CMDS[@]}"))
}

WITH_E2E=0
case "${1:-}" in
--resolve)
    resolve_kube
    resolve_etcd
    resolve_snapshotter
    exit 0
    ;;
--e2e) WITH_E2E=1 ;;
"") ;;
*)
    echo "build.sh: unknown argument '$1' (expected --e2e or --resolve)" >&2
    exit 2
    ;;
esac

minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# The --e2e binaries have their own stamp: adding them never invalidates
# the other binaries. Called outside any condition, so `set -e` applies.
build_e2e() {
    local stamp="$OUT/.e2e-version" want_e2e="kube=$KUBE_VERSION snapshotter=$SNAPSHOTTER_VERSION"
    local b missing=0
    for b in e2e.test agnhost ginkgo "${SNAPSHOTTER_CMDS[@]}"; do
        [[ -x "$OUT/$b" ]] || missing=1
    done
    if ((missing == 0)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$want_e2e" ]]; then
        return 0
    fi
    echo "==> building e2e.test, agnhost and ginkgo $KUBE_VERSION into $OUT" >&2
    (cd "$HERE/kube" && go test -c -vet=off -trimpath -ldflags "$ldflags" -o "$OUT/e2e.test" \
        k8s.io/kubernetes/test/e2e)
    (cd "$HERE/kube" && go build -trimpath -ldflags "$ldflags" -o "$OUT/agnhost" \
        k8s.io/kubernetes/test/images/agnhost)
    (cd "$HERE/kube" && go build -trimpath -ldflags "-s -w" -o "$OUT/ginkgo" \
        github.com/onsi/ginkgo/v2/ginkgo)

    echo "==> building external-snapshotter $SNAPSHOTTER_VERSION into $OUT" >&2
    [[ -f "$HERE/snapshotter/go.mod" ]] || resolve_snapshotter
    (cd "$HERE/snapshotter" && go build -trimpath -ldflags "-s -w" -o "$OUT/" \
        $(printf "$SNAPSHOTTER_MODULE/cmd/%s " "${SNAPSHOTTER_CMDS[@]}"))
    # The CRDs are plain YAML of the client module the commands were built with.
    local client
    client="$(cd "$HERE/snapshotter" &&
        go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)"
    rm -rf "$OUT/snapshot-crds"
    mkdir -p "$OUT/snapshot-crds"
    cp "$client"/config/crd/snapshot.storage.k8s.io_*.yaml "$OUT/snapshot-crds/"
    chmod u+w "$OUT"/snapshot-crds/*.yaml
    echo "$want_e2e" >"$stamp"
}

want="kube=$KUBE_VERSION etcd=$ETCD_VERSION cmds=${KUBE_CMDS[*]}"
# Test binaries running side by side may call this at once: build only once.
mkdir -p "$REPO/.cache/k8s"
exec 9>"$REPO/.cache/k8s/.build.lock"
flock 9
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    if ((WITH_E2E)); then build_e2e; fi
    echo "$OUT"
    exit 0
fi

[[ -f "$HERE/kube/go.mod" ]] || resolve_kube
[[ -f "$HERE/etcd/go.mod" ]] || resolve_etcd
mkdir -p "$OUT" "$GOMODCACHE" "$GOCACHE"

echo "==> building ${KUBE_CMDS[*]} $KUBE_VERSION into $OUT" >&2
(cd "$HERE/kube" && go build -trimpath -ldflags "$ldflags" -o "$OUT/" \
    $(printf 'k8s.io/kubernetes/cmd/%s ' "${KUBE_CMDS[@]}"))

echo "==> building etcd $ETCD_VERSION into $OUT" >&2
(cd "$HERE/etcd" && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3)

echo "$want" >"$STAMP"
if ((WITH_E2E)); then build_e2e; fi
echo "$OUT"
