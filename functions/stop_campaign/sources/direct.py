"""A direct invocation: a stop request, a CloudWatch alarm's own Lambda action, or an EventBridge event invoked
directly (anything else ends as a ``rejected`` result and a dead letter). A transient failure raises: Lambda's
asynchronous retries, then its failure destination, take over."""

from __future__ import annotations

from typing import Any

from stop_campaign.domain.intake import usable_id
from stop_campaign.domain.models import Origin, Source
from stop_campaign.service.processing import InboundMessage, MessageProcessor
from stop_campaign.sources.invocation import Invocation, answer, as_text


def serve_direct(event: Any, invocation: Invocation, processor: MessageProcessor) -> dict[str, Any]:
    if isinstance(event, dict) and "detail-type" in event:
        origin = Origin(Source.EVENTBRIDGE, usable_id(event.get("id"), invocation.request_id), invocation.received_at)
    else:  # a stop request, an alarm's Lambda action, or anything else: intake says which, or rejects it
        origin = Origin(Source.DIRECT, invocation.request_id, invocation.received_at)
    message = InboundMessage(body=as_text(event), origin=origin, payload=event)  # a null is read from its text
    return answer(processor.process(message, invocation.deadline, invocation.started))
