"""Lambda's SQS event source mapping, emulated: receive a batch, invoke the handler in-process, settle it.

    mapping = SqsEventSourceMapping(stack, handler=lambda_handler)
    reports = mapping.poll_until_empty(max_seconds=30)

What it does, as Lambda does with ``FunctionResponseTypes: [ReportBatchItemFailures]``:

* ReceiveMessage with every system and message attribute, up to ``batch_size`` messages (several
  receives when the batch size is above SQS's 10 per call), turned into a Lambda SQS event by
  ``devtools.event_source.record_from_message``;
* a fresh ``LocalLambdaContext`` per invocation, with the function timeout from template.yaml;
* the partial batch response: messages listed in ``batchItemFailures`` stay in the queue, the others are
  deleted. A response that names a message not in the batch (or an empty id) fails the whole batch, and
  so does a handler that raises or runs past its timeout;
* receive counts and redrive are the queue's own: SQS (and moto, which does the same — verified in
  tests/integration/test_demo.py) moves a message to the dead-letter queue when it is received again after
  ``maxReceiveCount`` receives, so the poller needs no redrive logic of its own.

One difference from moto: moto's EventBridge leaves the ``account`` out of the envelopes it delivers to the stop bus's
events queue, which real EventBridge always sets (the function reads the producer from it); reading that queue,
the mapping puts in the local stack's account where it is missing.

Differences from Lambda, on purpose: one invocation at a time (Lambda runs up to MaximumConcurrency
batches at once), and a failed message is made visible again after ``retry_delay_seconds`` (default 1 s)
instead of after the queue's visibility timeout (180 s), so that a local run shows retries in seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from devtools.event_source import record_from_message, sqs_event
from devtools.lambda_runtime import LocalLambdaContext
from devtools.local_stack import LocalStack
from devtools.template_loader import local_stack_settings

Handler = Callable[[dict[str, Any], Any], Any]

SQS_MAX_PER_CALL = 10  # ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch limit


@dataclass(frozen=True)
class InvocationReport:
    """One invocation of the handler: which messages it got and which of them failed (and why)."""

    message_ids: tuple[str, ...]
    failed_ids: tuple[str, ...]
    receive_counts: dict[str, int]  # message id -> ApproximateReceiveCount of this delivery
    duration_ms: float
    response: Any = None
    error: str | None = None  # the handler raised, timed out or answered an invalid batch response
    final_attempt_ids: tuple[str, ...] = ()  # failed on their last receive: the queue redrives them next

    @property
    def succeeded_ids(self) -> tuple[str, ...]:
        return tuple(message_id for message_id in self.message_ids if message_id not in self.failed_ids)


class PollingTimedOut(TimeoutError):
    """The queue still held messages when ``poll_until_empty`` ran out of time."""

    def __init__(self, message: str, reports: list[InvocationReport]) -> None:
        super().__init__(message)
        self.reports = reports


@dataclass
class _Pending:
    """When the messages this poller handed back become visible again (to sleep no longer than needed)."""

    visible_at: list[float] = field(default_factory=list)

    def add(self, when: float) -> None:
        self.visible_at.append(when)

    def next_in(self, now: float) -> float | None:
        self.visible_at = [when for when in self.visible_at if when > now]
        return min(self.visible_at) - now if self.visible_at else None


class SqsEventSourceMapping:
    """Drives ``handler`` from an SQS queue the way Lambda's event source mapping does (see module doc).

    ``source`` is a ``LocalStack`` (queue URL, ARN and redrive settings default to its stop queue) or a
    boto3 SQS client (then ``queue_url`` is required; the ARN and maxReceiveCount are read from the queue).
    ``handler`` defaults to the real ``stop_campaign.app.lambda_handler``.
    """

    def __init__(
        self,
        source: LocalStack | Any,
        queue_url: str | None = None,
        queue_arn: str | None = None,
        handler: Handler | None = None,
        *,
        batch_size: int | None = None,
        visibility_timeout: int | None = None,
        max_receive_count: int | None = None,
        retry_delay_seconds: int = 1,
        function_timeout_seconds: float | None = None,
    ) -> None:
        template = local_stack_settings()
        self._envelope_account: str | None = None  # the events queue's: see the module doc
        if isinstance(source, LocalStack):
            self._sqs = source.client("sqs")
            queue_url = queue_url or source.stop_queue_url
            queue_arn = queue_arn or (source.stop_queue_arn if queue_url == source.stop_queue_url else None)
            if max_receive_count is None and queue_url == source.stop_queue_url:
                max_receive_count = source.max_receive_count
            if source.events_queue_url and queue_url == source.events_queue_url:
                self._envelope_account = source.account_id
        else:
            self._sqs = source
        if not queue_url:
            raise ValueError("queue_url is required when the source is an SQS client")
        self.queue_url = queue_url
        self.queue_arn = queue_arn or self._queue_attribute("QueueArn") or ""
        self.max_receive_count = max_receive_count or self._redrive_max_receive_count()
        self.batch_size = batch_size or int(template["batch_size"])
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be between 1 and 10000")
        if retry_delay_seconds < 0:
            raise ValueError("retry_delay_seconds must not be negative")
        self.visibility_timeout = visibility_timeout  # None: the queue's own VisibilityTimeout
        self.retry_delay_seconds = retry_delay_seconds
        self.function_timeout_seconds = float(function_timeout_seconds or template["function_timeout_seconds"])
        self._handler = handler
        self._pending = _Pending()

    def _as_eventbridge_sent(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message with its envelope's ``account``, as EventBridge would have sent it (see the module doc)."""
        if self._envelope_account is None:
            return message
        try:
            envelope = json.loads(message["Body"])
        except ValueError:
            return message
        if not isinstance(envelope, dict) or "detail-type" not in envelope or "account" in envelope:
            return message
        return {**message, "Body": json.dumps({**envelope, "account": self._envelope_account})}

    # ---- one invocation ----------------------------------------------------------------------------

    def poll_once(self, wait_seconds: int = 0) -> InvocationReport | None:
        """Receive one batch and invoke the handler with it; None when the queue had nothing visible."""
        messages = self._receive(wait_seconds)
        if not messages:
            return None
        event = sqs_event([record_from_message(self._as_eventbridge_sent(message), self.queue_arn)
                           for message in messages])
        message_ids = tuple(message["MessageId"] for message in messages)
        context = LocalLambdaContext(timeout_seconds=self.function_timeout_seconds)
        started = time.perf_counter()
        response: Any = None
        error: str | None = None
        try:
            response = self.handler(event, context)
        except Exception as raised:  # Lambda: an invocation error fails every record of the batch
            error = f"handler raised {type(raised).__name__}: {raised}"
        duration_ms = (time.perf_counter() - started) * 1000.0
        if error is None and duration_ms > self.function_timeout_seconds * 1000.0:
            error = f"Task timed out after {self.function_timeout_seconds:.2f} seconds"
        if error is None:
            failed, error = _failed_from_response(response, message_ids)
        else:
            failed = message_ids
        self._settle(messages, failed)
        receive_counts = {
            message["MessageId"]: int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            for message in messages
        }
        return InvocationReport(
            message_ids=message_ids,
            failed_ids=failed,
            receive_counts=receive_counts,
            duration_ms=duration_ms,
            response=response,
            error=error,
            final_attempt_ids=tuple(
                message_id
                for message_id in failed
                if self.max_receive_count and receive_counts[message_id] >= self.max_receive_count
            ),
        )

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            from stop_campaign.app import lambda_handler  # imported late: the caller sets the environment first

            self._handler = lambda_handler
        return self._handler

    # ---- until the queue is empty -------------------------------------------------------------------

    def poll_until_empty(self, max_seconds: float = 30.0) -> list[InvocationReport]:
        """Invoke until no message is visible, in flight or delayed; retried messages included."""
        deadline = time.monotonic() + max_seconds
        reports: list[InvocationReport] = []
        while True:
            report = self.poll_once()
            if report is not None:
                reports.append(report)
            elif self._confirmed_empty():
                return reports
            now = time.monotonic()
            if now >= deadline:
                raise PollingTimedOut(
                    f"{self.messages_in_queue()} message(s) still in {self.queue_url} after {max_seconds:.0f}s", reports
                )
            if report is None:
                # Something is in flight: sleep until our own retries become visible, briefly otherwise.
                wait = self._pending.next_in(now)
                time.sleep(min(max(wait if wait is not None else 0.05, 0.01), 0.25, deadline - now))

    def poll_forever(self, stop: Callable[[], bool], wait_seconds: int = 1) -> Iterator[InvocationReport]:
        """Long-poll and invoke until ``stop()`` is true (the demo's --keep-running)."""
        while not stop():
            report = self.poll_once(wait_seconds=wait_seconds)
            if report is not None:
                yield report

    def _confirmed_empty(self) -> bool:
        # The three counts are taken at slightly different moments: a delayed message whose delay ends between
        # two of them is in neither. A second look a moment later sees it, as visible.
        if self.messages_in_queue() != 0:
            return False
        time.sleep(0.1)
        return self.messages_in_queue() == 0

    def messages_in_queue(self) -> int:
        """Visible + in flight + delayed, as SQS approximates them."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    # ---- SQS calls --------------------------------------------------------------------------------

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:
            request: dict[str, Any] = {
                "QueueUrl": self.queue_url,
                "MaxNumberOfMessages": min(SQS_MAX_PER_CALL, self.batch_size - len(messages)),
                "AttributeNames": ["All"],
                "MessageAttributeNames": ["All"],
                "WaitTimeSeconds": 0 if messages else wait_seconds,
            }
            if self.visibility_timeout is not None:
                request["VisibilityTimeout"] = self.visibility_timeout
            received = self._sqs.receive_message(**request).get("Messages", [])
            if not received:
                break
            messages.extend(received)
        return messages

    def _settle(self, messages: list[dict[str, Any]], failed: tuple[str, ...]) -> None:
        """Delete what succeeded; hand the failures back to the queue after ``retry_delay_seconds``."""
        done = [message for message in messages if message["MessageId"] not in failed]
        retry = [message for message in messages if message["MessageId"] in failed]
        for chunk in _chunks(done):
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        for chunk in _chunks(retry):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay_seconds}
                    for i, m in enumerate(chunk)
                ],
            )
        if retry:
            self._pending.add(time.monotonic() + self.retry_delay_seconds)

    def _queue_attribute(self, name: str) -> str | None:
        attributes = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[name])
        value = attributes.get("Attributes", {}).get(name)
        return str(value) if value is not None else None

    def _redrive_max_receive_count(self) -> int | None:
        policy = self._queue_attribute("RedrivePolicy")
        return int(json.loads(policy)["maxReceiveCount"]) if policy else None


def _failed_from_response(response: Any, message_ids: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """Lambda's reading of a partial batch response: (failed ids, why the whole batch failed or None)."""
    if response is None:
        return (), None
    if not isinstance(response, dict):
        return message_ids, f"invalid batch response (not an object): {response!r:.200}"
    failures = response.get("batchItemFailures")
    if not failures:  # missing, null or empty: the whole batch succeeded
        return (), None
    if not isinstance(failures, list):
        return message_ids, "invalid batch response: batchItemFailures is not a list"
    failed: list[str] = []
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(item, str) or item not in message_ids:
            return message_ids, f"invalid batch response: itemIdentifier {item!r} is not a message of this batch"
        if item not in failed:
            failed.append(item)
    return tuple(failed), None


def _chunks(messages: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(messages), SQS_MAX_PER_CALL):
        yield messages[start : start + SQS_MAX_PER_CALL]
