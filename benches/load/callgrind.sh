#!/usr/bin/env bash
# Instructions per guest request, counted by valgrind's callgrind: repeatable to a few tenths of a
# percent on any machine, where requests/s under wrk move with the machine (issue 7). Every
# instruction count in the README's Performance section comes from this script.
#
# Starts, on 127.0.0.1 with free ports and a temp directory: the upstream nginx of compare.sh and
# casegate (release build, plain HTTP or with --tls HTTPS, [server] workers = 2) under callgrind.
# Opens a `casegate mint` link for the guest cookie, warms up with WARMUP requests on one
# keep-alive connection (on each of --connections), zeroes the counters, sends COUNT more on the
# same connection (shared out over the connections; each checked: 200 and the JSON's size), dumps
# the counters and prints the instructions per request.
# The whole process is counted (both workers, the access log's writer thread), as the CPU time in
# compare.sh is.
#
# Usage: benches/load/callgrind.sh [--count 2000] [--warmup 200] [--keep] [--annotate N]
#                                  [--gateway casegate|nginx] [--cache-sim] [--locked] [--tls]
#                                  [--per-thread] [--connections 1]
#   --annotate N  also print the N functions with the most instructions (inclusive and self)
#   --gateway nginx  counts compare.sh's nginx secure_link gateway instead, with a signed URL:
#                 one process (`master_process off`, one worker), the same config otherwise
#   --cache-sim   also simulates the caches and branch predictors (callgrind's --cache-sim and
#                 --branch-sim, sized as this machine's) and prints per request: data reads and
#                 writes, L1 misses (instructions, data read, data write) and mispredicted
#                 branches. Instruction counts alone miss what the two gateways do to the caches.
#   --locked      also counts the locked read-modify-write instructions (atomic adds, swaps,
#                 compare-exchanges, lock and unlock) run per request, with the sites that run
#                 most of them: each is a full barrier of some 20 cycles that an instruction count
#                 weighs as one (needs objdump and addr2line: apt-get install binutils)
#   --per-thread  also prints each busy thread's share: casegate's workers and its access-log
#                 writer are counted apart (callgrind's --separate-threads), so that a change is
#                 seen in the thread it was made for; a thread with under 0.5% of the
#                 instructions is left out of the list. Not with --annotate, --locked or
#                 --cache-sim, which read one dump of the whole process
#   --connections N  the COUNT requests (and each connection's WARMUP) on N keep-alive
#                 connections at once: on one, the gateway has one request to work on at a time
#                 and its worker's loop parks and wakes twice a request; on several in flight
#                 together it takes more than one a turn, as under load, where the park and the
#                 reactor's turn are shared by many requests and count far less a request
#   --tls         the requests go over TLS (TLS 1.3, the ECDSA P-256 certificate of compare.sh's
#                 TLS row) on their connections; the handshakes are in the warm-up, not counted
# CASEGATE_BIN=path skips `cargo build --release` and uses that binary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=2000
WARMUP=200
GATEWAY=casegate
CACHE_SIM=0
LOCKED=0
ANNOTATE=0
TLS=0
PER_THREAD=0
CONNECTIONS=1
while (($#)); do
    case $1 in
    --count) COUNT=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --annotate) ANNOTATE=$2; shift 2 ;;
    --keep) KEEP_WORK=1; shift ;;
    --gateway) GATEWAY=$2; shift 2 ;;
    --cache-sim) CACHE_SIM=1; shift ;;
    --locked) LOCKED=1; shift ;;
    --tls) TLS=1; shift ;;
    --per-thread) PER_THREAD=1; shift ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "--count must be a whole number >= 1"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "--warmup must be a whole number"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "--connections must be a whole number >= 1"
((CONNECTIONS <= COUNT)) || die "--connections must be at most --count"
[[ $GATEWAY == casegate || $GATEWAY == nginx ]] || die "--gateway must be casegate or nginx"
if ((PER_THREAD && (ANNOTATE > 0 || CACHE_SIM || LOCKED))); then
    die "--per-thread cannot be combined with --annotate, --locked or --cache-sim"
fi

require_tools nginx:nginx valgrind:valgrind callgrind_control:valgrind \
    callgrind_annotate:valgrind python3:python3 truncate:coreutils
((TLS)) && require_tools openssl:openssl
((LOCKED)) && require_tools objdump:binutils addr2line:binutils
[[ $GATEWAY == casegate ]] && build_casegate
setup_work_dir

free_ports 3
read -r UP_PORT GATEWAY_PORT TLS_PORT <<<"${PORTS[*]}"
SCHEME=http MODE=plain CAFILE=""
if ((TLS)); then
    make_cert
    SCHEME=https MODE=tls CAFILE=$CERT
fi
start_upstream "$UP_PORT" 1M
OUT="$WORK/callgrind.out"
VALGRIND=(valgrind --tool=callgrind "--callgrind-out-file=$OUT")
((CACHE_SIM)) && VALGRIND+=(--cache-sim=yes --branch-sim=yes)
((LOCKED)) && VALGRIND+=(--dump-instr=yes)
((PER_THREAD)) && VALGRIND+=(--separate-threads=yes)
if [[ $GATEWAY == casegate ]]; then
    new_casegate_key
    CASEGATE_WRAPPER="${VALGRIND[*]}"
    start_casegate casegate "$GATEWAY_PORT" "$MODE"
    GATEWAY_PID=$CASEGATE_PID
    HEADERS=(--header "Cookie: $(guest_cookie "$CASEGATE_CONFIG" "$CAFILE")")
    URL="$SCHEME://127.0.0.1:$GATEWAY_PORT$JSON_PATH"
    VERSION=$(casegate_identity "$CASEGATE_BIN")
else
    dir="$WORK/nginx-gateway"
    mkdir -p "$dir"
    # One process that serves, so the one callgrind follows is the one that works.
    # With --tls the requests go to its TLS port; the plain one is where it is waited for.
    tls_port=""
    ((TLS)) && tls_port=$TLS_PORT
    { nginx_gateway_conf "$dir" "$GATEWAY_PORT" "$tls_port" 1; echo "master_process off;"; } >"$dir/nginx.conf"
    start_nginx "$dir" "$GATEWAY_PORT" "${VALGRIND[@]}"
    GATEWAY_PID=$NGINX_PID
    HEADERS=()
    SIGNED=$("${LOADTOOL[@]}" secure-link "$JSON_PATH" --secret "$NGINX_SECURE_LINK_SECRET" --ttl 86400)
    URL="http://127.0.0.1:$GATEWAY_PORT$SIGNED"
    ((TLS)) && URL="https://127.0.0.1:$TLS_PORT$SIGNED"
    VERSION="$(nginx -v 2>&1 | sed 's/^nginx version: //') secure_link"
fi

# The warm-up and the counted requests on the same connections: their setup (and TLS handshakes)
# is warm-up, and the counters are zeroed between the two.
"${LOADTOOL[@]}" sequential "$URL" "${HEADERS[@]}" ${CAFILE:+--cafile "$CAFILE"} --warmup "$WARMUP" \
    --between "callgrind_control --zero $GATEWAY_PID >/dev/null 2>&1" --count "$COUNT" \
    --connections "$CONNECTIONS" ||
    die "the requests failed (above)"
callgrind_control --dump=measured "$GATEWAY_PID" >/dev/null 2>&1 || die "callgrind_control --dump failed"

# The dump made after zeroing holds only the measured requests (its name ends in .1 or so; with
# --per-thread there is one such file a thread, ending in .1-01, .1-02 and so on).
mapfile -t DUMPS < <(grep -l '^desc: Trigger: .*measured' "$OUT"*)
((${#DUMPS[@]} > 0)) || die "no callgrind dump named 'measured' in $WORK"
DUMP=${DUMPS[0]}
# What each dump counted, in the order of DUMPS, and their sum.
COUNTED=()
TOTAL=0
for dump in "${DUMPS[@]}"; do
    counted=$(sed -n 's/^summary: \([0-9]*\).*/\1/p; s/^totals: \([0-9]*\).*/\1/p' "$dump" | head -1)
    [[ -n $counted ]] || die "no instruction total in $dump"
    COUNTED+=("$counted")
    TOTAL=$((TOTAL + counted))
done
say "$(machine_summary)"
if ((CONNECTIONS == 1)); then
    say "$VERSION, $COUNT guest requests on one keep-alive $SCHEME connection after $WARMUP to warm up"
else
    say "$VERSION, $COUNT guest requests on $CONNECTIONS keep-alive $SCHEME connections at once, after $WARMUP on each to warm up"
fi
echo "instructions per guest request: $((TOTAL / COUNT)) ($TOTAL in all)"
if ((PER_THREAD)); then
    # Threads are told apart by the source they ran: callgrind numbers them, it does not name them.
    for index in "${!DUMPS[@]}"; do
        dump=${DUMPS[$index]} counted=${COUNTED[$index]}
        ((counted * 200 >= TOTAL)) || continue
        thread=$(sed -n 's/^thread: //p' "$dump" | head -1)
        if [[ $GATEWAY == nginx ]]; then
            role="nginx"
        elif grep -q 'src/access_log/writer.rs' "$dump"; then
            role="access-log writer"
        elif grep -q 'src/server/connection.rs' "$dump"; then
            role="worker"
        else
            role="other"
        fi
        printf '  thread %s (%s): %d a request (%d%%)\n' "$thread" "$role" \
            $((counted / COUNT)) $((counted * 100 / TOTAL))
    done
fi
if ((CACHE_SIM)); then
    # The events line names the columns of the summary line.
    python3 - "$DUMP" "$COUNT" <<'EOF'
import sys
events = summary = None
for line in open(sys.argv[1]):
    if line.startswith("events:"):
        events = line.split()[1:]
    elif line.startswith(("summary:", "totals:")) and summary is None:
        summary = [int(value) for value in line.split()[1:]]
per = dict(zip(events, (value / int(sys.argv[2]) for value in summary)))
print("per guest request: data reads %.0f, data writes %.0f; L1 misses: instructions %.0f, "
      "data read %.0f, data write %.0f; mispredicted branches %.0f (conditional %.0f, indirect %.0f)"
      % (per["Dr"], per["Dw"], per["I1mr"], per["D1mr"], per["D1mw"],
         per["Bcm"] + per["Bim"], per["Bcm"], per["Bim"]))
EOF
fi
if ((LOCKED)); then
    if [[ $GATEWAY == casegate ]]; then binary=$CASEGATE_BIN; else binary=$(command -v nginx); fi
    "${LOADTOOL[@]}" locked "$DUMP" "$binary" "$COUNT" || die "counting locked instructions failed"
fi
if ((ANNOTATE > 0)); then
    callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null | sed -n "1,$((ANNOTATE + 25))p"
    callgrind_annotate "$DUMP" 2>/dev/null | sed -n "1,$((ANNOTATE + 25))p"
fi
