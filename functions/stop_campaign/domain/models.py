"""Data shapes: the stop request, one campaign to stop, the API's answer and the result event.

Every shape the service reads or writes lives here, typed, so a format change is made in one place.
The JSON Schemas in ``schemas/`` are the published form of the same contracts.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from stop_campaign.domain.readonly import readonly_dataclass


class Outcome(StrEnum):
    STOPPED = "stopped"
    ALREADY_STOPPED = "already_stopped"
    DRY_RUN = "dry_run"
    IGNORED = "ignored"
    REJECTED = "rejected"
    FAILED = "failed"
    RESUMED = "resumed"  # a resume started again a campaign its request had stopped (domain/resume.py)


class Source(StrEnum):
    SQS = "sqs"
    EVENTBRIDGE = "eventbridge"
    ALARM = "alarm"
    DIRECT = "direct"


class CampaignType(StrEnum):
    SMS = "sms"
    VOICE = "voice"


def stable_id(identity: dict[str, Any]) -> str:
    """An event's id for subscribers: the same for every copy of the same event, different for any other."""
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def utc_now() -> str:
    """Timestamps of every event: ISO-8601 UTC to the millisecond, ``Z``-suffixed."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ALL_ACTIVE = "all-active"
# Stream, campaign and account ids (the JSON Schema says the same): nothing that can change a path or header.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
# Campaign statuses that a stop can act on ("all-active" resolves to these).
STOPPABLE_STATUSES: tuple[str, ...] = ("Active", "Scheduled", "Rescheduled", "Preparing", "Paused")
# Statuses that mean a stop has nothing left to do.
FINISHED_STATUSES: frozenset[str] = frozenset({"Stopped", "Completed"})


@readonly_dataclass
class Origin:
    """Where a message came from: sets the request id default, the source and the attempt count."""

    source: Source
    message_id: str
    received_at: str
    attempt: int = 1
    redriven_from: str | None = None  # this delivery is a dead letter sent back: see ``intake.redrive_marker``
    sent_at: str | None = None  # when the message was first sent (ISO-8601): see ``intake.first_sent_at``


@readonly_dataclass
class Producer:
    """Who sent a request, as AWS reported it (domain/provenance.py), and the producer policy's name for it."""

    kind: str  # sqs, events, alarm, sns, direct
    id: str
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name}


@readonly_dataclass
class StopRequest:
    """A validated stop request (v1), whatever shape it arrived in."""

    stream_id: str
    campaign_type: CampaignType
    request_id: str
    source: Source
    received_at: str
    campaign_ids: tuple[str, ...] = ()
    all_active: bool = False
    reason: str | None = None
    requested_by: str | None = None
    requested_at: str | None = None
    account_id: str | None = None
    dry_run: bool = False
    alarm_arn: str | None = None
    attempt: int = 1  # which delivery of the message this is (SQS ApproximateReceiveCount)
    ticket: str | None = None  # a continuation's places in its account's queue (rate_schedule); in no result
    producer: Producer | None = None  # set once the sender is known (processing._plan), before any call
    not_after: str | None = None  # the request's own expiry (``notAfter``): see ``intake.expiry``
    sent_at: str | None = None  # when its message was first sent (Origin.sent_at, else the event's time)
    disable_schedule: bool = False  # ``disableSchedule``: once stopped (or found stopped), disable its recurrence
    # A resume (``{"action": "resume"}``): the request whose stopped campaigns these are; they are started, not
    # stopped (domain/resume.py). None: a stop.
    resume_of: str | None = None
    hold: bool = False  # an alarm-map entry's ``hold``: its campaigns are kept stopped while the alarm is in ALARM
    hold_of: str | None = None  # a hold check's re-stop: the request id of the alarm whose hold it keeps


@readonly_dataclass
class StopTarget:
    """One campaign of one request: the unit that is stopped, made idempotent and reported."""

    request: StopRequest
    campaign_id: str
    account_id: str
    # The campaign's name when a list row said it (Disable Schedule works by name); None: asked when needed
    campaign_name: str | None = field(default=None, compare=False)

    def idempotency_key(self) -> dict[str, str]:
        return {
            "accountId": self.account_id,
            "streamId": self.request.stream_id,
            "campaignType": self.request.campaign_type.value,
            "campaignId": self.campaign_id,
            "requestId": self.request.request_id,
        }


# Worth another try: timeouts, rate limits and every server-side error (520-529 from CDNs included).
RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})


@readonly_dataclass
class ApiResponse:
    """One answer of the Kore.ai API, as the HTTP adapter (adapters.kore_client) read it."""

    status: int
    body: dict[str, Any] | None
    latency_ms: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES


@readonly_dataclass
class ApiConfirmation:
    """What the platform said about a stop (copied into the result's ``api`` field)."""

    http_status: int
    status: str | None = None
    message: str | None = None
    updated_at: str | None = None
    campaign_execution_type: str | None = None
    campaign_instance_id: str | None = None

    def as_result_field(self) -> dict[str, Any]:
        fields = {
            "httpStatus": self.http_status,
            "status": self.status,
            "message": self.message,
            "updatedAt": self.updated_at,
            "campaignExecutionType": self.campaign_execution_type,
            "campaignInstanceId": self.campaign_instance_id,
        }
        return {name: value for name, value in fields.items() if value is not None or name == "httpStatus"}


@dataclass(slots=True)
class StopOutcome:
    """The end of one stop call: stored by idempotency, so it must round-trip through a dict."""

    outcome: str
    api: dict[str, Any] | None
    completed_at: str
    time_to_stop_ms: int | None = None
    api_latency_ms: float | None = None
    campaign_name: str | None = None  # from the status answer of an "already stopped" check, when it was asked


@readonly_dataclass
class ResultError:
    code: str
    message: str
    retryable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


@readonly_dataclass
class ResultEvent:
    """Result event v1: one per campaign per request, published to the results topic."""

    outcome: Outcome
    request_id: str
    source: Source
    received_at: str
    completed_at: str
    stream_id: str | None = None
    campaign_id: str | None = None
    campaign_type: str | None = None
    account_id: str | None = None
    reason: str | None = None
    requested_by: str | None = None
    requested_at: str | None = None
    alarm_arn: str | None = None
    time_to_stop_ms: int | None = None
    attempts: int = 1
    dry_run: bool = False
    api: dict[str, Any] | None = None
    error: ResultError | None = None
    # The dead letter this delivery was redriven from, on a failure. Part of the identity: a redriven request that
    # fails again says so in a new result, while copies of one request stay one result.
    redriven_from: str | None = None
    # ``disableSchedule`` only: {"disabled": true, ...} or {"disabled": false, "error": {...}}; not in the identity
    # (a campaign's one outcome stays one result), absent from the message when not asked
    schedule: dict[str, Any] | None = None
    producer: Producer | None = None  # not part of the identity: the same stop is the same result
    resume_of: str | None = None  # a resume's result: the request it resumes (its own request id tells it apart)
    hold_of: str | None = None  # a hold check's re-stop: the alarm's request id (its own request id is the check's)
    schema_version: ClassVar[str] = "1"

    @property
    def result_id(self) -> str:
        return stable_id(self.identity())

    def as_message(self) -> dict[str, Any]:
        return {
            "schemaVersion": self.schema_version,
            "resultId": self.result_id,
            "outcome": self.outcome.value,
            "requestId": self.request_id,
            "streamId": self.stream_id,
            "campaignId": self.campaign_id,
            "campaignType": self.campaign_type,
            "accountId": self.account_id,
            "source": self.source.value,
            "reason": self.reason,
            "requestedBy": self.requested_by,
            "requestedAt": self.requested_at,
            "alarmArn": self.alarm_arn,
            "receivedAt": self.received_at,
            "completedAt": self.completed_at,
            "timeToStopMs": self.time_to_stop_ms,
            "attempts": self.attempts,
            "dryRun": self.dry_run,
            "api": self.api,
            "error": self.error.as_dict() if self.error else None,
            "producer": self.producer.as_dict() if self.producer else None,
        } | ({"redrivenFrom": self.redriven_from} if self.redriven_from else {}) | (
            {"schedule": self.schedule} if self.schedule is not None else {}) | (
            {"resumeOf": self.resume_of} if self.resume_of is not None else {}) | (
            {"holdOf": self.hold_of} if self.hold_of else {})

    def publication(self) -> dict[str, Any]:
        """What is published at most once: the identity, except that ``stopped`` and ``already_stopped`` are one
        campaign end. A stop whose record could not be written is called again by a later delivery, which then finds
        the campaign stopped (by itself); whichever of the two is published first is the campaign's one outcome."""
        identity = self.identity()
        if self.outcome in (Outcome.STOPPED, Outcome.ALREADY_STOPPED):
            identity["outcome"] = "stopped|already_stopped"
        elif self.resume_of is not None and self.outcome in (Outcome.RESUMED, Outcome.IGNORED):
            # The same for a resume: a start whose record was lost finds the campaign running (``ignored``) later.
            identity["outcome"] = "resumed|ignored"
        return identity

    def identity(self) -> dict[str, Any]:
        """What makes two results the same result: a redelivery must not publish it twice."""
        return {
            "requestId": self.request_id,
            "streamId": self.stream_id,
            "campaignId": self.campaign_id,
            "campaignType": self.campaign_type,
            "accountId": self.account_id,
            "outcome": self.outcome.value,
            "errorCode": self.error.code if self.error else None,
        } | ({"redrivenFrom": self.redriven_from} if self.redriven_from else {})


class StopError(Exception):
    """A stop that did not succeed; ``code`` and ``message`` go into the result (never a secret)."""

    retryable: bool = False

    def __init__(self, code: str, message: str, api: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.api = api

    def as_result_error(self) -> ResultError:
        return ResultError(code=self.code, message=self.message, retryable=self.retryable)


class RequestRejected(StopError):
    """The request itself cannot be served; no stop call is made (outcome ``rejected``)."""


class PermanentStopError(StopError):
    """The platform refused the stop; retrying will not help (outcome ``failed``)."""


class TransientStopError(StopError):
    """The platform could not be reached; the request goes back to the queue."""

    retryable = True


class StopDeferred(Exception):
    """Not now: the call was not sent, because the account's rate budget (``budget``) or this invocation's time
    ran out first. Not a failure: the campaign continues in a later invocation, from ``resume_at`` (epoch
    seconds) on. Waiting for the budget never counts against a request (see decision.py)."""

    def __init__(self, resume_at: float, why: str, *, budget: bool = False) -> None:
        super().__init__(why)
        self.resume_at = resume_at
        self.why = why
        self.budget = budget


@readonly_dataclass
class Progress:
    """What the earlier invocations of one request did, carried from each to the next (see Continuation)."""

    segment: int = 1  # which hand-over this is: 1 for the request as it arrived
    invocations: int = 0  # invocations used before this one, retries included
    campaigns: int = 0  # campaigns the request covers in all
    tallies: tuple[tuple[str, int], ...] = ()  # (outcome, count) of campaigns already ended
    first_stop_at: str | None = None
    last_stop_at: str | None = None
    stalled: int = 0  # invocations in a row that ended no campaign of it: a request never loops for ever
    all_active: bool = False  # the request asked for all-active; what is left of it is a list of ids now

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment, "invocations": self.invocations, "campaigns": self.campaigns,
            "tallies": dict(self.tallies), "firstStopAt": self.first_stop_at, "lastStopAt": self.last_stop_at,
            "stalled": self.stalled, "allActive": self.all_active,
        }


@readonly_dataclass
class Continuation:
    """The rest of a request that one invocation could not finish, sent back to the stop queue.

    ``request.campaign_ids`` holds only the campaigns still to do; every other field is the original
    request's, the request id included, so campaigns stopped before the hand-over are never called again.
    """

    request: StopRequest
    progress: Progress
    # What arrived, for its proof (provenance.verify): the signature and the canonical text it signs.
    signature: str | None = field(default=None, compare=False)
    signed_text: str = field(default="", compare=False)

    def as_message(self) -> dict[str, Any]:
        """The message to sign and send (without its signature: provenance.signed adds it)."""
        request = self.request
        return {
            "continuation": {
                "version": CONTINUATION_VERSION, **self.progress.as_dict(),
                **({"ticket": request.ticket} if request.ticket else {}),
            },
            "request": {
                "streamId": request.stream_id, "campaignType": request.campaign_type.value,
                **({"campaigns": ALL_ACTIVE} if request.all_active else {"campaignIds": list(request.campaign_ids)}),
                "requestId": request.request_id,
                "source": request.source.value, "receivedAt": request.received_at, "reason": request.reason,
                "requestedBy": request.requested_by, "requestedAt": request.requested_at,
                "accountId": request.account_id, "dryRun": request.dry_run, "alarmArn": request.alarm_arn,
                **({"disableSchedule": True} if request.disable_schedule else {}),
                **({"resumeOf": request.resume_of} if request.resume_of is not None else {}),
                **({"hold": True} if request.hold else {}),
                **({"holdOf": request.hold_of} if request.hold_of else {}),
            },
            **({"producer": request.producer.as_dict()} if request.producer else {}),
        }


CONTINUATION_VERSION = "1"


@readonly_dataclass
class SummaryEvent:
    """Summary event v1: one per multi-campaign request (stop-all, ``campaignIds``, alarm), when it has ended."""

    request: StopRequest
    account_id: str | None
    all_active: bool
    campaigns: int
    outcomes: dict[str, int]
    first_stop_at: str | None
    last_stop_at: str | None
    completed_at: str
    duration_ms: int
    invocations: int
    redriven_from: str | None = None  # a redriven request sums up again: see ResultEvent.redriven_from
    schema_version: ClassVar[str] = "1"

    def as_message(self) -> dict[str, Any]:
        request = self.request
        return {
            "schemaVersion": self.schema_version,
            "eventType": "summary",
            "resultId": stable_id(self.identity()),
            "requestId": request.request_id,
            "streamId": request.stream_id,
            "campaignType": request.campaign_type.value,
            "accountId": self.account_id,
            "source": request.source.value,
            "allActive": self.all_active,
            "dryRun": request.dry_run,
            "reason": request.reason,
            "requestedBy": request.requested_by,
            "requestedAt": request.requested_at,
            "alarmArn": request.alarm_arn,
            "campaigns": self.campaigns,
            "outcomes": self.outcomes,
            "receivedAt": request.received_at,
            "firstStopAt": self.first_stop_at,
            "lastStopAt": self.last_stop_at,
            "completedAt": self.completed_at,
            "durationMs": self.duration_ms,
            "invocations": self.invocations,
            "producer": request.producer.as_dict() if request.producer else None,
        } | ({"redrivenFrom": self.redriven_from} if self.redriven_from else {}) | (
            {"resumeOf": request.resume_of} if request.resume_of is not None else {})

    def identity(self) -> dict[str, Any]:
        """One summary per request: a redelivered last segment does not publish it twice."""
        request = self.request
        return {
            "summary": request.request_id, "streamId": request.stream_id, "accountId": self.account_id,
            "campaignType": request.campaign_type.value, "dryRun": request.dry_run, "allActive": self.all_active,
        } | ({"redrivenFrom": self.redriven_from} if self.redriven_from else {})
