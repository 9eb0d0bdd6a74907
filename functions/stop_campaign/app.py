"""Lambda entry point: the Powertools decorators and the routing of each event to its source, nothing else.

Handler: ``stop_campaign.app.lambda_handler``. Accepts an SQS batch (standard or FIFO: sources/sqs_batch.py),
an SNS event (SNS invoking the function: sources/sns.py), an EventBridge event invoked directly, a CloudWatch
alarm's own Lambda action, or a stop request as a direct invocation payload (sources/direct.py). Whatever else
arrives ends as a ``rejected`` result (and a dead letter); the handler raises only to have a transient failure
retried (asynchronous invocations). What the container builds once is composition.py's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from stop_campaign.adapters.kore_client import Deadline
from stop_campaign.composition import Container, container, metrics, telemetry
from stop_campaign.domain.intake import event_records
from stop_campaign.domain.models import utc_now
from stop_campaign.domain.sendable import log_line
from stop_campaign.sources.direct import serve_direct
from stop_campaign.sources.hold_check import is_hold_check, serve_hold_check
from stop_campaign.sources.invocation import Invocation
from stop_campaign.sources.sns import serve_sns
from stop_campaign.sources.sqs_batch import serve_sqs_batch

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["container", "lambda_handler"]

logger = Logger(json_serializer=log_line)  # a lone surrogate in a log field must not lose the line
SETTLE_SECONDS = 2.0  # the rate ledger's end-of-invocation write: one conditional write, well inside this


def traced(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Powertools Tracer, unless POWERTOOLS_TRACE_DISABLED: the X-Ray SDK alone costs ~115 ms of cold
    start (it builds two botocore clients at import), so it is not even imported when tracing is off."""
    if os.getenv("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes", "on"):
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    parts = container()
    parts.idempotency.register_lambda_context(context)  # a timed-out attempt frees its records
    invocation = Invocation(context.aws_request_id, Deadline(context.get_remaining_time_in_millis), started,
                            utc_now())
    try:
        if is_hold_check(event):  # the template's schedule: keep held campaigns stopped
            return serve_hold_check(event, invocation, parts.hold_checker, _account_of(context))
        return _route(event, invocation, parts)
    finally:
        _after_answer(invocation, parts)


def _route(event: Any, invocation: Invocation, parts: Container) -> dict[str, Any]:
    batch = event_records(event)
    if batch is not None and batch[0] == "sqs":
        return serve_sqs_batch(batch[1], invocation, parts.processor, max_receive_count=parts.max_receive_count,
                               workers=parts.record_workers, trust=parts.trust)
    if batch is not None and batch[0] == "sns":
        return serve_sns(batch[1], invocation, parts.processor)
    return serve_direct(event, invocation, parts.processor)


def _account_of(context: LambdaContext) -> str | None:
    """The function's own account (its ARN's fifth part): an alarm of another account is not found by name here."""
    parts = str(getattr(context, "invoked_function_arn", "") or "").split(":")
    return parts[4] if len(parts) > 4 and parts[4] else None


def _after_answer(invocation: Invocation, parts: Container) -> None:
    # Record fast-path calls and give back slots this invocation will not use, if there is time: it is
    # bookkeeping for other containers, never worth running into Lambda's timeout with the answer unsent.
    if invocation.deadline.seconds_left() > SETTLE_SECONDS:
        parts.budgets.settle()
        # Off the path of this answer's stops, and of the next ones: a kill switch's first alarm in this
        # container then finds its SSM client ready.
        parts.clients.build_later()
    waits = parts.budgets.drain_stats()
    if waits.throttled:
        telemetry.count("RateLimited", waits.throttled)
    if waits.waited_seconds:
        telemetry.milliseconds("RateBudgetWait", waits.waited_seconds * 1000)
