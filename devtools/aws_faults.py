"""A fault-injecting proxy in front of moto's server: AWS that fails now and then, on loopback only.

Point the function's ``AWS_ENDPOINT_URL`` at ``proxy.endpoint_url``: every call is forwarded to moto,
except that the chosen operations fail with HTTP 500 (which botocore treats as retryable) at the given
rate. Used by the faults benchmark to show that nothing is lost when SNS, DynamoDB and SQS misbehave.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import urllib3

# Operations the function makes, by the name botocore puts in X-Amz-Target or the query "Action".
DEFAULT_FAULTY_OPERATIONS = frozenset({"PutItem", "UpdateItem", "GetItem", "DeleteItem", "Publish", "SendMessage"})


JSON_FAULT = b'{"__type": "InternalFailure", "message": "injected by the faults benchmark"}'
XML_FAULT = (  # the query protocol's error shape (SNS)
    b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
    b"<Message>injected by the faults benchmark</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
)


class FaultyAwsProxy:
    def __init__(
        self, upstream: str, fault_rate: float, operations: frozenset[str] = DEFAULT_FAULTY_OPERATIONS,
        seed: int = 7, body_contains: bytes | None = None, times: int | None = None,
    ) -> None:
        """``body_contains`` and ``times`` aim a fault at one exact call: only requests whose body holds those
        bytes can fail, and only the first ``times`` of them (with ``fault_rate=1``: exactly those)."""
        self.upstream = upstream
        self.fault_rate = fault_rate
        self.operations = operations
        self.body_contains = body_contains
        self.times = times
        self.injected: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._pool = urllib3.PoolManager(maxsize=32, retries=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyAwsProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def should_fail(self, operation: str, body: bytes = b"") -> bool:
        with self._lock:
            aimed = self.body_contains is None or self.body_contains in body
            left = self.times is None or sum(self.injected.values()) < self.times
            fail = operation in self.operations and aimed and left and self._random.random() < self.fault_rate
            (self.injected if fail else self.forwarded)[operation] += 1
            return fail

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target")
                if proxy.should_fail(_operation(target, body), body):
                    payload, content_type = (
                        (JSON_FAULT, "application/x-amz-json-1.0") if target else (XML_FAULT, "text/xml")
                    )
                    self.send_response(500)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self._forward(body)

            def _forward(self, body: bytes) -> None:
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                upstream = proxy._pool.request(
                    self.command, proxy.upstream + self.path, body=body or None, headers=headers, redirect=False
                )
                self.send_response(upstream.status)
                for name, value in upstream.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(upstream.data)))
                self.end_headers()
                self.wfile.write(upstream.data)

        return Handler


def _operation(target: str | None, body: bytes) -> str:
    if target:  # JSON protocols: "DynamoDB_20120810.PutItem", "AmazonSQS.SendMessage"
        return target.rsplit(".", 1)[-1]
    action = parse_qs(body.decode("utf-8", "replace")).get("Action")  # query protocol (SNS)
    return action[0] if action else ""
