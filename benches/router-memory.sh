#!/usr/bin/env bash
# What rumqttd's router holds for one account's filters: a client subscribes to 64 filters that
# all match one topic, another publishes N one-byte messages (QoS 0) on it, and the server's
# resident memory is read before and after. Each filter keeps its own log of what it matched
# (`broker/src/lib.rs`, FILTER_LOG_SEGMENT), so this is the worst an account can make it hold
# per filter, times 64.
#   ./benches/router-memory.sh
#   N=500000 BIN=/path/to/ynni ./benches/router-memory.sh
set -uo pipefail
cd "$(dirname "$0")/.."
command -v mosquitto_pub >/dev/null || { echo "needs mosquitto-clients" >&2; exit 1; }
N=${N:-200000}
. benches/serve.sh
bench_binary
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); MQTT=$(free_port)
"$BIN" user add --data-dir "$work/data" --username routerbench --password benchpass1 \
  --email r@example.com >/dev/null
KEY=$("$BIN" user list --data-dir "$work/data" --with-keys |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["apikey_write"])')
"$BIN" serve --data-dir "$work/data" --http-listen "127.0.0.1:$HTTP" \
  --mqtt-listen "127.0.0.1:$MQTT" 2>"$work/log" &
pid=$!
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do grep -q "MQTT listening" "$work/log" && break; sleep 0.1; done
# The 64 filters that replace any of the topic's six levels with `+`.
filters=()
for i in $(seq 0 63); do
  f=""
  for l in 0 1 2 3 4 5; do
    if (( (i >> l) & 1 )); then p="+"; else p="l$l"; fi
    f="${f:+$f/}$p"
  done
  filters+=(-t "$f")
done
mosquitto_sub -h 127.0.0.1 -p "$MQTT" -u routerbench -P "$KEY" "${filters[@]}" >/dev/null &
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
yes 1 | head -"$N" |
  mosquitto_pub -h 127.0.0.1 -p "$MQTT" -u routerbench -P "$KEY" -t l0/l1/l2/l3/l4/l5 -l
sleep 2
after=$(rss)
echo "$N messages matched by 64 filters: resident memory ${before} -> ${after} KiB" \
  "(+$(( (after - before) / 1024 )) MiB)"
