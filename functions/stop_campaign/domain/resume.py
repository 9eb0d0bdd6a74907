"""Resume: start again exactly the campaigns one earlier request stopped. Plain Python, no I/O.

``{"action": "resume", "resumeOf": "<requestId>", ...}`` (schemas/resume_request_v1.json) reads the request history
of ``resumeOf`` (adapters/history.py) and becomes one stop request per stream, campaign type and account with
``resume_of`` set: the same fan-out, pacing, idempotency, results, summaries and continuations as a stop, where each
campaign's call is "is it still Stopped? then start it" (service/stopper.py ``start``) instead of a stop.

* Only campaigns the request stopped itself (outcome ``stopped``): one it found ``already_stopped`` was stopped by
  someone else, and is not this request's to start again. A dry run's results stopped nothing.
* The producer policy judges a resume like a stop of the same campaigns: a producer may resume a campaign exactly
  when it may stop it (processing._authorize, per campaign).
* A schedule the stop disabled (``disableSchedule``) stays disabled: every result of a resume says
  ``schedule: {"reenabled": false}``.
"""

from __future__ import annotations

from typing import Any, Protocol

from stop_campaign.domain.history import stopped_campaigns
from stop_campaign.domain.models import (
    ID_PATTERN,
    ApiResponse,
    CampaignType,
    Producer,
    RequestRejected,
    Source,
    StopRequest,
)
from stop_campaign.domain.readonly import readonly_dataclass

RESUME_ACTION = "resume"
UNKNOWN_REQUEST = "unknown_request"  # the error code of a resume of a request the history does not know
HISTORY_UNAVAILABLE = "history_unavailable"
RESUMABLE_STATUS = "Stopped"  # a campaign is started again only from here; any other status: ``ignored``
# What every result of a resume says of the schedule: a resume never re-enables one (no documented way to know it was
# enabled before the stop; "Disable a Scheduled Campaign" with enableSchedule=true would also enable one never on).
SCHEDULE_NOT_REENABLED: dict[str, Any] = {"reenabled": False}


class HoldRelease(Protocol):
    """Ends the hold of a request (holds keep an alarm's campaigns stopped): called before any start of a resume, so
    that the hold check does not stop again what the resume starts. None when holds are not configured."""

    def release(self, request_id: str) -> object: ...  # what it returns (released now or not) is not needed


@readonly_dataclass
class ResumeRequest:
    """A validated resume request (v1)."""

    resume_of: str
    request_id: str
    source: Source
    received_at: str
    reason: str | None = None
    requested_by: str | None = None
    requested_at: str | None = None
    dry_run: bool = False
    attempt: int = 1
    sent_at: str | None = None
    producer: Producer | None = None


class UnknownRequest(RequestRejected):
    """The history has no result of the request to resume (never served, expired, or another id)."""

    def __init__(self, message: str) -> None:
        super().__init__(UNKNOWN_REQUEST, message)


def resumed_requests(resume: ResumeRequest, history: list[dict[str, Any]]) -> list[StopRequest]:
    """The requests a resume makes of the history of ``resume_of`` (its result events as published): one per stream,
    campaign type and account, naming the campaigns the request stopped, in the order the history lists them.
    Empty when it stopped none. A history row that does not read as a campaign of a stream is passed over."""
    grouped: dict[tuple[str, str, str | None], list[str]] = {}
    for result in stopped_campaigns(history):
        if result.get("dryRun") is True:
            continue
        stream_id, campaign_id, account_id = result.get("streamId"), result.get("campaignId"), result.get("accountId")
        campaign_type = result.get("campaignType") or CampaignType.SMS.value
        if not (_is_id(stream_id) and _is_id(campaign_id) and campaign_type in ("sms", "voice")):
            continue
        account = account_id if _is_id(account_id) else None
        ids = grouped.setdefault((str(stream_id), str(campaign_type), account), [])
        if campaign_id not in ids:
            ids.append(str(campaign_id))
    return [
        StopRequest(
            stream_id=stream_id, campaign_type=CampaignType(campaign_type), request_id=resume.request_id,
            source=resume.source, received_at=resume.received_at, campaign_ids=tuple(ids), reason=resume.reason,
            requested_by=resume.requested_by, requested_at=resume.requested_at, account_id=account_id,
            dry_run=resume.dry_run, attempt=resume.attempt, sent_at=resume.sent_at, producer=resume.producer,
            resume_of=resume.resume_of,
        )
        for (stream_id, campaign_type, account_id), ids in grouped.items()
    ]


def current_status(response: ApiResponse) -> str | None:
    """The campaign's status in a Get Campaign Status answer (``data.status``); None when it does not say."""
    data = (response.body or {}).get("data") if response.ok else None
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, str) and status else None


def started(response: ApiResponse) -> bool:
    """Whether a Start Campaign answer says the campaign started: a 2xx that is not ``status: failure``."""
    return response.ok and (response.body or {}).get("status") != "failure"


def not_resumed_message(status: str) -> str:
    return f"the campaign is {status}, not {RESUMABLE_STATUS}: left alone"


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and ID_PATTERN.match(value) is not None
