#!/usr/bin/env bash
# HTTP load benchmark (issue 5 targets): input/post with 200 connections, input/bulk with
# 1,000 frames x 10 values, feed/data of a one-year 10 s feed at 1,000 points.
# Uses `wrk` (Debian package `wrk`) against a release build on free local ports.
#   ./benches/http.sh            # 15 s per scenario
#   DURATION=30 ./benches/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 1; }
DURATION=${DURATION:-15}
HTTP=127.0.0.1:${HTTP_PORT:-18480}
cargo build --release --quiet
work=$(mktemp -d)
# Waits for the server to finish shutting down (it saves feeds' levels) before removing its files.
trap 'kill $(cat "$work/pid") 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
YNNI_USERS__REGISTRATION=open ./target/release/ynni serve --data-dir "$work/data" \
  --http-listen "$HTTP" --mqtt-listen 127.0.0.1:0 2>"$work/log" &
echo $! >"$work/pid"
for _ in $(seq 100); do grep -q "HTTP listening" "$work/log" 2>/dev/null && break; sleep 0.1; done
keys=$(curl -s -X POST -d "username=bench&password=benchpass1&email=b@example.com&timezone=UTC" \
  "http://$HTTP/user/register.json")
W=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apikey_write"])' "$keys")
R=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apikey_read"])' "$keys")

echo "== input/post, fulljson with 2 values, 200 connections, ${DURATION}s"
post="http://$HTTP/input/post?node=emontx&fulljson=%7B%22power1%22%3A100%2C%22power2%22%3A200%7D&apikey=$W"
curl -s "$post" >/dev/null
wrk -t1 -c200 -d"${DURATION}s" --latency "$post" | grep -E "Latency  |99%|Requests/sec"

echo "== input/bulk, 1,000 frames x 10 values per request, 8 connections"
python3 - "$work/bulk.lua" <<'PY'
import json, sys, urllib.parse
frames = [[i, 5 + i % 4] + [round(100 + i * 0.1 + j, 1) for j in range(10)] for i in range(1000)]
body = "data=" + urllib.parse.quote(json.dumps(frames, separators=(",", ":")))
with open(sys.argv[1], "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
    f.write("wrk.body = [[" + body + "]]\n")
PY
wrk -t1 -c8 -d"${DURATION}s" --latency -s "$work/bulk.lua" \
  "http://$HTTP/input/bulk.json?time=1700000000&apikey=$W" | grep -E "Latency  |99%|Requests/sec"
echo "(values/s = requests/s x 10,000)"

echo "== feed/data, one-year 10 s PHPFina feed (3,153,600 slots), 1,000 points, 50 connections"
curl -s "http://$HTTP/feed/create.json?tag=b&name=year&engine=5&options=%7B%22interval%22%3A10%7D&apikey=$W" >/dev/null
python3 - "$work" <<'PY'
import math, struct, sys
n = 788400
for c in range(4):
    vals = [1000 + 500 * math.sin((c * n + i) / 8640.0) for i in range(n)]
    open(f"{sys.argv[1]}/chunk{c}.bin", "wb").write(struct.pack("<%df" % n, *vals))
PY
S=1672531200
for c in 0 1 2 3; do
  curl -s -X POST --data-binary @"$work/chunk$c.bin" -H "Content-Type: application/octet-stream" \
    "http://$HTTP/feed/upload.json?id=1&start=$((S + c * 7884000))&interval=10&npoints=788400&apikey=$W" >/dev/null
done
E=$((S + 31536000))
for avg in 0 1; do
  echo "-- average=$avg"
  wrk -t1 -c50 -d"${DURATION}s" --latency \
    "http://$HTTP/feed/data.json?id=1&start=${S}000&end=${E}000&interval=31536&average=$avg&apikey=$R" |
    grep -E "Latency  |99%|Requests/sec"
done
