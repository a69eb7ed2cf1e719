#!/usr/bin/env bash
# What billing costs on the hot path: input/post on one node with and without `[billing]` (a
# plan with a rate limit and an input cap high enough never to refuse, so every request runs
# the balance check, the rate limiter and the plan lookup), twice each, wrk with 64
# connections for 10 s.
#
#   ./benches/billing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet
BIN=$PWD/target/release/ynni
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run() {
  local label=$1; shift
  local d; d=$(mktemp -d)
  env YNNI_USERS__REGISTRATION=open "$@" $BIN serve --data-dir $d/data --http-listen 127.0.0.1:$PORT --mqtt-listen 127.0.0.1:0 2>$d/log &
  local pid=$!
  for _ in $(seq 100); do grep -q "HTTP listening" $d/log && break; sleep 0.1; done
  local k
  k=$(curl -s -X POST -d "username=bench&password=benchpass1&email=b@x.com&timezone=UTC" localhost:$PORT/user/register.json | python3 -c 'import json,sys;print(json.load(sys.stdin)["apikey_write"])')
  curl -s "localhost:$PORT/input/post?node=bench&fulljson=%7B%22p%22%3A1%7D&apikey=$k" >/dev/null
  local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local out; out=$(wrk -t1 -c64 -d10s --latency "http://127.0.0.1:$PORT/input/post?node=bench&fulljson=%7B%22power1%22%3A100%2C%22power2%22%3A200%7D&apikey=$k")
  local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  local n; n=$(echo "$out" | grep -oP '\d+(?= requests in)')
  echo "$label: $(echo "$out" | grep Requests/sec) p50 $(echo "$out" | grep -P '^\s+50%' | awk '{print $2}') p99 $(echo "$out" | grep -P '^\s+99%' | awk '{print $2}') non2xx $(echo "$out" | grep -oP '(?<=Non-2xx or 3xx responses: )\d+' || echo 0) cpu-ms/req $(echo "scale=4; ($t1-$t0)/$(getconf CLK_TCK)*1000/$n" | bc)"
  kill $pid; wait $pid 2>/dev/null || true; rm -rf $d
}
run "billing off"
run "billing on " YNNI_BILLING__GRACE_DAYS=14 YNNI_BILLING__PLANS__STANDARD__VALUES_PER_MINUTE=100000000 YNNI_BILLING__PLANS__STANDARD__MAX_INPUTS=1000
run "billing off"
run "billing on " YNNI_BILLING__GRACE_DAYS=14 YNNI_BILLING__PLANS__STANDARD__VALUES_PER_MINUTE=100000000 YNNI_BILLING__PLANS__STANDARD__MAX_INPUTS=1000
