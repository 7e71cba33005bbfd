"""A counting HTTP proxy in front of the S3 emulator: how many requests of each billing class a
piece of code makes (S3 bills PUT, COPY, POST and LIST at one price and GET/HEAD at another)."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def billing_class(method: str, path: str) -> str:
    """`put_list` (PUT/COPY/POST/LIST), `get` (GET/HEAD/...), or `delete` (free)."""
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    if method == "DELETE":
        return "delete"
    if method in ("PUT", "POST"):
        return "put_list"
    if method == "GET" and ("list-type" in query or "uploads" in query or "versions" in query):
        return "put_list"
    if method == "GET" and urlsplit(path).path.rstrip("/").count("/") <= 1 and "location" not in query:
        return "put_list"  # path-style bucket listing (ListObjects v1)
    return "get"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _CountingServer

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.count(self.command, self.path)
        upstream = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            response = upstream.getresponse()
            payload = response.read()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            # HEAD answers carry the object's length without a body
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, method: str, path: str) -> None:
        with self._lock:
            self.counts[billing_class(method, path)] += 1

    def take(self) -> Counter[str]:
        """The counts since the last call."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts


@contextmanager
def counting_proxy(upstream: str) -> Iterator[_CountingServer]:
    server = _CountingServer(upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
