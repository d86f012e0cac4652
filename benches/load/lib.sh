# shellcheck shell=bash
# What the load scripts in benches/load/ share: checking for the tools, a temp directory, free
# loopback ports, the upstream nginx, the nginx secure_link gateway, casegate, and cleaning up every
# process they started (by pid, bounded in time) however the script ends. Sourced, not run.
#
# Everything listens on 127.0.0.1 only. Nothing is installed: a missing tool is named with the
# Debian package to apt-get install.

LOAD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LOAD_DIR/../.." && pwd)
LOADTOOL=(python3 "$LOAD_DIR/loadtool.py")

# The secure_link secret of the nginx gateway (not a real secret: it signs loopback test links).
NGINX_SECURE_LINK_SECRET=bench-secret
# The 1 KiB JSON file every row fetches, under a path casegate's scope allows for case 42.
JSON_PATH=/cases/42/summary.json
JSON_BYTES=1024
VIDEO_PATH=/cases/42/video.mp4

STARTED_PIDS=()
# The admin port (/metrics) of each casegate start_casegate started, by its NAME.
declare -A CASEGATE_ADMIN_PORT=()
WORK=""
KEEP_WORK=0

say() { printf '%s\n' "$*" >&2; }
die() {
    say "FAIL: $*"
    exit 1
}

# require_tools program:package ... - every missing one named at once, with its package.
require_tools() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if ((${#missing[@]})); then
        say "missing tools; install them with:"
        say "  sudo apt-get install ${missing[*]}"
        exit 2
    fi
}

# Stops what this script started: TERM to each pid, up to 10 s for all to go, then KILL.
cleanup() {
    local status=$? pid deadline
    trap - EXIT INT TERM
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    for pid in "${STARTED_PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "process $pid did not stop within 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    if [[ -n $WORK && -d $WORK ]]; then
        if ((KEEP_WORK)); then
            say "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}

setup_work_dir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/casegate-load.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# free_ports N - sets PORTS to N distinct free loopback ports.
free_ports() {
    read -r -a PORTS < <("${LOADTOOL[@]}" ports "$1")
}

# Builds casegate (release) unless CASEGATE_BIN names a binary; sets CASEGATE_BIN.
build_casegate() {
    if [[ -n ${CASEGATE_BIN:-} ]]; then
        [[ -x $CASEGATE_BIN ]] || die "CASEGATE_BIN=$CASEGATE_BIN is not an executable"
        return
    fi
    say "building casegate (cargo build --release)..."
    (cd "$REPO_DIR" && cargo build --release --quiet) || die "cargo build --release failed"
    CASEGATE_BIN="${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/casegate"
}

# casegate_identity BIN - what a report says the binary it measured is: its path and its
# `--version` ("casegate 0.1.0 (profile-guided build of c8f4d45)", "casegate 0.1.0 (release
# build)"), which names how it was built and, for pgo.sh's builds, the commit (src/build_info.rs).
# The scripts' own checkout may be another commit than the binary's.
casegate_identity() {
    echo "$1 ($("$1" --version 2>/dev/null || echo 'version unknown'))"
}

# make_cert - one ECDSA P-256 certificate for 127.0.0.1, used by both gateways.
make_cert() {
    CERT="$WORK/cert.pem"
    KEY="$WORK/key.pem"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$KEY" -out "$CERT" 2>/dev/null || die "openssl could not make a certificate"
}

# The settings every nginx here shares: files in its own directory, no system paths.
nginx_common() {
    local dir=$1 workers=$2
    mkdir -p "$dir/tmp"
    # As root, nginx would hand its workers to "nobody", who cannot read the temp directory.
    if ((EUID == 0)); then echo "user root root;"; fi
    cat <<EOF
worker_processes $workers;
worker_rlimit_nofile 65536;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
EOF
}

nginx_http_common() {
    local dir=$1
    cat <<EOF
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types { application/json json; video/mp4 mp4; }
    default_type application/octet-stream;
    server_tokens off;
    # nginx closes a keep-alive connection after 1000 requests by default; casegate does not.
    # Raised so that neither pays for reconnects (and TLS handshakes) the other does not.
    keepalive_requests 1000000;
    keepalive_timeout 300s;
EOF
}

# start_nginx DIR PORT [WRAPPER...] - runs nginx with DIR/nginx.conf in the foreground of a
# background job, under WRAPPER when given (callgrind.sh runs it under valgrind); sets NGINX_PID.
start_nginx() {
    local dir=$1 port=$2
    shift 2
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/check.log" ||
        die "nginx config in $dir refused: $(cat "$dir/check.log")"
    "$@" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>>"$dir/error.log" &
    NGINX_PID=$!
    STARTED_PIDS+=("$NGINX_PID")
    "${LOADTOOL[@]}" wait-port "$port" || die "nginx in $dir did not start: $(tail -5 "$dir/error.log")"
    # Its workers are ours too: should the master be killed, they would outlive it.
    local workers
    read -r -a workers < <("${LOADTOOL[@]}" pids "$NGINX_PID")
    STARTED_PIDS+=("${workers[@]:1}")
}

# start_upstream PORT VIDEO_BYTES - the "case app": a separate nginx serving the JSON file and a
# sparse video file. Sets UPSTREAM_PID, UPSTREAM_PORT.
start_upstream() {
    local port=$1 video_bytes=$2 dir="$WORK/upstream"
    mkdir -p "$dir/www/cases/42"
    # Exactly JSON_BYTES of JSON: padding inside a string field.
    python3 -c "
import json, sys
doc = {'case': '42', 'title': 'Case 42', 'padding': ''}
doc['padding'] = 'x' * ($JSON_BYTES - len(json.dumps(doc)))
sys.stdout.write(json.dumps(doc))" >"$dir/www$JSON_PATH"
    truncate -s "$video_bytes" "$dir/www$VIDEO_PATH"
    {
        nginx_common "$dir" 2
        echo "http {"
        nginx_http_common "$dir"
        cat <<EOF
    access_log off;
    sendfile on;
    tcp_nopush on;
    server {
        # reuseport: each worker has a listening socket of its own and the kernel spreads new
        # connections over them by address. Without it the workers race to accept, and a gateway
        # opening its pooled connections in one burst found as many as 62 of 64 on one worker, for
        # as long as they lived (for the whole run: neither gateway closes them); casegate's cost
        # a request followed the split, 8.7-9.3 us at 31/35 and 10.7-10.9 us at 62/3 (README,
        # Performance), so one run's ratios were decided by the draw.
        listen 127.0.0.1:$port reuseport;
        root $dir/www;
        location / { }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx "$dir" "$port"
    UPSTREAM_PID=$NGINX_PID
    UPSTREAM_PORT=$port
}

# nginx_gateway_conf DIR PLAIN_PORT [TLS_PORT] [WORKERS] - the config of nginx with the classic
# secure_link setup in front of the upstream: HTTP/1.1 on PLAIN_PORT and, when given, HTTP/1.1 +
# HTTP/2 over TLS on TLS_PORT. Shared by compare.sh and callgrind.sh, so both measure the same nginx.
nginx_gateway_conf() {
    local dir=$1 plain=$2 tls=${3:-} workers=${4:-2} tls_listen=""
    if [[ -n $tls ]]; then
        tls_listen="listen 127.0.0.1:$tls ssl http2;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    nginx_common "$dir" "$workers"
    echo "http {"
    nginx_http_common "$dir"
    cat <<EOF
    # Every request logged, as casegate does; buffered, which is nginx's cheapest way.
    access_log /dev/null combined buffer=64k flush=1s;
    upstream app {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$plain;
        $tls_listen
        location /cases/ {
            secure_link \$arg_md5,\$arg_expires;
            secure_link_md5 "\$secure_link_expires\$uri $NGINX_SECURE_LINK_SECRET";
            if (\$secure_link = "") { return 403; }
            if (\$secure_link = "0") { return 410; }
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / { return 403; }
    }
}
EOF
}

# start_nginx_gateway PLAIN_PORT TLS_PORT - nginx_gateway_conf's nginx, 2 workers.
# Sets NGINX_GATEWAY_PID.
start_nginx_gateway() {
    local plain=$1 tls=$2 dir="$WORK/nginx-gateway"
    mkdir -p "$dir"
    nginx_gateway_conf "$dir" "$plain" "$tls" 2 >"$dir/nginx.conf"
    start_nginx "$dir" "$plain"
    "${LOADTOOL[@]}" wait-port "$tls" || die "nginx gateway does not listen on $tls"
    NGINX_GATEWAY_PID=$NGINX_PID
}

# nginx_gateway_pids - the master and its workers, for CPU accounting.
nginx_gateway_pids() {
    "${LOADTOOL[@]}" pids "$NGINX_GATEWAY_PID"
}

# start_relay PORT - haproxy in TCP mode (2 threads) relaying each connection to the upstream, byte
# for byte: no HTTP parsing, no link check, no log. Every proxy makes at least its system calls (read
# the request, write it upstream, read the answer, write it back), so the relay's CPU per request is
# the floor under any gateway's on this machine. Sets RELAY_PID.
start_relay() {
    local port=$1 dir="$WORK/relay"
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend relay
    bind 127.0.0.1:$port
    default_backend app
backend app
    server app 127.0.0.1:$UPSTREAM_PORT
EOF
    haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 ||
        die "haproxy refused $dir/haproxy.cfg: $(cat "$dir/check.log")"
    haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
    RELAY_PID=$!
    STARTED_PIDS+=("$RELAY_PID")
    "${LOADTOOL[@]}" wait-port "$port" || die "haproxy did not start: $(tail -5 "$dir/haproxy.log")"
}

# start_casegate NAME PORT tls|plain|bare [LIMITS] - casegate with 2 worker threads in front of
# the upstream, scope "view" allowing case 42's pages, and its admin listener (/metrics only) on a
# free port, CASEGATE_ADMIN_PORT[NAME], never one of free_ports' PORTS (some not yet bound by the
# process they are for). LIMITS: lines for [server.limits]. Sets CASEGATE_PID and CASEGATE_CONFIG;
# the config's key comes from the environment. `bare` is plain HTTP with `passthrough = true` and
# no access log: requests without a guest cookie go upstream with no admission, which measures
# casegate's HTTP/1 server, upstream client and runtime alone (compare.sh's proxy row).
start_casegate() {
    local name=$1 port=$2 mode=$3 limits=${4:-} dir="$WORK/$1" scheme=http cookie=casegate tls=""
    local passthrough="" access='"/dev/null"'
    local admin_port
    admin_port=$("${LOADTOOL[@]}" ports 1 --avoid "${PORTS[@]}")
    CASEGATE_ADMIN_PORT[$name]=$admin_port
    mkdir -p "$dir"
    if [[ $mode == tls ]]; then
        scheme=https
        cookie=__Host-casegate
        tls=$'[server.tls]\ncert = "'"$CERT"$'"\nkey = "'"$KEY"'"'
    elif [[ $mode == bare ]]; then
        passthrough="passthrough = true"
        access='"off"'
    fi
    cat >"$dir/casegate.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
public_url = "$scheme://127.0.0.1:$port"
shutdown_grace = "2s"
workers = 2
$tls

[server.limits]
$limits

[upstream]
url = "http://127.0.0.1:$UPSTREAM_PORT"
# As nginx's upstream block below (keepalive_requests): both gateways keep their upstream
# connections for the whole run, so neither pays for reconnects the other does not.
pool_max_requests = 1000000
$passthrough

[keys]
active = "bench"
[keys.secrets]
bench = { env = "CASEGATE_BENCH_KEY" }

[links]
prefix = "/s/"
landing = "/cases/{case}"
default_ttl = "1h"
max_ttl = "1d"

[session]
cookie = "$cookie"
ttl = "1h"

[scopes.view]
allow = ["GET /cases/{case}", "GET /cases/{case}/**"]

[state]
path = "state"

[admin]
# No clients: only /metrics, /healthz and /readyz, read by the scripts (access_log_drops).
listen = "127.0.0.1:$admin_port"

[log]
# Every request logged, formatted and written, as nginx's access_log; to nowhere, so long runs do
# not fill the disk. Off in the bare mode only, which measures casegate without it.
access = $access
level = "warn"
EOF
    "$CASEGATE_BIN" check --config "$dir/casegate.toml" >/dev/null ||
        die "casegate check refused $dir/casegate.toml"
    # CASEGATE_WRAPPER: a command to run `serve` under (callgrind.sh uses valgrind).
    ${CASEGATE_WRAPPER:-} "$CASEGATE_BIN" serve --config "$dir/casegate.toml" 2>"$dir/stderr.log" &
    CASEGATE_PID=$!
    STARTED_PIDS+=("$CASEGATE_PID")
    CASEGATE_CONFIG="$dir/casegate.toml"
    "${LOADTOOL[@]}" wait-port "$port" || die "casegate $name did not start: $(tail -5 "$dir/stderr.log")"
}

# access_log_drops NAME - the access-log lines the casegate started as NAME dropped so far (its
# queue full or its sink failing), from its /metrics: a gateway that drops lines under load logs
# less than it serves, and would be compared with nginx unfairly.
access_log_drops() {
    "${LOADTOOL[@]}" metric "http://127.0.0.1:${CASEGATE_ADMIN_PORT[$1]}/metrics" \
        casegate_access_log_dropped_total
}

# measure_round ROW GATEWAY ROUND PIDS TOOL [record options] -- command...: runs one load round
# (the command, its output to $WORK/round.out) and adds it to $RESULTS with the CPU time that the
# processes PIDS (one word, space-separated) spent meanwhile, and the whole machine's. A failed
# command, or a round that fails loadtool's checks (statuses, sizes, errors), ends the script
# naming the round.
measure_round() {
    local row=$1 gateway=$2 round=$3 tool=$5 pids reading before after machine_before machine_after
    read -r -a pids <<<"$4"
    shift 5
    local record=()
    while [[ $1 != -- ]]; do record+=("$1"); shift; done
    shift
    # The gateway's CPU and the machine's, read by one process on each side of the round.
    reading=$("${LOADTOOL[@]}" cpu --machine "${pids[@]}") || die "could not read the CPU times"
    read -r before machine_before <<<"$reading"
    "$@" >"$WORK/round.out" 2>&1 || die "row $row, $gateway, round $round: $1 failed: $(tail -5 "$WORK/round.out")"
    reading=$("${LOADTOOL[@]}" cpu --machine "${pids[@]}") || die "could not read the CPU times"
    read -r after machine_after <<<"$reading"
    "${LOADTOOL[@]}" record --tool "$tool" --output "$WORK/round.out" --results "$RESULTS" \
        --row "$row" --gateway "$gateway" --round "$round" --cpu-before "$before" \
        --cpu-after "$after" --machine-before "$machine_before" --machine-after "$machine_after" \
        "${record[@]}" || die "row $row, $gateway, round $round failed its checks (above)"
}

# guest_cookie CONFIG [CAFILE] - mints a link to case 42 with `casegate mint`, opens it as a
# recipient would and prints the guest cookie (name=value).
guest_cookie() {
    local config=$1 cafile=${2:-} link
    link=$("$CASEGATE_BIN" mint --config "$config" --case 42 --scope view --ttl 1h) ||
        die "casegate mint failed"
    "${LOADTOOL[@]}" cookie "$link" ${cafile:+--cafile "$cafile"} || die "could not open $link"
}

export CASEGATE_BENCH_KEY
new_casegate_key() {
    CASEGATE_BENCH_KEY=$("$CASEGATE_BIN" keygen) || die "casegate keygen failed"
}

# cpuinfo_field NAME - the first CPU's NAME in /proc/cpuinfo ("model name", "cpu family"...), or
# nothing where cpuinfo has no such field.
cpuinfo_field() {
    awk -v name="$1" '{ key = $0; sub(/[[:space:]]*:.*/, "", key) }
        key == name { sub(/^[^:]*:[[:space:]]*/, ""); print; exit }' /proc/cpuinfo
}

# machine_summary - one line about where the numbers come from. The TCP congestion control is
# part of it: BBR paces every connection, loopback ones too, and bounds a large download (README,
# Performance), where cubic sends as fast as the receiver reads. So is the x86 CPU's family and
# model: a VM's model name is often only "AMD EPYC", and the ratios to nginx moved by 0.06x between
# two such hosts (stop 55, benches/HISTORY.md). So are the kernel's mitigations (below).
machine_summary() {
    local model cores family generation=""
    model=$(cpuinfo_field 'model name')
    # Not every architecture's cpuinfo has them (arm64's has none): then the line goes without.
    family=$(cpuinfo_field 'cpu family')
    [[ -z $family ]] || generation=" (family $family, model $(cpuinfo_field model))"
    cores=$(nproc)
    echo "$cores x ${model:-unknown CPU}$generation, Linux $(uname -r), TCP" \
        "$(tcp_congestion_control), mitigations ($(kernel_mitigations)), load average" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# kernel_mitigations - what the kernel does against the CPU's speculation bugs on the paths every
# system call takes (indirect calls, returns, entry and exit), as sysfs names it: on this kind of
# host most of a gateway's CPU a request is the kernel's, and a return thunk such as AMD's Safe
# RET (spec_rstack_overflow) makes each of its calls and returns dearer, for both gateways and the
# TCP relay alike (stop 57, benches/HISTORY.md).
kernel_mitigations() {
    local dir=/sys/devices/system/cpu/vulnerabilities name state listed=""
    for name in spectre_v2 retbleed spec_rstack_overflow meltdown mds; do
        [[ -r $dir/$name ]] || continue
        state=$(<"$dir/$name")
        [[ $state == "Not affected" ]] && continue
        state=${state%%;*}
        listed+="${listed:+; }$name: ${state#Mitigation: }"
    done
    echo "${listed:-none listed}"
}

# loopback_congestion_control - the TCP congestion control loopback connections get: the host's
# default unless the loopback route names another (`ip route ... congctl`).
loopback_congestion_control() {
    "${LOADTOOL[@]}" loopback-congestion 2>/dev/null || echo unknown
}

# tcp_congestion_control - the congestion control of loopback connections (and the host's default
# for others when it differs), and the default qdisc.
tcp_congestion_control() {
    local loopback control qdisc
    loopback=$(loopback_congestion_control)
    control=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)
    # The host's only: a network namespace other than the first cannot read it.
    qdisc=$(cat /proc/sys/net/core/default_qdisc 2>/dev/null || echo "not readable here")
    if [[ $loopback == "$control" ]]; then
        echo "$control (qdisc $qdisc)"
    else
        echo "$loopback on loopback, $control by default (qdisc $qdisc)"
    fi
}
