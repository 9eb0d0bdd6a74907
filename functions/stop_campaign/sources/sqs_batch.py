"""A batch from the stop queue, answered as a partial batch response (``batchItemFailures``).

Not Powertools' BatchProcessor: it has no thread-pool processor, and a standard queue's batch runs at once here.
(Its BatchProcessor takes records one at a time, its AsyncBatchProcessor needs asyncio handlers. A FIFO batch
runs in order by the rule of its SqsFifoPartialProcessor, skip_group_on_error=True; and the batch package
imports asyncio and all of Powertools' event data classes at import, about 20 ms of cold start.)
A record that raises is reported back for the queue to deliver again; a batch whose every record failed still
answers its item failures (a transient outage is not a function error; the records go back either way).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from aws_lambda_powertools import Logger

from stop_campaign.domain.intake import first_sent_at, redrive_marker, usable_id
from stop_campaign.domain.models import Origin, Source
from stop_campaign.domain.provenance import Trust
from stop_campaign.service.processing import InboundMessage, MessageProcessor, RetryLater
from stop_campaign.sources.invocation import Invocation, as_text

logger = Logger(child=True)


def serve_sqs_batch(
    records: list[dict[str, Any]], invocation: Invocation, processor: MessageProcessor, *,
    max_receive_count: int, workers: ThreadPoolExecutor, trust: Trust | None = None,
) -> dict[str, Any]:
    """A record without a message id cannot be reported back (nor would Lambda's event source send one): it is
    rejected on its own, its body kept as the dead letter, and left out of the batch response. Records with odd
    attributes are read with the defaults (first attempt, no message group). ``trust`` tells the events queue and
    the function's own messages apart (who sent each record: domain/provenance.py)."""
    trust = trust or Trust()
    served: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        if isinstance(record.get("messageId"), str) and record["messageId"]:
            served.append(record if isinstance(record.get("attributes"), dict) else {**record, "attributes": {}})
            continue
        body = record.get("body")
        message = InboundMessage(
            body=body if isinstance(body, str) and body else as_text(record),  # a body is the message to keep
            origin=Origin(Source.SQS, f"{invocation.request_id}:{index}", invocation.received_at,
                          receive_count(record)),
            payload=record,
            delivery=trust.of_record(record),
        )
        processor.process(message, invocation.deadline, invocation.started)  # rejected: a result and a dead letter
    if not served:
        return {"batchItemFailures": []}

    def process_record(record: dict[str, Any]) -> None:
        attempt = receive_count(record)
        body = record.get("body")
        usable = body if isinstance(body, str) and body else None
        message = InboundMessage(
            body=usable or as_text(record),
            origin=Origin(Source.SQS, usable_id(record["messageId"], f"{invocation.request_id}:sqs"),
                          invocation.received_at, attempt, redriven_from=redrive_marker(record),
                          sent_at=first_sent_at(record)),
            payload=None if usable else record,  # no body: intake rejects the record itself, saying so
            final_attempt=attempt >= max_receive_count,
            delivery=trust.of_record(record),
        )
        processor.process(message, invocation.deadline, invocation.started)

    if str(served[0].get("eventSourceARN", "")).endswith(".fifo"):
        failed = in_group_order(served, process_record)
    else:
        failed = concurrently(served, process_record, workers)
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in failed]}


def concurrently(
    records: list[dict[str, Any]], process: Callable[[dict[str, Any]], None], workers: ThreadPoolExecutor,
) -> list[dict[str, Any]]:
    """A standard queue's batch: every record at once on the record pool; the failed ones, in batch order."""
    futures = [workers.submit(process, record) for record in records]
    wait(futures)
    failed: list[dict[str, Any]] = []
    for record, future in zip(records, futures, strict=True):
        error = future.exception()
        if error is not None and not isinstance(error, Exception):
            raise error  # not a record's failure (e.g. SystemExit): as the runtime would see it anywhere else
        if error is not None:
            _log_record_failure(record, error)
            failed.append(record)
    return failed


def in_group_order(
    records: list[dict[str, Any]], process: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """A FIFO queue's batch: one record at a time, in order. After a failure, the later records of its message
    group are failed without being processed, so none overtakes the one that comes back; other groups go on
    (Powertools' SqsFifoPartialProcessor with skip_group_on_error=True). A record without a group (only a
    hand-made event lacks one) holds back nothing."""
    failed: list[dict[str, Any]] = []
    failed_groups: set[str] = set()
    for record in records:
        group = record["attributes"].get("MessageGroupId")
        group = group if isinstance(group, str) and group else None
        if group in failed_groups:
            failed.append(record)
            continue
        try:
            process(record)
        except Exception as error:
            _log_record_failure(record, error)
            failed.append(record)
            if group is not None:
                failed_groups.add(group)
    return failed


def _log_record_failure(record: dict[str, Any], error: Exception) -> None:
    """A record handed back on purpose (RetryLater) is routine; anything else is a defect worth its traceback."""
    if isinstance(error, RetryLater):
        logger.info("SQS record handed back for another attempt", extra={"message_id": record["messageId"]})
    else:
        logger.error("SQS record failed unexpectedly", extra={"message_id": record["messageId"]}, exc_info=error)


def receive_count(record: dict[str, Any]) -> int:
    """The SQS receive count, 1 when it is missing or not a count (only a hand-made event lacks it)."""
    attributes = record.get("attributes")
    value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    if isinstance(value, str) and value.isdigit() and 1 <= int(value) <= 1_000_000:
        return int(value)
    return 1
