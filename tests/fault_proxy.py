"""A fault-injecting HTTP proxy on loopback, between S3 clients (Icechunk, s3fs) and the moto server.

Each request is forwarded, or answered with an S3 `500 InternalError` or `503 SlowDown`, or its connection dropped
with no answer (before or after the server saw it); forwarded ones can be delayed. The faults follow a shuffled
pattern of 100 outcomes with exactly the shares asked for, so every 100 requests carry them whatever the order the
client's threads send them in. What happened to each request is counted.
"""

import http.client
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected fault</Message></Error>'
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class Faults:
    """Shares of requests (0-1) that fail each way, and latency added to every forwarded request."""

    error_500: float = 0.0
    error_503: float = 0.0
    drop_before: float = 0.0  # the server never sees the request
    drop_after: float = 0.0  # the server acts on it; the client never hears back
    latency_seconds: float = 0.0
    seed: int = 0
    counts: Counter[str] = field(default_factory=Counter)


@contextmanager
def fault_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """A proxy for `upstream` (http://host:port) injecting `faults`; yields its own http://127.0.0.1:port."""
    target = urlparse(upstream)
    pattern = [name for name, share in (("500", faults.error_500), ("503", faults.error_503),
                                        ("drop_before", faults.drop_before), ("drop_after", faults.drop_after))
               for _ in range(round(share * 100))]  # fmt: skip
    pattern += ["forwarded"] * (100 - len(pattern))
    random.Random(faults.seed).shuffle(pattern)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                outcome = pattern[faults.counts.total() % len(pattern)]
                faults.counts[outcome] += 1
            if outcome in ("500", "503"):
                code = "InternalError" if outcome == "500" else "SlowDown"
                payload = ERROR_BODY.replace(b"{code}", code.encode())
                self.send_response(int(outcome))
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if outcome == "drop_before":
                self.close_connection = True
                self.connection.close()
                return
            time.sleep(faults.latency_seconds)
            upstream_connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream_connection.request(self.command, self.path, body=body, headers=headers)
            response = upstream_connection.getresponse()
            data = response.read()
            upstream_connection.close()
            if outcome == "drop_after":
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                # a HEAD answer's length is the object's, not its (empty) body's
                if key.lower() not in HOP_BY_HOP and (key.lower() != "content-length" or self.command == "HEAD"):
                    self.send_header(key, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
