"""Publishes result events to the results topic (SNS)."""

from __future__ import annotations

import json
from typing import Any

from stop_campaign.domain.models import ResultEvent, SummaryEvent
from stop_campaign.domain.sendable import sendable, sendable_json

# Message attribute that tells the event kinds apart; summaries carry no `outcome`, so a subscription that
# filters on outcome never receives them.
EVENT_TYPE = "eventType"


class ResultsPublisher:
    def __init__(self, topic_arn: str, sns_client: Any) -> None:
        self._topic_arn = topic_arn
        self._sns = sns_client

    def publish(self, result: ResultEvent) -> str:
        """Publish one result; raises on failure so the request is retried and no result is lost."""
        message = result.as_message()
        attributes = (
            (EVENT_TYPE, "result"),
            ("resultId", message["resultId"]),
            ("requestId", result.request_id),
            ("outcome", result.outcome.value),
            ("campaignType", result.campaign_type),
            ("streamId", result.stream_id),
        )
        return self._publish(message, attributes)

    def publish_summary(self, summary: SummaryEvent) -> str:
        """Publish the summary of a multi-campaign request; raises on failure, like ``publish``."""
        message = summary.as_message()
        attributes = (
            (EVENT_TYPE, "summary"),
            ("resultId", message["resultId"]),
            ("requestId", summary.request.request_id),
            ("campaignType", summary.request.campaign_type.value),
            ("streamId", summary.request.stream_id),
        )
        return self._publish(message, attributes)

    def republish(self, message: dict[str, Any]) -> str:
        """Publish again an event as it was first published (kept in its idempotency record), with the attributes
        it had then: the same resultId, so a subscriber that saw it drops the copy."""
        kind = "summary" if message.get("eventType") == "summary" else "result"
        names = ("resultId", "requestId", *(("outcome",) if kind == "result" else ()), "campaignType", "streamId")
        attributes = ((EVENT_TYPE, kind), *((name, _text(message.get(name))) for name in names))
        return self._publish(message, attributes)

    def _publish(self, message: dict[str, Any], attributes: tuple[tuple[str, str | None], ...]) -> str:
        # Valid text for every subscriber (and for SNS): a lone surrogate or a control character a message or the
        # API put into a field is published as U+FFFD. The resultId was computed before, from what was read.
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Message=json.dumps(sendable_json(message), separators=(",", ":")),
            MessageAttributes={
                name: {"DataType": "String", "StringValue": sendable(value)}
                for name, value in attributes
                if value  # SNS rejects empty attribute values; an `ignored` alarm result has no stream
            },
        )
        return str(response["MessageId"])


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
