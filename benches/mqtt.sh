#!/usr/bin/env bash
# MQTT load benchmark (issue 6 numbers) against a release build on free local ports:
#   1. 9,000 idle connections: memory per connection (issue 20: 10,000 idle devices in 256 MiB);
#   2. 1,000 simulated devices x 10 inputs every second: ynni's CPU and memory, and the
#      publish -> visible-in-input/get latency (p50/p99);
#   3. 9,000 devices x 1 input every 10 s: CPU and latency (issue 20: 10,000 at most 25% of a core);
#   4. peak end-to-end throughput: 4 connections publishing 10-input JSON as fast as they can,
#      every input logged to its own PHPFina feed, until the last value is visible.
# Needs python3 and mosquitto-clients (for the setup publishes).
#   ./benches/mqtt.sh            # DURATION=30 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
HTTP=127.0.0.1:${HTTP_PORT:-18580}
MQTT=127.0.0.1:${MQTT_PORT:-18583}
cargo build --release --quiet
work=$(mktemp -d)
# Waits for the server to finish shutting down (it saves feeds' levels) before removing its files.
trap 'kill $(cat "$work/pid") 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
# One account holds every simulated device here, so its connection limits are raised.
YNNI_USERS__REGISTRATION=open YNNI_MQTT__MAX_CONNECTIONS=15000 YNNI_MQTT__MAX_CONNECTIONS_PER_USER=15000 \
  ./target/release/ynni serve --data-dir "$work/data" \
  --http-listen "$HTTP" --mqtt-listen "$MQTT" 2>"$work/log" &
echo $! >"$work/pid"
for _ in $(seq 100); do grep -q "HTTP listening" "$work/log" 2>/dev/null && break; sleep 0.1; done
keys=$(curl -s -X POST -d "username=bench&password=benchpass1&email=b@example.com&timezone=UTC" \
  "http://$HTTP/user/register.json")
W=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apikey_write"])' "$keys")
R=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apikey_read"])' "$keys")
PID=$(cat "$work/pid")
probe=$(curl -s -X POST -d "username=probe&password=probepass1&email=p@example.com&timezone=UTC" \
  "http://$HTTP/user/register.json")
PW=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apikey_write"])' "$probe")
# The peak gets its own account: the device loads fill the bench account's 32 nodes
# (emoncms's node limit), after which messages for new nodes are refused.
peak=$(curl -s -X POST -d "username=peaker&password=peakpass1&email=k@example.com&timezone=UTC" \
  "http://$HTTP/user/register.json")
KW=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apikey_write"])' "$peak")
KR=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apikey_read"])' "$peak")
load() { python3 benches/mqtt_load.py "$@" --mqtt "$MQTT" --http "http://$HTTP" --user bench --key "$W" --pid "$PID"; }

# This machine's open-file limit (20,000, not raisable here) caps ynni's MQTT connections at
# about 9,990 (half the budget stays for files), so the fleets below are 9,000 devices.
echo "== 9,000 idle connections"
load idle --devices 9000

echo "== 1,000 devices x 10 inputs every second, ${DURATION}s"
load devices --devices 1000 --inputs 10 --duration "$DURATION" --probe-user probe --probe-key "$PW"


echo "== peak: 4 connections, 10 inputs per message, each input logged to a feed"
for c in 0 1 2 3; do
  mosquitto_pub -h 127.0.0.1 -p "${MQTT##*:}" -u peaker -P "$KW" -t "emon/peak$c" \
    -m '{"p0":0,"p1":0,"p2":0,"p3":0,"p4":0,"p5":0,"p6":0,"p7":0,"p8":0,"p9":0}'
done
sleep 1
python3 - "$HTTP" "$KW" "$KR" <<'PY'
import json, sys, urllib.parse, urllib.request
http, w, r = sys.argv[1:]
get = lambda p: json.loads(urllib.request.urlopen("http://%s%s" % (http, p)).read())
for i in get("/input/list.json?apikey=" + r):
    if not i["nodeid"].startswith("peak"):
        continue
    f = get("/feed/create.json?tag=%s&name=%s&engine=5&options=%%7B%%22interval%%22%%3A10%%7D&apikey=%s"
            % (i["nodeid"], i["name"], w))["feedid"]
    body = urllib.parse.urlencode({"processlist": json.dumps([{"fn": "process__log_to_feed", "args": [str(f)]}])})
    urllib.request.urlopen("http://%s/input/process/set?inputid=%s&apikey=%s" % (http, i["id"], w), body.encode()).read()
PY
python3 benches/mqtt_load.py peak --connections 4 --inputs 10 --duration 10 --mqtt "$MQTT" \
  --http "http://$HTTP" --user peaker --key "$KW" --pid "$PID"

# Last: closing 9,000 connections keeps the broker busy for a while.
echo "== 9,000 devices x 1 input every 10 seconds, ${DURATION}s"
load devices --devices 9000 --inputs 1 --period 10 --duration "$DURATION" --probe-user probe --probe-key "$PW"
