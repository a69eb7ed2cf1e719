#!/usr/bin/env bash
# Import benchmark (issue 9): an emoncms installation with 100 PHPFina feeds of one year at
# 10 s (3,153,600 slots, 12.6 MB each, 1.26 GB in all) in a throwaway MariaDB and feed
# directory, imported by a release `ynni import emoncms` with --copy and with --link.
#   ./benches/import.sh          # FEEDS=100 by default
# Needs mariadb-server (mariadb-install-db, mariadbd) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
FEEDS=${FEEDS:-100}
cargo build --release --quiet
BIN=$PWD/target/release/ynni
work=$(mktemp -d)
trap 'kill "$(cat "$work/mariadb.pid" 2>/dev/null)" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mariadb-install-db --no-defaults --datadir="$work/db" --auth-root-authentication-method=normal \
  --skip-test-db --user="$(id -un)" >/dev/null
/usr/sbin/mariadbd --no-defaults --datadir="$work/db" --socket="$work/sock" --port="$port" \
  --bind-address=127.0.0.1 --skip-grant-tables --user="$(id -un)" --pid-file="$work/mariadb.pid" \
  >/dev/null 2>&1 &
for _ in $(seq 100); do mariadb --no-defaults -h 127.0.0.1 -P "$port" -u root -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done

mkdir -p "$work/phpfina" "$work/phptimeseries"
start=$(( ($(date +%s) - 365 * 86400) / 10 * 10 ))
python3 - "$work/phpfina/template.dat" "$work/phpfina/template.meta" "$start" <<'PY'
import math, struct, sys
dat, meta, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 365 * 8640
with open(dat, 'wb') as f:
    block = struct.pack('<8640f', *(400 + 300 * math.sin(i / 8640 * 2 * math.pi) for i in range(8640)))
    for _ in range(n // 8640):
        f.write(block)
with open(meta, 'wb') as f:
    f.write(struct.pack('<4I', 0, 0, 10, start))
PY
{
  echo "CREATE DATABASE emoncms; USE emoncms;"
  echo "CREATE TABLE users (id INT PRIMARY KEY, username VARCHAR(30), email VARCHAR(64), password VARCHAR(64), salt VARCHAR(32), apikey_write VARCHAR(64), apikey_read VARCHAR(64), admin INT, timezone VARCHAR(64));"
  echo "CREATE TABLE feeds (id INT PRIMARY KEY, name TEXT, userid INT, tag TEXT, public TINYINT(1), size INT, engine INT, processList TEXT, unit VARCHAR(10), time INT, value DOUBLE);"
  echo "CREATE TABLE input (id INT PRIMARY KEY, userid INT, name TEXT, description TEXT, nodeid TEXT, processList TEXT, time INT, value FLOAT);"
  echo "INSERT INTO users VALUES (1,'bench','b@example.com','$(printf '0%.0s' $(seq 64))','$(printf '1%.0s' $(seq 32))','$(printf 'b%.0s' $(seq 32))','$(printf 'a%.0s' $(seq 32))',1,'UTC');"
  for i in $(seq 1 "$FEEDS"); do
    echo "INSERT INTO feeds VALUES ($i,'feed$i',1,'bench',0,12614400,5,'','W',NULL,NULL);"
  done
} | mariadb --no-defaults -h 127.0.0.1 -P "$port" -u root
for i in $(seq 1 "$FEEDS"); do
  cp "$work/phpfina/template.dat" "$work/phpfina/$i.dat"
  cp "$work/phpfina/template.meta" "$work/phpfina/$i.meta"
done
sync

for mode in copy link; do
  rm -rf "$work/ynni-$mode"
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(date +%s.%N)
  "$BIN" import emoncms --mysql "mysql://root@127.0.0.1:$port/emoncms" --data-dir "$work/ynni-$mode" \
    --phpfina "$work/phpfina" --phptimeseries "$work/phptimeseries" "--$mode" >"$work/$mode.out" 2>"$work/$mode.err"
  t1=$(date +%s.%N)
  python3 - "$mode" "$t0" "$t1" "$work/$mode.out" <<'PY'
import json, sys
mode, t0, t1, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = json.loads(open(out).read().strip().splitlines()[-1])
secs = t1 - t0
mib = s['data_bytes'] / 1048576
print('import --%s: %d feeds created, %.0f MiB in %.2f s (%.0f MiB/s)' % (mode, s['feeds']['created'], mib, secs, mib / secs))
PY
done
