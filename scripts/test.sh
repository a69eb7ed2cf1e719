#!/usr/bin/env bash
# Runs every check and test of ynni: formatting, lints, unit tests and end-to-end tests.
# Installs the Debian packages the tests need when they are missing (mosquitto-clients: the
# MQTT tests talk to ynni's broker with the same tools emonSD users have; mosquitto: the
# external broker test runs a real one; python3: the compatibility suite runs
# tests/fixtures/tools/replay.py; chromium, nodejs and npm: the browser test drives Debian's
# chromium with playwright-core from npm, and the build fetches the UI's chart library;
# python3-configobj, shellcheck and g++: firmware-examples/check.sh parses the emonhub
# snippets, lints the shell examples and syntax-checks the sketches against host shims;
# mariadb-server: the import test starts its own MariaDB holding an emoncms database;
# postgresql: the cluster tests start their own PostgreSQL, as the postgres user when run as
# root, since initdb refuses root; redis-server: the cluster's shared login limits).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(mosquitto mosquitto-clients python3 python3-configobj shellcheck g++ chromium mariadb-server
  redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node.js may be a distribution's or NodeSource's (which bundles npm): only its absence matters.
command -v npm >/dev/null || missing+=(nodejs npm)
# Any installed PostgreSQL server will do (the machine image has 15).
command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null ||
  missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

(cd tests/browser && npm ci --ignore-scripts --no-audit --no-fund --silent)

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The Debian package, installed, run, upgraded and purged on this machine (needs root, as CI
# runs; uses the debug binary the tests just built).
if [ "$(id -u)" = 0 ]; then
  packaging/deb/test.sh "${CARGO_TARGET_DIR:-target}/debug/ynni"
else
  echo "skipping packaging/deb/test.sh: it installs a package and needs root"
fi
