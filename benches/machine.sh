#!/usr/bin/env bash
# What this machine costs today, to read the other benchmarks' figures against: a thread
# waking another on the other core and on the same core (a pipe round trip, `perf bench sched
# pipe`), and memory copy bandwidth. On the shared 2-core development VM these vary from day
# to day, and the figures bound by wake-ups (1,000 MQTT devices, forwarding) or by memory
# (50 clients graphing) follow them: record them beside any figure you compare across days.
#   ./benches/machine.sh
set -euo pipefail
command -v perf >/dev/null || { echo "needs perf: apt-get install linux-perf" >&2; exit 1; }
cross=$(perf bench sched pipe -l 100000 2>&1 | awk '/usecs\/op/ {print $1}')
same=$(taskset -c 0 perf bench sched pipe -l 100000 2>&1 | awk '/usecs\/op/ {print $1}')
copy=$(perf bench mem memcpy -s 64MB -l 5 2>&1 | awk '/GB\/sec/ {print $1}' | sort -n | tail -1)
printf 'wake-up round trip: %s us across cores, %s us on one core; memcpy %s GB/s\n' "$cross" "$same" "$copy"
