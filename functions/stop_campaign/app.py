"""Lambda entry point: wiring only. Builds the Powertools pieces and the I/O edges, hands each message to logic.

Handler: ``stop_campaign.app.lambda_handler``. Accepts an SQS batch (standard or FIFO), an SNS event (SNS
invoking the function), an EventBridge event invoked directly, a CloudWatch alarm's own Lambda action, or a stop
request as a direct invocation payload. Whatever else arrives ends as a ``rejected`` result (and a dead letter);
the handler raises only to have a transient failure retried (asynchronous invocations).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.dataclass import DataclassSerializer
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from botocore.config import Config

from stop_campaign.adapters.alarm_targets import AlarmTargets
from stop_campaign.adapters.credentials import CredentialStore
from stop_campaign.adapters.dead_letter import DeadLetterQueue
from stop_campaign.adapters.kore_client import ClientSettings, Deadline, KoreClient
from stop_campaign.adapters.results import ResultsPublisher
from stop_campaign.adapters.stop_queue import StopQueue
from stop_campaign.domain.intake import Origin, event_records, redrive_marker, usable_id
from stop_campaign.domain.models import ResultEvent, Source, StopOutcome, utc_now
from stop_campaign.domain.sendable import log_line, sendable_json
from stop_campaign.pacing.account_budgets import AccountBudgets
from stop_campaign.pacing.rate_ledger import RateLedger
from stop_campaign.service.processing import (
    InboundMessage,
    MessageProcessor,
    RetryLater,
    Telemetry,
    handing_over,
    observed,
    observed_summary,
    remember_stoppable,
    sending_dead_letters,
    stop_and_observe,
)
from stop_campaign.service.stopper import CampaignStopper
from stop_campaign.settings import IDEMPOTENCY_TTL_ATTRIBUTE, get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(json_serializer=log_line)  # a lone surrogate in a log field must not lose the line
metrics = Metrics()
SETTLE_SECONDS = 2.0  # the rate ledger's end-of-invocation write: one conditional write, well inside this
NORMAL_HORIZON_SECONDS = 1.0  # how far ahead a routine call may hold a grant (pacing.account_budgets.AccountBudgets)
telemetry = Telemetry(metrics)


def traced(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Powertools Tracer, unless POWERTOOLS_TRACE_DISABLED: the X-Ray SDK alone costs ~115 ms of cold
    start (it builds two botocore clients at import), so it is not even imported when tracing is off."""
    if os.getenv("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes", "on"):
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler)


@dataclass(frozen=True, slots=True)
class Container:
    """What one Lambda container builds once and reuses: clients, pools, caches."""

    processor: MessageProcessor
    idempotency: IdempotencyConfig
    record_workers: ThreadPoolExecutor
    max_receive_count: int
    budgets: AccountBudgets
    built_later: tuple[OnFirstUse, ...]  # built after the container's first answer, before an alarm needs them


class OnFirstUse:
    """Stands for an object that is built when one of its attributes is first read, at most once. The lock is
    shared by all of them: they build boto3 clients from one session, which is not safe to do from two
    threads at once (record threads may ask together)."""

    _building = threading.Lock()

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build: Callable[[], Any] | None = build
        self._built: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.build_now(), name)

    def build_now(self) -> Any:
        if self._build is not None:
            with self._building:
                if self._build is not None:
                    self._built, self._build = self._build(), None
        return self._built


@cache
def container() -> Container:
    settings = get_settings()  # raises ConfigurationError before any call when the environment is wrong
    session = boto3.session.Session()
    # Every record thread and every fan-out thread may hold an AWS connection at once. Timeouts and attempts
    # sized to the margin the deadline keeps after the last API call, not botocore's 60 s defaults.
    aws_config = Config(
        max_pool_connections=2 * settings.stop_concurrency,
        connect_timeout=settings.aws_connect_timeout_seconds,
        read_timeout=settings.aws_read_timeout_seconds,
        retries={"mode": "standard", "max_attempts": settings.aws_max_attempts},
    )
    dynamodb = session.client("dynamodb", config=aws_config)
    # Only dead letters and hand-overs use SQS, only alarms the alarm map: those clients (20-25 ms each to
    # build, most of it loading the service's model) are made when one of them is first needed.
    sqs = OnFirstUse(lambda: session.client("sqs", config=aws_config))
    alarm_parameters = OnFirstUse(lambda: SSMProvider(boto3_client=session.client("ssm", config=aws_config)))
    ssm = cast(SSMProvider, alarm_parameters)
    idempotency = IdempotencyConfig(expires_after_seconds=settings.idempotency_ttl_seconds)

    def once(function: Callable[..., Any], keyword: str, prefix: str, **options: Any) -> Callable[..., Any]:
        # One store per idempotent function: a shared store's key prefix would race between threads.
        store = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table_name, expiry_attr=IDEMPOTENCY_TTL_ATTRIBUTE, boto3_client=dynamodb
        )
        return idempotent_function(
            function, data_keyword_argument=keyword, persistence_store=store, config=idempotency, key_prefix=prefix,
            **options,
        )

    pacing = settings.kore_rate_limit.paced()
    budgets = AccountBudgets(
        pacing, RateLedger(settings.idempotency_table_name, dynamodb, pacing, ttl_attribute=IDEMPOTENCY_TTL_ATTRIBUTE),
        normal_horizon=NORMAL_HORIZON_SECONDS,
    )
    stopper = CampaignStopper(
        KoreClient(
            ClientSettings(
                base_url=settings.kore_base_url,
                connect_timeout=settings.http_connect_timeout_seconds,
                read_timeout=settings.http_read_timeout_seconds,
                max_retries=settings.http_max_retries,
                pool_size=2 * settings.stop_concurrency,  # records and their fan-out both hold connections
            )
        ),
        CredentialStore(
            settings.credentials_secret_id,
            settings.credentials_cache_seconds,
            SecretsProvider(boto3_client=session.client("secretsmanager", config=aws_config)),
        ),
        settings.jwt_ttl_seconds,
        budgets,
    )
    publisher = ResultsPublisher(settings.results_topic_arn, session.client("sns", config=aws_config))
    return Container(
        processor=MessageProcessor(
            stopper=stopper,
            stop_once=once(stop_and_observe(stopper, telemetry), "key", "stop",
                           output_serializer=DataclassSerializer(StopOutcome)),
            publish_once=once(observed(publisher.publish, telemetry), "identity", "result"),
            publish_summary_once=once(observed_summary(publisher.publish_summary, telemetry), "identity", "summary"),
            resolve_once=once(remember_stoppable(stopper), "key", "targets"),
            hand_over_once=once(handing_over(StopQueue(settings.stop_queue_url, sqs), budgets), "key", "handover"),
            dead_letter_once=once(sending_dead_letters(DeadLetterQueue(settings.dead_letter_queue_url, sqs)), "key",
                                  "deadletter"),
            alarm_targets=AlarmTargets(
                settings.alarm_targets_parameter,
                settings.alarm_targets_cache_seconds,
                ssm,
            ),
            executor=ThreadPoolExecutor(settings.stop_concurrency, thread_name_prefix="stop"),
            telemetry=telemetry,
            max_wait_seconds=settings.max_wait_seconds,
        ),
        idempotency=idempotency,
        record_workers=ThreadPoolExecutor(settings.stop_concurrency, thread_name_prefix="record"),
        max_receive_count=settings.max_receive_count,
        budgets=budgets,
        built_later=(alarm_parameters, sqs),
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    parts = container()
    parts.idempotency.register_lambda_context(context)  # a timed-out attempt frees its records
    deadline = Deadline(context.get_remaining_time_in_millis)
    received_at = utc_now()
    try:
        return _dispatch(event, context, parts, deadline, started, received_at)
    finally:
        # Record fast-path calls and give back slots this invocation will not use, if there is time: it is
        # bookkeeping for other containers, never worth running into Lambda's timeout with the answer unsent.
        if deadline.seconds_left() > SETTLE_SECONDS:
            parts.budgets.settle()
            # Off the path of this answer's stops, and of the next ones: a kill switch's first alarm in this
            # container then finds its SSM client ready.
            for client in parts.built_later:
                client.build_now()
        waits = parts.budgets.drain_stats()
        if waits.throttled:
            telemetry.count("RateLimited", waits.throttled)
        if waits.waited_seconds:
            telemetry.milliseconds("RateBudgetWait", waits.waited_seconds * 1000)


def _dispatch(
    event: Any, context: LambdaContext, parts: Container, deadline: Deadline, started: float, received_at: str,
) -> dict[str, Any]:
    batch = event_records(event)
    if batch is not None and batch[0] == "sqs":
        return _handle_sqs(batch[1], context, parts, deadline, started, received_at)
    if batch is not None and batch[0] == "sns":
        return _handle_sns(batch[1], context, parts, deadline, started, received_at)
    if isinstance(event, dict) and "detail-type" in event:
        origin = Origin(Source.EVENTBRIDGE, usable_id(event.get("id"), context.aws_request_id), received_at)
    else:  # a stop request, an alarm's Lambda action, or anything else: intake says which, or rejects it
        origin = Origin(Source.DIRECT, context.aws_request_id, received_at)
    message = InboundMessage(body=_as_text(event), origin=origin, payload=event)  # a null is read from its text
    # A transient failure raises: Lambda's asynchronous retries, then its failure destination, take over.
    return _answer(parts.processor.process(message, deadline, started))


def _handle_sns(
    records: list[dict[str, Any]], context: LambdaContext, parts: Container, deadline: Deadline, started: float,
    received_at: str,
) -> dict[str, Any]:
    """SNS invoking the function (asynchronously; SNS sends one record per invocation). Each record's ``Sns``
    object is the notification SNS would deliver to a queue, and it is what a dead letter keeps: redriven through
    the stop queue it is read again the same way. A transient failure raises, as on the direct path."""
    results: list[ResultEvent] = []
    for index, record in enumerate(records):
        notification = record.get("Sns")
        fallback_id = context.aws_request_id if len(records) == 1 else f"{context.aws_request_id}:{index}"
        origin = Origin(Source.DIRECT, fallback_id, received_at)  # the SNS MessageId replaces it when present
        kept: Any = notification if isinstance(notification, dict) else record
        message = InboundMessage(body=_as_text(kept), origin=origin, payload=record)
        results.extend(parts.processor.process(message, deadline, started))
    return _answer(results)


def _handle_sqs(
    records: list[dict[str, Any]], context: LambdaContext, parts: Container, deadline: Deadline, started: float,
    received_at: str,
) -> dict[str, Any]:
    """A batch from the stop queue. A record without a message id cannot be reported back (nor would Lambda's
    event source send one): it is rejected on its own, its body kept as the dead letter, and left out of the
    batch response. Records with odd attributes are read with the defaults (first attempt, no message group)."""
    served: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        if isinstance(record.get("messageId"), str) and record["messageId"]:
            served.append(record if isinstance(record.get("attributes"), dict) else {**record, "attributes": {}})
            continue
        body = record.get("body")
        message = InboundMessage(
            body=body if isinstance(body, str) and body else _as_text(record),  # a body is the message to keep
            origin=Origin(Source.SQS, f"{context.aws_request_id}:{index}", received_at, _receive_count(record)),
            payload=record,
        )
        parts.processor.process(message, deadline, started)  # rejected: a result and a dead letter
    if not served:
        return {"batchItemFailures": []}

    def process_record(record: dict[str, Any]) -> None:
        attempt = _receive_count(record)
        body = record.get("body")
        usable = body if isinstance(body, str) and body else None
        message = InboundMessage(
            body=usable or _as_text(record),
            origin=Origin(Source.SQS, usable_id(record["messageId"], f"{context.aws_request_id}:sqs"), received_at,
                          attempt, redriven_from=redrive_marker(record)),
            payload=None if usable else record,  # no body: intake rejects the record itself, saying so
            final_attempt=attempt >= parts.max_receive_count,
        )
        parts.processor.process(message, deadline, started)

    if str(served[0].get("eventSourceARN", "")).endswith(".fifo"):
        failed = _in_group_order(served, process_record)
    else:
        failed = _concurrently(served, process_record, parts.record_workers)
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in failed]}


# Hand-written, not Powertools' BatchProcessor: every module of aws_lambda_powertools.utilities.batch imports
# asyncio and all of Powertools' event data classes at import (about 20 ms of CPU at every cold start).
# A record that raises is reported back for the queue to deliver again; a batch whose every record failed still
# answers its item failures (a transient outage is not a function error; the records go back either way).


def _concurrently(
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


def _in_group_order(
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


def _receive_count(record: dict[str, Any]) -> int:
    """The SQS receive count, 1 when it is missing or not a count (only a hand-made event lacks it)."""
    attributes = record.get("attributes")
    value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    if isinstance(value, str) and value.isdigit() and 1 <= int(value) <= 1_000_000:
        return int(value)
    return 1


def _as_text(value: Any) -> str:
    return json.dumps(value, default=str)


def _answer(results: list[ResultEvent]) -> dict[str, Any]:
    return {"results": [sendable_json(result.as_message()) for result in results]}  # as published
