#!/usr/bin/env bash
# Runs the upstream csi-sanity conformance suite against `berth csi`, as root
# with real mounts and loop devices: once with mount access on directory
# volumes, once with mount access on ext4-formatted loop images, and once
# with block access. Builds (and caches) the pinned csi-sanity under
# $REPO/.cache/go. Prints each run's Ginkgo summary and a final
# "csi-sanity: N passed, N failed" line; exits non-zero if anything failed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CSI_SANITY_VERSION="${CSI_SANITY_VERSION:-v5.4.0}"
export GOBIN="$REPO/.cache/go/bin"
export GOMODCACHE="$REPO/.cache/go/mod"
export GOCACHE="$REPO/.cache/go/cache"
SANITY="$GOBIN/csi-sanity"
STAMP="$GOBIN/csi-sanity.version"

if [[ $(id -u) -ne 0 ]]; then
    echo "run-sanity.sh: must run as root (real mounts and loop devices)" >&2
    exit 2
fi

if [[ ! -x "$SANITY" || "$(cat "$STAMP" 2>/dev/null)" != "$CSI_SANITY_VERSION" ]]; then
    echo "==> building csi-sanity $CSI_SANITY_VERSION"
    mkdir -p "$GOBIN" "$GOMODCACHE" "$GOCACHE"
    go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION" || exit 1
    echo "$CSI_SANITY_VERSION" >"$STAMP"
fi

BERTH="${BERTH_BIN:-$REPO/target/release/berth}"
if [[ -z "${BERTH_BIN:-}" ]]; then
    echo "==> building berth"
    (cd "$REPO" && cargo build --release -p berth) || exit 1
fi

WORK="$(mktemp -d /tmp/berth-sanity.XXXXXX)"
DRIVER_PID=""

stop_driver() {
    if [[ -n "$DRIVER_PID" ]] && kill -0 "$DRIVER_PID" 2>/dev/null; then
        kill -TERM "$DRIVER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DRIVER_PID" 2>/dev/null
        wait "$DRIVER_PID" 2>/dev/null
    fi
    DRIVER_PID=""
}

cleanup() {
    stop_driver
    # Unmount anything left under the work dir, deepest first.
    awk -v w="$WORK" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    # Detach loop devices backed by files under the work dir.
    for f in /sys/block/loop*/loop/backing_file; do
        [[ -r "$f" ]] || continue
        if grep -q "^$WORK" "$f" 2>/dev/null; then
            dev="/dev/$(basename "$(dirname "$(dirname "$f")")")"
            losetup -d "$dev" 2>/dev/null
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TOTAL_PASSED=0
TOTAL_FAILED=0
STATUS=0

# run_suite NAME ACCESS_TYPE PARAMS_FILE
run_suite() {
    local name="$1" access="$2" params="$3"
    local dir="$WORK/$name"
    mkdir -p "$dir"
    local sock="$dir/csi.sock"
    echo "==> csi-sanity [$name]: access type $access, parameters $(basename "$params")"
    BERTH_LOG="${BERTH_LOG:-warn}" "$BERTH" csi \
        --endpoint "unix://$sock" --node-id sanity-node \
        --state-dir "$dir/state" --data-dir "$dir/data" --kubelet-dir "$dir" \
        --max-volumes-per-node 16 --capacity 50Gi \
        >"$dir/driver.log" 2>&1 &
    DRIVER_PID=$!
    for _ in $(seq 100); do [[ -S "$sock" ]] && break; sleep 0.1; done
    if [[ ! -S "$sock" ]]; then
        echo "berth csi did not start; log:" >&2
        cat "$dir/driver.log" >&2
        STATUS=1
        stop_driver
        return
    fi
    "$SANITY" \
        --csi.endpoint "unix://$sock" \
        --csi.mountdir "$dir/mount" \
        --csi.stagingdir "$dir/staging" \
        --csi.testvolumesize $((64 * 1024 * 1024)) \
        --csi.testvolumeexpandsize $((128 * 1024 * 1024)) \
        --csi.testnodevolumeattachlimit \
        --csi.testvolumeparameters "$params" \
        --csi.testvolumeaccesstype "$access" \
        --ginkgo.no-color \
        >"$dir/sanity.log" 2>&1
    local rc=$?
    stop_driver
    if [[ $rc -ne 0 ]]; then
        grep -E "^\s*\[FAIL\]|^• \[FAILED\]" "$dir/sanity.log" | sed 's/^/    /' | head -40
        echo "    (driver log tail)"; tail -20 "$dir/driver.log" | sed 's/^/    /'
        STATUS=1
    fi
    grep -E "^Ran [0-9]+ of [0-9]+ Specs" "$dir/sanity.log"
    local summary
    summary="$(grep -E "[0-9]+ Passed \| [0-9]+ Failed \| [0-9]+ Pending \| [0-9]+ Skipped" "$dir/sanity.log" | tail -1)"
    if [[ -z "$summary" ]]; then
        echo "no Ginkgo summary from csi-sanity [$name]; log tail:" >&2
        tail -30 "$dir/sanity.log" >&2
        STATUS=1
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    echo "$summary"
    local p f
    p="$(sed -E 's/.* ([0-9]+) Passed.*/\1/' <<<"$summary")"
    f="$(sed -E 's/.* ([0-9]+) Failed.*/\1/' <<<"$summary")"
    TOTAL_PASSED=$((TOTAL_PASSED + p))
    TOTAL_FAILED=$((TOTAL_FAILED + f))
    if [[ "$f" -ne 0 ]]; then STATUS=1; fi
}

run_suite mount-dir mount "$REPO/tests/csi/params.yaml"
run_suite mount-ext4 mount "$REPO/tests/csi/params-ext4.yaml"
run_suite block block "$REPO/tests/csi/params.yaml"

echo "csi-sanity: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
exit $STATUS
