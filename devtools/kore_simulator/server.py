"""HTTP layer of the Kore.ai campaign simulator: routing, request verification, keep-alive serving.

A request is checked in the platform's order: injected faults, rate limit, route, headers, JWT,
query and body; then the campaign operation runs on `SimulatorState`. Every request, refused or
dropped, lands in the request log with the status it was answered.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
from jwt.algorithms import HMACAlgorithm

from devtools.kore_simulator.state import (
    VALIDATION_ERROR,
    RecordedRequest,
    Reply,
    SimulatorState,
    error_reply,
)

HOST = "127.0.0.1"
INVALID_JWT = "Invalid JWT token"
REPLAY = "error verifying the jwt: possibly a replay"
MAX_TOKEN_LIFETIME = 3600  # seconds between iat and exp when the app enforces JTI


@dataclass(frozen=True)
class _Route:
    kind: str
    segments: tuple[str, ...]  # the path split on "/"; "{stream}" and "{campaign}" are ids
    query: Mapping[str, str | None]  # exactly these parameters; None = any value (accountId)


_PUBLIC = ("", "campaign", "api", "v2", "public", "{stream}", "campaign")
# Literal routes first: "getAllCampaignDetails" would otherwise be taken for a campaign id by start_sms.
_ROUTES = (
    _Route("list", (*_PUBLIC, "getAllCampaignDetails"), {"accountId": None}),
    # The documented Stop SMS path has an empty segment: ".../campaign//trigger/{campaign}".
    _Route(
        "stop_sms",
        (*_PUBLIC, "", "trigger", "{campaign}"),
        {"accountId": None, "campaignType": "sms", "trigger": "stop"},
    ),
    _Route(
        "stop_voice",
        ("", "api", "v2", "public", "{stream}", "campaign", "trigger", "{campaign}"),
        {"accountId": None, "campaignType": "voice", "trigger": "stop"},
    ),
    # Start Voice Campaign v2: the voice stop path, told apart by its trigger.
    _Route(
        "start_voice",
        ("", "api", "v2", "public", "{stream}", "campaign", "trigger", "{campaign}"),
        {"accountId": None, "campaignType": "voice", "trigger": "play"},
    ),
    _Route("status", (*_PUBLIC, "{campaign}", "status"), {"accountId": None, "view": "status"}),
    # "Disable a Scheduled Voice or SMS Campaign": by name, in the query (no accountId there); before start_sms,
    # which would take "schedule" for a campaign id.
    _Route("schedule", (*_PUBLIC, "schedule"), {"enableSchedule": None, "campaignName": None}),
    _Route("start_sms", (*_PUBLIC, "{campaign}"), {"campaignType": "sms", "trigger": "play"}),
)


@dataclass(frozen=True)
class _Match:
    route: _Route
    stream_id: str
    campaign_id: str | None


def _match(raw_path: str, trigger: str | None = None) -> _Match | None:
    """Match the raw path segment by segment, so '//' counts and '%2F' stays inside an id. Of routes sharing a path
    (the voice stop and start), the one whose ``trigger`` the query names; otherwise the first."""
    matches = [match for match in _path_matches(raw_path)
               if match.route.query.get("trigger") in (None, trigger)]
    return matches[0] if matches else next(iter(_path_matches(raw_path)), None)


def _path_matches(raw_path: str) -> list[_Match]:
    found: list[_Match] = []
    parts = raw_path.split("/")
    for route in _ROUTES:
        if len(parts) != len(route.segments):
            continue
        ids: dict[str, str] = {}
        for part, expected in zip(parts, route.segments, strict=True):
            if expected.startswith("{"):
                if not part:
                    break
                ids[expected] = unquote(part)
            elif part != expected:
                break
        else:
            found.append(_Match(route, ids["{stream}"], ids.get("{campaign}")))
    return found


@dataclass(frozen=True)
class _Incoming:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any


class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _refuse(status: int, msg: str, reason: str, code: int | None = None) -> _Refused:
    return _Refused(error_reply(status, msg, code, reason=reason))


class _QuietHS256(HMACAlgorithm):
    """HS256 minus PyJWT's short-key warning: test secrets are short on purpose; the platform takes them."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)

    def check_key_length(self, key: bytes) -> str | None:
        return None


_JWS = jwt.PyJWS(algorithms=[])
_JWS.register_algorithm("HS256", _QuietHS256())


def _check_headers(sim: SimulatorState, req: _Incoming, match: _Match) -> None:
    headers = req.headers
    if not headers.get("auth"):
        raise _refuse(401, "Invalid SDK credentials", "auth header missing", code=4001)
    account_id = headers.get("accountid")
    if not account_id:
        raise _refuse(412, VALIDATION_ERROR, "accountId header missing")
    if "accountId" in match.route.query:
        query_accounts = [value for name, value in req.query if name == "accountId"]
        if query_accounts and query_accounts[-1] != account_id:
            raise _refuse(
                412, VALIDATION_ERROR, "accountId header differs from the accountId query parameter"
            )
    expected_iid = sim.iids.get(match.stream_id, match.stream_id)
    if headers.get("iid") != expected_iid:
        raise _refuse(412, VALIDATION_ERROR, f"iid header must be {expected_iid!r}")
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if req.method == "POST" and media_type != "application/json":
        raise _refuse(412, VALIDATION_ERROR, "Content-Type must be application/json")


def _verify_jwt(sim: SimulatorState, token: str, account_id: str) -> dict[str, Any]:
    """Verified claims, the way a JWT app with (optionally) "Enforce JTI" checks them."""

    def invalid(reason: str) -> _Refused:
        return _refuse(401, INVALID_JWT, reason, code=4002)

    required = ["jti", "iat", "exp"] if sim.enforce_jti else []
    try:
        # Never trust the token's own alg: only HS256 is accepted for API-scope apps.
        if jwt.get_unverified_header(token).get("alg") != "HS256":
            raise invalid("alg must be HS256")
        client_id = jwt.decode(token, options={"verify_signature": False}).get("appId")
        app = sim.find_app(client_id) if isinstance(client_id, str) else None
        if app is None:
            raise invalid("no app with this appId")
        _JWS.decode(token, key=app.client_secret, algorithms=["HS256"])
        claims: dict[str, Any] = jwt.decode(
            token,
            options={
                "verify_signature": False,  # done just above, without the short-key warning
                "verify_exp": True,
                "verify_iat": True,
                "verify_nbf": True,
                "require": required,
            },
        )
    except jwt.PyJWTError as error:
        raise invalid(f"{type(error).__name__}: {error}") from None
    if app.account_id != account_id:
        raise invalid("the app belongs to another account")
    if sim.enforce_jti:
        if float(claims["exp"]) - float(claims["iat"]) > MAX_TOKEN_LIFETIME:
            raise invalid("exp is more than an hour after iat")
        if not sim.consume_jti(app.client_id, str(claims["jti"])):
            raise _refuse(401, REPLAY, "jti already used", code=4002)
    return claims


def _check_query_and_body(req: _Incoming, route: _Route) -> None:
    names = sorted(name for name, _ in req.query)
    if names != sorted(route.query):
        raise _refuse(412, VALIDATION_ERROR, f"query parameters must be exactly {sorted(route.query)}")
    for name, value in req.query:
        expected = route.query[name]
        if expected is not None and value != expected:
            raise _refuse(412, VALIDATION_ERROR, f"query parameter {name} must be {expected!r}")
    if not isinstance(req.body, dict):
        raise _refuse(412, VALIDATION_ERROR, "body must be a JSON object")


def _perform(sim: SimulatorState, match: _Match, body: dict[str, Any], query: dict[str, str]) -> Reply:
    kind, stream_id, campaign_id = match.route.kind, match.stream_id, match.campaign_id or ""
    if kind == "stop_sms":
        return sim.stop_campaign("sms", stream_id, campaign_id)
    if kind == "stop_voice":
        return sim.stop_campaign("voice", stream_id, campaign_id)
    if kind == "start_sms":
        return sim.start_campaign("sms", stream_id, campaign_id)
    if kind == "start_voice":
        return sim.start_campaign("voice", stream_id, campaign_id)
    if kind == "status":
        return sim.describe_campaign(stream_id, campaign_id)
    if kind == "schedule":
        return sim.set_schedule(stream_id, query["campaignName"], query["enableSchedule"])
    return sim.list_campaigns(stream_id, body)


def _serve(sim: SimulatorState, req: _Incoming, match: _Match | None) -> tuple[Reply, dict[str, Any] | None]:
    """Steps 2-4 and the operation; returns the reply and the verified claims (if it got that far)."""
    claims: dict[str, Any] | None = None
    try:
        if match is None:
            raise _refuse(404, "Not Found", "no such endpoint")
        if req.method != "POST":
            raise _refuse(405, "Method Not Allowed", f"{match.route.kind} takes POST")
        _check_headers(sim, req, match)
        claims = _verify_jwt(sim, req.headers["auth"], req.headers["accountid"])
        _check_query_and_body(req, match.route)
        return _perform(sim, match, req.body, dict(req.query)), claims
    except _Refused as refused:
        return refused.reply, claims


def _kind(match: _Match | None, method: str) -> str | None:
    """The endpoint a request is for; None for unknown paths and wrong methods (they match no fault kind)."""
    return match.route.kind if match and method == "POST" else None


def _decide(
    sim: SimulatorState, req: _Incoming, match: _Match | None, arrived: float | None = None
) -> tuple[Reply, dict[str, Any] | None]:
    kind = _kind(match, req.method)
    # Step 1: faults stand for the gateway in front of the platform, so they come before any check.
    fault = sim.take_fault(kind, match.campaign_id if match else None)
    extra_delay = 0.0
    if fault is not None:
        forced = sim.fault_reply(fault)
        if forced is not None:
            return forced, None
        extra_delay = fault.delay  # a delay-only fault: slow, but otherwise normal, answer
    limited = sim.rate_limited(req.headers.get("accountid", ""), arrived)
    reply, claims = (limited, None) if limited else _serve(sim, req, match)
    return replace(reply, delay=reply.delay + extra_delay), claims


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients can reuse one connection
    server_version, sys_version = "kore-simulator", ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and the CLI read the request log instead."""

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_POST

    def _handle(self) -> None:
        arrived = time.monotonic()
        sim = self.server.sim
        # The stdlib collapses a leading '//' in self.path; the request line keeps the path as sent.
        raw_path, _, raw_query = self.requestline.split()[1].partition("?")
        query = parse_qsl(raw_query, keep_blank_values=True)
        headers = {name.lower(): value for name, value in self.headers.items()}
        match = _match(raw_path, dict(query).get("trigger"))
        kind = _kind(match, self.command)
        body: Any = None
        claims: dict[str, Any] | None = None
        try:
            body = _parse_json(self._read_body())
        except ValueError:
            # Cannot find where this request ends, so the connection cannot be reused either.
            self.close_connection = True
            reply = error_reply(400, "Bad Request", reason="unreadable request body framing")
        else:
            try:
                reply, claims = _decide(sim, _Incoming(self.command, raw_path, query, headers, body), match, arrived)
            except Exception as error:  # a simulator bug: answer (and log) it rather than drop the connection
                traceback.print_exc()
                reply = error_reply(500, "Internal Server Error", reason=repr(error))
        sim.record(
            RecordedRequest(
                method=self.command,
                path=raw_path,
                query=dict(query),
                headers=headers,
                body=body,
                kind=kind,
                status=0 if reply.drop else reply.status,
                jwt_claims=claims,
                at=arrived,
                connection_id=self.server.connection_id(self.request),
            ),
            match.campaign_id if kind and match else None,
        )
        # Decided (and state changed) first, then slow: like a platform that stops the campaign
        # but answers too late for the client's timeout.
        pause = reply.delay + sim.latency
        if pause > 0:
            time.sleep(pause)
        if reply.drop:
            self.close_connection = True  # the server closes the socket without a byte of answer
            return
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, bytes | str):
            data = reply.body.encode() if isinstance(reply.body, str) else reply.body
            content_type = "text/plain; charset=utf-8"  # e.g. an HTML-ish gateway page from inject(body=...)
        else:
            data = json.dumps(reply.body).encode()
            content_type = "application/json; charset=utf-8"
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up (timeout) before the answer came


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of new connections beyond it waits for the client's
    # SYN retry (1 s), which a real API front end does not make anyone wait.
    request_queue_size = 128

    def __init__(self, port: int, sim: SimulatorState) -> None:
        self.sim = sim
        self._open: dict[socket.socket, int] = {}  # live connection -> its id
        self._open_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall on a DNS lookup; loopback needs none.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, self.server_address[1]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self._open_lock:
            self._open[sock] = self.sim.note_connection()
        return sock, address

    def connection_id(self, sock: socket.socket) -> int:
        with self._open_lock:
            return self._open.get(sock, 0)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeout, drop test) is normal here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so stop() leaves nothing open."""
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)


class KoreSimulator(SimulatorState):
    """The Kore.ai campaign API on 127.0.0.1, for tests (in-process) and the command line."""

    def __init__(self, *, port: int = 0, enforce_jti: bool = True) -> None:
        super().__init__(enforce_jti=enforce_jti)
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_seed(cls, seed: Mapping[str, Any], *, port: int = 0) -> KoreSimulator:
        """Build from `{"apps": [...], "campaigns": [...], "enforceJti": bool}` (see seed.example.json)."""
        sim = cls(port=port, enforce_jti=bool(seed.get("enforceJti", True)))
        for app in seed.get("apps", []):
            sim.add_app(app["clientId"], app["clientSecret"], app["accountId"])
        for campaign in seed.get("campaigns", []):
            sim.add_campaign(
                campaign["streamId"],
                campaign["campaignId"],
                campaign_type=campaign.get("type", "sms"),
                status=campaign.get("status", "Active"),
                name=campaign.get("name"),
                scheduling=bool(campaign.get("schedule", {}).get("isSchedulingEnabled", False)),
                recurrence=bool(campaign.get("schedule", {}).get("isRecurrenceEnabled", False)),
            )
        return sim

    def start(self) -> KoreSimulator:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._server = _Server(self._requested_port, self)
        # A short poll interval keeps stop() fast; tests start and stop a simulator per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="kore-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start()")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> KoreSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
