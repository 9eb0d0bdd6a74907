"""Plain-Python state of the Kore.ai campaign simulator: apps, campaigns, faults, rate limit, request log.

Nothing here knows about HTTP; `server.py` turns requests into calls on `SimulatorState` and its
`Reply` objects into responses. Every piece of mutable state is guarded by one lock, because the
HTTP server answers each connection on its own thread while a test mutates the simulator.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

KINDS = ("stop_sms", "stop_voice", "start_sms", "start_voice", "status", "list", "schedule")
STOP_KINDS = ("stop_sms", "stop_voice")
START_KINDS = ("start_sms", "start_voice")
CAMPAIGN_TYPES = ("sms", "voice")
STATUSES = ("Active", "Completed", "Ready", "Paused", "Preparing", "Stopped", "Scheduled", "Rescheduled")
STOPPABLE = frozenset({"Active", "Scheduled", "Rescheduled", "Preparing", "Paused", "Ready"})
ALREADY_STOPPED_MODES = ("error", "ok")

VALIDATION_ERROR = "Validation errors/ Invalid arguments"
RATE_LIMITED = "Rate limit for this API has been reached"
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator received it, with the status it answered (0 when dropped)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    kind: str | None
    status: int
    jwt_claims: dict[str, Any] | None
    at: float
    connection_id: int


@dataclass(frozen=True)
class App:
    client_id: str
    client_secret: str
    account_id: str


@dataclass
class Campaign:
    stream_id: str
    campaign_id: str
    type: str
    status: str
    name: str
    updated_at: str
    priority: int = 1
    scheduling: bool = False  # schedule.isSchedulingEnabled in the list rows
    recurrence: bool = False  # schedule.isRecurrenceEnabled

    def as_list_row(self) -> dict[str, Any]:
        """A row of Get All Campaigns v2 as the vendor's samples show it: the voice sample keys the campaign
        ``_id``, the SMS sample ``id``."""
        return {
            ("_id" if self.type == "voice" else "id"): self.campaign_id, "name": self.name, "priority": self.priority,
            "schedule": {"isSchedulingEnabled": self.scheduling, "isRecurrenceEnabled": self.recurrence},
            "status": self.status,
        }


@dataclass
class Fault:
    kind: str | None
    campaign_id: str | None
    status: int | None
    remaining: int
    retry_after: int | str | None  # a str is sent as is (to test odd values)
    delay: float
    drop: bool
    body: Any


@dataclass(frozen=True)
class Reply:
    """What to answer: a status and JSON body (or raw str/bytes), extra headers, and how to deliver it."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


def error_reply(status: int, msg: str, code: int | None = None, *, reason: str | None = None) -> Reply:
    """Kore's error envelope; `reason` goes to a debug header so a failing test says *why* it was refused."""
    headers = {"X-Simulator-Reason": reason} if reason else {}
    return Reply(status, {"errors": [{"msg": msg, "code": code if code is not None else status}]}, headers)


def iso_now() -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, the way the platform writes `updatedAt`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class SimulatorState:
    """Everything the simulated platform knows; safe to use from many threads."""

    def __init__(self, *, enforce_jti: bool = True) -> None:
        self._lock = threading.Lock()
        self.enforce_jti = enforce_jti
        self.unknown_campaign_status = 404
        self.latency = 0.0
        # Most items one list page serves, whatever `limit` asks: Kore.ai documents no maximum, so tests set it
        # below the client's page size to prove paging follows what was served.
        self.max_page_size = MAX_PAGE_SIZE
        # List pages (by the body's `page`) read this many seconds after they arrive, as if they reached the
        # platform late: calls sent after them (stops) then change the list first, as they may on a real one.
        self.late_list_pages: dict[int, float] = {}
        # Expected `iid` header per stream; a stream not listed expects its own id.
        self.iids: dict[str, str] = {}
        self._already_stopped_mode = "error"
        self._apps: dict[str, App] = {}
        self._campaigns: dict[tuple[str, str], Campaign] = {}  # insertion order = list order
        self._faults: list[Fault] = []
        self._rate_limit: tuple[int, float, int] | None = None
        self._count_refused = False
        self._hits: dict[str, list[float]] = {}  # per account: arrival times counted by the limit, sorted
        self._used_jtis: set[tuple[str, str]] = set()
        self._log: list[tuple[RecordedRequest, str | None]] = []  # (request, campaign id it targeted)
        self._connections_opened = 0
        self._next_connection_id = 0  # never reset, so ids stay unique across reset_log()

    # ---- configuration -------------------------------------------------------------------------

    @property
    def already_stopped_mode(self) -> str:
        return self._already_stopped_mode

    @already_stopped_mode.setter
    def already_stopped_mode(self, mode: str) -> None:
        if mode not in ALREADY_STOPPED_MODES:
            raise ValueError(f"already_stopped_mode must be one of {ALREADY_STOPPED_MODES}, not {mode!r}")
        self._already_stopped_mode = mode

    def add_app(self, client_id: str, client_secret: str, account_id: str) -> App:
        app = App(client_id, client_secret, account_id)
        with self._lock:
            self._apps[client_id] = app
        return app

    def add_campaign(
        self,
        stream_id: str,
        campaign_id: str,
        campaign_type: str = "sms",
        status: str = "Active",
        name: str | None = None,
        *,
        scheduling: bool = False,
        recurrence: bool = False,
    ) -> None:
        """Add (or replace) a campaign. Unknown types/statuses fail loudly: "Running" is not a Kore status.
        ``scheduling`` and ``recurrence``: its schedule (isSchedulingEnabled, isRecurrenceEnabled): a campaign with
        both starts again at each ``fire_recurrence``, until its schedule is disabled."""
        if campaign_type not in CAMPAIGN_TYPES:
            raise ValueError(f"campaign_type must be one of {CAMPAIGN_TYPES}, not {campaign_type!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        campaign = Campaign(stream_id, campaign_id, campaign_type, status, name or campaign_id, iso_now(),
                            scheduling=scheduling, recurrence=recurrence)
        with self._lock:
            self._campaigns[(stream_id, campaign_id)] = campaign

    def campaign_status(self, stream_id: str, campaign_id: str) -> str:
        with self._lock:
            return self._campaigns[(stream_id, campaign_id)].status

    def schedule_of(self, stream_id: str, campaign_id: str) -> dict[str, bool]:
        """The campaign's schedule as its list row shows it."""
        with self._lock:
            return dict(self._campaigns[(stream_id, campaign_id)].as_list_row()["schedule"])

    def fire_recurrence(self, stream_id: str, campaign_id: str) -> bool:
        """The campaign's next recurrence comes round (a control, not an API call): a campaign whose recurring
        schedule is enabled starts again (``Active``), whatever stopped it; one whose schedule was disabled stays as
        it is. True when it started."""
        with self._lock:
            campaign = self._campaigns[(stream_id, campaign_id)]
            if not (campaign.scheduling and campaign.recurrence):
                return False
            campaign.status, campaign.updated_at = "Active", iso_now()
            return True

    def restart(self, stream_id: str, campaign_id: str) -> None:
        """Someone starts the campaign again by hand, in the platform's own UI (a control, not an API call: nothing
        is logged), e.g. while the alarm that stopped it still fires."""
        with self._lock:
            campaign = self._campaigns[(stream_id, campaign_id)]
            campaign.status, campaign.updated_at = "Active", iso_now()

    def inject(
        self,
        kind: str | None = None,
        status: int | None = None,
        times: int = 1,
        retry_after: int | str | None = None,
        delay: float = 0.0,
        drop: bool = False,
        body: Any = None,
        campaign_id: str | None = None,
    ) -> None:
        """Queue a fault for the next `times` requests of `kind` (None = any request, even unknown paths),
        only those for `campaign_id` when given."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be None or one of {KINDS}, not {kind!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        if status is None and (retry_after is not None or body is not None):
            raise ValueError("retry_after and body need a status")
        with self._lock:
            self._faults.append(Fault(kind, campaign_id, status, times, retry_after, delay, drop, body))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_rate_limit(
        self, max_requests: int | None = 10, window_seconds: float = 1.0, retry_after: int = 1,
        *, count_refused: bool = False,
    ) -> None:
        """Rolling-window limit per `accountId` header; `None` switches it off.

        A request is judged by its arrival time (when the server began reading it), against the requests of
        its account that arrived in the `window_seconds` before it. By default only admitted requests count;
        ``count_refused=True`` counts every request that arrives, answered 429 or not (a platform that meters
        arrivals: a client that keeps knocking keeps itself locked out)."""
        with self._lock:
            self._rate_limit = None if max_requests is None else (max_requests, window_seconds, retry_after)
            self._count_refused = count_refused
            self._hits.clear()

    # ---- request log ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            entries = list(self._log)
        # Sorted by arrival: a request is logged once its answer is decided, a hair after it arrived.
        return [request for request, _ in sorted(entries, key=lambda entry: entry[0].at)]

    def stop_calls(self, campaign_id: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            entries = list(self._log)
        return [
            request
            for request, target in sorted(entries, key=lambda entry: entry[0].at)
            if request.kind in STOP_KINDS and (campaign_id is None or target == campaign_id)
        ]

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections_opened

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._connections_opened = 0

    def record(self, request: RecordedRequest, campaign_id: str | None) -> None:
        with self._lock:
            self._log.append((request, campaign_id))

    def note_connection(self) -> int:
        """Count an accepted TCP connection and return its id."""
        with self._lock:
            self._connections_opened += 1
            self._next_connection_id += 1
            return self._next_connection_id

    # ---- checks used by the HTTP layer ---------------------------------------------------------

    def take_fault(self, kind: str | None, campaign_id: str | None = None) -> Fault | None:
        """The oldest queued fault matching `kind` (and its campaign), consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if (fault.kind is None or fault.kind == kind) and fault.campaign_id in (None, campaign_id):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def rate_limited(self, account_id: str, arrived: float | None = None) -> Reply | None:
        """A 429 when `account_id` is over the limit at `arrived` (time.monotonic(); default now): fewer than
        `max_requests` counted requests in the window (arrived - window, arrived]. Handler threads can decide out
        of arrival order, so the counted arrivals are kept sorted rather than appended."""
        with self._lock:
            if self._rate_limit is None:
                return None
            max_requests, window, retry_after = self._rate_limit
            at = time.monotonic() if arrived is None else arrived
            hits = self._hits.setdefault(account_id, [])
            # Forget what no later arrival can count (a request decided up to a second after it arrived).
            del hits[: bisect.bisect_right(hits, at - window - 1.0)]
            inside = bisect.bisect_right(hits, at) - bisect.bisect_right(hits, at - window)
            admitted = inside < max_requests
            if admitted or self._count_refused:
                bisect.insort(hits, at)
            if admitted:
                return None
        reply = error_reply(429, RATE_LIMITED, reason=f"over {max_requests} requests per {window}s")
        return Reply(reply.status, reply.body, {**reply.headers, "Retry-After": str(retry_after)})

    def find_app(self, client_id: str) -> App | None:
        with self._lock:
            return self._apps.get(client_id)

    def consume_jti(self, client_id: str, jti: str) -> bool:
        """False when this app has seen the `jti` before (a replay)."""
        with self._lock:
            if (client_id, jti) in self._used_jtis:
                return False
            self._used_jtis.add((client_id, jti))
            return True

    # ---- campaign operations (requests already verified) ----------------------------------------

    def _lookup(self, stream_id: str, campaign_id: str, campaign_type: str | None) -> Campaign | Reply:
        """Caller holds the lock. An error Reply for an unknown campaign or the wrong type."""
        campaign = self._campaigns.get((stream_id, campaign_id))
        if campaign is None:
            return error_reply(self.unknown_campaign_status, "Campaign not found", reason="unknown campaign")
        if campaign_type is not None and campaign.type != campaign_type:
            return error_reply(
                412, VALIDATION_ERROR, reason=f"campaign is {campaign.type}, not {campaign_type}"
            )
        return campaign

    def stop_campaign(self, campaign_type: str, stream_id: str, campaign_id: str) -> Reply:
        with self._lock:
            found = self._lookup(stream_id, campaign_id, campaign_type)
            if isinstance(found, Reply):
                return found
            if found.status in STOPPABLE:
                found.status, found.updated_at = "Stopped", iso_now()
                message = "Campaign Stopped"
            elif self._already_stopped_mode == "error":
                return error_reply(400, "Campaign is already stopped", reason=f"campaign is {found.status}")
            else:
                message = "Campaign is already stopped"
            updated_at = found.updated_at
        body: dict[str, Any] = {"status": "Stopped", "message": message, "updatedAt": updated_at}
        if campaign_type == "sms":
            body["campaignExecutionType"] = "NORMAL"
        else:
            body["campaignInstanceId"] = f"cid-{uuid.uuid4()}"
        return Reply(200, body)

    def start_campaign(self, campaign_type: str, stream_id: str, campaign_id: str) -> Reply:
        """Start SMS / Voice Campaign v2 (``trigger=play``): a stopped campaign becomes Active again, answered as the
        vendor's Start pages show (``Active``, ``Campaign Started``; voice adds ``totalCallsCompleted`` and
        ``campaignInstanceId``). Starting a campaign that is not stopped is undocumented: refused with the platform's
        validation error (412), which a client must survive either way."""
        with self._lock:
            found = self._lookup(stream_id, campaign_id, campaign_type)
            if isinstance(found, Reply):
                return found
            if found.status != "Stopped":
                return error_reply(412, VALIDATION_ERROR, reason=f"campaign is {found.status}, not Stopped")
            found.status, found.updated_at = "Active", iso_now()
            updated_at = found.updated_at
        body: dict[str, Any] = {"status": "Active", "message": "Campaign Started", "updatedAt": updated_at}
        if campaign_type == "voice":
            body |= {"totalCallsCompleted": 0, "campaignInstanceId": f"cid-{uuid.uuid4()}"}
        return Reply(200, body)

    def start_calls(self, campaign_id: str | None = None) -> list[RecordedRequest]:
        """The start calls (SMS and voice) received, in arrival order; only those for ``campaign_id`` when given."""
        with self._lock:
            entries = list(self._log)
        return [
            request
            for request, target in sorted(entries, key=lambda entry: entry[0].at)
            if request.kind in START_KINDS and (campaign_id is None or target == campaign_id)
        ]

    def set_schedule(self, stream_id: str, campaign_name: str, enable: str) -> Reply:
        """Disable (or enable) a campaign's schedule by its name, as "Disable a Scheduled Voice or SMS Campaign"
        documents it; an unknown name is a 404 (undocumented)."""
        if enable not in ("true", "false"):
            return error_reply(412, VALIDATION_ERROR, reason="enableSchedule must be true or false")
        with self._lock:
            found = next((campaign for campaign in self._campaigns.values()
                          if campaign.stream_id == stream_id and campaign.name == campaign_name), None)
            if found is None:
                return error_reply(404, "Campaign not found", reason=f"no campaign named {campaign_name!r}")
            found.scheduling = enable == "true"
            campaign_id = found.campaign_id
        verb = "enabled" if enable == "true" else "disabled"
        return Reply(200, {"status": "success", "message": f"Campaign {campaign_name} schedule has been {verb} "
                                                           "successfully", "id": campaign_id})

    def describe_campaign(self, stream_id: str, campaign_id: str) -> Reply:
        with self._lock:
            found = self._lookup(stream_id, campaign_id, None)
            if isinstance(found, Reply):
                return found
            data = {"id": found.campaign_id, "status": found.status, "name": found.name}
        return Reply(200, {"status": "success", "data": data})

    def list_campaigns(self, stream_id: str, body: dict[str, Any]) -> Reply:
        query = _parse_list_body(body, self.max_page_size)
        if isinstance(query, Reply):
            return query
        campaign_type, statuses, limit, skip = query
        late = self.late_list_pages.get(body.get("page")) if isinstance(body.get("page"), int) else None
        if late:
            time.sleep(late)
        with self._lock:
            matches = [
                c.as_list_row()
                for c in self._campaigns.values()
                if c.stream_id == stream_id
                and (campaign_type is None or c.type == campaign_type)
                and (statuses is None or c.status in statuses)
            ]
        results = matches[skip : skip + limit]
        data = {
            "results": results,
            "skip": skip,
            "limit": limit,
            "hasMore": skip + len(results) < len(matches),
            "totalPages": math.ceil(len(matches) / limit),
            "totalResults": len(matches),
        }
        return Reply(200, {"status": "success", "message": "Campaigns fetched successfully", "data": data})

    # ---- faults as replies ---------------------------------------------------------------------

    @staticmethod
    def fault_reply(fault: Fault) -> Reply | None:
        """The answer a fault forces, or None when it only delays the normal answer."""
        if fault.drop:
            return Reply(0, drop=True, delay=fault.delay)
        if fault.status is None:
            return None
        body = fault.body
        if body is None:
            phrase = RATE_LIMITED if fault.status == 429 else _status_phrase(fault.status)
            body = {"errors": [{"msg": phrase, "code": fault.status}]}
        headers = {"X-Simulator-Reason": "injected fault"}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return Reply(fault.status, body, headers, delay=fault.delay)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_list_body(
    body: dict[str, Any], max_page_size: int
) -> tuple[str | None, set[str] | None, int, int] | Reply:
    """(type, statuses, limit, skip) from a getAllCampaignDetails body, or a 412."""

    def invalid(why: str) -> Reply:
        return error_reply(412, VALIDATION_ERROR, reason=why)

    campaign_type = body.get("type")
    if campaign_type is not None and campaign_type not in CAMPAIGN_TYPES:
        return invalid("type must be sms or voice")
    limit, skip, page = body.get("limit", 10), body.get("skip", 0), body.get("page")
    if not _is_int(limit) or limit < 1:
        return invalid("limit must be a positive integer")
    limit = min(limit, max_page_size)  # clamped, not refused: a client must follow hasMore either way
    if not _is_int(skip) or skip < 0:
        return invalid("skip must be a non-negative integer")
    if page is not None:
        if not _is_int(page) or page < 1:
            return invalid("page must be a positive integer")
        skip = (page - 1) * limit
    filters = body.get("filters", {})
    if not isinstance(filters, dict):
        return invalid("filters must be an object")
    statuses = filters.get("status")
    if statuses is not None and (
        not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses)
    ):
        return invalid("filters.status must be a list of strings")
    return campaign_type, set(statuses) if statuses else None, limit, skip  # [] filters nothing out
