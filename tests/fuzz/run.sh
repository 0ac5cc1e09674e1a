#!/usr/bin/env bash
# Runs berth's fuzz targets (cargo-fuzz, libFuzzer) for a bounded time each:
#   manifest      arbitrary bytes through the manifest loader, the converter,
#                 the planner and `explain`;
#   quantity      arbitrary strings through the quantity parser, checking that
#                 the canonical form parses back to the same value;
#   csi_requests  arbitrary protobuf bodies of the CSI requests through the
#                 validation berth runs before it touches store or disk.
# Installs cargo-fuzz when missing, builds with the nightly toolchain (the
# project's machines have one), seeds each corpus from examples/, the test
# YAML and deploy/, then fuzzes each target for --seconds (default 30).
# Corpora grow under tests/fuzz/corpus/ (git-ignored) from run to run.
# A crash, panic, leak or timeout leaves its input under
# tests/fuzz/artifacts/<target>/ and prints the command that reproduces it.
# Prints "fuzz[<target>]: N executions ..." per target and a closing
# "fuzz: N passed, N failed" line; exits non-zero if any target failed.
#
#   tests/fuzz/run.sh                      # CI: 30 s per target
#   tests/fuzz/run.sh --seconds 3600       # a longer hunt
#   tests/fuzz/run.sh --seconds 600 quantity
set -uo pipefail

FUZZ="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$FUZZ/../.." && pwd)"
ALL_TARGETS=(manifest quantity csi_requests)
SECONDS_PER_TARGET=30
TARGETS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) SECONDS_PER_TARGET="${2:-}"; shift 2 ;;
        --seconds=*) SECONDS_PER_TARGET="${1#--seconds=}"; shift ;;
        -h | --help) sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | sed '$d'; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --seconds needs a positive number" >&2; exit 2; }
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")

# libFuzzer's instrumentation needs nightly; the sanitizer is off (berth is
# safe Rust: a panic is what we look for, and it builds and runs several
# times faster), debug assertions and overflow checks are on, and the
# build uses 16 codegen units (cargo-fuzz's default of 1 makes berth's own
# crate alone take over ten minutes on two cores).
FLAGS=(--fuzz-dir "$FUZZ" --sanitizer none --debug-assertions --codegen-units 16)
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "==> installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal || exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked || exit 1
fi

echo "==> building the fuzz targets (tests/fuzz/target)"
start=$SECONDS
(cd "$FUZZ" && cargo +nightly fuzz build "${FLAGS[@]}") || {
    echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
    exit 1
}
echo "built in $((SECONDS - start)) s"

# Seeds: every manifest the repository ships or tests with, and the
# quantities written in them. Copied in under their content's hash, so
# reruns add nothing twice.
seed() {
    local dir="$FUZZ/corpus/$1" file="$2"
    mkdir -p "$dir"
    cp -n "$file" "$dir/seed-$(sha1sum "$file" | cut -c1-16)"
}
yaml=$(cd "$REPO" && find examples tests deploy \( -name target -o -name .cache -o -name fuzz \) -prune \
    -o -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) -print | sort)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for f in $yaml; do
    seed manifest "$REPO/$f"
    grep -ohE '(storage|capacity|requests\.storage|limits\.storage): *"?[0-9][0-9.eE+-]*[a-zA-Z]*"?' "$REPO/$f" |
        sed -E 's/^[^:]*: *"?//; s/"$//'
done | sort -u | while read -r q; do
    printf '%s' "$q" >"$tmp/q"
    seed quantity "$tmp/q"
done
for q in 0 1 1Gi 1G 500m 1e3 1.5Ti 100Ei 9223372036854775807 0.000000001 -1Ki 1E 1e-9 12345678901234567890123; do
    printf '%s' "$q" >"$tmp/q"
    seed quantity "$tmp/q"
done
mkdir -p "$FUZZ/corpus/csi_requests"

PASSED=0
FAILED=0
SUMMARY=()
for t in "${TARGETS[@]}"; do
    echo "==> fuzzing $t for ${SECONDS_PER_TARGET} s"
    log="$tmp/$t.log"
    artifacts="$FUZZ/artifacts/$t"
    mkdir -p "$artifacts"
    stamp="$tmp/$t.start"
    touch "$stamp"
    (cd "$FUZZ" && cargo +nightly fuzz run "${FLAGS[@]}" "$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -close_fd_mask=1) >"$log" 2>&1
    rc=$?
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    execs=${execs:-0}
    found=$(find "$artifacts" -type f -newer "$stamp" | sort)
    if [[ $rc -eq 0 && -z "$found" ]]; then
        PASSED=$((PASSED + 1))
        line="fuzz[$t]: $execs executions in ${SECONDS_PER_TARGET} s, 0 crashes, corpus $(find "$FUZZ/corpus/$t" -type f | wc -l) inputs"
    else
        FAILED=$((FAILED + 1))
        line="fuzz[$t]: FAILED after $execs executions (exit $rc)"
        grep -E "^(thread '.*' panicked|==[0-9]+== ?ERROR|SUMMARY|Failing input|panicked at)" -A3 "$log" | head -20 >&2
        for a in $found; do
            echo "    reproduce: (cd tests/fuzz && cargo +nightly fuzz run --fuzz-dir . --sanitizer none --debug-assertions --codegen-units 16 $t ${a#"$FUZZ"/})" >&2
        done
        [[ -n "$found" ]] || tail -30 "$log" >&2
    fi
    echo "$line"
    SUMMARY+=("$line")
done

echo
printf '%s\n' "${SUMMARY[@]}"
echo "fuzz: $PASSED passed, $FAILED failed"
((FAILED == 0))
