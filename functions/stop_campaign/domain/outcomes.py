"""What an API answer means for a stop. Plain Python: decisions only, no I/O."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from stop_campaign.domain.models import FINISHED_STATUSES, ApiConfirmation, ApiResponse


class StopVerdict(StrEnum):
    STOPPED = "stopped"
    ALREADY_STOPPED = "already_stopped"
    UNAUTHORIZED = "unauthorized"  # re-read the secret once (rotation), then give up
    TRANSIENT = "transient"  # 429, 5xx: back to the queue
    REFUSED = "refused"  # any other answer: ask the campaign's status before calling it failed


def judge_stop(response: ApiResponse) -> StopVerdict:
    if response.ok:
        # Stopping a stopped campaign is undocumented; a 2xx that says so is not a new stop.
        message = (response.body or {}).get("message")
        if isinstance(message, str) and "already" in message.lower():
            return StopVerdict.ALREADY_STOPPED
        return StopVerdict.STOPPED
    if response.status == 401:
        return StopVerdict.UNAUTHORIZED
    if response.retryable:
        return StopVerdict.TRANSIENT
    return StopVerdict.REFUSED


def confirmation(response: ApiResponse) -> ApiConfirmation:
    """The platform's answer, copied field by field; missing or extra fields are fine."""
    body = response.body or {}
    return ApiConfirmation(
        http_status=response.status,
        status=_text(body.get("status")),
        message=_text(body.get("message")) or error_text(body),
        updated_at=_text(body.get("updatedAt")),
        campaign_execution_type=_text(body.get("campaignExecutionType")),
        campaign_instance_id=_text(body.get("campaignInstanceId")),
    )


def finished_status(response: ApiResponse) -> str | None:
    """``Stopped`` or ``Completed`` from a Get Campaign Status answer; None for anything else."""
    if not response.ok or response.body is None:
        return None
    data = response.body.get("data")
    status = data.get("status") if isinstance(data, dict) else None
    return status if status in FINISHED_STATUSES else None


def error_text(body: dict[str, Any] | None) -> str | None:
    """The first message of Kore's error envelope (``msg``, or ``message`` on some pages)."""
    errors = (body or {}).get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return _text(errors[0].get("msg")) or _text(errors[0].get("message"))
    return None


def describe_refusal(response: ApiResponse) -> str:
    text = error_text(response.body) or _text((response.body or {}).get("message")) or "no error message"
    return f"Kore.ai API answered HTTP {response.status}: {text}"


# A JWT (three base64url parts, the first from '{"'): never copied from an API answer into a result or log.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def scrubbed(text: str, limit: int = 200) -> str:
    """API text fit for a log line: no token, bounded."""
    return _JWT.sub("[token removed]", text)[:limit]


def _text(value: Any, limit: int = 300) -> str | None:
    """Text copied from the platform's answer: bounded, and scrubbed of anything shaped like a token."""
    return _JWT.sub("[token removed]", value)[:limit] if isinstance(value, str) else None
