"""Hands the rest of a request back to the stop queue (SQS), delayed until the rate budget allows it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from stop_campaign.domain.models import Continuation
from stop_campaign.domain.provenance import signed


class StopQueue:
    def __init__(
        self, queue_url: str, sqs_client: Callable[[], Any], signing_key: Callable[[], bytes] | None = None,
    ) -> None:
        """``sqs_client`` gives the SQS client, called at the first send (composition.AwsClients.sqs builds it
        then: most invocations send nothing). ``signing_key`` gives the key continuations are signed with (the
        function honours no continuation it cannot verify: adapters/signing_key.py); None sends them unsigned."""
        self._queue_url = queue_url
        self._sqs = sqs_client
        self._signing_key = signing_key
        self._fifo = queue_url.endswith(".fifo")

    def continue_later(self, continuation: Continuation, delay_seconds: int, redriven_from: str | None = None) -> str:
        """Send the continuation; raises on failure, so the message is retried and nothing is lost."""
        message = continuation.as_message()
        if self._signing_key is not None:
            message = signed(message, self._signing_key())
        body = json.dumps(message, separators=(",", ":"))
        request = continuation.request
        attributes = {
            "requestId": {"DataType": "String", "StringValue": request.request_id[:256]},
            "segment": {"DataType": "Number", "StringValue": str(continuation.progress.segment)},
        }
        if redriven_from:  # the rest of a redriven request is part of that redrive (intake.redrive_marker)
            attributes["redrivenFrom"] = {"DataType": "String", "StringValue": redriven_from}
        extra: dict[str, Any]
        if self._fifo:  # FIFO queues take no per-message delay; order within the stream is what they keep
            # The same fields as the hand-over's idempotency key: two requests sharing an id (an alarm over two
            # streams) must not be taken for one message within SQS's deduplication window.
            scope = [request.request_id, request.stream_id, request.account_id, request.campaign_type.value,
                     request.dry_run, continuation.progress.all_active, continuation.progress.segment,
                     *([redriven_from] if redriven_from else [])]
            digest = hashlib.sha256(json.dumps(scope).encode()).hexdigest()
            extra = {"MessageGroupId": request.stream_id, "MessageDeduplicationId": digest}
        else:
            extra = {"DelaySeconds": delay_seconds}
        response = self._sqs().send_message(
            QueueUrl=self._queue_url, MessageBody=body, MessageAttributes=attributes, **extra
        )
        return str(response["MessageId"])
