"""A temporary SQS queue subscribed to the results topic, for commands that read results as they are published
(`stop --wait`, `results`). SNS keeps no history: a new subscription sees only what is published after it exists.

The queue and its subscription are removed on every way out (normal end, error, timeout, Ctrl-C), so nothing is
left behind that would keep receiving (and paying for) copies of every result."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from campaign_stop_cli.common import EXIT_USAGE, OutputFormat, client, error_console, fail

QUEUE_PREFIX = "campaign-stop-cli-"  # the queues this CLI creates (and removes), recognisable in list-queues
EVENT_TYPE_ATTRIBUTE = "eventType"  # "result" or "summary" (stop_campaign.results.EVENT_TYPE)


@dataclass(frozen=True)
class Delivery:
    """One result or summary event read from the temporary queue."""

    event: dict[str, Any]
    event_type: str  # "result" or "summary"
    attributes: dict[str, str]  # the SNS message attributes (raw delivery turns them into SQS ones)


@dataclass
class ResultsQueue:
    url: str
    sqs: Any

    def receive(self, wait_seconds: int) -> list[Delivery]:
        """Up to 10 events (long polling up to ``wait_seconds``); what was read is deleted, so each message is
        handed out once. Bodies that are not JSON objects are dropped: the topic publishes nothing else."""
        messages = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
            WaitTimeSeconds=max(0, min(wait_seconds, 20)),
        ).get("Messages", [])
        deliveries = []
        for message in messages:
            try:
                event = json.loads(message["Body"])
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            attributes = {
                name: str(value.get("StringValue", ""))
                for name, value in (message.get("MessageAttributes") or {}).items()
            }
            event_type = attributes.get(EVENT_TYPE_ATTRIBUTE) or str(event.get("eventType") or "result")
            deliveries.append(Delivery(event, event_type, attributes))
        if messages:
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(messages)],
            )
        return deliveries


@contextmanager
def results_subscription(
    topic_arn: str, filter_policy: dict[str, list[Any]] | None, mode: OutputFormat
) -> Iterator[ResultsQueue]:
    """A temporary queue subscribed to the results topic (raw delivery, filtered on the message attributes by
    ``filter_policy``; None: every event); removed on the way out (normal exit, error, timeout and Ctrl-C alike)."""
    sqs, sns = client("sqs"), client("sns")
    queue_url = queue_arn = subscription_arn = None
    try:
        try:
            queue_url = sqs.create_queue(QueueName=f"{QUEUE_PREFIX}{uuid.uuid4().hex[:20]}")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            policy = {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
                    "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }],
            }
            sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
            attributes = {"RawMessageDelivery": "true"}
            if filter_policy:
                attributes["FilterPolicy"] = json.dumps(filter_policy)
            subscription_arn = sns.subscribe(
                TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True,
                Attributes=attributes,
            )["SubscriptionArn"]
        except (BotoCoreError, ClientError) as error:
            fail(f"could not subscribe to the results topic: {error}", EXIT_USAGE, mode)
        yield ResultsQueue(queue_url, sqs)
    finally:
        with _ctrl_c_deferred():
            _remove(sqs, sns, topic_arn, queue_url, queue_arn, subscription_arn)


def _remove(
    sqs: Any, sns: Any, topic_arn: str, queue_url: str | None, queue_arn: str | None, subscription_arn: str | None
) -> None:
    if not subscription_arn and queue_arn:
        # Interrupted while subscribing: the subscription may exist without us knowing its ARN.
        subscription_arn = _find_subscription(sns, topic_arn, queue_arn)
    if subscription_arn:
        try:
            sns.unsubscribe(SubscriptionArn=subscription_arn)
        except (BotoCoreError, ClientError) as error:
            error_console().print(f"[yellow]warning:[/] could not remove subscription {subscription_arn}: {error}")
    if queue_url:
        try:
            sqs.delete_queue(QueueUrl=queue_url)
        except (BotoCoreError, ClientError) as error:
            error_console().print(f"[yellow]warning:[/] could not delete queue {queue_url}: {error}")


def _find_subscription(sns: Any, topic_arn: str, queue_arn: str) -> str | None:
    try:
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
            for subscription in page.get("Subscriptions", []):
                arn = str(subscription.get("SubscriptionArn", ""))
                if subscription.get("Endpoint") == queue_arn and arn.startswith("arn:"):  # not PendingConfirmation
                    return arn
    except (BotoCoreError, ClientError):
        pass
    return None


@contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """A second Ctrl-C during clean-up must not leave the queue or its subscription behind: it is noted and
    ignored until both are removed (signal handlers can only be set from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(_signum: int, _frame: FrameType | None) -> None:
        error_console().print("[yellow]removing the temporary queue and subscription first…[/]")

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
