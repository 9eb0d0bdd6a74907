"""Publishes result events to the results topic (SNS)."""

from __future__ import annotations

import json
from typing import Any

from stop_campaign.models import ResultEvent


class ResultsPublisher:
    def __init__(self, topic_arn: str, sns_client: Any) -> None:
        self._topic_arn = topic_arn
        self._sns = sns_client

    def publish(self, result: ResultEvent) -> str:
        """Publish one result; raises on failure so the request is retried and no result is lost."""
        attributes = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in (
                ("outcome", result.outcome.value),
                ("campaignType", result.campaign_type),
                ("streamId", result.stream_id),
            )
            if value  # SNS rejects empty attribute values; an `ignored` alarm result has no stream
        }
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Message=json.dumps(result.as_message(), separators=(",", ":")),
            MessageAttributes=attributes,
        )
        return str(response["MessageId"])
