"""Offline tests of ynni_post.py against a stub HTTP server that answers as ynni does.

Run: python3 -m unittest discover -s firmware-examples/python   (check.sh does this)
"""

import contextlib
import http.server
import io
import json
import os
import sys
import tempfile
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ynni_post  # noqa: E402


class Stub(http.server.BaseHTTPRequestHandler):
    # Each test sets `replies`: (status, body, headers) answered in order, the last repeated.
    replies = []
    seen = []

    def do_GET(self):
        Stub.seen.append(self.path)
        status, body, headers = Stub.replies[min(len(Stub.seen), len(Stub.replies)) - 1]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


class PostTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.HTTPServer(("127.0.0.1", 0), Stub)
        cls.url = "http://127.0.0.1:%d" % cls.server.server_address[1]
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def run_main(self, replies, *extra):
        Stub.replies, Stub.seen = replies, []
        argv = ["--base-url", self.url, "--node", "house", "--retry-delay", "0.01",
                "--max-delay", "0.02"] + list(extra)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = ynni_post.main(argv)
        return code, out.getvalue(), err.getvalue()

    def test_posts_fulljson_with_key_and_time(self):
        code, out, _ = self.run_main([(200, '{"success": true}', {})], "--apikey", "k" * 32,
                                     "--time", "1700000000", "power1=230", "temp=21.5")
        self.assertEqual(code, 0)
        path, query = Stub.seen[0].split("?", 1)
        q = dict(urllib.parse.parse_qsl(query))
        self.assertEqual(path, "/input/post")
        self.assertEqual(json.loads(q["fulljson"]), {"power1": 230, "temp": 21.5})
        self.assertEqual((q["node"], q["apikey"], q["time"]), ("house", "k" * 32, "1700000000"))
        self.assertIn("posted", out)

    def test_device_key_and_ok_body(self):
        code, _, _ = self.run_main([(200, "ok", {})], "--devicekey", "d" * 32, "pulse=5")
        self.assertEqual(code, 0)
        self.assertIn("devicekey=" + "d" * 32, Stub.seen[0])

    def test_refused_key_exits_3_without_retrying(self):
        code, _, err = self.run_main([(401, "Invalid API key", {})], "--apikey", "x" * 32, "a=1")
        self.assertEqual(code, ynni_post.EXIT_KEY_REFUSED)
        self.assertEqual(len(Stub.seen), 1)
        self.assertIn("Invalid API key", err)

    def test_retries_busy_server_then_succeeds(self):
        busy = (503, "busy", {"Retry-After": "0"})
        code, _, err = self.run_main([busy, busy, (200, "ok", {})], "--apikey", "k", "a=1")
        self.assertEqual(code, 0)
        self.assertEqual(len(Stub.seen), 3)
        self.assertEqual(err.count("retrying"), 2)

    def test_gives_up_after_retries(self):
        code, _, err = self.run_main([(502, "bad gateway", {})], "--apikey", "k", "--retries",
                                     "2", "a=1")
        self.assertEqual(code, ynni_post.EXIT_GAVE_UP)
        self.assertEqual(len(Stub.seen), 3)
        self.assertIn("giving up", err)

    def test_success_false_is_refused(self):
        body = '{"success": false, "message": "Error: Node \'x\' does not belong to device."}'
        code, _, err = self.run_main([(200, body, {})], "--devicekey", "d", "a=1")
        self.assertEqual(code, ynni_post.EXIT_REFUSED)
        self.assertIn("does not belong", err)

    def test_bad_value_is_a_usage_error(self):
        with contextlib.redirect_stderr(io.StringIO()):
            with self.assertRaises(SystemExit) as e:
                ynni_post.main(["--node", "n", "--apikey", "k", "power=abc"])
        self.assertEqual(e.exception.code, ynni_post.EXIT_USAGE)

    def test_loadavg_source(self):
        with tempfile.NamedTemporaryFile("w", suffix="loadavg", delete=False) as f:
            f.write("0.52 0.25 0.10 1/123 4567\n")
        try:
            self.assertEqual(ynni_post.read_loadavg(f.name),
                             {"load1": 0.52, "load5": 0.25, "load15": 0.10})
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
