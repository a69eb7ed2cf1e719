#!/usr/bin/env bash
# The Debian package end to end, on this machine, as root: install, start the unit's
# ExecStart as the service user (no init needed), reach the login page, store a value,
# upgrade to a rebuilt package (settings and data kept), then purge (nothing left).
#   packaging/deb/test.sh [BINARY]      # default target/debug/ynni (built by cargo test)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "packaging/deb/test.sh needs root (dpkg -i)" >&2; exit 1; }
bin=${1:-target/debug/ynni}
fail() { echo "package test: $*" >&2; [ -f "${log:-}" ] && cat "$log" >&2; exit 1; }
work=$(mktemp -d)
log=$work/log
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  dpkg --purge ynni >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
dpkg --purge ynni >/dev/null 2>&1 || true

deb1=$(packaging/deb/build.sh "$bin" 1)
deb2=$(packaging/deb/build.sh "$bin" 2)
dpkg -i "$deb1" >/dev/null

[ -x /usr/bin/ynni ] || fail "no /usr/bin/ynni"
getent passwd ynni >/dev/null || fail "no ynni user"
[ "$(stat -c '%U %a' /var/lib/ynni)" = "ynni 750" ] || fail "/var/lib/ynni: $(stat -c '%U %a' /var/lib/ynni)"
[ "$(stat -c '%U:%G %a' /etc/ynni/ynni.toml)" = "root:ynni 640" ] || fail "ynni.toml: $(stat -c '%U:%G %a' /etc/ynni/ynni.toml)"
grep -qx /etc/ynni/ynni.toml /var/lib/dpkg/info/ynni.conffiles || fail "ynni.toml is not a conffile"
if command -v systemd-analyze >/dev/null; then
  # The unit parses, its directives are known, and its command exists.
  systemd-analyze verify /lib/systemd/system/ynni.service || fail "the unit does not verify"
fi
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/ynni.service)
[ -n "$exec_start" ] || fail "no ExecStart in the unit"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
base=http://127.0.0.1:$port
start() {
  : >"$log"
  # The unit's command line as the service user (setpriv execs it: the signal reaches ynni),
  # on free local ports.
  # shellcheck disable=SC2086
  setpriv --reuid=ynni --regid=ynni --init-groups env YNNI_HTTP__LISTEN="127.0.0.1:$port" YNNI_MQTT__LISTEN=127.0.0.1:0 \
    $exec_start >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    grep -q "HTTP listening" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || fail "ynni exited at start"
    sleep 0.1
  done
  fail "ynni did not start"
}
stop() {
  kill -TERM "$pid"
  wait "$pid" || fail "ynni did not stop cleanly"
  pid=
}

start
curl -fsS "$base/app/" | grep -q "<title>ynni</title>" || fail "no login page"
curl -fsS "$base/ready" | grep -q '"ready"' || fail "not ready"
reply=$(curl -fsS -X POST "$base/user/register.json" \
  --data-urlencode username=owner --data-urlencode password=secret123 \
  --data-urlencode email=owner@example.com)
key=$(printf '%s' "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apikey_write"])')
[ "$(curl -fsS "$base/input/post?node=pkg&json=%7Bpower:321%7D&apikey=$key")" = ok ] || fail "post refused"
stop
# Files the server wrote belong to the service user.
[ "$(stat -c %U /var/lib/ynni/catalog.sqlite)" = ynni ] || fail "catalog not owned by ynni"

# Upgrade: a local change to the settings survives, as does the data.
echo "# changed here" >>/etc/ynni/ynni.toml
dpkg -i "$deb2" >/dev/null
[ "$(dpkg-query -W -f '${Version}' ynni)" = "$(dpkg-deb -f "$deb2" Version)" ] || fail "not upgraded"
grep -q "# changed here" /etc/ynni/ynni.toml || fail "the upgrade replaced the settings"
start
value=$(curl -fsS "$base/input/get/pkg/power.json?apikey=$key" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
[ "$value" = 321 ] || fail "value after the upgrade: $value"
stop

dpkg --purge ynni >/dev/null
for f in /usr/bin/ynni /etc/ynni /var/lib/ynni /lib/systemd/system/ynni.service; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
echo "package test: install, start as ynni, login page, upgrade with data and settings kept, purge: ok"
