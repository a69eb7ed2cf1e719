#!/usr/bin/env bash
# Post values to ynni's input/post (the emoncms HTTP API) with curl.
#
#   HOST=192.168.1.10:8080 APIKEY=<write apikey> NODE=house ./post-curl.sh power1=230 temp=21.5
#
# Environment:
#   HOST       ynni's address: host:port, or a full base URL such as https://ynni.example/emoncms
#              (default port 8080 when only a host is given)
#   APIKEY     the account's write apikey (Account page), or
#   DEVICEKEY  a device key made for NODE on the Account page (used instead of APIKEY)
#   NODE       node name, e.g. house or emontx
#   TIME       optional unix time of the values (default: ynni stamps them on arrival)
#
# curl retries network errors and 408/429/5xx answers with exponential backoff.
# Exit status: 0 stored; 1 network or server error; 2 usage; 3 key refused; 4 not stored.
set -euo pipefail

die() {
  echo "post-curl.sh: $1" >&2
  exit "${2:-1}"
}

[[ $# -ge 1 ]] || die "usage: HOST=… APIKEY=… NODE=… $0 name=value [name=value …]" 2
[[ -n ${HOST:-} ]] || die "set HOST, e.g. HOST=192.168.1.10:8080" 2
[[ -n ${NODE:-} ]] || die "set NODE, e.g. NODE=house" 2
if [[ -n ${DEVICEKEY:-} ]]; then
  keyname=devicekey key=$DEVICEKEY
elif [[ -n ${APIKEY:-} ]]; then
  keyname=apikey key=$APIKEY
else
  die "set APIKEY (the write apikey) or DEVICEKEY" 2
fi

base=$HOST
if [[ $base != *://* ]]; then
  [[ $base == *:* ]] || base="$base:8080"
  base="http://$base"
fi
base=${base%/}

# fulljson must be strict JSON, so names and numbers are checked here rather than escaped.
json="{" sep=""
for pair in "$@"; do
  [[ $pair == *=* ]] || die "expected name=value, got '$pair'" 2
  name=${pair%%=*} value=${pair#*=}
  [[ $name =~ ^[A-Za-z0-9_.\ -]+$ ]] || die "input name '$name': use letters, digits, space, _ - ." 2
  [[ $value =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] ||
    die "value of $name is not a number: '$value'" 2
  json+="$sep\"$name\":$value" sep=","
done
json+="}"

args=(--silent --show-error --max-time 15 --retry 5 --retry-connrefused --retry-max-time 120
  --get "$base/input/post" --data-urlencode "node=$NODE" --data-urlencode "fulljson=$json"
  --data-urlencode "$keyname=$key" --write-out '\n%{http_code}')
[[ -n ${TIME:-} ]] && args+=(--data-urlencode "time=$TIME")

reply=$(curl "${args[@]}") || die "could not reach $base"
code=${reply##*$'\n'}
body=${reply%$'\n'*}

case $code in
  200) ;;
  401) die "ynni refused the $keyname: $body" 3 ;;
  *) die "HTTP $code from $base: $body" ;;
esac
# emoncms's two success replies: "ok", and {"success": true} when fulljson was used.
if [[ $body == ok || $body =~ \"success\":\ ?true[,}] ]]; then
  echo "stored $json for node $NODE"
else
  die "ynni did not store the values: $body" 4
fi
