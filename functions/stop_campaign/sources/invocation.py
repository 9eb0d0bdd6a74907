"""What every source gets from the handler (the invocation's id, deadline, start) and how answers are shaped."""

from __future__ import annotations

import json
from typing import Any

from stop_campaign.adapters.kore_client import Deadline
from stop_campaign.domain.models import ResultEvent
from stop_campaign.domain.readonly import readonly_dataclass
from stop_campaign.domain.sendable import sendable_json


@readonly_dataclass
class Invocation:
    request_id: str  # the Lambda request id: the message id of what arrives without one of its own
    deadline: Deadline
    started: float  # time.perf_counter() at the handler's start
    received_at: str  # ISO time the invocation began


def as_text(value: Any) -> str:
    """The text a message is kept as (a dead letter) when it came as a decoded payload."""
    return json.dumps(value, default=str)


def answer(results: list[ResultEvent]) -> dict[str, Any]:
    """The handler's answer to a direct or SNS invocation: the results, as published."""
    return {"results": [sendable_json(result.as_message()) for result in results]}
