#!/usr/bin/env bash
# End-to-end benchmark (issue 8): a release ynni with a temporary data directory, driven by
# `ynni simulate` at fixed loads over MQTT and HTTP. Every simulated input logs to its own
# fixed-interval feed, and after each run the simulator counts the stored points, so a run
# that lost anything fails. Prints, per load: values/s sustained, publish -> stored latency
# p50/p99 (HTTP: the "ok", sent once durable and processed; MQTT: 10 sampled devices
# watch their feed's update, i.e. durable and processed), ynni's
# CPU (% of one core) and RSS, and the simulator's CPU (it shares the machine).
#
#   ./benches/e2e.sh                 # DURATION=20 seconds per load
#   DURATION=5 ./benches/e2e.sh      # a quick look
#   COMMIT_WINDOW_MS=20 ./benches/e2e.sh   # ynni with storage.commit_window_ms = 20
#
# Loads (rates come from --speed: readings of the recent past sent faster than real time,
# each device keeping its 10 s interval and realistic values):
#   mqtt-peak : 100 emonTx4s (18 inputs, JSON, QoS 1) on 10 accounts, ~100,800 values/s offered
#   http-post : 300 devices (2 inputs each) on 10 accounts, ~30,000 input/post requests/s offered
#               (HTTP posts are held to emoncms's node limit per account)
#   mqtt-1000 : 1,000 devices on 40 accounts, 1 value/s each (a 10 s interval at 10x), QoS 1
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
HTTP=127.0.0.1:${HTTP_PORT:-18680}
MQTT=127.0.0.1:${MQTT_PORT:-18683}
cargo build --release --quiet
BIN=./target/release/ynni
work=$(mktemp -d)
trap 'kill "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

# Accounts first, offline on the same data directory.
for spec in m:10 h:10 d:40; do
  prefix=${spec%%:*}
  for i in $(seq 1 "${spec##*:}"); do
    "$BIN" user add --data-dir "$work/data" --username "sim$prefix$i" --password "benchpass$i" \
      --email "sim$prefix$i@example.com" >/dev/null
  done
done
"$BIN" user list --data-dir "$work/data" --with-keys >"$work/all.json"
pick() {
  python3 -c 'import json, sys
users = json.load(open(sys.argv[1]))
print(json.dumps([u for u in users if u["username"].startswith("sim" + sys.argv[2])]))' \
    "$work/all.json" "$1" >"$work/$1.json"
}
pick m; pick h; pick d

YNNI_STORAGE__COMMIT_WINDOW_MS=${COMMIT_WINDOW_MS:-0} "$BIN" serve --data-dir "$work/data" --http-listen "$HTTP" --mqtt-listen "$MQTT" 2>"$work/log" &
echo $! >"$work/pid"
for _ in $(seq 100); do grep -q "HTTP listening" "$work/log" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "HTTP listening" "$work/log" || ! grep -q "MQTT listening" "$work/log"; then
  echo "ynni did not start:"; cat "$work/log"; exit 1
fi
PID=$(cat "$work/pid")

report() {
  python3 - "$1" "$2" <<'PY'
import json, sys
name, line = sys.argv[1], open(sys.argv[2]).read().strip().splitlines()[-1]
s = json.loads(line)
lat = s.get('stored_latency_ms') or {}
ack = s.get('ack_latency_ms') or {}
st = s.get('stored') or {}
srv = s.get('server') or {}
sim = s.get('simulator') or {}
print('%-9s %s: %d devices x %d inputs, %.0f s: %d values sent, %d acked, %d stored of %d '
      '(missing %d), errors %d; %.0f values/s, %.0f messages/s; stored p50 %.2f ms, p99 %.2f ms '
      '(%d samples; ack p50 %.2f ms, p99 %.2f ms); '
      'ynni CPU %.0f%%, RSS %.0f MiB; simulator CPU %.0f%%' % (
          name, s['transport'], s['devices'], s['inputs_per_device'], s['seconds'],
          s['values_sent'], s['values_acked'], st.get('points', 0), st.get('expected', 0),
          st.get('missing', 0), s['errors'], s['values_per_s'], s['messages_per_s'],
          lat.get('p50', float('nan')), lat.get('p99', float('nan')), lat.get('samples', 0),
          ack.get('p50', float('nan')), ack.get('p99', float('nan')),
          srv.get('cpu_percent', float('nan')), srv.get('rss_mib', float('nan')),
          sim.get('cpu_percent', float('nan'))))
PY
}

sim() {
  local name=$1
  shift
  if ! "$BIN" simulate --server-pid "$PID" --log-to-feeds --interval 10 --duration "$DURATION" \
      "$@" >"$work/$name.out" 2>"$work/$name.err"; then
    echo "$name: FAILED"; tail -3 "$work/$name.err"; tail -1 "$work/$name.out"; return 1
  fi
  report "$name" "$work/$name.out"
}

sim mqtt-peak --mqtt "$MQTT" --api "http://$HTTP" --accounts "$work/m.json" --users 10 \
  --devices-per-user 10 --profile emontx4 --format json --qos 1 --speed 560
sim http-post --http "http://$HTTP" --accounts "$work/h.json" --users 10 \
  --devices-per-user 30 --inputs 2 --profile solar --speed 1000
sim mqtt-1000 --mqtt "$MQTT" --api "http://$HTTP" --accounts "$work/d.json" --users 40 \
  --devices-per-user 25 --inputs 1 --profile heatpump --format json --qos 1 --speed 10
