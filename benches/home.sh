#!/usr/bin/env bash
# A typical home on a Raspberry Pi (issue 21's notes): two emonTx4-like devices (18 inputs
# each, a little more than an emonTx4 and an emonPi) publishing over MQTT every 10 s, each
# input logged to a feed, for
# DURATION seconds in real time. Prints ynni's RSS and the bytes it made the disk write
# (/proc/<pid>/io write_bytes: feed files, logs, checkpoints, catalog), scaled to a day,
# with [storage] flush_interval_s = FLUSH (default 60) and commit_window_ms = WINDOW (0).
#   ./benches/home.sh
#   DURATION=600 FLUSH=300 ./benches/home.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-300}
FLUSH=${FLUSH:-60}
WINDOW=${WINDOW:-0}
cargo build --release --quiet
BIN=./target/release/ynni
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
trap 'kill "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
"$BIN" user add --data-dir "$work/data" --username home --password homepass1 \
  --email home@example.com >/dev/null
"$BIN" user list --data-dir "$work/data" --with-keys >"$work/users.json"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=127.0.0.1:$(port)
MQTT=127.0.0.1:$(port)
YNNI_STORAGE__FLUSH_INTERVAL_S=$FLUSH YNNI_STORAGE__COMMIT_WINDOW_MS=$WINDOW \
  "$BIN" serve --data-dir "$work/data" --http-listen "$HTTP" --mqtt-listen "$MQTT" 2>"$work/log" &
echo $! >"$work/pid"
PID=$(cat "$work/pid")
for _ in $(seq 100); do grep -q "HTTP listening" "$work/log" 2>/dev/null && break; sleep 0.1; done
written() { sed -n 's/^write_bytes: //p' "/proc/$PID/io"; }
common=(--server-pid "$PID" --mqtt "$MQTT" --api "http://$HTTP" --accounts "$work/users.json"
  --users 1 --log-to-feeds --interval 10 --format json --qos 1 --duration "$DURATION")
"$BIN" simulate "${common[@]}" --devices-per-user 2 --profile emontx4 >"$work/sim.out" 2>"$work/sim.err" &
sim=$!
# From when the feeds exist and both devices publish.
sleep 5
w0=$(written); t0=$(date +%s.%N)
wait "$sim" || { echo "simulation failed"; tail -3 "$work/sim.err"; exit 1; }
w1=$(written); t1=$(date +%s.%N)
rss=$(sed -n 's/^VmRSS: *//p' "/proc/$PID/status")
hwm=$(sed -n 's/^VmHWM: *//p' "/proc/$PID/status")
python3 - "$w0" "$w1" "$t0" "$t1" "$rss" "$hwm" "$FLUSH" "$WINDOW" "$work/sim.out" <<'PY'
import json, sys
w0, w1, t0, t1 = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rss, hwm, flush, window = sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
stored = json.loads(open(sys.argv[9]).read().strip().splitlines()[-1]).get('stored', {})
per_day = (w1 - w0) / (t1 - t0) * 86400
print(f"flush_interval_s={flush} commit_window_ms={window}: {t1 - t0:.0f} s measured, "
      f"{(w1 - w0) / 1024:.0f} KiB written = {per_day / 2**20:.1f} MiB/day; "
      f"RSS {rss} (peak {hwm}); stored {stored.get('points')} of {stored.get('expected')} points")
PY
