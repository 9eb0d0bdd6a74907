"""Who sent a message, read only from what AWS sets, never from what the message says of itself. Plain Python.

* a record of the events queue (STOP_EVENTS_QUEUE_ARN; only the stop bus's rule may send there):
  ``events:<account>/<source>`` of its EventBridge envelope;
* a record of any other queue (the stop queue): ``sqs:<SenderId>``. An EventBridge envelope or an alarm found in
  it is a message from its SQS sender;
* a Lambda on-failure record in the stop queue sent by this function's own role (FUNCTION_ROLE_ID): who sent
  the original invocation (below);
* SNS invoking the function: ``sns:<TopicArn>``;
* a direct invocation: ``direct:-``;
* a CloudWatch alarm invoked directly (EventBridge rule, alarm action) or by SNS: ``alarm:<account of its ARN>``.

A continuation (the rest of a request handed over by this function) carries its producer, signed with a key only
the function's role can read (adapters/signing_key.py): the proof travels with the message, so it holds through
the dead-letter queue and a redrive, which the SenderId of a redriven message would not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from enum import StrEnum
from typing import Any

from stop_campaign.domain.intake import AlarmStateChange, canonical_text
from stop_campaign.domain.models import Continuation
from stop_campaign.domain.policy import Sender
from stop_campaign.domain.readonly import readonly_dataclass

SIGNATURE_FIELD = "signature"  # intake.canonical_text leaves it out
SIGNATURE_SCHEME = "hmac-sha256"
DIRECT = Sender("direct", "-")


class Channel(StrEnum):
    QUEUE = "queue"  # the stop queue (or any queue but the events queue)
    EVENTS_QUEUE = "events-queue"  # the stop bus's own queue (STOP_EVENTS_QUEUE_ARN)
    SNS = "sns"  # SNS invoking the function
    DIRECT = "direct"  # a direct invocation: `aws lambda invoke`, an EventBridge rule, an alarm's action


@readonly_dataclass
class Delivery:
    """How a message reached the function, as the event Lambda built says (not as the message says)."""

    channel: Channel
    sender_id: str = "-"  # SQS SenderId, SNS TopicArn
    own: bool = False  # an SQS message sent by this function's own role (FUNCTION_ROLE_ID)


DIRECT_DELIVERY = Delivery(Channel.DIRECT)


@readonly_dataclass
class Trust:
    """What the function knows of itself to tell its own messages and its events queue apart."""

    events_queue_arn: str = ""
    own_role_id: str = ""

    def of_record(self, record: dict[str, Any]) -> Delivery:
        """An SQS record's delivery: which queue (eventSourceARN) and who sent it (SenderId)."""
        attributes = record.get("attributes")
        sender = attributes.get("SenderId") if isinstance(attributes, dict) else None
        sender_id = sender if isinstance(sender, str) and sender else "-"
        if self.events_queue_arn and record.get("eventSourceARN") == self.events_queue_arn:
            return Delivery(Channel.EVENTS_QUEUE, sender_id)
        own = bool(self.own_role_id) and (sender_id == self.own_role_id
                                           or sender_id.startswith(f"{self.own_role_id}:"))
        return Delivery(Channel.QUEUE, sender_id, own)


def sns_delivery(record: dict[str, Any]) -> Delivery:
    notification = record.get("Sns")
    topic = notification.get("TopicArn") if isinstance(notification, dict) else None
    return Delivery(Channel.SNS, topic if isinstance(topic, str) and topic else "-")


def sender_of(delivery: Delivery, parsed: Any, body: str, payload: Any) -> Sender:
    """Who sent the message ``parsed`` was read from (``body`` as it arrived, or ``payload`` when decoded).
    ``parsed`` None: not readable (yet); the sender is then what the delivery alone says."""
    if delivery.channel is Channel.EVENTS_QUEUE:
        envelope = _decoded(body)
        account, source = envelope.get("account"), envelope.get("source")
        if isinstance(account, str) and isinstance(source, str) and account and source:
            return Sender("events", f"{account}/{source}")
        return Sender("sqs", delivery.sender_id)
    if delivery.channel is Channel.QUEUE:
        record = _decoded(body) if delivery.own else {}
        if isinstance(record.get("requestContext"), dict) and "requestPayload" in record:
            return _invoked(parsed, record["requestPayload"], Sender("direct", "-"))  # Lambda's, on our behalf
        return Sender("sqs", delivery.sender_id)
    if delivery.channel is Channel.SNS:
        return _invoked(parsed, None, Sender("sns", delivery.sender_id))
    return _invoked(parsed, payload, DIRECT)


def _invoked(parsed: Any, payload: Any, otherwise: Sender) -> Sender:
    """An invocation: an alarm is its account's; an SNS event (an on-failure record keeps it) its topic's."""
    if isinstance(parsed, AlarmStateChange):
        return Sender("alarm", alarm_account(parsed.alarm_arn))
    records = payload.get("Records") if isinstance(payload, dict) else None
    if isinstance(records, list) and len(records) == 1 and isinstance(records[0], dict):
        topic = (records[0].get("Sns") or {}).get("TopicArn") if isinstance(records[0].get("Sns"), dict) else None
        if isinstance(topic, str) and topic:
            return Sender("sns", topic)
    return otherwise


def alarm_account(arn: str | None) -> str:
    """The account of ``arn:<partition>:cloudwatch:<region>:<account>:alarm:<name>``; "-" when it is not one."""
    parts = (arn or "").split(":", 6)
    if len(parts) == 7 and parts[0] == "arn" and parts[2] == "cloudwatch" and parts[4].isdigit():
        return parts[4]
    return "-"


def _decoded(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


# ---- continuations: signed by the function that hands them over ---------------------------------------


def signature(key: bytes, text: str) -> str:
    return f"{SIGNATURE_SCHEME}:{hmac.new(key, text.encode('ascii'), hashlib.sha256).hexdigest()}"


def signed(message: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``message`` with the signature only ``key``'s holder can make."""
    return {**message, SIGNATURE_FIELD: signature(key, canonical_text(message))}


def verified(continuation: Continuation, key: bytes) -> bool:
    """Whether this function handed ``continuation`` over: its signature is the one ``key`` makes of what arrived,
    and it names its producer."""
    if not continuation.signature or continuation.request.producer is None:
        return False
    return hmac.compare_digest(continuation.signature, signature(key, continuation.signed_text))

