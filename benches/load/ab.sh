#!/usr/bin/env bash
# Two casegate builds in turns, to tell whether a change made the request path cheaper (issue 7).
# On a shared 2-core VM a single compare.sh run swings by more than most changes are worth (the
# same build's plain CPU per request has moved 18 -> 24 us between runs); pairs of short rounds,
# run close together in random order, let the machine's swings hit both builds alike, and the
# median of the pairs' differences says which is cheaper.
#
# Starts, on 127.0.0.1 with free ports and a temp directory: the upstream nginx of compare.sh and
# both builds (plain HTTP, [server] workers = 2, the same config and key) in front of it. Each pair
# runs one wrk round (-t2 -c64, the plain row of compare.sh, every answer checked as there) against
# each build, in random order. Prints each round, then per build the median CPU per request (user,
# kernel), median requests/s and p99, and the median of the pairs' differences (B - A) with how
# many pairs B won.
#
# Usage: benches/load/ab.sh A_BINARY B_BINARY [--pairs 12] [--duration 5] [--keep]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PAIRS=12
DURATION=5
CONNECTIONS=64
ARGS=()
while (($#)); do
    case $1 in
    --pairs) PAIRS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --keep) KEEP_WORK=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) ARGS+=("$1"); shift ;;
    esac
done
((${#ARGS[@]} == 2)) || die "give the two casegate binaries to compare (see --help)"
A_BIN=${ARGS[0]} B_BIN=${ARGS[1]}
for bin in "$A_BIN" "$B_BIN"; do
    [[ -x $bin ]] || die "$bin is not an executable"
done
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "--pairs must be a whole number >= 1"
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "--duration must be whole seconds >= 1"

require_tools nginx:nginx wrk:wrk python3:python3 truncate:coreutils
setup_work_dir
free_ports 3
read -r UP_PORT A_PORT B_PORT <<<"${PORTS[*]}"
CASEGATE_BIN=$A_BIN
new_casegate_key
start_upstream "$UP_PORT" 1M
CASEGATE_BIN=$A_BIN start_casegate build-a "$A_PORT" plain
A_PID=$CASEGATE_PID
A_COOKIE=$(CASEGATE_BIN=$A_BIN guest_cookie "$CASEGATE_CONFIG")
CASEGATE_BIN=$B_BIN start_casegate build-b "$B_PORT" plain
B_PID=$CASEGATE_PID
B_COOKIE=$(CASEGATE_BIN=$B_BIN guest_cookie "$CASEGATE_CONFIG")
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# Each build's own answer size: two builds may write different heads (a field more or less).
read -r _ A_SIZE < <("${LOADTOOL[@]}" probe "http://127.0.0.1:$A_PORT$JSON_PATH" \
    --header "Cookie: $A_COOKIE" --expect 200 --body-bytes "$JSON_BYTES")
read -r _ B_SIZE < <("${LOADTOOL[@]}" probe "http://127.0.0.1:$B_PORT$JSON_PATH" \
    --header "Cookie: $B_COOKIE" --expect 200 --body-bytes "$JSON_BYTES")

# round BUILD PAIR PID PORT COOKIE
round() {
    local size=$A_SIZE
    [[ $1 == b ]] && size=$B_SIZE
    measure_round ab "$1" "$2" "$3" wrk --response-size "$size" --connections "$CONNECTIONS" -- \
        wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$LOAD_DIR/wrk_summary.lua" \
        -H "Cookie: $5" "http://127.0.0.1:$4$JSON_PATH"
}

say "$(machine_summary)"
say "A: $(casegate_identity "$A_BIN"); B: $(casegate_identity "$B_BIN"); $PAIRS pairs of ${DURATION}s rounds"
for build in a b; do # warm-up, not counted
    port=$A_PORT cookie=$A_COOKIE
    [[ $build == b ]] && port=$B_PORT cookie=$B_COOKIE
    wrk -t2 -c"$CONNECTIONS" -d2s -H "Cookie: $cookie" "http://127.0.0.1:$port$JSON_PATH" >/dev/null 2>&1 ||
        die "warm-up of build $build failed"
done
for ((pair = 1; pair <= PAIRS; pair++)); do
    if ((RANDOM % 2)); then
        round a "$pair" "$A_PID" "$A_PORT" "$A_COOKIE"
        round b "$pair" "$B_PID" "$B_PORT" "$B_COOKIE"
    else
        round b "$pair" "$B_PID" "$B_PORT" "$B_COOKIE"
        round a "$pair" "$A_PID" "$A_PORT" "$A_COOKIE"
    fi
done
"${LOADTOOL[@]}" pairs --results "$RESULTS"
