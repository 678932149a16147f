#!/usr/bin/env bash
# Benchmark the socket backend against nginx answering a fixed response, in one run.
#
#   scripts/bench_socket.sh                 # wrk -t2 -c64 -d10s, varied GET /fish rows
#   DURATION=30s CONNS=128 scripts/bench_socket.sh
#
# Runs, one after another on the same machine and with the same wrk command:
#   1. nginx (worker_processes 2) answering `return 200 '{"prediction":"bream"}'`
#   2. fishpredict serve --backend socket --workers 1
#   3. fishpredict serve --backend socket --workers 2
# and prints requests/s, p50, p99, non-2xx counts and the ratios to nginx and
# to the seed's ~440 requests/s. Loopback only; every process it starts is
# stopped by its pid on exit.
set -euo pipefail

THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROWS=${ROWS:-1000}
NGINX=${NGINX:-/usr/sbin/nginx}
SEED_RPS=${SEED_RPS:-440}
HERE=$(cd "$(dirname "$0")" && pwd)
LUA="$HERE/varied.lua"
PY=${PYTHON:-python3}

command -v wrk >/dev/null || { echo "bench_socket: wrk is not installed" >&2; exit 2; }
[ -x "$NGINX" ] || { echo "bench_socket: no nginx at $NGINX" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  if [ -n "${KEEP:-}" ]; then echo "bench_socket: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# 1,000 varied rows: the 49 fish with +-3% length and +-5% weight jitter, k cycling.
"$PY" - "$WORK/paths.txt" "$ROWS" <<'EOF'
import sys
import numpy as np
from fishpredict.fish.dataset import load_fish

out, rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
X = load_fish().X
ks = (1, 5, 15, 25, 49)
with open(out, "w") as f:
    for i in range(rows):
        length, weight = X[rng.integers(len(X))]
        length *= 1 + rng.uniform(-0.03, 0.03)
        weight *= 1 + rng.uniform(-0.05, 0.05)
        f.write(f"/fish?length={length:.1f}&weight={weight:.1f}&k={ks[i % len(ks)]}\n")
EOF

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() {  # url deadline_seconds
  "$PY" - "$1" "$2" <<'EOF'
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(f"bench_socket: {url} not ready in time")
EOF
}

cpu_ticks() {  # pid: utime+stime clock ticks of the process and its children (workers)
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

run_wrk() {  # name url server_pid
  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$LUA" "$2" -- "$WORK/paths.txt" >/dev/null
  local before
  before=$(cpu_ticks "$3")
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$2" -- "$WORK/paths.txt" \
    >"$WORK/$1.wrk"
  echo $(( $(cpu_ticks "$3") - before )) >"$WORK/$1.cpu"
}

stop_pid() {  # pid
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# -- nginx with a fixed answer --
NPORT=$(free_port)
mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NPORT;
    location / {
      default_type application/json;
      return 200 '{"prediction":"bream"}';
    }
  }
}
EOF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_ready "http://127.0.0.1:$NPORT/" 10
run_wrk nginx "http://127.0.0.1:$NPORT" "$NGINX_PID"
stop_pid "$NGINX_PID"

# -- fishpredict socket backend, 1 and 2 workers --
for workers in 1 2; do
  FPORT=$(free_port)
  "$PY" -m fishpredict serve --backend socket --workers "$workers" --port "$FPORT" \
    --log-level warning >"$WORK/serve$workers.out" 2>&1 &
  FPID=$!
  PIDS+=("$FPID")
  wait_ready "http://127.0.0.1:$FPORT/readyz" 60
  run_wrk "socket-w$workers" "http://127.0.0.1:$FPORT" "$FPID"
  stop_pid "$FPID"
done

"$PY" - "$WORK" "$SEED_RPS" "$(getconf CLK_TCK)" "wrk -t$THREADS -c$CONNS -d$DURATION --latency -s scripts/varied.lua" <<'EOF'
import re, sys
from pathlib import Path

work, seed, hz, cmd = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def unit(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    n, u = float(m.group(1)), m.group(2)
    return n * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]

def read(name: str) -> dict:
    text = (work / f"{name}.wrk").read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = unit(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = unit(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs = re.search(r"Socket errors:(.*)", text)
    total = int(re.search(r"(\d+) requests in", text).group(1))
    cpu = int((work / f"{name}.cpu").read_text()) / hz
    return {"rps": rps, "cpu_us": cpu / max(total, 1) * 1e6, "p50": p50, "p99": p99, "non2xx": int(bad.group(1)) if bad else 0,
            "errors": errs.group(1).strip() if errs else "none"}

rows = {n: read(n) for n in ("nginx", "socket-w1", "socket-w2")}
base = rows["nginx"]["rps"]
print(f"\n{cmd}  (same machine, same run)")
print(f"{'server':<12}{'req/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'vs nginx':>9}{'vs seed':>8}"
      f"{'CPU us/req':>11}{'non-2xx':>8}  socket errors")
for name, r in rows.items():
    print(f"{name:<12}{r['rps']:>10,.0f}{r['p50']:>8.2f}{r['p99']:>8.2f}"
          f"{r['rps'] / base:>9.0%}{r['rps'] / seed:>7.0f}x{r['cpu_us']:>11.1f}{r['non2xx']:>8}"
          f"  {r['errors']}")
print("CPU us/req: server processes' CPU time (user+sys, all workers) per answered request;"
      " it varies less than req/s when the machine is shared.")
EOF
