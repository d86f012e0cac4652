#!/usr/bin/env bash
# casegate vs nginx secure_link, side by side in one run on this machine (issue 7).
#
# Starts, on 127.0.0.1 with free ports and a temp directory: an upstream nginx (the "case app":
# a 1 KiB JSON file and a sparse video), nginx as a secure_link gateway in front of it
# (worker_processes 2) and casegate in front of it (release build, [server] workers = 2; one
# instance on plain HTTP, one on TLS). Then, row by row, it alternates the two gateways round by
# round (nginx, casegate, nginx, casegate...) so machine drift hits both, and prints per row and
# gateway: requests/s (all its rounds' requests over all their seconds), p50/p99 latency (the
# medians of the rounds') and CPU time per request (utime+stime from /proc/<pid>/stat of the
# gateway's processes - nginx master and workers, the casegate process - over the rounds,
# divided by the requests they served; split into user space and kernel, utime and stime), and
# the ratios casegate/nginx. The last ratio, casegate's kernel time against nginx's whole CPU
# time, is the floor under the CPU ratio: no user-space saving takes casegate below it. A `round
# by round` line per row gives the CPU and requests/s ratios of each round's pair (casegate's
# round and nginx's just before it), lowest, median and highest: how far the run's total could
# have landed elsewhere; and the ratio of the medians of each gateway's rounds, the requests/s
# statistic until stop 68 (benches/HISTORY.md). A `whole machine` line per row gives the CPU a
# request of every process on the machine (client, upstream, gateway, the kernel's threads;
# /proc/stat) in each gateway's rounds: while the client, the upstream and the gateway keep both
# CPUs busy, requests/s follow that total, so the requests/s ratio can reach about its inverse,
# and a gateway's saving counts only for its share.
#
# Rows (guests: casegate with the cookie from opening a `casegate mint` link; nginx with an
# md5/expires signed URL; both fetch /cases/42/summary.json, 1 KiB):
#   plain      HTTP/1.1 keep-alive, 64 connections          wrk -t2 -c64
#   tls        the same over TLS (one ECDSA P-256 cert)     wrk -t2 -c64 https://
#   h2         HTTP/2 over TLS, 64 connections x 8 streams  h2load -t2 -c64 -m8
#   handshake  a new TLS connection per request: connect, full handshake (no session resumption),
#              one GET with Connection: close, status checked, close; 2 client processes in a loop
#   direct     wrk straight to the upstream, the ceiling (CPU is the upstream nginx's)
#   relay      not run unless asked for (it needs haproxy): nginx against haproxy relaying TCP to
#              the upstream, the plain row's traffic; no HTTP work at all, so the relay's CPU per
#              request is the floor under any proxy's on this machine (lib.sh start_relay). With
#              the plain row in the same run, a `floor:` line says how much of nginx's CPU the
#              plain row's targets leave a gateway above that floor, and how much casegate used
#              (each ratio from its own row's turns)
#   proxy      not run unless asked for: nginx against casegate as a bare reverse proxy (a third
#              instance, `passthrough = true`, no access log; the requests carry no cookie, so
#              they go upstream with no admission, no policy and no log line), the plain row's
#              traffic otherwise. What casegate's HTTP/1 server, upstream client and runtime cost
#              alone; with the plain row in the same run a `layers:` line says how much the
#              gateway's own work (cookie, policy, access log) adds. A diagnostic, not a way to
#              deploy casegate for guests
#
# Every response is checked: wrk's status errors (>= 400) and socket errors must be 0 and the bytes
# read must add up to the probed 200 response's size (so a 3xx would show); h2load's 3xx/4xx/5xx
# and failed/errored counts must be 0; the handshake loop checks each status. A row with any other
# answer fails loudly: a gateway that answers 403 fast is not a win. Both gateways log every
# request (to /dev/null); at the end casegate's /metrics must show no access-log line dropped for a
# full shelf, or the run fails: one that logged less than it served is not a win either.
#
# Usage: benches/load/compare.sh [--rounds N] [--duration SECONDS] [--rows plain,tls,h2,handshake,direct]
#                                (or any of them and relay, proxy)
#                                [--markdown FILE] [--keep]
# Defaults: 10 rounds of 6 s per gateway and row (about 11 minutes in all). On a shared VM one
# gateway's rounds swing by up to 40% within a minute; more turns cancel more of it. With five
# rounds (the default until stop 69) the plain ratios spread across runs with a standard deviation
# of 0.041 (requests/s) and 0.030 (CPU), about the targets' margins; with ten, 0.030 and 0.023,
# around the same means (benches/HISTORY.md, stop 69). Rounds stay 6 s: a round's first requests
# wait behind its 64 new connections (and their TLS handshakes), which shorter rounds would weigh
# more.
# CASEGATE_BIN=path skips `cargo build --release` and uses that binary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=10
DURATION=6
ROWS=plain,tls,h2,handshake,direct
MARKDOWN=""
CONNECTIONS=64
H2_STREAMS=8
COMMAND_LINE="benches/load/compare.sh $*"

while (($#)); do
    case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --markdown) MARKDOWN=$(realpath -m "$2"); shift 2 ;;
    --keep) KEEP_WORK=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a whole number >= 1"
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "--duration must be whole seconds >= 1"

require_tools nginx:nginx wrk:wrk h2load:nghttp2-client openssl:openssl python3:python3 \
    truncate:coreutils
RELAY_ROW=0
[[ ,$ROWS, == *,relay,* ]] && RELAY_ROW=1
((RELAY_ROW)) && require_tools haproxy:haproxy
PROXY_ROW=0
[[ ,$ROWS, == *,proxy,* ]] && PROXY_ROW=1
build_casegate
setup_work_dir
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

free_ports 7
read -r UP_PORT NGINX_PORT NGINX_TLS_PORT CASEGATE_PORT CASEGATE_TLS_PORT RELAY_PORT BARE_PORT \
    <<<"${PORTS[*]}"
make_cert
new_casegate_key
start_upstream "$UP_PORT" 1G
start_nginx_gateway "$NGINX_PORT" "$NGINX_TLS_PORT"
start_casegate casegate-plain "$CASEGATE_PORT" plain
CASEGATE_PLAIN_PID=$CASEGATE_PID
PLAIN_COOKIE=$(guest_cookie "$CASEGATE_CONFIG")
start_casegate casegate-tls "$CASEGATE_TLS_PORT" tls
CASEGATE_TLS_PID=$CASEGATE_PID
TLS_COOKIE=$(guest_cookie "$CASEGATE_CONFIG" "$CERT")
((RELAY_ROW)) && start_relay "$RELAY_PORT"
if ((PROXY_ROW)); then
    start_casegate casegate-bare "$BARE_PORT" bare
    CASEGATE_BARE_PID=$CASEGATE_PID
fi
SIGNED=$("${LOADTOOL[@]}" secure-link "$JSON_PATH" --secret "$NGINX_SECURE_LINK_SECRET" --ttl 86400)
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# --- both gateways guard the case before anything is measured ---
say "checking that both gateways refuse what they must and serve what they may..."
probe() { "${LOADTOOL[@]}" probe "$@"; }
probe "http://127.0.0.1:$NGINX_PORT$JSON_PATH" --expect 403 >/dev/null
probe "http://127.0.0.1:$NGINX_PORT$JSON_PATH?md5=AAAAAAAAAAAAAAAAAAAAAA&expires=${SIGNED##*expires=}" \
    --expect 403 >/dev/null
probe "http://127.0.0.1:$CASEGATE_PORT$JSON_PATH" --expect 4xx >/dev/null
probe "http://127.0.0.1:$CASEGATE_PORT/cases/43/summary.json" --header "Cookie: $PLAIN_COOKIE" \
    --expect 4xx >/dev/null

# The size of the 200 each gateway answers, which every counted byte must match.
read -r _ NGINX_SIZE < <(probe "http://127.0.0.1:$NGINX_PORT$SIGNED" --expect 200 --body-bytes "$JSON_BYTES")
read -r _ NGINX_TLS_SIZE < <(probe "https://127.0.0.1:$NGINX_TLS_PORT$SIGNED" --cafile "$CERT" \
    --expect 200 --body-bytes "$JSON_BYTES")
read -r _ CASEGATE_SIZE < <(probe "http://127.0.0.1:$CASEGATE_PORT$JSON_PATH" \
    --header "Cookie: $PLAIN_COOKIE" --expect 200 --body-bytes "$JSON_BYTES")
read -r _ CASEGATE_TLS_SIZE < <(probe "https://127.0.0.1:$CASEGATE_TLS_PORT$JSON_PATH" --cafile "$CERT" \
    --header "Cookie: $TLS_COOKIE" --expect 200 --body-bytes "$JSON_BYTES")
read -r _ DIRECT_SIZE < <(probe "http://127.0.0.1:$UP_PORT$JSON_PATH" --expect 200 --body-bytes "$JSON_BYTES")
((RELAY_ROW)) && read -r _ RELAY_SIZE < <(probe "http://127.0.0.1:$RELAY_PORT$JSON_PATH" \
    --expect 200 --body-bytes "$JSON_BYTES")
((PROXY_ROW)) && read -r _ BARE_SIZE < <(probe "http://127.0.0.1:$BARE_PORT$JSON_PATH" \
    --expect 200 --body-bytes "$JSON_BYTES")

gateway_pids() {
    case $1 in
    nginx) nginx_gateway_pids ;;
    casegate) echo "$CASEGATE_PLAIN_PID" ;;
    casegate-tls) echo "$CASEGATE_TLS_PID" ;;
    direct) "${LOADTOOL[@]}" pids "$UPSTREAM_PID" ;;
    relay) echo "$RELAY_PID" ;;
    bare) echo "$CASEGATE_BARE_PID" ;;
    esac
}

wrk_round() { # ROW GATEWAY ROUND PIDS-OF SIZE URL [HEADER]
    local header=()
    [[ -n ${7:-} ]] && header=(-H "$7")
    measure_round "$1" "$2" "$3" "$(gateway_pids "$4")" wrk --response-size "$5" \
        --connections "$CONNECTIONS" -- \
        wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$LOAD_DIR/wrk_summary.lua" \
        "${header[@]}" "$6"
}

h2_round() { # ROW GATEWAY ROUND PIDS-OF URL [HEADER]
    local header=()
    [[ -n ${6:-} ]] && header=(-H "$6")
    : >"$WORK/h2load.log"
    measure_round "$1" "$2" "$3" "$(gateway_pids "$4")" h2load --log-file "$WORK/h2load.log" -- \
        h2load -t2 -c"$CONNECTIONS" -m"$H2_STREAMS" -D "$DURATION" --log-file="$WORK/h2load.log" \
        "${header[@]}" "$5"
}

handshake_round() { # ROW GATEWAY ROUND PIDS-OF URL [HEADER]
    local header=()
    [[ -n ${6:-} ]] && header=(--header "$6")
    measure_round "$1" "$2" "$3" "$(gateway_pids "$4")" handshakes -- \
        "${LOADTOOL[@]}" handshakes "$5" --cafile "$CERT" --seconds "$DURATION" --procs 2 "${header[@]}"
}

# A short unmeasured run so pools, caches and page cache are warm before round 1.
warm_up() {
    wrk -t2 -c"$CONNECTIONS" -d2s "$@" >/dev/null 2>&1 || die "warm-up of $* failed"
}

say "machine: $(machine_summary)"
say "rows: $ROWS; $ROUNDS rounds of ${DURATION}s per gateway"
warm_up "http://127.0.0.1:$NGINX_PORT$SIGNED"
warm_up -H "Cookie: $PLAIN_COOKIE" "http://127.0.0.1:$CASEGATE_PORT$JSON_PATH"
warm_up "https://127.0.0.1:$NGINX_TLS_PORT$SIGNED"
warm_up -H "Cookie: $TLS_COOKIE" "https://127.0.0.1:$CASEGATE_TLS_PORT$JSON_PATH"
if ((PROXY_ROW)); then warm_up "http://127.0.0.1:$BARE_PORT$JSON_PATH"; fi

IFS=, read -r -a ROW_LIST <<<"$ROWS"
for row in "${ROW_LIST[@]}"; do
    say "row $row:"
    for round in $(seq 1 "$ROUNDS"); do
        case $row in
        plain)
            wrk_round plain nginx "$round" nginx "$NGINX_SIZE" "http://127.0.0.1:$NGINX_PORT$SIGNED"
            wrk_round plain casegate "$round" casegate "$CASEGATE_SIZE" \
                "http://127.0.0.1:$CASEGATE_PORT$JSON_PATH" "Cookie: $PLAIN_COOKIE"
            ;;
        tls)
            wrk_round tls nginx "$round" nginx "$NGINX_TLS_SIZE" "https://127.0.0.1:$NGINX_TLS_PORT$SIGNED"
            wrk_round tls casegate "$round" casegate-tls "$CASEGATE_TLS_SIZE" \
                "https://127.0.0.1:$CASEGATE_TLS_PORT$JSON_PATH" "Cookie: $TLS_COOKIE"
            ;;
        h2)
            h2_round h2 nginx "$round" nginx "https://127.0.0.1:$NGINX_TLS_PORT$SIGNED"
            h2_round h2 casegate "$round" casegate-tls \
                "https://127.0.0.1:$CASEGATE_TLS_PORT$JSON_PATH" "cookie: $TLS_COOKIE"
            ;;
        handshake)
            handshake_round handshake nginx "$round" nginx "https://127.0.0.1:$NGINX_TLS_PORT$SIGNED"
            handshake_round handshake casegate "$round" casegate-tls \
                "https://127.0.0.1:$CASEGATE_TLS_PORT$JSON_PATH" "Cookie: $TLS_COOKIE"
            ;;
        direct)
            wrk_round direct direct "$round" direct "$DIRECT_SIZE" "http://127.0.0.1:$UP_PORT$JSON_PATH"
            ;;
        relay)
            wrk_round relay nginx "$round" nginx "$NGINX_SIZE" "http://127.0.0.1:$NGINX_PORT$SIGNED"
            wrk_round relay relay "$round" relay "$RELAY_SIZE" "http://127.0.0.1:$RELAY_PORT$JSON_PATH"
            ;;
        proxy)
            wrk_round proxy nginx "$round" nginx "$NGINX_SIZE" "http://127.0.0.1:$NGINX_PORT$SIGNED"
            wrk_round proxy bare "$round" bare "$BARE_SIZE" "http://127.0.0.1:$BARE_PORT$JSON_PATH"
            ;;
        *) die "unknown row $row (plain, tls, h2, handshake, direct, relay, proxy)" ;;
        esac
    done
done

PREAMBLE="Machine: $(machine_summary | sed 's/, load average.*//'); load average $LOAD_BEFORE before the \
run, $(cut -d' ' -f1-3 /proc/loadavg) after. $(nginx -v 2>&1 | sed 's/^nginx version: //'), \
$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), h2load $(h2load --version | awk '{print $2}'), casegate \
$(casegate_identity "$CASEGATE_BIN"); the scripts of checkout \
$(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown). \
Command: \`$COMMAND_LINE\` \
($ROUNDS rounds of ${DURATION}s per gateway and row; requests/s and CPU over all the rounds, latencies the medians of the rounds)."
say ""
"${LOADTOOL[@]}" table "$RESULTS" ${MARKDOWN:+--markdown "$MARKDOWN"} --preamble "$PREAMBLE"
[[ -n $MARKDOWN ]] && say "Markdown table written to $MARKDOWN"

# nginx writes every request's line; casegate must have too, or it was measured doing less.
PLAIN_DROPS=$(access_log_drops casegate-plain)
TLS_DROPS=$(access_log_drops casegate-tls)
if ((PLAIN_DROPS + TLS_DROPS > 0)); then
    die "casegate dropped access-log lines during the run (plain $PLAIN_DROPS, TLS $TLS_DROPS):" \
        "it logged less than it served, so the comparison favours it"
fi
say "casegate logged every request (access-log lines dropped: 0)"
exit 0
