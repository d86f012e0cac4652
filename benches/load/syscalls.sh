#!/usr/bin/env bash
# The system calls a guest request costs each gateway, counted by strace (issue 7). On this kind of
# host most of a gateway's CPU a request is the kernel's (compare.sh's kernel column), and the
# calls a request makes are what that kernel time is spent on: this shows them side by side.
#
# Starts, as compare.sh does, on 127.0.0.1 with free ports and a temp directory: the upstream
# nginx, nginx as the secure_link gateway (2 workers) and casegate (plain HTTP, 2 workers). Then,
# for each gateway in turn: attaches `strace -f -c` to its processes (nginx's master and workers;
# casegate's process, every thread), runs one round of compare.sh's plain row (wrk -t2 -c64,
# keep-alive, every answer checked as there), detaches, and prints each system call's count and
# failures per request served. strace stops a process at every call, so the round runs far
# slower than a measured one and its rate means nothing; the counts per request are the point.
# It also prints the TCP segments this host sent a request during each round (/proc/net/snmp's
# OutSegs, every process's: wrk's, the gateway's, the upstream's): four when every hop's message
# goes as one segment and every ACK rides on an answer, more when a gateway splits a head from its
# body or an ACK goes alone. The loopback stack's work, most of the kernel time, is per segment.
#
# With --sched, each gateway then serves one more round with no strace attached, under
# `perf stat` (needs linux-perf) counting the threads its system calls woke (sched_waking, counted
# in the waker's context: over loopback a write's delivery, and the wake-up of the peer's reader,
# run inside the writer's call) and the times its own threads were switched out, per request
# served: what the kernel time a request goes on besides the calls, and the round's CPU a request.
#
# Usage: benches/load/syscalls.sh [--duration 4] [--sched] [--keep]
# CASEGATE_BIN=path skips `cargo build --release` and uses that binary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=4
CONNECTIONS=64
SCHED=0
while (($#)); do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --sched) SCHED=1; shift ;;
    --keep) KEEP_WORK=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

require_tools nginx:nginx wrk:wrk strace:strace openssl:openssl python3:python3 \
    truncate:coreutils
((SCHED == 0)) || require_tools perf:linux-perf
build_casegate
setup_work_dir
free_ports 4
read -r UP_PORT NGINX_PORT NGINX_TLS_PORT CASEGATE_PORT <<<"${PORTS[*]}"
make_cert
new_casegate_key
start_upstream "$UP_PORT" 1M
start_nginx_gateway "$NGINX_PORT" "$NGINX_TLS_PORT"
start_casegate casegate-plain "$CASEGATE_PORT" plain
COOKIE=$(guest_cookie "$CASEGATE_CONFIG")
SIGNED=$("${LOADTOOL[@]}" secure-link "$JSON_PATH" --secret "$NGINX_SECURE_LINK_SECRET" --ttl 86400)
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
say "$(machine_summary)"

probe() { "${LOADTOOL[@]}" probe "$@"; }
read -r _ NGINX_SIZE < <(probe "http://127.0.0.1:$NGINX_PORT$SIGNED" --expect 200 --body-bytes "$JSON_BYTES")
read -r _ CASEGATE_SIZE < <(probe "http://127.0.0.1:$CASEGATE_PORT$JSON_PATH" \
    --header "Cookie: $COOKIE" --expect 200 --body-bytes "$JSON_BYTES")

# tcp_segments_sent - the TCP segments this host has sent since boot (OutSegs, /proc/net/snmp):
# the first Tcp: line names the columns, the second holds the values.
tcp_segments_sent() {
    awk '$1 == "Tcp:" { if (!column) { for (i = 2; i <= NF; i++) if ($i == "OutSegs") column = i }
                        else print $column }' /proc/net/snmp
}

# plain_round GATEWAY "PIDS" SIZE URL [HEADER]: one round of compare.sh's plain row against the
# gateway (every answer checked), its requests and the CPU of PIDS recorded in $RESULTS.
plain_round() {
    local header=()
    [[ -n ${5:-} ]] && header=(-H "$5")
    measure_round plain "$1" 1 "$2" wrk --response-size "$3" --connections "$CONNECTIONS" -- \
        wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$LOAD_DIR/wrk_summary.lua" \
        "${header[@]}" "$4"
}

# counted_round GATEWAY "PIDS" SIZE URL [HEADER]: one plain_round with strace attached to PIDS; the
# segments the host sent during it go to SEGMENTS as GATEWAY=COUNT.
SEGMENTS=()
counted_round() {
    local gateway=$1 attach=() pid tracer segments_before
    for pid in $2; do attach+=(-p "$pid"); done
    strace -f -c -o "$WORK/strace.$gateway" "${attach[@]}" 2>"$WORK/strace.$gateway.log" &
    tracer=$!
    STARTED_PIDS+=("$tracer")
    # Time for strace to attach to every thread before the round starts.
    sleep 1
    segments_before=$(tcp_segments_sent)
    plain_round "$@"
    SEGMENTS+=("$gateway=$(($(tcp_segments_sent) - segments_before))")
    kill -INT "$tracer"
    wait "$tracer" || true
    [[ -s $WORK/strace.$gateway ]] || die "strace wrote no counts for $gateway: $(tail -3 "$WORK/strace.$gateway.log")"
}

# sched_round GATEWAY "PIDS" SIZE URL [HEADER]: one plain_round, no strace, with `perf stat`
# counting on PIDS' threads; its requests go to SCHED_RESULTS, perf's counts to $WORK/sched.GATEWAY.
SCHED_RESULTS="$WORK/sched-results.jsonl"
sched_round() {
    local gateway=$1 counter
    # perf stat -p counts every thread the processes have when it starts: all of them by now.
    perf stat -x, -e sched:sched_waking,context-switches -p "${2// /,}" \
        -o "$WORK/sched.$gateway" 2>"$WORK/sched.$gateway.log" &
    counter=$!
    STARTED_PIDS+=("$counter")
    # Time for perf to open its counters on every thread before the round starts.
    sleep 0.5
    RESULTS=$SCHED_RESULTS plain_round "$@"
    kill -INT "$counter"
    wait "$counter" || true
    [[ -s $WORK/sched.$gateway ]] || die "perf stat counted nothing for $gateway: $(tail -3 "$WORK/sched.$gateway.log")"
}

NGINX_URL="http://127.0.0.1:$NGINX_PORT$SIGNED"
CASEGATE_URL="http://127.0.0.1:$CASEGATE_PORT$JSON_PATH"
counted_round nginx "$(nginx_gateway_pids)" "$NGINX_SIZE" "$NGINX_URL"
counted_round casegate "$CASEGATE_PID" "$CASEGATE_SIZE" "$CASEGATE_URL" "Cookie: $COOKIE"
SCHED_ARGS=()
if ((SCHED)); then
    : >"$SCHED_RESULTS"
    sched_round nginx "$(nginx_gateway_pids)" "$NGINX_SIZE" "$NGINX_URL"
    sched_round casegate "$CASEGATE_PID" "$CASEGATE_SIZE" "$CASEGATE_URL" "Cookie: $COOKIE"
    SCHED_ARGS=(--sched nginx="$WORK/sched.nginx" casegate="$WORK/sched.casegate"
        --sched-results "$SCHED_RESULTS")
fi
"${LOADTOOL[@]}" syscalls --results "$RESULTS" --strace nginx="$WORK/strace.nginx" \
    casegate="$WORK/strace.casegate" --segments "${SEGMENTS[@]}" "${SCHED_ARGS[@]}"
