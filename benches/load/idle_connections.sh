#!/usr/bin/env bash
# 10,000 idle keep-alive connections held by casegate (issue 7): its resident memory (VmRSS)
# before and after. Target: <= 100 MiB resident with all of them open.
#
# Starts on 127.0.0.1 (free ports, temp directory) an upstream nginx and casegate (release build,
# [server] workers = 2, plain HTTP) in front of it, opens a `casegate mint` link for the guest
# cookie, then opens the connections one by one, sends one guest GET on each, checks the 200, and
# leaves them open and idle. So that they stay open for the measurement, casegate's
# header_read_timeout is 5m, idle_timeout 30m, and max_connections and max_connections_per_address
# 2 x COUNT in the config written here (the defaults close an idle keep-alive connection after
# 10 s, cap connections at 10,000 and one address at 512, and every connection here is from 127.0.0.1).
# The script raises its open-file limit (ulimit -n, inherited by casegate and the client) to the
# hard limit, which must allow at least COUNT + 1000 descriptors.
#
# Usage: benches/load/idle_connections.sh [--count N] [--keep]   (default 10000)
# CASEGATE_BIN=path skips `cargo build --release` and uses that binary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=10000
while (($#)); do
    case $1 in
    --count) COUNT=$2; shift 2 ;;
    --keep) KEEP_WORK=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "--count must be a whole number >= 1"

require_tools nginx:nginx openssl:openssl python3:python3 truncate:coreutils
HARD_LIMIT=$(ulimit -Hn)
NEEDED=$((COUNT + 1000))
if [[ $HARD_LIMIT != unlimited ]] && ((HARD_LIMIT < NEEDED)); then
    die "the hard open-file limit is $HARD_LIMIT; $COUNT connections need $NEEDED (raise it in limits.conf or with prlimit)"
fi
ulimit -n "$HARD_LIMIT"
say "open-file limit raised to $(ulimit -n) (casegate and the client each hold one descriptor per connection)"

build_casegate
setup_work_dir
free_ports 2
read -r UP_PORT CASEGATE_PORT <<<"${PORTS[*]}"
new_casegate_key
start_upstream "$UP_PORT" 1M
start_casegate casegate "$CASEGATE_PORT" plain \
    $'header_read_timeout = "5m"\nidle_timeout = "30m"\nmax_connections = '"$((COUNT * 2))"$'\nmax_connections_per_address = '"$((COUNT * 2))"
COOKIE=$(guest_cookie "$CASEGATE_CONFIG")
"${LOADTOOL[@]}" probe "http://127.0.0.1:$CASEGATE_PORT$JSON_PATH" --header "Cookie: $COOKIE" \
    --expect 200 >/dev/null

say "machine: $(machine_summary)"
say "opening $COUNT keep-alive connections to casegate, one guest GET on each..."
"${LOADTOOL[@]}" idle "http://127.0.0.1:$CASEGATE_PORT$JSON_PATH" --pid "$CASEGATE_PID" \
    --count "$COUNT" --header "Cookie: $COOKIE" | tee "$WORK/idle.out"
python3 - "$WORK/idle.out" <<'EOF'
import json, sys
line = next(l for l in open(sys.argv[1]) if l.startswith("RESULT "))
r = json.loads(line[len("RESULT "):])
after = r["rss_after_kib"] / 1024
print(f"casegate VmRSS: {r['rss_before_kib'] / 1024:.1f} MiB before, {after:.1f} MiB with "
      f"{r['connections']} idle connections open ({r['growth_per_connection_bytes']} bytes each); "
      f"target <= 100 MiB: {'met' if after <= 100 else 'MISSED'}")
EOF
