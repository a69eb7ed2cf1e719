#!/usr/bin/env bash
# Runs every check and test of ynni: formatting, lints, unit tests and end-to-end tests.
# Installs the Debian packages the tests need when they are missing (none beyond Rust yet;
# later issues add e.g. mosquitto-clients and chromium here).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
