"""Lambda's event sources, emulated for local runs: SQS records shaped exactly as Lambda delivers them."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from devtools.local_stack import REGION


def sqs_record(
    body: str,
    queue_arn: str,
    *,
    message_id: str | None = None,
    receive_count: int = 1,
    receipt_handle: str | None = None,
    message_attributes: dict[str, Any] | None = None,
    sender_id: str = "AIDAIENQZJOLO23YVJ4VO",
) -> dict[str, Any]:
    """One record of an SQS event, as Lambda's event source mapping builds it from a received message.
    ``sender_id``: the SenderId SQS reports (who sent it: the producer policy judges by it)."""
    now_ms = str(int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt_handle or uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now_ms,
            "SenderId": sender_id,
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
        "messageAttributes": message_attributes or {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def sqs_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def record_from_message(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """Convert an SQS ReceiveMessage result (AttributeNames=All) into a Lambda SQS record."""
    attributes = message.get("Attributes", {})
    return sqs_record(
        message["Body"],
        queue_arn,
        message_id=message["MessageId"],
        receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
        receipt_handle=message["ReceiptHandle"],
        sender_id=attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
        message_attributes={
            name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType", "String")}
            for name, value in message.get("MessageAttributes", {}).items()
        },
    )
