#!/usr/bin/env bash
# Checks the examples without hardware or a running ynni; CI runs it. Needs bash, python3, g++.
#   - bash -n on every shell script (and shellcheck when it is installed)
#   - python3 -m py_compile on the Python, then its offline tests (a stub HTTP server)
#   - the emonhub snippets parse as emonhub.conf (when a python3 with configobj is found:
#     the one on PATH, or Debian's /usr/bin/python3 with python3-configobj)
#   - each sketch compiled as C++17 with g++ -fsyntax-only -Wall -Wextra -Werror against
#     host-shims/: declarations of the Arduino, WiFi, PubSubClient and HTTPClient APIs.
#     This catches typos, wrong types and wrong calls; it is NOT a build for the boards.
# Prints one line per check and exits 1 if any failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failed=0
pass() { echo "ok    $1"; }
fail() {
  echo "FAIL  $1"
  failed=1
}
# run "description" command…: shows the command's output only when it fails.
run() {
  local what=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    pass "$what"
  else
    fail "$what"
    sed 's/^/      /' "$tmp/out"
  fi
}

for f in check.sh shell/*.sh; do
  run "bash -n $f" bash -n "$f"
done
if command -v shellcheck >/dev/null; then
  for f in check.sh shell/*.sh; do
    run "shellcheck $f" shellcheck "$f"
  done
else
  echo "skip  shellcheck (not installed)"
fi

# Compiled bytecode goes to the temporary directory, not next to the sources.
export PYTHONPYCACHEPREFIX="$tmp/pycache"
for f in python/*.py; do
  run "python3 -m py_compile $f" python3 -m py_compile "$f"
done
run "python3 python/ynni_post.py --help" python3 python/ynni_post.py --help
run "python3 -m unittest python/test_ynni_post.py (stub server)" \
  python3 -m unittest discover -s python -p 'test_*.py'

confpy=
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import configobj' 2>/dev/null; then
    confpy=$py
    break
  fi
done
if [[ -n $confpy ]]; then
  for f in emonhub/*.emonhub.conf; do
    run "configobj parses $f" "$confpy" - "$f" <<'EOF'
import sys, configobj
lines = ["[interfacers]"] + open(sys.argv[1]).read().splitlines()
conf = configobj.ConfigObj(lines, raise_errors=True)
for name, section in conf["interfacers"].items():
    assert "Type" in section and "runtimesettings" in section, name
EOF
  done
else
  echo "skip  emonhub snippets: python3 has no configobj (pip install configobj to check them)"
fi

cxx=(g++ -std=c++17 -fsyntax-only -Wall -Wextra -Werror -x c++ -isystem host-shims
  -include host-shims/prelude.h)
run "g++ syntax check esp32-mqtt.ino (ESP32, plain MQTT)" \
  "${cxx[@]}" -DARDUINO_ARCH_ESP32 esp32-mqtt/esp32-mqtt.ino
run "g++ syntax check esp32-mqtt.ino (ESP32, YNNI_USE_TLS=1)" \
  "${cxx[@]}" -DARDUINO_ARCH_ESP32 -DYNNI_USE_TLS=1 esp32-mqtt/esp32-mqtt.ino
run "g++ syntax check esp8266-http.ino (ESP8266)" \
  "${cxx[@]}" -DARDUINO_ARCH_ESP8266 esp8266-http/esp8266-http.ino

# The shims must stay declarations: a function body would let a wrong call "work" here.
if grep -nE '\)\s*(const\s*)?(override\s*)?\{' host-shims/*.h >"$tmp/bodies"; then
  fail "host-shims declare only (found function bodies)"
  sed 's/^/      /' "$tmp/bodies"
else
  pass "host-shims declare only"
fi

if [[ $failed == 0 ]]; then
  echo "all checks passed"
else
  echo "some checks failed"
fi
exit "$failed"
