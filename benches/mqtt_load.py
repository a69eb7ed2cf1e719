#!/usr/bin/env python3
"""MQTT load generator for ynni's embedded broker (issue 6 numbers). Standard library only.

Scenarios (each prints one summary line):
  devices  N simulated devices, each publishing a JSON object of K inputs on emon/dev<i> every
           second; reports ynni's CPU and memory and the publish -> visible-in-input/get latency
           (p50/p99) of probe values sent alongside.
  peak     C connections publishing JSON objects of K inputs as fast as they can for D seconds;
           reports values/s from the first publish until the last value is visible over HTTP
           (and stored in feeds when the inputs log to feeds: see benches/mqtt.sh).
  idle     N connections that only CONNECT and stay; reports ynni's memory per connection.

Usage: mqtt_load.py SCENARIO --mqtt HOST:PORT --http URL --user U --key WRITEKEY --pid PID [...]
"""
import argparse
import asyncio
import json
import statistics
import struct
import time
import urllib.request


def _str(s):
    b = s.encode()
    return struct.pack('!H', len(b)) + b


def _length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id, user, key, keepalive=60):
    var = _str('MQTT') + bytes([4, 0xC2]) + struct.pack('!H', keepalive)
    body = var + _str(client_id) + _str(user) + _str(key)
    return bytes([0x10]) + _length(len(body)) + body


def publish_packet(topic, payload):
    body = _str(topic) + payload
    return bytes([0x30]) + _length(len(body)) + body


async def open_client(host, port, client_id, user, key):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(connect_packet(client_id, user, key))
    await writer.drain()
    ack = await asyncio.wait_for(reader.readexactly(4), 10)
    if ack[0] >> 4 != 2 or ack[3] != 0:
        raise ConnectionError('CONNACK refused: %r' % ack)
    return reader, writer


def proc_stats(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss_kb = 0
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                rss_kb = int(line.split()[1])
    return ticks / 100.0, rss_kb


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


async def wait_visible(http, key, node, name, value, limit=30.0):
    """Seconds until input/get/<node>/<name> shows `value`, or None."""
    url = '%s/input/get/%s/%s?apikey=%s' % (http, node, name, key)
    start = time.monotonic()
    while time.monotonic() - start < limit:
        got = await asyncio.to_thread(http_json, url)
        if isinstance(got, dict) and got.get('value') == value:
            return time.monotonic() - start
        await asyncio.sleep(0.002)
    return None


async def devices(args, host, port):
    clients = []
    for i in range(args.devices):
        clients.append(await open_client(host, port, 'sim-%d' % i, args.user, args.key))
    # Probes come from a second account, so reading them back does not list the devices'
    # 10,000 inputs each time; they share the broker and the shard workers with the load.
    probe_user = args.probe_user or args.user
    probe_key = args.probe_key or args.key
    _, probe_w = await open_client(host, port, 'probe', probe_user, probe_key)
    cpu0, rss0 = proc_stats(args.pid)
    t0 = time.monotonic()
    latencies = []
    sent = 0

    async def device_loop(i, writer):
        nonlocal sent
        # At most `--nodes` nodes per account (emoncms refuses a 33rd): devices share them.
        topic = '%s/dev%d' % (args.base, i % args.nodes)
        # Spread the devices over their period, as real ones are.
        await asyncio.sleep(args.period * i / args.devices)
        tick = 0
        while time.monotonic() - t0 < args.duration:
            payload = json.dumps({'p%d' % k: round(100 + i + k + tick * 0.1, 1)
                                  for k in range(args.inputs)}).encode()
            writer.write(publish_packet(topic, payload))
            sent += args.inputs
            tick += 1
            await asyncio.sleep(args.period)

    async def probes():
        n = 0
        while time.monotonic() - t0 < args.duration:
            n += 1
            value = 1000000 + n
            probe_w.write(publish_packet('%s/probe/v' % args.base, str(value).encode()))
            t = time.monotonic()
            waited = await wait_visible(args.http, probe_key, 'probe', 'v', value)
            if waited is not None:
                latencies.append(time.monotonic() - t)
            await asyncio.sleep(0.25)

    await asyncio.gather(probes(), *(device_loop(i, w) for i, (_, w) in enumerate(clients)))
    elapsed = time.monotonic() - t0
    cpu1, rss1 = proc_stats(args.pid)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float('nan')
    print('devices: %d connections x %d inputs/s for %.0f s: %d values (%.0f values/s); '
          'ynni CPU %.0f%% of one core, RSS %d -> %d MiB; publish->input/get p50 %.1f ms, '
          'p99 %.1f ms (%d probes)' % (
              args.devices, args.inputs, elapsed, sent, sent / elapsed,
              100 * (cpu1 - cpu0) / elapsed, rss0 // 1024, rss1 // 1024, p(0.5), p(0.99),
              len(latencies)))


async def peak(args, host, port):
    clients = [await open_client(host, port, 'peak-%d' % c, args.user, args.key)
               for c in range(args.connections)]
    t0 = time.monotonic()
    counts = [0] * len(clients)
    last_value = [0.0]

    async def blast(c, writer):
        topic = '%s/peak%d' % (args.base, c)
        n = 0
        batch = []
        while time.monotonic() - t0 < args.duration:
            for _ in range(200):
                n += 1
                payload = ('{' + ','.join('"p%d":%d.5' % (k, n) for k in range(args.inputs)) + '}').encode()
                batch.append(publish_packet(topic, payload))
            writer.write(b''.join(batch))
            batch.clear()
            counts[c] = n
            await writer.drain()
            # drain() does not yield while the socket keeps up: let the other connections run.
            await asyncio.sleep(0)
        last_value[0] = max(last_value[0], n + 0.5)

    await asyncio.gather(*(blast(c, w) for c, (_, w) in enumerate(clients)))
    sent_at = time.monotonic()
    # Wait until the last message of every connection is visible.
    for c in range(len(clients)):
        waited = await wait_visible(args.http, args.key, 'peak%d' % c, 'p0', counts[c] + 0.5, limit=120)
        if waited is None:
            got = http_json('%s/input/get/peak%d/p0?apikey=%s' % (args.http, c, args.key))
            print('peak: connection %d: last value %s never became visible (shows %s)'
                  % (c, counts[c] + 0.5, got))
    done = time.monotonic() - t0
    values = sum(counts) * args.inputs
    print('peak: %d connections, %d values in %.1f s of publishing, all visible after %.1f s: '
          '%.0f values/s end to end (%.0f msg/s)' % (
              len(clients), values, sent_at - t0, done, values / done, sum(counts) / done))


async def idle(args, host, port):
    _, rss0 = proc_stats(args.pid)
    clients = []
    for i in range(args.devices):
        clients.append(await open_client(host, port, 'idle-%d' % i, args.user, args.key))
    await asyncio.sleep(2)
    _, rss1 = proc_stats(args.pid)
    print('idle: %d connections: RSS %d -> %d MiB, %.1f KiB per connection' % (
        len(clients), rss0 // 1024, rss1 // 1024, (rss1 - rss0) / len(clients)))
    for _, w in clients:
        w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('scenario', choices=['devices', 'peak', 'idle'])
    ap.add_argument('--mqtt', required=True)
    ap.add_argument('--http', required=True)
    ap.add_argument('--user', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--pid', type=int, required=True)
    ap.add_argument('--probe-user')
    ap.add_argument('--probe-key')
    ap.add_argument('--base', default='emon')
    ap.add_argument('--devices', type=int, default=1000)
    ap.add_argument('--inputs', type=int, default=10)
    ap.add_argument('--connections', type=int, default=4)
    ap.add_argument('--duration', type=float, default=30)
    ap.add_argument('--period', type=float, default=1.0, help='seconds between a device\'s messages')
    ap.add_argument('--nodes', type=int, default=32, help='nodes the devices publish as (the account limit is 32)')
    args = ap.parse_args()
    host, _, port = args.mqtt.rpartition(':')
    run = {'devices': devices, 'peak': peak, 'idle': idle}[args.scenario]
    asyncio.run(run(args, host, int(port)))


if __name__ == '__main__':
    main()
