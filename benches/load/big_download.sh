#!/usr/bin/env bash
# A 1 GiB video through casegate vs straight from the upstream (issue 7): the throughput of each
# and how much casegate's resident memory (VmRSS) grows while it streams.
# Targets: VmRSS growth <= 16 MiB; throughput through casegate >= 90% of direct.
#
# Starts on 127.0.0.1 (free ports, temp directory) an upstream nginx serving a sparse 1 GiB
# /cases/42/video.mp4 and casegate (release build, [server] workers = 2, plain HTTP) in front of
# it, opens a `casegate mint` link for the guest cookie, then alternates direct and casegate
# downloads with curl to /dev/null (each checked: status 200 and every byte). casegate's VmRSS is
# sampled every 20 ms during its downloads; growth = peak minus the value just before.
#
# Usage: benches/load/big_download.sh [--rounds N] [--size BYTES|1G] [--keep]   (default 5 rounds)
# CASEGATE_BIN=path skips `cargo build --release` and uses that binary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=5
SIZE=1G
while (($#)); do
    case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --keep) KEEP_WORK=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a whole number >= 1"

require_tools nginx:nginx curl:curl openssl:openssl python3:python3 truncate:coreutils
build_casegate
setup_work_dir
free_ports 2
read -r UP_PORT CASEGATE_PORT <<<"${PORTS[*]}"
new_casegate_key
start_upstream "$UP_PORT" "$SIZE"
BYTES=$(stat -c %s "$WORK/upstream/www$VIDEO_PATH")
start_casegate casegate "$CASEGATE_PORT" plain
COOKIE=$(guest_cookie "$CASEGATE_CONFIG")
"${LOADTOOL[@]}" probe "http://127.0.0.1:$CASEGATE_PORT$JSON_PATH" --header "Cookie: $COOKIE" \
    --expect 200 >/dev/null

# download URL [HEADER] - prints bytes/s; fails unless 200 with every byte.
download() {
    local out code size speed
    out=$(curl -sS -o /dev/null ${2:+-H "$2"} -w '%{http_code} %{size_download} %{speed_download}' "$1") ||
        die "curl $1 failed"
    read -r code size speed <<<"$out"
    [[ $code == 200 && $size == "$BYTES" ]] || die "$1 answered $code with $size of $BYTES bytes"
    echo "${speed%.*}"
}

say "machine: $(machine_summary)"
say "$ROUNDS rounds of a $BYTES-byte download, direct then through casegate"
RESULTS="$WORK/download.txt"
for round in $(seq 1 "$ROUNDS"); do
    direct=$(download "http://127.0.0.1:$UP_PORT$VIDEO_PATH")
    rm -f "$WORK/stop"
    "${LOADTOOL[@]}" sample-rss "$CASEGATE_PID" --stop-file "$WORK/stop" --interval 0.02 >"$WORK/rss.json" &
    sampler=$!
    STARTED_PIDS+=("$sampler")
    sleep 0.2
    through=$(download "http://127.0.0.1:$CASEGATE_PORT$VIDEO_PATH" "Cookie: $COOKIE")
    touch "$WORK/stop"
    wait "$sampler"
    read -r first peak < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['first_kib'], d['peak_kib'])" "$WORK/rss.json")
    echo "$direct $through $first $peak" >>"$RESULTS"
    say "  round $round: direct $((direct / 1048576)) MiB/s, casegate $((through / 1048576)) MiB/s," \
        "casegate VmRSS $((first / 1024)) -> peak $((peak / 1024)) MiB"
done

python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [list(map(int, line.split())) for line in open(sys.argv[1])]
direct = statistics.median(r[0] for r in rows)
through = statistics.median(r[1] for r in rows)
growth = max(r[3] - r[2] for r in rows) / 1024
ratio = through / direct
print(f"direct   {direct / 2**20:8.0f} MiB/s (median of {len(rows)})")
print(f"casegate {through / 2**20:8.0f} MiB/s = {ratio:.0%} of direct (target >= 90%: {'met' if ratio >= 0.9 else 'MISSED'})")
print(f"casegate VmRSS growth during a download: at most {growth:.1f} MiB (target <= 16 MiB: {'met' if growth <= 16 else 'MISSED'})")
EOF
