#!/usr/bin/env bash
# Publish values to ynni's MQTT broker with mosquitto_pub, as emonhub does.
#
#   HOST=192.168.1.10 USERNAME=alice APIKEY=<write apikey> NODE=house \
#     ./post-mosquitto.sh power1=230 temp=21.5              # emon/house/power1 230, emon/house/temp 21.5
#   … ./post-mosquitto.sh --json power1=230 temp=21.5      # emon/house {"power1":230,"temp":21.5,"time":…}
#   … ./post-mosquitto.sh --cafile mqtt-cert.pem power1=230   # over TLS (port 8883)
#
# Environment:
#   HOST       the machine running ynni
#   PORT       default 1883, or 8883 with --cafile (ynni's mqtt.listen / mqtt.tls_listen)
#   USERNAME   the ynni account name
#   APIKEY     the account's write apikey (Account page), or
#   DEVICEKEY  a device key made for NODE on the Account page (used instead of APIKEY)
#   NODE       node name, e.g. house or emontx
#
# Options:
#   --json         one JSON message on emon/NODE, with "time" set to now
#   --cafile FILE  connect with TLS and trust FILE (<data_dir>/tls/mqtt-cert.pem from
#                  `ynni tls selfsigned`); HOST must be one of the certificate's names
#
# Messages go at QoS 1, so mosquitto_pub waits until the broker has each one. A wrong username
# or key makes ynni close the connection: mosquitto_pub then says "The connection was lost".
set -euo pipefail

die() {
  echo "post-mosquitto.sh: $1" >&2
  exit "${2:-1}"
}

json=0 cafile=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --json) json=1 ;;
    --cafile)
      [[ $# -ge 2 ]] || die "--cafile needs a file" 2
      cafile=$2
      shift
      ;;
    --) shift; break ;;
    -*) die "unknown option $1" 2 ;;
    *) break ;;
  esac
  shift
done

[[ $# -ge 1 ]] || die "usage: HOST=… USERNAME=… APIKEY=… NODE=… $0 [--json] [--cafile FILE] name=value …" 2
[[ -n ${HOST:-} ]] || die "set HOST, e.g. HOST=192.168.1.10" 2
[[ -n ${USERNAME:-} ]] || die "set USERNAME (your ynni account name)" 2
[[ -n ${NODE:-} ]] || die "set NODE, e.g. NODE=house" 2
key=${DEVICEKEY:-${APIKEY:-}}
[[ -n $key ]] || die "set APIKEY (the write apikey) or DEVICEKEY" 2
command -v mosquitto_pub >/dev/null || die "mosquitto_pub not found (Debian: apt-get install mosquitto-clients)"

conn=(-h "$HOST" -u "$USERNAME" -P "$key" -q 1)
if [[ -n $cafile ]]; then
  [[ -r $cafile ]] || die "cannot read $cafile" 2
  conn+=(-p "${PORT:-8883}" --cafile "$cafile")
else
  conn+=(-p "${PORT:-1883}")
fi

names=() values=()
for pair in "$@"; do
  [[ $pair == *=* ]] || die "expected name=value, got '$pair'" 2
  name=${pair%%=*} value=${pair#*=}
  [[ $name =~ ^[A-Za-z0-9_.\ -]+$ ]] || die "input name '$name': use letters, digits, space, _ - ." 2
  [[ $value =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] ||
    die "value of $name is not a number: '$value'" 2
  names+=("$name") values+=("$value")
done

if [[ $json == 1 ]]; then
  # ynni, like emoncms, files a JSON message at its "time" key (unix seconds) when present.
  payload="{"
  for i in "${!names[@]}"; do
    payload+="\"${names[$i]}\":${values[$i]},"
  done
  payload+="\"time\":$(date +%s)}"
  mosquitto_pub "${conn[@]}" -t "emon/$NODE" -m "$payload" || die "publish to $HOST failed"
  echo "published emon/$NODE $payload"
else
  for i in "${!names[@]}"; do
    mosquitto_pub "${conn[@]}" -t "emon/$NODE/${names[$i]}" -m "${values[$i]}" ||
      die "publish to $HOST failed"
    echo "published emon/$NODE/${names[$i]} ${values[$i]}"
  done
fi
