#!/usr/bin/env bash
# How long each app view takes to load its data over HTTP with a year of 10 s feeds behind
# it (issue 19's target: 1 s): a release server, six one-year 10 s feeds uploaded with
# feed/upload, then each view's requests (made together, as the page makes them) timed 20
# times, and a dashboard's view.json.
#
#   ./benches/apps.sh
#   BIN=path/to/ynni ./benches/apps.sh   # another build (none is built then)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/serve.sh
bench_binary
bench_serve
python3 - "$PORT" <<'PY'
import json, statistics, struct, sys, time, urllib.request, urllib.parse
from concurrent.futures import ThreadPoolExecutor

base = f"http://127.0.0.1:{sys.argv[1]}"
def call(path, params=None, body=None):
    url = f"{base}/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if path.startswith("user/"):
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())

form = urllib.parse.urlencode({"username": "bench", "password": "benchpass1", "email": "bench@example.com", "timezone": "UTC"}).encode()
reg = call("user/register.json", None, form)
key = reg["apikey_write"]
now = int(time.time())
start = (now - 365 * 86400) // 10 * 10
n = (now - start) // 10
CHUNK = 900_000

def feed(name, value_of):
    fid = call("feed/create.json", {"name": name, "engine": 5, "options": '{"interval":10}', "apikey": key})["feedid"]
    for c0 in range(0, n, CHUNK):
        k = min(CHUNK, n - c0)
        buf = struct.pack(f"<{k}f", *(value_of(c0 + i) for i in range(k)))
        call("feed/upload.json", {"id": fid, "start": start + c0 * 10, "interval": 10, "npoints": k, "apikey": key}, buf)
    return fid

t0 = time.time()
use = feed("use", lambda i: 500 + (i % 360))
use_kwh = feed("use_kwh", lambda i: i * 0.0015)
solar = feed("solar", lambda i: max(0, 2000 - abs((i % 8640) - 4320)))
hp_elec = feed("hp_elec", lambda i: 700)
hp_elec_kwh = feed("hp_elec_kwh", lambda i: i * 0.0019)
hp_heat_kwh = feed("hp_heat_kwh", lambda i: i * 0.0068)
print(f"uploaded six one-year 10 s feeds ({n} points each) in {time.time() - t0:.0f} s")

ms = lambda t: t * 1000
day0 = now - now % 86400
views = {
    "My Electric": [("feed/value.json", {"id": use}),
                    ("feed/data.json", {"id": use_kwh, "start": ms(day0 - 400 * 86400), "end": ms(now), "interval": "daily", "delta": 1})],
    "My Solar (today)": [("feed/value.json", {"id": use}), ("feed/value.json", {"id": solar}),
                         ("feed/data.json", {"id": use, "start": ms(day0), "end": ms(now), "interval": 60, "average": 1}),
                         ("feed/data.json", {"id": solar, "start": ms(day0), "end": ms(now), "interval": 60, "average": 1})],
    "My Solar (a past day)": [("feed/data.json", {"id": use, "start": ms(day0 - 100 * 86400), "end": ms(day0 - 99 * 86400), "interval": 60, "average": 1}),
                              ("feed/data.json", {"id": solar, "start": ms(day0 - 100 * 86400), "end": ms(day0 - 99 * 86400), "interval": 60, "average": 1})],
    "My Electric (time-of-use)": [("feed/value.json", {"id": use}),
                    ("feed/data.json", {"id": use_kwh, "start": ms(day0 - 400 * 86400), "end": ms(now), "interval": "daily", "delta": 1}),
                    ("feed/getmeta.json", {"id": use_kwh}),
                    ("feed/data.json", {"id": use_kwh, "start": ms(day0 - 400 * 86400), "end": ms(now), "interval": 1800, "delta": 1})],
    # Four power series of a day (use and solar stand in for charge and discharge) and five values.
    "My Solar with Battery (a past day)": [("feed/data.json", {"id": f, "start": ms(day0 - 100 * 86400), "end": ms(day0 - 99 * 86400), "interval": 60, "average": 1})
                                           for f in (use, solar, use, solar)]
                                          + [("feed/value.json", {"id": f}) for f in (use, solar, use, solar, hp_elec)],
    "My Heatpump": [("feed/value.json", {"id": hp_elec}),
                    ("feed/data.json", {"id": hp_elec_kwh, "start": ms(day0 - 30 * 86400), "end": ms(now), "interval": "daily", "delta": 1}),
                    ("feed/data.json", {"id": hp_heat_kwh, "start": ms(day0 - 30 * 86400), "end": ms(now), "interval": "daily", "delta": 1}),
                    ("feed/data.json", {"id": hp_elec, "start": ms(day0), "end": ms(now), "interval": 60, "average": 1}),
                    ("feed/data.json", {"id": use, "start": ms(day0), "end": ms(now), "interval": 60, "average": 1})],
}
# A dashboard naming three of the feeds: the page polls dashboard/view.json.
dash = call("dashboard/create.json", {"apikey": key})
content = "".join(f'<div id="{i}" class="feedvalue" style="top:{i * 60}px;" feedid="{f}"></div>' for i, f in enumerate((use, solar, hp_elec), 1))
body = urllib.parse.urlencode({"id": dash, "content": urllib.parse.quote(content), "height": 200}).encode()
req = urllib.request.Request(f"{base}/dashboard/setcontent.json?apikey={key}", data=body, method="POST")
req.add_header("Content-Type", "application/x-www-form-urlencoded")
urllib.request.urlopen(req).read()
views["Dashboard (view.json)"] = [("dashboard/view.json", {"id": dash})]
with ThreadPoolExecutor(8) as pool:
    for name, reqs in views.items():
        times = []
        for _ in range(20):
            t = time.perf_counter()
            list(pool.map(lambda r: call(r[0], {**r[1], "apikey": key}), reqs))
            times.append((time.perf_counter() - t) * 1000)
        print(f"{name}: p50 {statistics.median(times):.1f} ms, max {max(times):.1f} ms ({len(reqs)} requests together)")
PY
