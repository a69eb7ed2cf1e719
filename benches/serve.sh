# Sourced by the single-server benchmark scripts (`reads.sh`, `apps.sh`, `list.sh`): the build
# to measure, and a server on a free local port with a temporary data directory, stopped and
# removed when the script exits.
#   BIN=path/to/ynni   measures another build (none is built then)

# Sets BIN, building the release binary unless BIN names one.
bench_binary() {
  if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=$PWD/target/release/ynni
  fi
}

# Starts `ynni serve` (open registration) with `work`, `PORT` and `pid` set; its log is
# "$work/log". Extra settings come from the caller's environment (YNNI_…).
bench_serve() {
  work=$(mktemp -d)
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  YNNI_USERS__REGISTRATION=open YNNI_LIMITS__REGISTER_ATTEMPTS=1000 "$BIN" serve \
    --data-dir "$work/data" --http-listen "127.0.0.1:$PORT" --mqtt-listen 127.0.0.1:0 \
    2>"$work/log" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 300); do grep -q "HTTP listening" "$work/log" && return 0; sleep 0.1; done
  echo "ynni did not start:" >&2
  cat "$work/log" >&2
  exit 1
}
