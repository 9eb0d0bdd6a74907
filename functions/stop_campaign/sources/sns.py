"""SNS invoking the function (asynchronously; SNS sends one record per invocation). Each record's ``Sns`` object
is the notification SNS would deliver to a queue, and it is what a dead letter keeps: redriven through the stop
queue it is read again the same way. A transient failure raises, as on the direct path."""

from __future__ import annotations

from typing import Any

from stop_campaign.domain.models import Origin, ResultEvent, Source
from stop_campaign.domain.provenance import sns_delivery
from stop_campaign.service.processing import InboundMessage, MessageProcessor
from stop_campaign.sources.invocation import Invocation, answer, as_text


def serve_sns(records: list[dict[str, Any]], invocation: Invocation, processor: MessageProcessor) -> dict[str, Any]:
    results: list[ResultEvent] = []
    for index, record in enumerate(records):
        notification = record.get("Sns")
        fallback_id = invocation.request_id if len(records) == 1 else f"{invocation.request_id}:{index}"
        origin = Origin(Source.DIRECT, fallback_id, invocation.received_at)  # the SNS MessageId replaces it
        kept: Any = notification if isinstance(notification, dict) else record
        message = InboundMessage(body=as_text(kept), origin=origin, payload=record, delivery=sns_delivery(record))
        results.extend(processor.process(message, invocation.deadline, invocation.started))
    return answer(results)
