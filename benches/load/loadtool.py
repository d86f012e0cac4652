#!/usr/bin/env python3
"""Helpers for the load scripts in benches/load/ (compare.sh, idle_connections.sh, big_download.sh).

Python standard library only. Each subcommand does one job the shell does badly: pick free ports,
read /proc, speak raw HTTP to check a status, sign an nginx secure_link URL, run a TLS
new-connection loop, hold idle connections, turn the rounds into a table. Everything talks to
127.0.0.1 only.
"""

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


# === ports and processes ===


def cmd_ports(args):
    """Free loopback ports, all bound at once so they are distinct, then released. Ports named in
    --avoid (handed out earlier and not yet bound by whoever got them) are never printed: the
    kernel may offer a released port again, so those it offers stay bound while the others are
    chosen, and it offers another."""
    avoid = set(args.avoid)
    chosen, held = [], []
    while len(chosen) < args.count:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", 0))
        except OSError as error:
            fail(f"no free loopback port left for {args.count} ({len(chosen)} found, "
                 f"{len(held)} of them in --avoid): {error}")
        (held if sock.getsockname()[1] in avoid else chosen).append(sock)
    print(" ".join(str(sock.getsockname()[1]) for sock in chosen))
    for sock in chosen + held:
        sock.close()


def cmd_wait_port(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", args.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    fail(f"nothing listens on 127.0.0.1:{args.port} after {args.timeout}s")


def cmd_loopback_congestion(_args):
    """The TCP congestion control a loopback connection gets, on the connecting and the accepting
    side. A route may name one (`ip route ... congctl cubic`), which wins over the host's default
    (net.ipv4.tcp_congestion_control), so only a real connection tells."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as connecting:
            accepting, _ = listener.accept()
            with accepting:
                names = [
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
                    .split(b"\0")[0].decode()
                    for sock in (connecting, accepting)
                ]
    print(names[0] if names[0] == names[1] else "/".join(names))


def cmd_metric(args):
    """One counter or gauge from a Prometheus text page: the sum of its series (every label set),
    as a whole number when it is one."""
    try:
        with open_connection(args.url, None) as sock:
            sock.sendall(request_bytes(args.url, [], close=True))
            status, _, body, _ = read_response(sock)
    except OSError as error:
        fail(f"cannot read {args.url}: {error}")
    if status != 200:
        fail(f"{args.url} answered {status}")
    text = body.decode()
    total, seen = 0.0, False
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == args.name:
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    if not seen:
        fail(f"{args.url} has no {args.name}")
    print(int(total) if total.is_integer() else total)


def children_of(pid):
    """Direct children, by the parent pid in every /proc/<pid>/stat (kernels without
    CONFIG_PROC_CHILDREN have no /proc/<pid>/task/*/children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return found


def cmd_pids(args):
    """A process and its direct children: an nginx master and its workers."""
    print(" ".join(str(pid) for pid in [args.pid] + children_of(args.pid)))


def cpu_times(pids):
    """utime and stime of the given processes (all their threads), in seconds: user space and
    the kernel working for them."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        user += int(fields[11])  # utime and stime: fields 14 and 15 of stat(5)
        system += int(fields[12])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def cmd_cpu(args):
    """USER,SYSTEM of the processes and, with --machine, BUSY,UPTIME,STEAL,RTO after a space:
    both read by one process, so that a round's readings take one interpreter's start-up each,
    outside the round (two processes put the second one's start-up, some 20 ms of CPU, in the
    machine's window)."""
    user, system = cpu_times(args.pids)
    reading = f"{user:.2f},{system:.2f}"
    if args.machine:
        reading += " " + machine_cpu()
    print(reading)


def machine_cpu():
    """BUSY,UPTIME,STEAL,RTO: the CPU seconds every CPU of the machine has spent on anything but
    idling since boot (the client, the upstream, the gateway, the kernel's threads and interrupts
    alike: /proc/stat's user, nice, system, irq, softirq and steal; idle and iowait left out), the
    seconds since boot, read together so that a round's two readings give how busy its CPUs were
    over the same window, of the busy seconds those the hypervisor ran something else on the VM's
    CPUs (steal: while it does, whatever the VM runs there waits, the gateway's workers, the
    client or the upstream, and every request in flight on them waits as long), and the TCP
    retransmission timeouts so far (`tcp_timeouts`)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy = (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    with open("/proc/uptime") as uptime:
        since_boot = float(uptime.read().split()[0])
    return f"{busy:.2f},{since_boot:.2f},{steal / CLOCK_TICKS:.2f},{tcp_timeouts()}"


def tcp_timeouts():
    """The TCP retransmission timeouts the kernel has taken since boot, every connection's
    (/proc/net/netstat's TCPTimeouts): a request whose segment or ACK went missing waits at least
    200 ms (the minimum RTO) before it is sent again, which on loopback only a full queue causes."""
    with open("/proc/net/netstat") as netstat:
        lines = netstat.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(values.split()[names.split().index("TCPTimeouts")])
    fail("no TcpExt line in /proc/net/netstat")


def user_and_system(text):
    """`cmd_cpu`'s output read back: (user, system) seconds."""
    user, system = text.split(",")
    return float(user), float(system)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail(f"no VmRSS for process {pid}")


def cmd_rss(args):
    print(rss_kib(args.pid))


# === HTTP probes ===


def tls_context(cafile):
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False  # the certificate names 127.0.0.1 as an IP address SAN
    return context


def open_connection(url, cafile, timeout=10):
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    if parts.scheme == "https":
        sock = tls_context(cafile).wrap_socket(sock)
    return sock


def request_bytes(url, headers, close=False):
    """The request wrk sends for this URL (request line, Host, the -H headers)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}"] + list(headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock, buffer=b""):
    """One HTTP/1.1 response with a Content-Length (or none and no body): status, head, body,
    what was read past it."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response head")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    status = int(head_lines[0].split()[1])
    length = 0
    for line in head_lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        if name.strip().lower() == "transfer-encoding":
            raise ConnectionError("chunked response: the probes expect a Content-Length")
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed inside the body")
        rest += chunk
    return status, head_lines, rest[:length], rest[length:]


def status_matches(status, expected):
    """`200` is that status; `4xx` any refusal of the client's request."""
    if expected.endswith("xx"):
        return str(status)[0] == expected[0]
    return status == int(expected)


def cmd_probe(args):
    """One request as wrk would send it; prints the status and the response's size on the wire
    (head + body), which every later response on a keep-alive connection must match."""
    sock = open_connection(args.url, args.cafile)
    sock.sendall(request_bytes(args.url, args.header))
    status, head, body, _ = read_response(sock)
    sock.close()
    if args.expect is not None and not status_matches(status, args.expect):
        fail(f"{args.url} answered {status}, expected {args.expect}:\n" + "\n".join(head))
    if args.body_bytes is not None and len(body) != args.body_bytes:
        fail(f"{args.url} answered a body of {len(body)} bytes, expected {args.body_bytes}")
    size = len("\r\n".join(head)) + 4 + len(body)
    print(f"{status} {size}")


def cmd_cookie(args):
    """Opens a share link as a browser would and prints the guest cookie (`name=value`)."""
    sock = open_connection(args.link, args.cafile)
    sock.sendall(request_bytes(args.link, [], close=True))
    status, head, _, _ = read_response(sock)
    sock.close()
    cookies = [
        line.split(":", 1)[1].strip().split(";", 1)[0]
        for line in head[1:]
        if line.lower().startswith("set-cookie:")
    ]
    if status not in (302, 303) or len(cookies) != 1:
        fail(f"opening the link answered {status} with {len(cookies)} cookies:\n" + "\n".join(head))
    print(cookies[0])


def cmd_sequential(args):
    """WARMUP then COUNT requests one after another on each of CONNECTIONS keep-alive connections
    (COUNT in all, shared out), each checked (status and body size as the first one's); for
    instruction counts. Between the two, --between runs a command (callgrind.sh zeroes its counters
    there) once every connection has had its warm-up, so that the connections' setup and TLS
    handshakes fall outside what is counted. One connection leaves the gateway one request to
    work on at a time (its loop parks after each); several, in flight together, let it take more
    than one a turn, as under load."""
    if args.connections < 1 or args.count < args.connections:
        fail("--connections must be at least 1 and at most --count")
    request = request_bytes(args.url, args.header)
    warmed = threading.Barrier(args.connections + 1)
    measure = threading.Event()
    sizes, errors = [], []

    def run(count):
        try:
            sock = open_connection(args.url, args.cafile, timeout=120)
            leftover = b""
            for number in range(args.warmup + count):
                if number == args.warmup:
                    warmed.wait()
                    measure.wait()
                    if errors:
                        return
                sock.sendall(request)
                status, head, body, leftover = read_response(sock, leftover)
                if not status_matches(status, args.expect):
                    raise RuntimeError(f"request {number + 1} answered {status}, expected "
                                       f"{args.expect}:\n" + "\n".join(head))
                sizes.append(len(body))
            sock.close()
        except (OSError, RuntimeError, ConnectionError, threading.BrokenBarrierError) as error:
            errors.append(str(error) or type(error).__name__)
            warmed.abort()

    share, extra = divmod(args.count, args.connections)
    threads = [threading.Thread(target=run, args=(share + (index < extra),), daemon=True)
               for index in range(args.connections)]
    for thread in threads:
        thread.start()
    try:
        warmed.wait()
    except threading.BrokenBarrierError:
        pass
    if not errors and args.between:
        if subprocess.run(args.between, shell=True).returncode != 0:
            errors.append(f"--between command failed: {args.between}")
    measure.set()
    for thread in threads:
        thread.join()
    if errors:
        fail(errors[0])
    if len(set(sizes)) > 1:
        fail(f"answers differed in body size: {sorted(set(sizes))}")


def cmd_secure_link(args):
    """nginx's classic secure_link: md5 = base64url(md5("$expires$uri secret")), no padding."""
    expires = int(time.time()) + args.ttl
    digest = hashlib.md5(f"{expires}{args.path} {args.secret}".encode()).digest()
    md5 = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    print(f"{args.path}?md5={md5}&expires={expires}")


# === TLS new connections ===


def handshake_worker(url, cafile, headers, seconds, queue):
    """New TLS connection, one request with Connection: close, status checked, closed; again.
    The context is made once and no session is ever offered back: every handshake is full."""
    context = tls_context(cafile)
    parts = urlsplit(url)
    request = request_bytes(url, headers, close=True)
    latencies, bad = [], {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            raw = socket.create_connection((parts.hostname, parts.port), timeout=10)
            with context.wrap_socket(raw) as sock:
                sock.sendall(request)
                status, _, _, _ = read_response(sock)
        except (OSError, ConnectionError) as error:
            status = type(error).__name__
        latencies.append((time.perf_counter() - started) * 1e6)
        if status != 200:
            bad[str(status)] = bad.get(str(status), 0) + 1
    queue.put((latencies, bad))


def cmd_handshakes(args):
    queue = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(
            target=handshake_worker,
            args=(args.url, args.cafile, args.header, args.seconds, queue),
        )
        for _ in range(args.procs)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    latencies, bad = [], {}
    for _ in workers:
        worker_latencies, worker_bad = queue.get()
        latencies += worker_latencies
        for status, count in worker_bad.items():
            bad[status] = bad.get(status, 0) + count
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    print(
        "RESULT "
        + json.dumps(
            {
                "requests": len(latencies),
                "seconds": elapsed,
                "non_2xx": sum(bad.values()),
                "bad_statuses": bad,
                "p50_us": percentile(latencies, 50),
                "p99_us": percentile(latencies, 99),
                "max_us": latencies[-1] if latencies else 0,
            }
        )
    )


def percentile(sorted_values, pct):
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(round(pct / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


# === what wrk and h2load printed, as one checked round ===


def parse_wrk(text, args):
    line = next((l for l in text.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        fail(f"no WRKJSON line in wrk's output:\n{text}")
    wrk = json.loads(line[len("WRKJSON ") :])
    problems = []
    socket_errors = wrk["connect"] + wrk["read"] + wrk["write"] + wrk["timeout"]
    if wrk["status"]:
        problems.append(f"{wrk['status']} responses with status >= 400")
    if socket_errors:
        problems.append(
            f"socket errors: connect {wrk['connect']}, read {wrk['read']}, write {wrk['write']}, "
            f"timeout {wrk['timeout']}"
        )
    if wrk["requests"] == 0:
        problems.append("no request completed")
    # wrk counts only status >= 400 as errors. A 1xx/3xx/204 answer would be shorter than the
    # probed 200: every byte read must belong to a response of exactly the probed size, give or
    # take the responses still in flight on each connection when the round ended.
    expected = wrk["requests"] * args.response_size
    slack = args.connections * args.response_size * 2
    if abs(wrk["bytes"] - expected) > slack:
        problems.append(
            f"read {wrk['bytes']} bytes for {wrk['requests']} responses of {args.response_size} "
            f"bytes (expected {expected} +- {slack}): some answers were not the probed 200"
        )
    return {
        "requests": wrk["requests"],
        "seconds": wrk["duration_us"] / 1e6,
        "p50_us": wrk["p50_us"],
        "p99_us": wrk["p99_us"],
        "max_us": wrk["max_us"],
        "non_2xx": wrk["status"],
    }, problems


def parse_h2load(text, args):
    problems = []
    requests = status = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("requests:"):
            # requests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, 0 errored, 0 timeout
            counts = {f.split()[1]: int(f.split()[0]) for f in line[len("requests:") :].split(",")}
            requests = counts
        elif line.startswith("status codes:"):
            status = {f.split()[1]: int(f.split()[0]) for f in line[len("status codes:") :].split(",")}
        elif line.startswith("finished in"):
            seconds = float(line.split()[2].rstrip("s,"))
    if requests is None or status is None:
        fail(f"cannot read h2load's summary:\n{text}")
    latencies, non_2xx = [], 0
    with open(args.log_file) as log:
        for row in log:
            fields = row.split("\t")
            if len(fields) < 3:
                continue
            if not 200 <= int(fields[1]) <= 299:
                non_2xx += 1
            latencies.append(int(fields[2]))
    latencies.sort()
    wrong = status.get("3xx", 0) + status.get("4xx", 0) + status.get("5xx", 0)
    if wrong or non_2xx:
        problems.append(f"non-2xx answers: {status} (log: {non_2xx} non-2xx)")
    for kind in ("failed", "errored", "timeout"):
        if requests.get(kind):
            problems.append(f"{requests[kind]} requests {kind}")
    if not requests.get("succeeded"):
        problems.append("no request succeeded")
    return {
        "requests": requests["succeeded"],
        "seconds": seconds,
        "p50_us": percentile(latencies, 50),
        "p99_us": percentile(latencies, 99),
        "max_us": latencies[-1] if latencies else 0,
        "non_2xx": wrong + non_2xx,
    }, problems


def parse_handshakes(text, _args):
    line = next((l for l in text.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        fail(f"no RESULT line in the handshake loop's output:\n{text}")
    result = json.loads(line[len("RESULT ") :])
    problems = []
    if result["non_2xx"]:
        problems.append(f"answers other than 200: {result['bad_statuses']}")
    if not result["requests"]:
        problems.append("no connection completed")
    return result, problems


def cmd_record(args):
    """Checks one round's output and appends it, with the gateway's CPU time, to the results."""
    with open(args.output) as output:
        text = output.read()
    parser = {"wrk": parse_wrk, "h2load": parse_h2load, "handshakes": parse_handshakes}[args.tool]
    result, problems = parser(text, args)
    if problems:
        fail(f"row {args.row}, {args.gateway}, round {args.round}: " + "; ".join(problems))
    user_before, system_before = user_and_system(args.cpu_before)
    user_after, system_after = user_and_system(args.cpu_after)
    result.update(
        row=args.row,
        gateway=args.gateway,
        round=args.round,
        cpu_user_seconds=user_after - user_before,
        cpu_system_seconds=system_after - system_before,
    )
    result["cpu_seconds"] = result["cpu_user_seconds"] + result["cpu_system_seconds"]
    busy_before, uptime_before, steal_before, rto_before = map(
        float, args.machine_before.split(",")
    )
    busy_after, uptime_after, steal_after, rto_after = map(float, args.machine_after.split(","))
    result["machine_cpu_seconds"] = busy_after - busy_before
    result["machine_wall_seconds"] = uptime_after - uptime_before
    result["machine_steal_seconds"] = steal_after - steal_before
    result["tcp_timeouts"] = int(rto_after - rto_before)
    with open(args.results, "a") as results:
        results.write(json.dumps(result) + "\n")
    rps = result["requests"] / result["seconds"]
    cpu_us = result["cpu_seconds"] / result["requests"] * 1e6
    kernel_us = result["cpu_system_seconds"] / result["requests"] * 1e6
    print(
        f"  {args.row:<10} {args.gateway:<8} round {args.round}: {rps:9.0f} req/s  "
        f"p50 {result['p50_us'] / 1000:6.2f} ms  p99 {result['p99_us'] / 1000:6.2f} ms  "
        f"max {result['max_us'] / 1000:7.1f} ms  "
        f"cpu {cpu_us:6.1f} us/req ({kernel_us:.1f} kernel)  ({result['requests']} requests, all 2xx)"
        f"  steal {result['machine_steal_seconds']:.2f} s, {result['tcp_timeouts']} TCP timeouts"
    )


# === the table ===

ROW_TITLES = {
    "plain": "HTTP/1.1 keep-alive, 64 conns",
    "tls": "HTTPS/1.1 keep-alive, 64 conns",
    "h2": "HTTP/2 over TLS",
    "handshake": "new TLS connection + 1 request",
    "direct": "direct to upstream (ceiling)",
    "relay": "TCP relay, no HTTP work (floor)",
    "proxy": "casegate, no admission, no log",
}
# casegate / nginx targets of issue 7 section 2: (requests/s at least, p99 at most, CPU at most).
TARGETS = {"plain": (1.1, 1.0, 0.8), "tls": (1.1, 1.0, 0.8), "h2": (1.0, None, None)}


def summarise(rounds):
    """One gateway's rounds of a row. requests/s are the requests of all the rounds over all
    their seconds, as the CPU a request is all their CPU over all their requests: the two ratios
    then speak of the same requests, and the rounds' mean keeps what a median of five throws away
    (over fifty plain runs of stops 66 to 68 both ratios averaged 1.18x, spread 0.064 for the
    totals against 0.083 for the medians: benches/HISTORY.md, stop 68). The latencies are the
    medians of the rounds' own."""
    requests = sum(r["requests"] for r in rounds)
    return {
        "rounds": len(rounds),
        "rps": requests / sum(r["seconds"] for r in rounds),
        "rps_median": statistics.median(r["requests"] / r["seconds"] for r in rounds),
        "p50_ms": statistics.median(r["p50_us"] for r in rounds) / 1000,
        "p99_ms": statistics.median(r["p99_us"] for r in rounds) / 1000,
        "cpu_us": sum(r["cpu_seconds"] for r in rounds) / requests * 1e6,
        "user_us": sum(r["cpu_user_seconds"] for r in rounds) / requests * 1e6,
        "kernel_us": sum(r["cpu_system_seconds"] for r in rounds) / requests * 1e6,
    }


def verdict(ratio, target, at_least):
    if target is None:
        return f"{ratio:.2f}"
    def meets(value):
        return value >= target if at_least else value <= target

    met = meets(ratio)
    shown = f"{ratio:.2f}"
    # 1.099 must not read as "1.10 (MISSED, >=1.1)": a third digit where two would hide the verdict.
    if meets(float(shown)) != met:
        shown = f"{ratio:.3f}"
    sign = ">=" if at_least else "<="
    return f"{shown} ({'met' if met else 'MISSED'}, {sign}{target})"


def read_strace_counts(path):
    """`strace -c`'s table: {syscall: (calls, failed)}, without its total line."""
    counts = {}
    with open(path) as table:
        for line in table:
            fields = line.split()
            if len(fields) < 5 or not fields[0][0].isdigit() or fields[-1] == "total":
                continue
            # The errors column is blank for a call that never failed.
            failed = int(fields[4]) if len(fields) == 6 else 0
            counts[fields[-1]] = (int(fields[3]), failed)
    if not counts:
        fail(f"no system calls counted in {path}: not a `strace -c` table?")
    return counts


def by_gateway(named_values):
    """`GATEWAY=VALUE` arguments as {gateway: value}, in the order given."""
    return dict(named.partition("=")[::2] for named in named_values)


def read_perf_counts(path):
    """`perf stat -x,`'s lines: {event: count}. A count perf could not take fails."""
    counts = {}
    with open(path) as table:
        for line in table:
            fields = line.strip().split(",")
            if len(fields) < 3 or line.startswith("#"):
                continue
            if not fields[0].isdigit():
                fail(f"perf stat could not count {fields[2]} ({fields[0]}) in {path}")
            counts[fields[2]] = int(fields[0])
    if not counts:
        fail(f"no events counted in {path}: not a `perf stat -x,` table?")
    return counts


def rounds_by_gateway(path):
    """The rounds recorded in a results file, as {gateway: [round, ...]}."""
    rounds = {}
    with open(path) as results:
        for line in results:
            result = json.loads(line)
            rounds.setdefault(result["gateway"], []).append(result)
    return rounds


def cmd_syscalls(args):
    """Each gateway's system calls per request served, side by side (syscalls.sh)."""
    requests = {gateway: sum(result["requests"] for result in rounds)
                for gateway, rounds in rounds_by_gateway(args.results).items()}
    tables = {}
    for gateway, path in by_gateway(args.strace).items():
        if not requests.get(gateway):
            fail(f"no requests recorded for {gateway}")
        tables[gateway] = read_strace_counts(path)
    gateways = list(tables)
    per_request = {
        gateway: {call: (calls / requests[gateway], failed / requests[gateway])
                  for call, (calls, failed) in table.items()}
        for gateway, table in tables.items()
    }
    calls = sorted({call for table in per_request.values() for call in table},
                   key=lambda call: -max(table.get(call, (0, 0))[0] for table in per_request.values()))
    print("system calls per request (failed ones, mostly EAGAIN, in brackets); requests: "
          + ", ".join(f"{gateway} {requests[gateway]}" for gateway in gateways))
    print(f"  {'call':<20}" + "".join(f"{gateway:>22}" for gateway in gateways))
    for call in calls:
        # Calls made once or twice in a round (start-up, a timer) say nothing per request.
        if all(per_request[gateway].get(call, (0, 0))[0] < 0.0005 for gateway in gateways):
            continue
        cells = []
        for gateway in gateways:
            count, failed = per_request[gateway].get(call, (0.0, 0.0))
            cells.append(f"{count:.3f} ({failed:.3f})" if count else "-")
        print(f"  {call:<20}" + "".join(f"{cell:>22}" for cell in cells))
    totals = [sum(count for count, _ in per_request[gateway].values()) for gateway in gateways]
    print(f"  {'all':<20}" + "".join(f"{total:>22.3f}" for total in totals))
    segments = by_gateway(args.segments)
    print("TCP segments this host sent a request, every process's (4: one a hop, no ACK alone)")
    print(f"  {'segments':<20}"
          + "".join(f"{int(segments[gateway]) / requests[gateway]:>22.3f}" for gateway in gateways))
    if args.sched:
        if not args.sched_results:
            fail("--sched needs --sched-results, the unstraced rounds' requests")
        print_sched(by_gateway(args.sched), rounds_by_gateway(args.sched_results), gateways)


def print_sched(counts_by_gateway, rounds, gateways):
    """syscalls.sh --sched: wake-ups and switches per request in the unstraced rounds."""
    rows = {"threads woken": "sched:sched_waking", "switched out": "context-switches"}
    per_request = {}
    for gateway in gateways:
        if not rounds.get(gateway):
            fail(f"no unstraced round recorded for {gateway}")
        served = sum(result["requests"] for result in rounds[gateway])
        counts = read_perf_counts(counts_by_gateway[gateway])
        missing = [event for event in rows.values() if event not in counts]
        if missing:
            fail(f"perf stat did not count {', '.join(missing)} for {gateway}")
        per_request[gateway] = {event: counts[event] / served for event in rows.values()}
        per_request[gateway]["cpu"] = summarise(rounds[gateway])
    print("scheduler events per request, one round each with no strace attached (perf stat); "
          + ", ".join(f"{gateway} {per_request[gateway]['cpu']['rps']:.0f} req/s" for gateway in gateways))
    for label, event in rows.items():
        print(f"  {label:<20}"
              + "".join(f"{per_request[gateway][event]:>22.3f}" for gateway in gateways))
    print(f"  {'CPU us (kernel)':<20}" + "".join(
        f"{per_request[gateway]['cpu']['cpu_us']:>14.1f} ({per_request[gateway]['cpu']['kernel_us']:.1f})"
        for gateway in gateways))


def cmd_pairs(args):
    """ab.sh's verdict: per build the median CPU per request, and the median of the pairs' B - A."""
    per = summaries_by_round(read_results(args.results))
    pairs = [both for both in per.values() if "a" in both and "b" in both]
    if not pairs:
        fail("no whole pair in the results")
    cpu_keys = ("cpu_us", "user_us", "kernel_us")
    for build in ("a", "b"):
        median = {
            key: statistics.median(p[build][key] for p in pairs)
            for key in ("rps", "p99_ms") + cpu_keys
        }
        print(
            f"build {build.upper()}: median {median['rps']:8.0f} req/s, "
            f"p99 {median['p99_ms']:5.2f} ms, "
            f"CPU {median['cpu_us']:5.2f} us/request "
            f"(user {median['user_us']:5.2f}, kernel {median['kernel_us']:5.2f})"
        )
    differences = {
        key: statistics.median(p["b"][key] - p["a"][key] for p in pairs)
        for key in ("rps", "p99_ms") + cpu_keys
    }
    cheaper = sum(1 for p in pairs if p["b"]["cpu_us"] < p["a"]["cpu_us"])
    faster_tail = sum(1 for p in pairs if p["b"]["p99_ms"] < p["a"]["p99_ms"])
    print(
        f"B - A over {len(pairs)} pairs, median: CPU {differences['cpu_us']:+.2f} us/request "
        f"(user {differences['user_us']:+.2f}, kernel {differences['kernel_us']:+.2f}); "
        f"B cheaper in {cheaper} of {len(pairs)} pairs"
    )
    # What the CPU buys and what scheduling moves: a change to when threads run (not to what
    # they do) shows here and not above.
    print(
        f"B - A over {len(pairs)} pairs, median: {differences['rps']:+.0f} req/s, "
        f"p99 {differences['p99_ms']:+.3f} ms; B's p99 lower in {faster_tail} of {len(pairs)} pairs"
    )


def summaries_by_round(rounds):
    """Each round summarised alone (its requests/s, latencies and CPU per request, as in the
    table), by round number and gateway: the pairs that ab.sh and the round-by-round line read."""
    per = {}
    for r in rounds:
        per.setdefault(r["round"], {})[r["gateway"]] = summarise([r])
    return per


def read_results(path):
    """The rounds `record` added to a results file, one JSON object a line."""
    with open(path) as results:
        return [json.loads(line) for line in results if line.strip()]


def cmd_table(args):
    rounds = read_results(args.results)
    by_key = {}
    for r in rounds:
        by_key.setdefault((r["row"], r["gateway"]), []).append(r)
    rows_seen = list(dict.fromkeys(r["row"] for r in rounds))
    lines = [
        "| row | gateway | requests/s | p50 ms | p99 ms | CPU us/request | of which user | of which kernel |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    # The last column is the floor under the CPU ratio: the kernel's work for casegate (its
    # sockets' system calls) against nginx's whole CPU. User-space work cannot go below zero.
    ratio_lines = [
        "| row | requests/s casegate/nginx | p99 casegate/nginx | CPU/request casegate/nginx "
        "| casegate kernel / nginx CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    by_row = {}
    for row in rows_seen:
        summaries = by_row[row] = {}
        for gateway in ("nginx", "casegate", "relay", "bare", "direct"):
            if (row, gateway) not in by_key:
                continue
            s = summaries[gateway] = summarise(by_key[(row, gateway)])
            lines.append(
                f"| {ROW_TITLES.get(row, row)} | {gateway} | {s['rps']:.0f} | {s['p50_ms']:.2f} | "
                f"{s['p99_ms']:.2f} | {s['cpu_us']:.1f} | {s['user_us']:.1f} | {s['kernel_us']:.1f} |"
            )
        # The relay and proxy rows compare their gateway with nginx in the same columns (no
        # targets).
        challenger = challenger_of(summaries)
        if "nginx" in summaries and challenger:
            ng, cg = summaries["nginx"], summaries[challenger]
            rps_t, p99_t, cpu_t = TARGETS.get(row, (None, None, None))
            title = ROW_TITLES.get(row, row) + (
                "" if challenger == "casegate" else f" ({challenger}/nginx)"
            )
            ratio_lines.append(
                f"| {title} | {verdict(cg['rps'] / ng['rps'], rps_t, True)} | "
                f"{verdict(cg['p99_ms'] / ng['p99_ms'], p99_t, False)} | "
                f"{verdict(cg['cpu_us'] / ng['cpu_us'], cpu_t, False)} | "
                f"{cg['kernel_us'] / ng['cpu_us']:.2f} |"
            )
    text = "\n".join(lines) + "\n\n" + "\n".join(ratio_lines) + "\n"
    spread = round_spread(by_key, by_row, rows_seen)
    if spread:
        text += "\n" + spread + "\n"
    machine = whole_machine(by_key, by_row, rows_seen)
    if machine:
        text += "\n" + machine + "\n"
    floor = relay_floor(by_row)
    if floor:
        text += "\n" + floor + "\n"
    layers = proxy_layers(by_row)
    if layers:
        text += "\n" + layers + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as markdown:
            markdown.write(args.preamble.replace("\\n", "\n") + "\n\n" if args.preamble else "")
            markdown.write(text)


def challenger_of(gateways):
    """The gateway a row sets against nginx: casegate, or the relay row's haproxy, or the proxy
    row's bare casegate."""
    return next((g for g in ("casegate", "relay", "bare") if g in gateways), None)


def round_spread(by_key, by_row, rows):
    """The CPU and requests/s ratios of each round's pair (casegate's round and nginx's just
    before it, seconds apart): how far one run's total could have landed elsewhere. On a shared
    VM the cost of a request moves between levels that last tens of seconds, for both gateways; a
    round's pair mostly sees one level, the run's total a mix of them. `by_row` holds the table's
    summaries of each gateway's rounds."""
    lines = []
    for row in rows:
        challenger = challenger_of({gateway for (r, gateway) in by_key if r == row})
        if not challenger:
            continue
        per_round = summaries_by_round(
            by_key.get((row, "nginx"), []) + by_key.get((row, challenger), [])
        )
        pairs = [
            both for both in per_round.values() if len(both) == 2 and both["nginx"]["cpu_us"]
        ]
        if len(pairs) < 2:
            continue
        ratios = sorted(both[challenger]["cpu_us"] / both["nginx"]["cpu_us"] for both in pairs)
        speeds = sorted(both[challenger]["rps"] / both["nginx"]["rps"] for both in pairs)
        # The ratio of the medians of each gateway's rounds: the table's requests/s until stop 68.
        summaries = by_row[row]
        medians = summaries[challenger]["rps_median"] / summaries["nginx"]["rps_median"]
        lines.append(
            f"round by round, {ROW_TITLES.get(row, row)}: CPU/request {challenger}/nginx "
            f"{ratios[0]:.2f}-{ratios[-1]:.2f}, median {statistics.median(ratios):.2f}; "
            f"requests/s {speeds[0]:.2f}-{speeds[-1]:.2f}, median {statistics.median(speeds):.2f} "
            f"({len(pairs)} pairs; the medians of the rounds {medians:.2f}x)"
        )
    return "\n".join(lines)


def whole_machine(by_key, by_row, rows):
    """All processes' CPU a request in each gateway's rounds: the client, the upstream and the
    gateway share the machine's CPUs, so while they keep it busy requests/s follow the whole
    machine's CPU a request, not the gateway's alone. The requests/s ratio can reach about the
    inverse of this one; what the gateway saves is diluted by what the client and the upstream
    spend. `by_row` holds the table's summaries of each gateway's rounds."""
    lines = []
    cpus = os.cpu_count() or 1
    for row in rows:
        challenger = challenger_of({gateway for (r, gateway) in by_key if r == row})
        if not challenger:
            continue
        measured = {}
        for gateway in ("nginx", challenger):
            rounds = by_key.get((row, gateway), [])
            if not rounds:
                break
            requests = sum(r["requests"] for r in rounds)
            busy = sum(r["machine_cpu_seconds"] for r in rounds)
            cpu_time = sum(r["machine_wall_seconds"] for r in rounds) * cpus
            steal = sum(r["machine_steal_seconds"] for r in rounds)
            measured[gateway] = (
                busy / requests * 1e6,
                by_row[row][gateway]["cpu_us"],
                busy / cpu_time,
                steal / cpu_time,
            )
        if len(measured) < 2:
            continue
        (all_n, own_n, busy_n, steal_n) = measured["nginx"]
        (all_c, own_c, busy_c, steal_c) = measured[challenger]
        lines.append(
            f"whole machine, {ROW_TITLES.get(row, row)}: all processes' CPU a request {all_n:.1f} us "
            f"in nginx's rounds (the gateway's {own_n:.1f}), {all_c:.1f} us in {challenger}'s "
            f"({own_c:.1f}): {all_c / all_n:.2f}x, so about {all_n / all_c:.2f}x the requests/s "
            f"while the machine is busy (busy {100 * busy_n:.0f}% and {100 * busy_c:.0f}% of its "
            f"{cpus} CPUs' time, of which the hypervisor took {100 * steal_n:.1f}% and "
            f"{100 * steal_c:.1f}%)"
        )
    return "\n".join(lines)


def beside_plain(by_row, row, challenger):
    """The CPU ratio challenger/nginx of `row`, the plain row's casegate/nginx, and `row`'s
    summaries; None unless both rows ran. Each ratio comes from its own row's turns: the rows run
    minutes apart, so absolute times are not mixed across them."""
    plain, other = by_row.get("plain", {}), by_row.get(row, {})
    if not all(g in plain for g in ("nginx", "casegate")) or not all(
        g in other for g in ("nginx", challenger)
    ):
        return None
    return (
        other[challenger]["cpu_us"] / other["nginx"]["cpu_us"],
        plain["casegate"]["cpu_us"] / plain["nginx"]["cpu_us"],
        other,
    )


def relay_floor(by_row):
    """How far the plain row's targets sit above a gateway doing no HTTP work at all: the relay
    row's ratios (haproxy relaying TCP against nginx secure_link, in turns, in the same minutes)
    set beside the plain row's."""
    ratios = beside_plain(by_row, "relay", "relay")
    if ratios is None:
        return None
    relay_cpu, casegate_cpu, relay = ratios
    relay_rps = relay["relay"]["rps"] / relay["nginx"]["rps"]
    rps_t, _, cpu_t = TARGETS["plain"]
    return (
        f"floor: a TCP relay doing no HTTP work (the relay row) cost {relay_cpu:.2f}x nginx "
        f"secure_link's CPU a request and served {relay_rps:.2f}x its requests/s; the plain row's "
        f"targets (CPU <= {cpu_t}x, requests/s >= {rps_t}x) leave a gateway "
        f"{cpu_t - relay_cpu:+.2f}x of nginx's CPU above that floor for all its HTTP work; "
        f"casegate's plain row used {casegate_cpu - relay_cpu:+.2f}x"
    )


def proxy_layers(by_row):
    """What casegate's own layers cost against what its gateway work adds: the proxy row (casegate
    with no admission and no access log, against nginx in turns) beside the plain row (guests,
    admitted and logged)."""
    ratios = beside_plain(by_row, "proxy", "bare")
    if ratios is None:
        return None
    bare_cpu, casegate_cpu, _ = ratios
    _, _, cpu_t = TARGETS["plain"]
    return (
        f"layers: casegate with no admission and no access log (the proxy row: its HTTP/1 server, "
        f"upstream client and runtime) cost {bare_cpu:.2f}x nginx secure_link's CPU a request (the "
        f"plain row's target: {cpu_t}x); guests, admitted and logged (the plain row), cost "
        f"{casegate_cpu:.2f}x: the gateway's own work {casegate_cpu - bare_cpu:+.2f}x"
    )


# === idle connections and big downloads ===


def cmd_idle(args):
    """Opens `count` connections to the gateway, sends one guest request on each, reads the 200,
    and keeps them all open and idle; prints the gateway's VmRSS before and after."""
    request = request_bytes(args.url, args.header)
    parts = urlsplit(args.url)
    settle = lambda: time.sleep(args.settle)  # noqa: E731 - let the gateway's allocator settle
    settle()
    before = rss_kib(args.pid)
    opened, started = [], time.monotonic()
    for index in range(args.count):
        try:
            sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
            sock.sendall(request)
            status, head, _, extra = read_response(sock)
        except (OSError, ConnectionError) as error:
            fail(f"connection {index + 1} of {args.count}: {error}")
        if status != 200 or extra:
            fail(f"connection {index + 1} answered {status}:\n" + "\n".join(head))
        opened.append(sock)
    opening = time.monotonic() - started
    settle()
    after = rss_kib(args.pid)
    # Still open? A gateway that closed them would look lean for the wrong reason.
    closed = 0
    for sock in opened:
        sock.setblocking(False)
        try:
            if sock.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
    result = {
        "connections": args.count,
        "opened_in_s": round(opening, 1),
        "closed_by_gateway": closed,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "growth_per_connection_bytes": round((after - before) * 1024 / args.count),
    }
    print("RESULT " + json.dumps(result))
    for sock in opened:
        sock.close()
    if closed:
        fail(f"the gateway closed {closed} of the {args.count} idle connections during the test")


def cmd_sample_rss(args):
    """Samples a process's VmRSS every `interval` until `stop_file` exists; prints the peak."""
    peak = first = rss_kib(args.pid)
    samples = 1
    while not os.path.exists(args.stop_file):
        time.sleep(args.interval)
        try:
            value = rss_kib(args.pid)
        except OSError:
            break
        peak = max(peak, value)
        samples += 1
    print(json.dumps({"first_kib": first, "peak_kib": peak, "samples": samples}))


LOCKED_PREFIXES = ("lock ",)


def locked_addresses(binary):
    """Addresses of the binary's locked read-modify-write instructions: the `lock` prefix, and
    `xchg` with memory, which locks without one."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary],
                             capture_output=True, text=True, check=True).stdout
    found = {}
    for line in listing.splitlines():
        address, sep, instruction = line.partition(":\t")
        if not sep:
            continue
        instruction = instruction.strip()
        is_locked = instruction.startswith(LOCKED_PREFIXES) or (
            instruction.startswith("xchg") and "(" in instruction)
        if is_locked:
            try:
                found[int(address.strip(), 16)] = instruction
            except ValueError:
                continue
    return found


def executed_by_address(dump, binary):
    """Times each instruction of `binary` (a real path) ran, from a callgrind dump made with
    --dump-instr=yes (positions "instr line"; addresses absolute, +/- relative or * for the
    same). Only the binary's own code: a shared library's locks (glibc's) are not counted."""
    names, counts = {}, {}
    in_binary, after_call, address = False, False, 0
    for line in open(dump, errors="replace"):
        if line.startswith(("ob=", "cob=")):
            text = line.split("=", 1)[1].strip()
            number, _, name = text.partition(" ")
            if name:
                names[number] = name
            if line.startswith("ob="):
                in_binary = os.path.realpath(names.get(number, name)) == binary
            continue
        if line.startswith("calls="):
            after_call = True
            continue
        if not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        fields = line.split()
        position = fields[0]
        if position.startswith("0x"):
            address = int(position, 16)
        elif position[0] in "+-":
            address += int(position)
        elif position != "*":
            address = int(position)
        if after_call:  # the call's inclusive cost, not this instruction's
            after_call = False
            continue
        if in_binary and len(fields) >= 3:
            counts[address] = counts.get(address, 0) + int(fields[2])
    return counts


def cmd_locked(args):
    binary = os.path.realpath(args.binary)
    locked = locked_addresses(binary)
    counts = executed_by_address(args.dump, binary)
    if not counts:
        fail(f"no instruction of {binary} in {args.dump} (made with --dump-instr=yes?)")
    ran = sorted(((counts[a], a) for a in locked if counts.get(a)), reverse=True)
    total = sum(n for n, _ in ran)
    print(f"locked read-modify-write instructions per guest request: {total / args.count:.1f}")
    top = ran[:args.top]
    if not top:
        return
    lookup = subprocess.run(["addr2line", "-f", "-C", "-e", binary] + [hex(a) for _, a in top],
                            capture_output=True, text=True).stdout.splitlines()
    for (n, address), function in zip(top, lookup[0::2]):
        print(f"  {n / args.count:6.2f}  {locked[address]:<32.32}  {function[:90]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True)

    p = sub.add_parser("ports", help="print N free loopback ports")
    p.add_argument("count", type=int)
    p.add_argument("--avoid", type=int, nargs="*", default=[],
                   help="ports handed out before and not yet bound: never printed")
    p.set_defaults(func=cmd_ports)

    p = sub.add_parser("wait-port", help="wait until something listens on a loopback port")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_wait_port)

    p = sub.add_parser("loopback-congestion",
                       help="the TCP congestion control a loopback connection gets")
    p.set_defaults(func=cmd_loopback_congestion)

    p = sub.add_parser("metric", help="a metric's value from a Prometheus /metrics page")
    p.add_argument("url")
    p.add_argument("name")
    p.set_defaults(func=cmd_metric)

    p = sub.add_parser("pids", help="a process and its direct children")
    p.add_argument("pid", type=int)
    p.set_defaults(func=cmd_pids)

    p = sub.add_parser("cpu", help="user and kernel CPU seconds of processes: USER,SYSTEM")
    p.add_argument("pids", type=int, nargs="+")
    p.add_argument("--machine", action="store_true",
                   help="also the machine's busy CPU seconds, uptime, stolen seconds and TCP "
                   "retransmission timeouts: USER,SYSTEM BUSY,UPTIME,STEAL,RTO")
    p.set_defaults(func=cmd_cpu)

    p = sub.add_parser("locked", help="locked instructions run per request, from a callgrind dump")
    p.add_argument("dump")
    p.add_argument("binary")
    p.add_argument("count", type=int)
    p.add_argument("--top", type=int, default=12)
    p.set_defaults(func=cmd_locked)

    p = sub.add_parser("syscalls", help="system calls per request, from strace -c tables")
    p.add_argument("--results", required=True, help="the rounds' results (requests served)")
    p.add_argument("--strace", nargs="+", required=True, metavar="GATEWAY=FILE")
    p.add_argument("--segments", nargs="+", required=True, metavar="GATEWAY=COUNT",
                   help="TCP segments the host sent during each gateway's round")
    p.add_argument("--sched", nargs="+", metavar="GATEWAY=FILE",
                   help="perf stat -x, counts (sched_waking, context-switches) of an unstraced round")
    p.add_argument("--sched-results", help="the unstraced rounds' results (requests served)")
    p.set_defaults(func=cmd_syscalls)

    p = sub.add_parser("rss", help="VmRSS of a process, KiB")
    p.add_argument("pid", type=int)
    p.set_defaults(func=cmd_rss)

    p = sub.add_parser("probe", help="one request as wrk sends it: status and size")
    p.add_argument("url")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--cafile")
    p.add_argument("--expect", help="a status (200) or a class (4xx)")
    p.add_argument("--body-bytes", type=int)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("cookie", help="open a share link, print the guest cookie")
    p.add_argument("link")
    p.add_argument("--cafile")
    p.set_defaults(func=cmd_cookie)

    p = sub.add_parser("sequential", help="COUNT requests in turn on keep-alive connections")
    p.add_argument("url")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--cafile")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--between", help="shell command run after the warm-up requests")
    p.add_argument("--expect", default="200")
    p.add_argument("--connections", type=int, default=1,
                   help="keep-alive connections working in parallel, COUNT shared out")
    p.set_defaults(func=cmd_sequential)

    p = sub.add_parser("secure-link", help="sign a path for nginx secure_link")
    p.add_argument("path")
    p.add_argument("--secret", required=True)
    p.add_argument("--ttl", type=int, default=3600)
    p.set_defaults(func=cmd_secure_link)

    p = sub.add_parser("handshakes", help="new TLS connection + 1 request, in a loop")
    p.add_argument("url")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--cafile", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--procs", type=int, default=2)
    p.set_defaults(func=cmd_handshakes)

    p = sub.add_parser("record", help="check one round's output and append it to the results")
    p.add_argument("--tool", choices=["wrk", "h2load", "handshakes"], required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--row", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--cpu-before", required=True, help="`cpu`'s output before the round")
    p.add_argument("--cpu-after", required=True, help="`cpu`'s output after the round")
    p.add_argument("--machine-before", required=True, help="`cpu --machine`'s BUSY,UPTIME,STEAL,RTO before the round")
    p.add_argument("--machine-after", required=True, help="`cpu --machine`'s BUSY,UPTIME,STEAL,RTO after the round")
    p.add_argument("--response-size", type=int, default=0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--log-file")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("table", help="the results as a table (and Markdown)")
    p.add_argument("results")
    p.add_argument("--markdown")
    p.add_argument("--preamble", default="")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("pairs", help="ab.sh's verdict from its paired rounds")
    p.add_argument("--results", required=True)
    p.set_defaults(func=cmd_pairs)

    p = sub.add_parser("idle", help="hold idle keep-alive connections, report VmRSS")
    p.add_argument("url")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--settle", type=float, default=2.0)
    p.set_defaults(func=cmd_idle)

    p = sub.add_parser("sample-rss", help="peak VmRSS until a file appears")
    p.add_argument("pid", type=int)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--interval", type=float, default=0.05)
    p.set_defaults(func=cmd_sample_rss)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
