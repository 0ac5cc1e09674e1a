#!/usr/bin/env bash
# Runs the five side-by-side comparisons of berth against upstream and
# renders them: bench/results/comparisons.md and bench/results/<group>.png.
#
#   bench/compare.sh                 default sizes, 3 rounds (minutes on 2 cores)
#   bench/compare.sh --smoke         tiny sizes, 1 round, into a temp dir (for CI)
#   bench/compare.sh --rounds 5 --only matching,csi-driver
#   bench/compare.sh --skip csi-driver --out /tmp/results
#
# In order: builds berth and the bench binaries (cargo, release) and the
# upstream peers (bench/peers/build.sh: Go, pinned, cached under .cache/);
# clears the output directory's results; runs
#   1 matching        match_bench     (FindMatchingVolume replay)
#   2 static-binding  cluster_bench   (kube-controller-manager's PV binder)
#   3 provisioning    cluster_bench   (CSI external-provisioner)
#   4 csi-driver      csi_compare     (csi-test's mock CSI driver)
#   5 ceiling         cluster_bench   (bare API writes)
# and renders what they wrote (with --only/--skip, the results other groups
# left in the output directory are rendered too). A comparison that fails (a peer that does not
# build, a side that does not start or produce output) is listed as failed
# in comparisons.md with its reason and no figures, the others still run, and
# the script exits 1. Logs of each step: .cache/bench/logs/<group>.log.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
GROUPS_ALL=(matching static-binding provisioning csi-driver ceiling)

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

smoke=false rounds="" out="" only="" skip=""
args=("$@")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=true ;;
        --rounds) rounds="${2:?--rounds needs a value}"; shift ;;
        --out) out="${2:?--out needs a value}"; shift ;;
        --only) only="${2:?--only needs a value}"; shift ;;
        --skip) skip="${2:?--skip needs a value}"; shift ;;
        -h|--help) usage ;;
        *) echo "compare.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done

if $smoke; then
    rounds="${rounds:-1}"
    out="${out:-$(mktemp -d "${TMPDIR:-/tmp}/berth-compare-smoke.XXXXXX")}"
    MATCH_SIZES=300
    CSI_EXISTING=10,100
    CSI_OPS=20
else
    rounds="${rounds:-3}"
    out="${out:-$HERE/results}"
    MATCH_SIZES="${MATCH_SIZES:-1000,10000,50000}"
    CSI_EXISTING="${CSI_EXISTING:-100,1000,10000}"
    CSI_OPS="${CSI_OPS:-200}"
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
LOGS="$REPO/.cache/bench/logs"
mkdir -p "$LOGS"
BIN="$REPO/target/release"

selected() {
    local g="$1"
    if [[ -n "$only" && ",$only," != *",$g,"* ]]; then return 1; fi
    if [[ -n "$skip" && ",$skip," == *",$g,"* ]]; then return 1; fi
    return 0
}

failed=()
fail() {
    # $1 = group, $2 = reason (one line); kept next to the results so that
    # rendering the directory again still lists it.
    echo "compare.sh: $1 FAILED: $2" >&2
    failed+=("$1")
    echo "$2" >"$out/$1.failed"
}

# The last lines a failed step printed, as one line for the table.
reason_from() {
    grep -v '^\s*$' "$1" | tail -n 3 | tr '\n\t' '  ' | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-400
}

echo "==> building berth and the bench binaries (release)" >&2
if ! (cd "$REPO" && cargo build --release -p berth -p berth-bench --bins) >"$LOGS/build.log" 2>&1; then
    cat "$LOGS/build.log" >&2
    echo "compare.sh: cargo build failed; nothing was measured" >&2
    exit 1
fi

echo "==> building the upstream peers" >&2
peer_ok() { "$HERE/peers/build.sh" "$1" >"$LOGS/peer-$1.log" 2>&1; }
matching_peer=true mock_peer=true
if selected matching && ! peer_ok matching; then matching_peer=false; fi
if selected csi-driver && ! peer_ok mock; then mock_peer=false; fi
# cluster_bench builds the external-provisioner itself (the same script) and
# fails its comparisons loudly if that fails; building it here up front just
# keeps the build logs together.
if selected provisioning || selected ceiling; then peer_ok provisioner || true; fi

# Only this run's figures may end up in the table: drop the results of the
# groups about to run (those of groups not selected stay, and are rendered).
for f in "$out"/*.json; do
    [[ -e "$f" ]] || continue
    g="$(sed -n 's/^ *"group": *"\([^"]*\)".*/\1/p' "$f" | head -n 1)"
    if [[ -z "$g" ]] || selected "$g"; then rm -f "$f"; fi
done
for g in "${GROUPS_ALL[@]}"; do
    if selected "$g"; then rm -f "$out/$g.failed"; fi
done
rm -f "$out"/*.png "$out"/comparisons.md

run_step() {
    # $1 = group, rest = command; its output goes to the terminal and the log.
    local group="$1"; shift
    echo "==> $group: $*" >&2
    if ! "$@" 2>&1 | tee "$LOGS/$group.log"; then
        fail "$group" "$(reason_from "$LOGS/$group.log")"
    fi
}

cluster_step() {
    local group="$1"
    if [[ ! -x "$BIN/cluster_bench" ]]; then
        fail "$group" "cluster_bench is not built (target/release/cluster_bench missing)"
        return
    fi
    if $smoke; then
        run_step "$group" "$BIN/cluster_bench" "$group" --smoke --out "$out"
    else
        run_step "$group" "$BIN/cluster_bench" "$group" --rounds "$rounds" --out "$out"
    fi
}

for group in "${GROUPS_ALL[@]}"; do
    selected "$group" || continue
    case "$group" in
        matching)
            if $matching_peer; then
                run_step matching "$BIN/match_bench" --sizes "$MATCH_SIZES" --rounds "$rounds" --out "$out"
            else
                fail matching "upstream peer did not build: $(reason_from "$LOGS/peer-matching.log")"
            fi
            ;;
        csi-driver)
            if $mock_peer; then
                run_step csi-driver "$BIN/csi_compare" --existing "$CSI_EXISTING" --ops "$CSI_OPS" \
                    --rounds "$rounds" --out "$out"
            else
                fail csi-driver "upstream csi-test mock driver did not build: $(reason_from "$LOGS/peer-mock.log")"
            fi
            ;;
        *) cluster_step "$group" ;;
    esac
done

rerun="bench/compare.sh${args[*]:+ ${args[*]}}"
ran=()
for g in "${GROUPS_ALL[@]}"; do selected "$g" && ran+=("$g"); done
generated="Generated $(date -u '+%Y-%m-%d %H:%M UTC') by \`$rerun\` at commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)."
if [[ ${#ran[@]} -lt ${#GROUPS_ALL[@]} ]]; then
    generated+=" That run covered ${ran[*]}; the other groups' rows are from earlier runs."
    rerun="bench/compare.sh    # all five comparisons
$rerun    # the last run"
fi
echo "==> rendering $out/comparisons.md" >&2
if ! "$BIN/render_results" --dir "$out" --generated "$generated" --rerun "$rerun"; then
    echo "compare.sh: rendering failed" >&2
    exit 1
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "compare.sh: failed: ${failed[*]}; see $out/comparisons.md" >&2
    exit 1
fi
echo "compare.sh: all selected comparisons ran; see $out/comparisons.md" >&2
