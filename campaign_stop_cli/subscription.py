"""A temporary SQS queue subscribed to the results topic, for commands that read results as they are published
(`stop --wait`, `results`). SNS keeps no history: a new subscription sees only what is published after it exists.

The queue and its subscription are removed on every way out (normal end, error, timeout, Ctrl-C, SIGTERM, SIGHUP),
so nothing is left behind that would keep receiving (and paying for) copies of every result. Should the process die
anyway (SIGKILL, a power cut), the queue keeps a message for an hour at most and is tagged created-by
campaign-stop-cli with its creation time, so it can be found and deleted."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from campaign_stop_cli.common import (
    EXIT_USAGE,
    OutputFormat,
    client,
    fail,
    interrupts_deferred,
    terminate_as_ctrl_c,
    warn,
)

QUEUE_PREFIX = "campaign-stop-cli-"  # the queues this CLI creates (and removes), recognisable in list-queues
EVENT_TYPE_ATTRIBUTE = "eventType"  # "result" or "summary" (stop_campaign.adapters.results.EVENT_TYPE)
RETENTION_SECONDS = 3600  # results are read within seconds; a queue left behind holds an hour's worth at most
CREATED_BY = "campaign-stop-cli"  # tag created-by on every temporary queue (created-at: when, in UTC)


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
    ``filter_policy``; None: every event); removed on the way out (normal exit, error, timeout, Ctrl-C, SIGTERM and
    SIGHUP alike: while it exists, the last two raise KeyboardInterrupt as Ctrl-C does)."""
    sqs, sns = client("sqs"), client("sns")
    name = f"{QUEUE_PREFIX}{uuid.uuid4().hex[:20]}"  # chosen first: a queue whose creation was cut short is found
    creating = False
    queue_url = queue_arn = subscription_arn = None
    with terminate_as_ctrl_c():
        try:
            try:
                creating = True
                queue_url = _create_queue(sqs, name)
                queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                    "Attributes"]["QueueArn"]
                policy = {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                        "Action": "sqs:SendMessage", "Resource": queue_arn,
                        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
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
            with interrupts_deferred("removing the temporary queue and subscription first…"):
                if queue_url is None and creating:
                    queue_url = _find_queue(sqs, name)  # interrupted during CreateQueue: it may exist all the same
                _remove(sqs, sns, topic_arn, queue_url, queue_arn, subscription_arn)


def _create_queue(sqs: Any, name: str) -> str:
    attributes = {"MessageRetentionPeriod": str(RETENTION_SECONDS)}
    tags = {"created-by": CREATED_BY, "created-at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        return str(sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"])
    except ClientError as error:
        # Tagging at creation also needs sqs:TagQueue: without it, an untagged queue is better than none.
        if "denied" not in str(error.response.get("Error", {}).get("Code", "")).lower():
            raise
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def _find_queue(sqs: Any, name: str) -> str | None:
    """The URL of a queue whose CreateQueue was interrupted, if it was created (SQS may need a moment to know)."""
    for attempt in range(2):
        try:
            return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if not code.endswith(("NonExistentQueue", "QueueDoesNotExist")):
                return None
        except BotoCoreError:
            return None
        if attempt == 0:
            time.sleep(1)
    return None

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
            warn(f"could not remove subscription {subscription_arn}: {error}")
    if queue_url:
        try:
            sqs.delete_queue(QueueUrl=queue_url)
        except (BotoCoreError, ClientError) as error:
            warn(f"could not delete queue {queue_url}: {error}")


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

