#!/usr/bin/env bash
# Instructions per guest request, counted by valgrind's callgrind: repeatable to a few tenths of a
# percent on any machine, where requests/s under wrk move with the machine (issue 7). Every
# instruction count in the README's Performance section comes from this script.
#
# Starts, on 127.0.0.1 with free ports and a temp directory: the upstream nginx of compare.sh and
# casegate (release build, plain HTTP, [server] workers = 2) under callgrind. Opens a `casegate
# mint` link for the guest cookie, warms up with WARMUP requests on one keep-alive connection,
# zeroes the counters, sends COUNT more on one keep-alive connection (each checked: 200 and the
# JSON's size), dumps the counters and prints the instructions per request. The whole process is
# counted (both workers, the access log's writer thread), as the CPU time in compare.sh is.
#
# Usage: benches/load/callgrind.sh [--count 2000] [--warmup 200] [--keep] [--annotate N]
#   --annotate N  also print the N functions with the most instructions (inclusive and self)
# CASEGATE_BIN=path skips `cargo build --release` and uses that binary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=2000
WARMUP=200
ANNOTATE=0
while (($#)); do
    case $1 in
    --count) COUNT=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --annotate) ANNOTATE=$2; shift 2 ;;
    --keep) KEEP_WORK=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "--count must be a whole number >= 1"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "--warmup must be a whole number"

require_tools nginx:nginx valgrind:valgrind callgrind_control:valgrind \
    callgrind_annotate:valgrind python3:python3 truncate:coreutils
build_casegate
setup_work_dir

free_ports 2
read -r UP_PORT CASEGATE_PORT <<<"${PORTS[*]}"
new_casegate_key
start_upstream "$UP_PORT" 1M
OUT="$WORK/callgrind.out"
CASEGATE_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=$OUT"
start_casegate casegate "$CASEGATE_PORT" plain
COOKIE=$(guest_cookie "$CASEGATE_CONFIG")
URL="http://127.0.0.1:$CASEGATE_PORT$JSON_PATH"

sequential() { "${LOADTOOL[@]}" sequential "$URL" --header "Cookie: $COOKIE" --count "$1"; }
((WARMUP == 0)) || sequential "$WARMUP"
callgrind_control --zero "$CASEGATE_PID" >/dev/null 2>&1 || die "callgrind_control --zero failed"
sequential "$COUNT"
callgrind_control --dump=measured "$CASEGATE_PID" >/dev/null 2>&1 || die "callgrind_control --dump failed"

# The dump made after zeroing holds only the measured requests (its name ends in .1 or so).
DUMP=$(grep -l '^desc: Trigger: .*measured' "$OUT"* | head -1)
[[ -n $DUMP ]] || die "no callgrind dump named 'measured' in $WORK"
TOTAL=$(sed -n 's/^summary: \([0-9]*\).*/\1/p; s/^totals: \([0-9]*\).*/\1/p' "$DUMP" | head -1)
[[ -n $TOTAL ]] || die "no instruction total in $DUMP"
say "$(machine_summary)"
say "casegate $("$CASEGATE_BIN" --version 2>/dev/null || echo '(version unknown)'), $COUNT guest requests on one keep-alive connection after $WARMUP to warm up"
echo "instructions per guest request: $((TOTAL / COUNT)) ($TOTAL in all)"
if ((ANNOTATE > 0)); then
    callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null | sed -n "1,$((ANNOTATE + 25))p"
    callgrind_annotate "$DUMP" 2>/dev/null | sed -n "1,$((ANNOTATE + 25))p"
fi
