#!/usr/bin/env python3
"""Post values to ynni (or emoncms) with the HTTP input API.

    ynni_post.py --base-url http://HOST:8080 --apikey WRITEKEY --node house power1=230 temp=21.5
    ynni_post.py --base-url http://HOST:8080 --node pi --read-proc-loadavg --every 10

Each post is GET <base-url>/input/post?node=…&fulljson={…}&apikey=… (or devicekey=…).
Network errors, timeouts and 5xx/429 answers are retried with exponential backoff. A refused
key or a refused post stops at once: retrying cannot help.

Exit status: 0 posted; 1 gave up after the retries; 2 bad arguments; 3 key refused (401);
4 ynni answered but did not store the values. Standard library only (Python 3.7+).
"""

import argparse
import http.client
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

EXIT_GAVE_UP = 1
EXIT_USAGE = 2
EXIT_KEY_REFUSED = 3
EXIT_REFUSED = 4


class KeyRefused(Exception):
    """ynni answered 401: the key is wrong, a read key, or was regenerated."""


class Refused(Exception):
    """ynni answered but did not store the values (a 4xx, or success false)."""


class Transient(Exception):
    """Worth trying again later; retry_after is the server's Retry-After, if any."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


def parse_pair(text):
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected name=value, got %r" % text)
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("value of %s is not a number: %r" % (name, value))
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError("value of %s must be finite: %r" % (name, value))
    # Keep integers as integers so that 5 is sent as 5, not 5.0.
    return name, int(number) if number.is_integer() and "." not in value else number


def read_loadavg(path="/proc/loadavg"):
    """A demo source: the 1, 5 and 15 minute load averages of this machine."""
    with open(path, encoding="ascii") as f:
        fields = f.read().split()
    return {"load1": float(fields[0]), "load5": float(fields[1]), "load15": float(fields[2])}


def success_body(body):
    """emoncms's two success replies: "ok" (json/csv posts) and {"success": true} (fulljson)."""
    text = body.strip()
    if text == "ok":
        return True
    try:
        reply = json.loads(text)
    except ValueError:
        return False
    return isinstance(reply, dict) and reply.get("success") is True


def post_once(base_url, node, values, key_name, key, when, timeout):
    query = {
        "node": node,
        "fulljson": json.dumps(values, separators=(",", ":")),
        key_name: key,
    }
    if when is not None:
        query["time"] = str(int(when))
    url = base_url.rstrip("/") + "/input/post?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"User-Agent": "ynni_post.py"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace").strip()
        if e.code == 401:
            raise KeyRefused(body or "401 Unauthorized")
        if e.code == 429 or e.code >= 500:
            raise Transient("HTTP %d %s" % (e.code, body), e.headers.get("Retry-After"))
        raise Refused("HTTP %d %s" % (e.code, body))
    # refused, unreachable, DNS, timeout, a reply cut short
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise Transient(str(getattr(e, "reason", e)))
    if not success_body(body):
        raise Refused(body.strip() or "(empty reply)")
    return body.strip()


def post_with_retries(args, values, when):
    delay = args.retry_delay
    for attempt in range(1, args.retries + 2):
        try:
            return post_once(args.base_url, args.node, values, args.key_name, args.key, when,
                             args.timeout)
        except Transient as e:
            if attempt > args.retries:
                raise
            wait = delay
            if e.retry_after and e.retry_after.isdigit():
                wait = max(wait, float(e.retry_after))
            wait = min(wait, args.max_delay)
            print("attempt %d failed (%s); retrying in %.1f s" % (attempt, e, wait), file=sys.stderr)
            time.sleep(wait)
            delay = min(delay * 2, args.max_delay)
    raise AssertionError("unreachable")


def build_parser():
    p = argparse.ArgumentParser(
        description="Post values to ynni's input/post (emoncms API).",
        epilog="The key may also come from the environment: YNNI_APIKEY or YNNI_DEVICEKEY.")
    p.add_argument("values", nargs="*", type=parse_pair, metavar="name=value",
                   help="inputs to post, e.g. power1=230 temp=21.5")
    p.add_argument("--base-url", default=os.environ.get("YNNI_URL", "http://localhost:8080"),
                   help="ynni's address (default: $YNNI_URL or http://localhost:8080)")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--apikey", help="the account's write apikey (Account page)")
    keys.add_argument("--devicekey", help="a device key, bound to one node (Account page)")
    p.add_argument("--node", required=True, help="node name, e.g. house or emontx")
    p.add_argument("--read-proc-loadavg", action="store_true",
                   help="also post load1, load5, load15 from /proc/loadavg")
    p.add_argument("--time", dest="when", default=None,
                   help="unix time of the values, or 'now' (default: ynni stamps them)")
    p.add_argument("--every", type=float, metavar="SECONDS",
                   help="post again every SECONDS until interrupted")
    p.add_argument("--retries", type=int, default=5, help="retries per post (default 5)")
    p.add_argument("--retry-delay", type=float, default=1.0,
                   help="first retry delay in seconds, doubled each time (default 1)")
    p.add_argument("--max-delay", type=float, default=60.0,
                   help="longest retry delay in seconds (default 60)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for each answer (default 10)")
    return p


def resolve_key(args, parser):
    if args.apikey or args.devicekey:
        args.key_name = "apikey" if args.apikey else "devicekey"
        args.key = args.apikey or args.devicekey
    elif os.environ.get("YNNI_APIKEY"):
        args.key_name, args.key = "apikey", os.environ["YNNI_APIKEY"]
    elif os.environ.get("YNNI_DEVICEKEY"):
        args.key_name, args.key = "devicekey", os.environ["YNNI_DEVICEKEY"]
    else:
        parser.error("give --apikey or --devicekey (or set YNNI_APIKEY / YNNI_DEVICEKEY)")


def collect(args):
    values = dict(args.values)
    if args.read_proc_loadavg:
        values.update(read_loadavg())
    return values


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_key(args, parser)
    if not args.values and not args.read_proc_loadavg:
        parser.error("nothing to post: give name=value pairs or --read-proc-loadavg")
    if args.when not in (None, "now"):
        try:
            args.when = int(float(args.when))
        except ValueError:
            parser.error("--time must be a unix time in seconds or 'now'")

    while True:
        values = collect(args)
        when = int(time.time()) if args.when == "now" else args.when
        try:
            reply = post_with_retries(args, values, when)
            print("posted %s to node %s: %s" % (json.dumps(values), args.node, reply))
        except KeyRefused as e:
            print("ynni refused the %s: %s" % (args.key_name, e), file=sys.stderr)
            return EXIT_KEY_REFUSED
        except Refused as e:
            print("ynni did not store the values: %s" % e, file=sys.stderr)
            return EXIT_REFUSED
        except Transient as e:
            print("giving up after %d retries: %s" % (args.retries, e), file=sys.stderr)
            if args.every is None:
                return EXIT_GAVE_UP
        if args.every is None:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
