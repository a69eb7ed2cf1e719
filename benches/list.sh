#!/usr/bin/env bash
# What Home Assistant and the feeds page poll: `feed/list.json` of one user with 50 fixed
# feeds, each with a value, read by `wrk` on 8 connections for DURATION seconds.
#   ./benches/list.sh
#   BIN=/path/to/ynni ./benches/list.sh   # another build (none is built then)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
DURATION=${DURATION:-10}
. benches/serve.sh
bench_binary
bench_serve
B=http://127.0.0.1:$PORT
KEY=$(curl -s -X POST -d "username=bench&password=benchpass1&email=b@example.com&timezone=UTC" \
  "$B/user/register.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apikey_write"])')
for i in $(seq 1 50); do
  curl -s "$B/feed/create.json?name=f$i&engine=5&options=%7B%22interval%22%3A10%7D&apikey=$KEY" >/dev/null
  curl -s "$B/feed/insert.json?id=$i&time=1700000000&value=$i&apikey=$KEY" >/dev/null
done
curl -s "$B/feed/list.json?apikey=$KEY" | python3 -c '
import json, sys
feeds = json.load(sys.stdin)
assert len(feeds) == 50 and all(f["value"] is not None for f in feeds), feeds
print("feed/list.json: 50 feeds, each with its value")'
out=$(wrk -t1 -c8 -d"${DURATION}s" --latency "$B/feed/list.json?apikey=$KEY")
printf '%s, p50 %s, p99 %s\n' "$(echo "$out" | grep Requests/sec)" \
  "$(echo "$out" | awk '/^ +50%/ {print $2}')" "$(echo "$out" | awk '/^ +99%/ {print $2}')"
