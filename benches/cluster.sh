#!/usr/bin/env bash
# Cluster benchmark (issue 17): release builds of ynni, a temporary PostgreSQL (run as the
# `postgres` user when started as root) and a local directory as the shared filesystem.
#
#   1. one node without [cluster]: input/post requests/s, p50, p99 (wrk, 64 connections);
#   2. three nodes: input/post sent to a user's owner (local) and to another node
#      (forwarded): requests/s, p50, p99, and the CPU-seconds all three nodes spent per
#      1,000 requests (from /proc, so the forwarding node's work is counted);
#   3. three nodes with the load spread: one wrk per node, each cycling over users owned by
#      all three (two thirds of requests forwarded);
#   4. MQTT: `ynni simulate` publishing QoS 1 through one node for accounts owned by all
#      three (two thirds spliced), values/s with every value counted in its feed.
#
#   ./benches/cluster.sh                # DURATION=10 seconds per run
# Everything shares this machine's cores: the figures compare, they do not size a server.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
# BIN=path/to/ynni measures another build (none is built then).
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=$PWD/target/release/ynni
fi
PGBIN=$(dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")")
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/pg" "$work/shared"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$work/pg"
as_pg "$PGBIN/initdb" -D "$work/pg" -U ynni -A trust -E UTF8 --no-sync >/dev/null
PGPORT=$(free_port)
as_pg "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p $PGPORT -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
PG=postgres://ynni@127.0.0.1:$PGPORT/postgres

wait_http() {
  for _ in $(seq 300); do grep -q "HTTP listening" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "did not start: $1"; cat "$1"; exit 1
}
cpu_ticks() { # utime + stime of the given pids, in clock ticks
  local t=0
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
ctx_switches() { # voluntary + involuntary context switches of every thread of the given pid
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'
}
# wrk URL CONNECTIONS [script] -> "requests/s p50 p99 requests"
run_wrk() {
  local url=$1 conns=$2 script=${3:-}
  local out
  local extra=()
  [ -n "${WRK_HEADER:-}" ] && extra=(-H "$WRK_HEADER")
  if [ -n "$script" ]; then
    out=$(wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${extra[@]}" -s "$script" "$url")
  else
    out=$(wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${extra[@]}" "$url")
  fi
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def ms(v):
    n, u = re.match(r'([\d.]+)(us|ms|s)', v).groups()
    return float(n) * {'us': 0.001, 'ms': 1, 's': 1000}[u]
rps = re.search(r'Requests/sec:\s+([\d.]+)', out).group(1)
# The distribution's lines only (a standard deviation column may also end in "50%").
p50 = re.search(r'^\s+50%\s+(\S+)', out, re.M).group(1)
p99 = re.search(r'^\s+99%\s+(\S+)', out, re.M).group(1)
n = re.search(r'(\d+) requests in', out).group(1)
errs = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
print(rps, '%.2f' % ms(p50), '%.2f' % ms(p99), n, errs.group(1) if errs else 0)
PY
}
post_url() { # base key
  echo "$1/input/post?node=bench&fulljson=%7B%22power1%22%3A100%2C%22power2%22%3A200%7D&apikey=$2"
}
register() { # base name -> write key
  local r
  r=$(curl -s -X POST -d "username=$2&password=benchpass1&email=$2@example.com&timezone=UTC" \
    "$1/user/register.json")
  python3 -c 'import json,sys
r = json.loads(sys.argv[1])
if "apikey_write" not in r: sys.exit("register: %s" % sys.argv[1])
print(r["apikey_write"])' "$r"
}

if [ -z "${SKIP_SINGLE:-}" ]; then
echo "== 1. one node without [cluster]"
P=$(free_port)
YNNI_USERS__REGISTRATION=open "$BIN" serve --data-dir "$work/single" --http-listen "127.0.0.1:$P" \
  --mqtt-listen 127.0.0.1:0 2>"$work/single.log" &
pids+=($!); single=$!
wait_http "$work/single.log"
K=$(register "http://127.0.0.1:$P" solo)
curl -s "$(post_url "http://127.0.0.1:$P" "$K")" >/dev/null
t0=$(cpu_ticks $single)
read -r rps p50 p99 n errs <<<"$(run_wrk "$(post_url "http://127.0.0.1:$P" "$K")" "$CONNECTIONS")"
t1=$(cpu_ticks $single)
printf 'input/post: %s req/s, p50 %s ms, p99 %s ms, %s non-2xx; %.3f CPU-s per 1,000 requests\n' \
  "$rps" "$p50" "$p99" "$errs" "$(echo "($t1 - $t0) / $HZ * 1000 / $n" | bc -l)"
kill $single; wait $single 2>/dev/null || true
fi

echo "== 2. three nodes"
ports=() ; mports=() ; node_pids=()
for n in 1 2 3; do
  hp=$(free_port); mp=$(free_port); ports+=("$hp"); mports+=("$mp")
  cat >"$work/n$n.toml" <<CONF
data_dir = "$work/n$n-data"
[http]
listen = "127.0.0.1:$hp"
[mqtt]
listen = "127.0.0.1:$mp"
[users]
registration = "open"
[cluster]
postgres = "$PG"
shared_dir = "$work/shared"
node_id = "n$n"
advertise = "127.0.0.1:$hp"
secret = "bench-secret-0123456789"
CONF
  YNNI_LIMITS__REGISTER_ATTEMPTS=1000 "$BIN" serve --config "$work/n$n.toml" 2>"$work/n$n.log" &
  pids+=($!); node_pids+=($!)
done
for n in 1 2 3; do wait_http "$work/n$n.log"; done
base() { echo "http://127.0.0.1:${ports[$(($1 - 1))]}"; }
# Wait until every vshard is owned and open somewhere.
for _ in $(seq 300); do
  held=$("$BIN" cluster status --config "$work/n1.toml" | grep -c "alive" || true)
  [ "$held" = 3 ] && "$BIN" cluster status --config "$work/n1.toml" | grep -q "without a live lease: 0" && break
  sleep 0.2
done
# Accounts until each node owns at least three; x-ynni-node names the owner.
declare -A owner_of key_of
on1=(); on2=(); on3=()
for i in $(seq 1 60); do
  k=$(register "$(base 1)" "user$i")
  for _ in $(seq 100); do
    o=$(curl -s -D - -o /dev/null "$(post_url "$(base 1)" "$k")" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-ynni-node"{print $2}')
    code=$(curl -s -o /dev/null -w '%{http_code}' "$(post_url "$(base 1)" "$k")")
    [ "$code" = 200 ] && [ -n "$o" ] && break
    sleep 0.1
  done
  [ -n "${DEBUG:-}" ] && echo "user$i -> ${o:-none}" >&2
  case $o in n1) on1+=("$k");; n2) on2+=("$k");; n3) on3+=("$k");; esac
  [ ${#on1[@]} -ge 3 ] && [ ${#on2[@]} -ge 3 ] && [ ${#on3[@]} -ge 3 ] && break
done
echo "accounts: ${#on1[@]} on n1, ${#on2[@]} on n2, ${#on3[@]} on n3"

# THREADS=1: each run also prints, per thread name, the switches and CPU per request of one
# node (THREADS_NODE, default 2: the owner; 1 is the forwarding node).
threads_snap() { # pid -> "name switches ticks" per thread, summed by name
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "$(tr ' ' _ <"$t/comm")" \
      "$(awk '/ctxt_switches/ {n += $2} END {print n + 0}' "$t/status")" \
      "$(awk '{print $14 + $15}' "$t/stat")"
  done | awk '{s[$1] += $2; c[$1] += $3} END {for (k in s) print k, s[k], c[k]}' | sort
}
threads_delta() { # pid requests: per thread name, switches per request and CPU-µs per request
  threads_snap "$1" >"$work/threads-after"
  join "$work/threads-before" "$work/threads-after" | awk -v n="$2" -v hz="$HZ" \
    '{d = ($4 - $2) / n; u = ($5 - $3) / hz * 1e6 / n; if (d > 0.01 || u > 0.1) printf "    %-20s %.2f switches, %.1f µs\n", $1, d, u}'
}
measure() { # label url [script]
  local t0 t1 before=() after=() split="" i
  local cs_before=() cs=""
  for i in 0 1 2; do before+=("$(cpu_ticks "${node_pids[$i]}")"); done
  for i in 0 1 2; do cs_before+=("$(ctx_switches "${node_pids[$i]}")"); done
  [ -z "${THREADS:-}" ] || threads_snap "${node_pids[$((${THREADS_NODE:-2} - 1))]}" >"$work/threads-before"
  t0=$(cpu_ticks "${node_pids[@]}")
  read -r rps p50 p99 n errs <<<"$(run_wrk "$2" "$CONNECTIONS" "${3:-}")"
  t1=$(cpu_ticks "${node_pids[@]}")
  for i in 0 1 2; do
    after=$(cpu_ticks "${node_pids[$i]}")
    split+=$(printf ' n%d %.3f' $((i + 1)) "$(echo "($after - ${before[$i]}) / $HZ * 1000 / $n" | bc -l)")
    cs+=$(printf ' n%d %.2f' $((i + 1)) "$(echo "($(ctx_switches "${node_pids[$i]}") - ${cs_before[$i]}) / $n" | bc -l)")
  done
  printf '%s: %s req/s, p50 %s ms, p99 %s ms, %s non-2xx; %.3f CPU-s per 1,000 requests (all nodes;%s)\n' \
    "$1" "$rps" "$p50" "$p99" "$errs" "$(echo "($t1 - $t0) / $HZ * 1000 / $n" | bc -l)" "$split"
  echo "  context switches per request:$cs"
  [ -z "${THREADS:-}" ] || threads_delta "${node_pids[$((${THREADS_NODE:-2} - 1))]}" "$n"
}
# Where a node's CPU goes in a run: PERF=1 ./benches/cluster.sh (needs `perf`); PERF_NODE=2
# profiles the owner instead of the forwarding node (n1), in both runs.
perf_start() {
  if [ -n "${SYSCALLS:-}" ]; then # system calls by kind instead of a profile
    perf stat -x, -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex' \
      -p "${node_pids[$((${PERF_NODE:-1} - 1))]}" -o "$work/stat-$1.txt" -- sleep $((DURATION - 2)) >/dev/null 2>&1 &
    perf_pid=$!
    return 0
  fi
  [ -n "${PERF:-}" ] || return 0
  perf record -F 499 -g -p "${node_pids[$((${PERF_NODE:-1} - 1))]}" -o "$work/perf-$1.data" \
    -- sleep $((DURATION - 2)) >/dev/null 2>&1 &
  perf_pid=$!
}
perf_show() {
  if [ -n "${SYSCALLS:-}" ]; then
    wait "$perf_pid" || true
    echo "-- system calls of n${PERF_NODE:-1} over $((DURATION - 2)) s, $1 (divide by the requests/s above):"
    grep -v '^#' "$work/stat-$1.txt" | awk -F, 'NF > 2 {printf "    %s %s\n", $3, $1}'
    return 0
  fi
  [ -n "${PERF:-}" ] || return 0
  wait "$perf_pid" || true
  echo "-- perf, n${PERF_NODE:-1}, $1"
  perf report -i "$work/perf-$1.data" ${PERF_REPORT:---no-children --sort dso,symbol --percent-limit 1.5} --stdio \
    2>/dev/null | grep -v "^$" | grep -E "^ +[0-9]" | head -${PERF_LINES:-40}
}
# DELAY_MS=N: each connection waits N ms after each reply before its next request, so that
# both runs of the pair below offer about the same rate instead of all they can.
pace=""
if [ -n "${DELAY_MS:-}" ]; then
  pace="$work/pace.lua"
  echo "delay = function() return ${DELAY_MS} end" >"$pace"
fi
[ "${PERF_NODE:-1}" = 1 ] || perf_start local
measure "local (n2 user -> n2)" "$(post_url "$(base 2)" "${on2[0]}")" $pace
[ "${PERF_NODE:-1}" = 1 ] || perf_show local
perf_start forwarded
measure "forwarded (n2 user -> n1 -> n2)" "$(post_url "$(base 1)" "${on2[0]}")" $pace
perf_show forwarded
# ONLY_PAIR=1: the two kept-alive runs above and nothing after.
[ -z "${ONLY_PAIR:-}" ] || exit 0
# Latency without queueing: two connections, far below saturation.
CONNECTIONS_SAVED=$CONNECTIONS; CONNECTIONS=2
measure "local, 2 connections" "$(post_url "$(base 2)" "${on2[0]}")"
measure "forwarded, 2 connections" "$(post_url "$(base 1)" "${on2[0]}")"
CONNECTIONS=$CONNECTIONS_SAVED
# A new connection for every request, as emonhub and the ESP firmware post.
WRK_HEADER="Connection: close" measure "local, a connection per request" "$(post_url "$(base 2)" "${on2[0]}")"
WRK_HEADER="Connection: close" measure "forwarded, a connection per request" "$(post_url "$(base 1)" "${on2[0]}")"

# ONLY_SECTION2=1: the runs above and nothing after.
[ -z "${ONLY_SECTION2:-}" ] || exit 0

echo "== 3. three nodes, load spread (each wrk cycles over users on all three nodes)"
for n in 1 2 3; do
  cat >"$work/spread$n.lua" <<LUA
local paths = {
  "/input/post?node=bench&fulljson=%7B%22power1%22%3A1%7D&apikey=${on1[$n-1]}",
  "/input/post?node=bench&fulljson=%7B%22power1%22%3A1%7D&apikey=${on2[$n-1]}",
  "/input/post?node=bench&fulljson=%7B%22power1%22%3A1%7D&apikey=${on3[$n-1]}",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % 3) + 1])
end
LUA
done
t0=$(cpu_ticks "${node_pids[@]}")
spread=()
for n in 1 2 3; do
  (run_wrk "$(base "$n")/" $((CONNECTIONS / 3)) "$work/spread$n.lua" >"$work/spread$n.out") &
  spread+=($!)
done
wait "${spread[@]}"
t1=$(cpu_ticks "${node_pids[@]}")
python3 - "$work" "$HZ" "$t0" "$t1" <<'PY'
import sys
work, hz, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [open(f'{work}/spread{n}.out').read().split() for n in (1, 2, 3)]
rps = sum(float(r[0]) for r in rows); n = sum(int(r[3]) for r in rows)
print('spread: %.0f req/s in total; p50 %s ms, p99 %s ms (worst node); %s non-2xx; %.3f CPU-s per 1,000 requests' % (
    rps, max(float(r[1]) for r in rows), max(float(r[2]) for r in rows), sum(int(r[4]) for r in rows),
    (t1 - t0) / hz * 1000 / n))
PY

echo "== 3b. three nodes, load spread, one account per connection (as devices and Home Assistant post)"
t0=$(cpu_ticks "${node_pids[@]}")
spread=()
for n in 1 2 3; do
  for m in 1 2 3; do
    eval "k=\${on$m[$((n - 1))]}"
    (run_wrk "$(post_url "$(base "$n")" "$k")" $((CONNECTIONS / 9)) >"$work/acct$n$m.out") &
    spread+=($!)
  done
done
wait "${spread[@]}"
t1=$(cpu_ticks "${node_pids[@]}")
python3 - "$work" "$HZ" "$t0" "$t1" <<'PY'
import sys
work, hz, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [open(f'{work}/acct{n}{m}.out').read().split() for n in (1, 2, 3) for m in (1, 2, 3)]
rps = sum(float(r[0]) for r in rows); n = sum(int(r[3]) for r in rows)
print('spread, one account per connection: %.0f req/s in total; p50 %s ms, p99 %s ms (worst); %s non-2xx; %.3f CPU-s per 1,000 requests' % (
    rps, max(float(r[1]) for r in rows), max(float(r[2]) for r in rows), sum(int(r[4]) for r in rows),
    (t1 - t0) / hz * 1000 / n))
PY

echo "== 4. MQTT QoS 1 through n1 for accounts on all three nodes"
"$BIN" user list --config "$work/n1.toml" --with-keys >"$work/all.json"
python3 - "$work/all.json" >"$work/sim.json" <<'PY'
import json, sys
print(json.dumps([u for u in json.load(open(sys.argv[1])) if u["username"].startswith("user")][:12]))
PY
if "$BIN" simulate --mqtt "127.0.0.1:${mports[0]}" --api "$(base 1)" --accounts "$work/sim.json" \
    --users 12 --devices-per-user 5 --profile emontx4 --format json --qos 1 --interval 10 \
    --speed 200 --duration "$DURATION" --log-to-feeds >"$work/sim.out" 2>"$work/sim.err"; then
  python3 - "$work/sim.out" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
st = s.get('stored') or {}
print('mqtt: %.0f values/s (%d messages/s), %d of %d values stored, %d missing, errors %d' % (
    s['values_per_s'], s['messages_per_s'], st.get('points', 0), st.get('expected', 0),
    st.get('missing', 0), s['errors']))
PY
else
  echo "mqtt: FAILED"; tail -5 "$work/sim.err"
fi
