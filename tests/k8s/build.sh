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
#   tests/k8s/build.sh            build (or reuse) the binaries, print their dir
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
}

resolve_etcd() {
    local dir="$HERE/etcd"
    rm -f "$dir/go.mod" "$dir/go.sum"
    (cd "$dir" && go mod init berth.local/k8s-etcd >/dev/null 2>&1 &&
        go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
}

if [[ "${1:-}" == "--resolve" ]]; then
    resolve_kube
    resolve_etcd
    exit 0
fi

want="kube=$KUBE_VERSION etcd=$ETCD_VERSION cmds=${KUBE_CMDS[*]}"
# Test binaries running side by side may call this at once: build only once.
mkdir -p "$REPO/.cache/k8s"
exec 9>"$REPO/.cache/k8s/.build.lock"
flock 9
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "$OUT"
    exit 0
fi

[[ -f "$HERE/kube/go.mod" ]] || resolve_kube
[[ -f "$HERE/etcd/go.mod" ]] || resolve_etcd
mkdir -p "$OUT" "$GOMODCACHE" "$GOCACHE"

minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

echo "==> building ${KUBE_CMDS[*]} $KUBE_VERSION into $OUT" >&2
(cd "$HERE/kube" && go build -trimpath -ldflags "$ldflags" -o "$OUT/" \
    $(printf 'k8s.io/kubernetes/cmd/%s ' "${KUBE_CMDS[@]}"))

echo "==> building etcd $ETCD_VERSION into $OUT" >&2
(cd "$HERE/etcd" && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3)

echo "$want" >"$STAMP"
echo "$OUT"
