"""A fault-injecting HTTP proxy on loopback, between S3 clients (Icechunk, s3fs) and an S3 server (or between
Prefect's client and its API, for `Faults.busy`).

Each request is forwarded, or answered with an S3 `500 InternalError` or `503 SlowDown`, or its connection dropped
with no answer (before or after the server saw it); forwarded ones are delayed by a fixed latency, as a real object
store's first byte is. The faults follow a shuffled pattern of 100 outcomes with exactly the shares asked for, so
every 100 requests carry them whatever the order the client's threads send them in. What happened to each request
is counted, and each request by its method and the kind of object it names (`requests`).

Run as a process (`python -m tests.fault_proxy UPSTREAM --latency-ms 20`), it prints its port and serves the counts
at `GET /__counts__` (a POST there also resets them): benchmarks/object_store.py runs it beside, not inside, the
process it measures.
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected fault</Message></Error>'
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
COUNTS_PATH = "/__counts__"
KINDS = ("chunks", "manifests", "snapshots", "transactions", "icefloe/kept", "refs", "repo", "config.yaml")


@dataclass
class Faults:
    """Shares of requests (0-1) that fail each way, and latency added to every forwarded request."""

    error_500: float = 0.0
    error_503: float = 0.0
    drop_before: float = 0.0  # the server never sees the request
    drop_after: float = 0.0  # the server acts on it; the client never hears back
    latency_seconds: float = 0.0
    seed: int = 0
    # "METHOD /path/prefix": the first `busy_times` such requests are answered 503, as Prefect's server on SQLite
    # answers a write that raced another; when each came is kept in `busy_seen` (time.monotonic())
    busy: str = ""
    busy_times: int = 0
    busy_seen: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)


def request_kind(method: str, path: str) -> str:
    """`METHOD kind`: what an S3 request does to what (a listing is `LIST`, a batch delete `DELETE batch`)."""
    url = urlparse(path)
    query = parse_qs(url.query, keep_blank_values=True)
    if method == "GET" and "list-type" in query:
        prefix = query.get("prefix", [""])[0]
        return f"LIST {next((k for k in KINDS if f'/{k}' in f'/{prefix}'), 'other')}"
    if method == "POST" and "delete" in query:
        return "DELETE batch"
    if "x-id" in query and query["x-id"][0] == "CopyObject":
        return f"{method} copy"
    name = url.path
    return f"{method} {next((k for k in KINDS if f'/{k}' in name), 'other')}"


@contextmanager
def fault_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """A proxy for `upstream` (http://host:port) injecting `faults`; yields its own http://127.0.0.1:port."""
    server = _server(upstream, faults)
    thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _server(upstream: str, faults: Faults) -> ThreadingHTTPServer:
    target = urlparse(upstream)
    pattern = [name for name, share in (("500", faults.error_500), ("503", faults.error_503),
                                        ("drop_before", faults.drop_before), ("drop_after", faults.drop_after))
               for _ in range(round(share * 100))]  # fmt: skip
    pattern += ["forwarded"] * (100 - len(pattern))
    random.Random(faults.seed).shuffle(pattern)
    lock = threading.Lock()
    connections = threading.local()  # one upstream connection per proxy thread, kept alive as S3 clients keep theirs

    def forward(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        connection = getattr(connections, "upstream", None)
        if connection is not None:
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response, response.read()
            except (ConnectionError, http.client.HTTPException):  # the server closed it while it was idle
                connection.close()
        connection = connections.upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response, response.read()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _counts(self) -> None:
            with lock:
                payload = json.dumps({"outcomes": faults.counts, "requests": faults.requests}).encode()
                if self.command == "POST":
                    faults.counts.clear()
                    faults.requests.clear()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == COUNTS_PATH:
                self._counts()
                return
            with lock:
                outcome = pattern[faults.counts.total() % len(pattern)]
                if faults.busy and f"{self.command} {self.path}".startswith(faults.busy):
                    faults.busy_seen.append(time.monotonic())
                    outcome = "503" if len(faults.busy_seen) <= faults.busy_times else "forwarded"
                faults.counts[outcome] += 1
                faults.requests[request_kind(self.command, self.path)] += 1
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
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            response, data = forward(self.command, self.path, body, headers)
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

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    arguments = argparse.ArgumentParser(description="Serve the proxy until killed; print its port first.")
    arguments.add_argument("upstream", help="http://host:port of the S3 server")
    arguments.add_argument("--latency-ms", type=float, default=0.0, help="added to every forwarded request")
    args = arguments.parse_args()
    server = _server(args.upstream, Faults(latency_seconds=args.latency_ms / 1000))
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
