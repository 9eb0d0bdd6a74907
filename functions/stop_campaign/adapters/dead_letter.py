"""Sends requests that cannot succeed, unchanged, to the dead-letter queue with the reason attached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stop_campaign.domain.intake import ORIGINAL_SENT_ATTRIBUTE, epoch_ms
from stop_campaign.domain.models import ResultError
from stop_campaign.domain.sendable import sendable


class DeadLetterQueue:
    def __init__(self, queue_url: str, sqs_client: Callable[[], Any]) -> None:
        """``sqs_client`` gives the SQS client, called at the first send (composition.AwsClients.sqs builds it
        then: most invocations send nothing)."""
        self._queue_url = queue_url
        self._sqs = sqs_client

    def send(
        self, original_body: str, error: ResultError, request_id: str, source: str, sent_at: str | None = None,
    ) -> str:
        """The original message goes in as it came, so it can be redriven once the cause is fixed. Only characters
        SQS refuses (which no message received from SQS holds: a hand-made event's) are sent as U+FFFD, since the
        message could not be kept at all otherwise. ``sent_at``, when the original was first sent, goes with it
        (``originalSentTimestamp``): a redriven request is judged by its original age (intake.expiry)."""
        sent_ms = epoch_ms(sent_at)
        attributes = {
            "errorCode": error.code,
            "errorMessage": error.message[:1024],
            "requestId": request_id[:256],
            "source": source,
            "retryable": str(error.retryable).lower(),
            ORIGINAL_SENT_ATTRIBUTE: str(sent_ms) if sent_ms is not None else "",
        }
        response = self._sqs().send_message(
            QueueUrl=self._queue_url,
            MessageBody=sendable(original_body),
            MessageAttributes={
                name: {"DataType": "String", "StringValue": sendable(value)}
                for name, value in attributes.items() if value
            },
        )
        return str(response["MessageId"])
