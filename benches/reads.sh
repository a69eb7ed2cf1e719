#!/usr/bin/env bash
# Year-scale reads (issue 20): a release server with a one-year and a ten-year 10 s feed, and
# 50 users with a one-year 10 s feed each (uploaded with feed/upload). Prints, warm, over
# HTTP on one connection: one year as 1,000 averaged points, ten years as 1,000 averaged
# points, and ten years as daily means (p50 and p99 of 200 requests each, after 20 to warm;
# the reply read but not parsed); a year as a CSV download, with the server's memory during it; the time of each of the 50 users' first graph; then wrk
# with 50 connections, each graphing a different user's year (1,000 averaged points), for
# DURATION seconds.
#   ./benches/reads.sh
#   DURATION=30 ./benches/reads.sh
#   PERF=/tmp/reads.perf ./benches/reads.sh   # and a profile of the wrk run
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
DURATION=${DURATION:-15}
# BIN=path/to/ynni measures another build (none is built then).
. benches/serve.sh
bench_binary
bench_serve
python3 - "$PORT" "$work/paths.lua" "$pid" <<'PY'
import http.client, json, statistics, struct, sys, time, urllib.parse

port, lua = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port)
def call(path, params=None, body=None, form=False):
    url = f"/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
    conn.request("POST" if body is not None else "GET", url, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"{url}: {r.status} {data[:200]!r}")
    return json.loads(data)

now = int(time.time()) // 10 * 10
CHUNK = 900_000
def user(name):
    form = urllib.parse.urlencode({"username": name, "password": "benchpass1", "email": f"{name}@example.com", "timezone": "UTC"})
    reply = call("user/register.json", None, form.encode(), form=True)
    if "apikey_write" not in reply:
        raise SystemExit(f"register {name}: {reply}")
    return reply["apikey_write"]

def feed(key, years, value_of):
    fid = call("feed/create.json", {"name": f"f{years}", "engine": 5, "options": '{"interval":10}', "apikey": key})["feedid"]
    start = now - years * 365 * 86400
    n = years * 365 * 8640
    for c0 in range(0, n, CHUNK):
        k = min(CHUNK, n - c0)
        buf = struct.pack(f"<{k}f", *(value_of(c0 + i) for i in range(k)))
        call("feed/upload.json", {"id": fid, "start": start + c0 * 10, "interval": 10, "npoints": k, "apikey": key}, buf)
    return fid, start

t0 = time.time()
key = user("bench")
# Daily swings with a gap of a day every 50 days, so means skip missing values.
value = lambda i: float("nan") if (i // 8640) % 50 == 7 else 500 + (i % 8640) / 10
year, ystart = feed(key, 1, value)
decade, dstart = feed(key, 10, value)
others = []
for u in range(50):
    k = user(f"user{u}")
    fid, s = feed(k, 1, lambda i, u=u: 100 + u + (i % 360))
    others.append((k, fid, s))
print(f"uploaded a one-year, a ten-year and 50 one-year 10 s feeds in {time.time() - t0:.0f} s")

def fetch(path, params):
    """The reply's bytes, unparsed: the time is the server's and the wire's, not Python's."""
    conn.request("GET", f"/{path}?" + urllib.parse.urlencode(params))
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or not body.startswith(b"["):
        raise SystemExit(f"{path}: {r.status} {body[:200]!r}")
    return body

def timed(name, params):
    for _ in range(20):
        fetch("feed/data.json", {**params, "apikey": key})
    times = []
    for _ in range(200):
        t = time.perf_counter()
        fetch("feed/data.json", {**params, "apikey": key})
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print(f"{name}: p50 {statistics.median(times):.2f} ms, p99 {times[197]:.2f} ms")

ms = lambda t: t * 1000
timed("one year -> 1,000 averaged points", {"id": year, "start": ms(ystart), "end": ms(now), "interval": 31536, "average": 1})
timed("ten years -> 1,000 averaged points", {"id": decade, "start": ms(dstart), "end": ms(now), "interval": 315360, "average": 1})
timed("ten years, daily means", {"id": decade, "start": ms(dstart), "end": ms(now), "interval": "daily", "average": 1})

def anon():
    with open(f"/proc/{sys.argv[3]}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("RssAnon")) // 1024

# A year of 10 s data as CSV (3.15 million lines): written a piece at a time, so the server's
# anonymous memory (sampled while the download runs) should barely move.
import threading
before, peak, done = anon(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anon())
        time.sleep(0.005)
sampler = threading.Thread(target=sample)
sampler.start()
t = time.perf_counter()
conn.request("GET", "/feed/data.json?" + urllib.parse.urlencode(
    {"id": year, "start": ms(ystart), "end": ms(now), "interval": 10, "csv": 1, "apikey": key}))
r = conn.getresponse()
size = lines = 0
while chunk := r.read(1 << 20):
    size += len(chunk)
    lines += chunk.count(b"\n")
took = time.perf_counter() - t
done.set()
sampler.join()
print(f"one year as CSV: {lines:,} lines, {size / 1e6:.1f} MB in {took:.2f} s; "
      f"server anonymous memory {before} MiB before, at most {peak[0]} MiB during")

# The 50 users' first graphs (levels built, file regions read in) are not part of the warm
# figure below; their cost is printed on its own.
firsts = []
for k, fid, s in others:
    t = time.perf_counter()
    fetch("feed/data.json", {"id": fid, "start": ms(s), "end": ms(now), "interval": 31536, "average": 1, "apikey": k})
    firsts.append((time.perf_counter() - t) * 1000)
print(f"first graph of each of the 50 users' years: {sum(firsts):.0f} ms in all, slowest {max(firsts):.0f} ms")

with open(lua, "w") as f:
    f.write("paths = {\n")
    for k, fid, s in others:
        f.write(f'  "/feed/data.json?id={fid}&start={ms(s)}&end={ms(now)}&interval=31536&average=1&apikey={k}",\n')
    # Requests formatted once, in `init`: the client's own work per request is on the same
    # two cores as the server's.
    f.write("}\ncounter = 0\nrequests = {}\n")
    f.write("init = function(args)\n  for i, p in ipairs(paths) do requests[i] = wrk.format(nil, p) end\nend\n")
    f.write("request = function()\n  counter = counter + 1\n  return requests[(counter % #requests) + 1]\nend\n")
PY
echo "== 50 connections, each a different user's year as 1,000 averaged points, ${DURATION}s"
# PERF=FILE records the server's profile during the wrk run (perf report -i FILE).
# PERF_CG=dwarf unwinds through libc's functions too (larger files).
if [ -n "${PERF:-}" ]; then perf record -F 499 --call-graph "${PERF_CG:-fp}" -p "$pid" -o "$PERF" -- sleep "$DURATION" 2>/dev/null & fi
wrk -t2 -c50 -d"${DURATION}s" --latency -s "$work/paths.lua" "http://127.0.0.1:$PORT" |
  grep -E "Latency  |50%|99%|Requests/sec|Non-2xx"
