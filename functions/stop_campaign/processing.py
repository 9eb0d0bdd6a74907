"""One inbound message, from arrival to where it ends: results on SNS, and the dead-letter queue when it failed.

This is the service's logic. It talks to the outside only through the edges it is given (stopper,
results publisher, dead-letter queue, alarm targets), each wrapped in idempotency where a repeat would
be visible, so it can be exercised with moto and a local API without any Lambda.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from stop_campaign.alarm_targets import AlarmTargets
from stop_campaign.alarms import requests_for_alarm, should_stop
from stop_campaign.dead_letter import DeadLetterQueue
from stop_campaign.intake import AlarmStateChange, InvalidRequest, Origin, parse_event, parse_sqs_body
from stop_campaign.kore_client import Deadline
from stop_campaign.models import (
    Outcome,
    PermanentStopError,
    RequestRejected,
    ResultError,
    ResultEvent,
    Source,
    StopError,
    StopOutcome,
    StopRequest,
    StopTarget,
    TransientStopError,
)
from stop_campaign.stopper import CampaignStopper, utc_now

logger = Logger(child=True)

IN_PROGRESS = "in_progress"
StopOnce = Callable[..., StopOutcome]  # stopper.stop behind idempotency, keyed on StopTarget.idempotency_key()
PublishOnce = Callable[..., str]  # publisher.publish behind idempotency, keyed on ResultEvent.identity()
ResolveOnce = Callable[..., list[str]]  # the all-active list behind idempotency, keyed on the request


@dataclass(frozen=True, slots=True)
class InboundMessage:
    body: str  # the message exactly as it arrived: this is what the dead-letter queue receives
    origin: Origin
    payload: Any = None  # already decoded (direct invocations); None means parse ``body``
    final_attempt: bool = False  # the last delivery before the redrive policy: give up with a result now


class RetryLater(Exception):
    """Raised to hand the whole message back to its source (queue redelivery or Lambda async retry)."""

    def __init__(self, errors: list[StopError]) -> None:
        super().__init__("; ".join(sorted({f"{error.code}: {error.message}" for error in errors})))
        self.errors = errors


@dataclass(slots=True)
class _TargetEnd:
    """How one campaign of a message ended (a request that failed before its campaigns were known has a
    target with campaign id ""; an alarm whose map could not be read has none)."""

    target: StopTarget | None
    result: ResultEvent | None = None
    transient: StopError | None = None
    permanent: StopError | None = None
    alarm: AlarmStateChange | None = None  # only when target is None


@dataclass
class Telemetry:
    """EMF metrics; a lock because the records of a batch finish on several threads at once."""

    metrics: Metrics
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str) -> None:
        with self._lock:
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    def milliseconds(self, name: str, value: float) -> None:
        with self._lock:
            self.metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


OUTCOME_METRICS = {
    Outcome.STOPPED: "CampaignsStopped",
    Outcome.ALREADY_STOPPED: "CampaignsAlreadyStopped",
    Outcome.DRY_RUN: "DryRuns",
    Outcome.IGNORED: "TriggersIgnored",
    Outcome.REJECTED: "RequestsRejected",
    Outcome.FAILED: "StopFailures",
}


def observed(publish: Callable[[ResultEvent], str], telemetry: Telemetry) -> Callable[..., str]:
    """The function made idempotent for publishing: metrics are counted once per result, like the result."""

    def publish_result(*, identity: dict[str, Any], result: ResultEvent) -> str:
        message_id = publish(result)
        telemetry.count(OUTCOME_METRICS[result.outcome])
        if result.time_to_stop_ms is not None:
            telemetry.milliseconds("TimeToStop", result.time_to_stop_ms)
        return message_id

    return publish_result


def stop_and_observe(stopper: CampaignStopper, telemetry: Telemetry) -> Callable[..., StopOutcome]:
    """The function made idempotent for stopping: ``key`` is what idempotency hashes."""

    def stop_campaign(*, key: dict[str, str], target: StopTarget, deadline: Deadline, started: float) -> StopOutcome:
        outcome = stopper.stop(target, deadline, started)
        if outcome.api_latency_ms is not None:
            telemetry.milliseconds("ApiLatency", outcome.api_latency_ms)
        return outcome

    return stop_campaign


def remember_stoppable(stopper: CampaignStopper) -> Callable[..., list[str]]:
    """The function made idempotent for ``all-active``: a redelivery works on the same campaigns as the first
    delivery, so a campaign stopped then (and no longer listed as active) still gets its result."""

    def stoppable_campaigns(
        *, key: dict[str, Any], request: StopRequest, account_id: str, deadline: Deadline
    ) -> list[str]:
        return stopper.stoppable_campaigns(request, account_id, deadline)

    return stoppable_campaigns


class MessageProcessor:
    def __init__(
        self,
        *,
        stopper: CampaignStopper,
        stop_once: StopOnce,
        publish_once: PublishOnce,
        resolve_once: ResolveOnce,
        dead_letters: DeadLetterQueue,
        alarm_targets: AlarmTargets,
        executor: Executor,
    ) -> None:
        self._stopper = stopper
        self._stop_once = stop_once
        self._publish_once = publish_once
        self._resolve_once = resolve_once
        self._dead_letters = dead_letters
        self._alarm_targets = alarm_targets
        self._executor = executor

    def process(self, message: InboundMessage, deadline: Deadline, started: float) -> list[ResultEvent]:
        """Every path ends in published results, a dead-letter message, or RetryLater."""
        origin = message.origin
        try:
            parsed = parse_event(message.payload, origin) if message.payload is not None else parse_sqs_body(
                message.body, origin
            )
            requests = self._requests_from(parsed, origin)
        except InvalidRequest as error:
            result = self._result_for_request_error(error, error.request_id, origin, error.fields)
            return self._end_rejected(message, result)
        except RequestRejected as error:
            request_id = parsed.request_id if isinstance(parsed, AlarmStateChange) else origin.message_id
            result = self._result_for_request_error(error, request_id, origin, {}, alarm=parsed)
            return self._end_rejected(message, result)
        except TransientStopError as error:  # the alarm map could not be read
            alarm = parsed if isinstance(parsed, AlarmStateChange) else None
            return self._conclude(message, [_TargetEnd(None, transient=error, alarm=alarm)])
        if isinstance(requests, ResultEvent):  # an alarm leaving ALARM: nothing to stop
            self._publish(requests)
            return [requests]

        ends = self._stop_all(requests, message, deadline, started)
        return self._conclude(message, ends)

    # -- from a parsed message to stop requests and targets ------------------------------------------

    def _requests_from(self, parsed: StopRequest | AlarmStateChange, origin: Origin) -> list[StopRequest] | ResultEvent:
        if isinstance(parsed, StopRequest):
            return [parsed]
        if not should_stop(parsed):
            return ResultEvent(
                outcome=Outcome.IGNORED, request_id=parsed.request_id, source=Source.ALARM,
                received_at=parsed.received_at, completed_at=utc_now(), attempts=origin.attempt,
                reason=f"CloudWatch alarm {parsed.alarm_name} changed to {parsed.state}",
                requested_by=f"cloudwatch-alarm:{parsed.alarm_name}"[:256], requested_at=parsed.changed_at,
                alarm_arn=parsed.alarm_arn,
            )
        return requests_for_alarm(parsed, self._alarm_targets.alarm_map())

    def _targets_for(self, request: StopRequest, deadline: Deadline) -> list[StopTarget]:
        credentials = self._stopper.credentials_for(request)
        campaign_ids = request.campaign_ids
        if request.all_active:
            key = {
                "accountId": credentials.account_id, "streamId": request.stream_id,
                "campaignType": request.campaign_type.value, "requestId": request.request_id,
                "dryRun": request.dry_run,
            }
            campaign_ids = tuple(
                self._resolve_once(key=key, request=request, account_id=credentials.account_id, deadline=deadline)
            )
            logger.info("Resolved all-active campaigns", extra={"stream_id": request.stream_id,
                                                                "campaign_ids": list(campaign_ids)})
        return [StopTarget(request, campaign_id, credentials.account_id) for campaign_id in campaign_ids]

    # -- stopping, concurrently ------------------------------------------------------------------------

    def _stop_all(
        self, requests: list[StopRequest], message: InboundMessage, deadline: Deadline, started: float
    ) -> list[_TargetEnd]:
        ends: list[_TargetEnd] = []
        targets: list[StopTarget] = []
        for request in requests:
            try:
                request_targets = self._targets_for(request, deadline)
            except StopError as error:
                ends.append(self._request_level_end(request, error, message.origin))
                continue
            if not request_targets:
                ends.append(self._nothing_to_stop(request))
            targets.extend(request_targets)
        # The same campaign twice in one message (overlapping alarm map entries) is one stop, not two that
        # would block each other on the same idempotency record.
        unique = {json.dumps(target.idempotency_key(), sort_keys=True): target for target in targets}
        targets = list(unique.values())
        if len(targets) == 1:  # the common case: no thread hop on the hot path
            ends.append(self._stop_target(targets[0], deadline, started))
        elif targets:
            ends.extend(self._executor.map(lambda target: self._stop_target(target, deadline, started), targets))
        # Stop everything first, report second: the last campaign of a stop-all does not wait for results.
        results = [end.result for end in ends if end.result is not None]
        if len(results) == 1:
            self._publish(results[0])
        else:  # iterating re-raises a publish failure: the message is then retried, and nothing is lost
            list(self._executor.map(self._publish, results))
        return ends

    def _nothing_to_stop(self, request: StopRequest) -> _TargetEnd:
        """``all-active`` found no stoppable campaign: still one result, so the sender knows."""
        placeholder = StopTarget(request, campaign_id="", account_id=request.account_id or "")
        outcome = Outcome.DRY_RUN if request.dry_run else Outcome.ALREADY_STOPPED
        # Says what was seen, so a mistyped stream id is not mistaken for a stream that is all stopped.
        api = {"httpStatus": 200, "message": f"Get All Campaigns listed no stoppable {request.campaign_type} campaign"}
        return _TargetEnd(placeholder, result=_result(placeholder, outcome, completed_at=utc_now(), api=api))

    def _stop_target(self, target: StopTarget, deadline: Deadline, started: float) -> _TargetEnd:
        request = target.request
        logger.thread_safe_append_keys(
            correlation_id=request.request_id, request_id=request.request_id,
            stream_id=request.stream_id, campaign_id=target.campaign_id,
        )
        try:
            if request.dry_run:
                stop = StopOutcome(outcome=Outcome.DRY_RUN.value, api=None, completed_at=utc_now())
            else:
                stop = self._stop_once(key=target.idempotency_key(), target=target, deadline=deadline, started=started)
        except IdempotencyAlreadyInProgressError:
            # Another invocation is stopping this very campaign for this very request; it will report.
            error = TransientStopError(IN_PROGRESS, "the same stop is being handled by another invocation")
            return _TargetEnd(target, transient=error)
        except TransientStopError as error:
            logger.warning("Stop not confirmed yet; will retry", extra={"error_code": error.code})
            return _TargetEnd(target, transient=error)
        except (PermanentStopError, RequestRejected) as error:
            result = _result(target, Outcome.REJECTED if isinstance(error, RequestRejected) else Outcome.FAILED,
                             completed_at=utc_now(), api=error.api, error=error.as_result_error())
            logger.error("Stop failed", extra={"error_code": error.code, "error_message": error.message})
            return _TargetEnd(target, result=result, permanent=error)
        finally:
            logger.thread_safe_remove_keys(["correlation_id", "request_id", "stream_id", "campaign_id"])
        result = _result(target, Outcome(stop.outcome), completed_at=stop.completed_at, api=stop.api,
                         time_to_stop_ms=stop.time_to_stop_ms)
        return _TargetEnd(target, result=result)

    # -- where the message ends ------------------------------------------------------------------------

    def _conclude(self, message: InboundMessage, ends: list[_TargetEnd]) -> list[ResultEvent]:
        """Hand the message back while a stop may still succeed; otherwise end it in results and a dead letter.

        On the final attempt, what is still failing gets a ``failed`` result and the message goes to the
        dead-letter queue with the reason attached (if that send fails, the queue's redrive moves it anyway).
        """
        transient = [end for end in ends if end.transient is not None]
        if transient and not message.final_attempt:
            raise RetryLater([end.transient for end in transient if end.transient is not None])
        # A stop held by another invocation is that invocation's to report: it is handling a duplicate of this
        # very request, and its own message comes back to its queue should it fail. This copy just ends.
        gave_up = [
            self._gave_up(end, message.origin)
            for end in transient
            if end.transient is not None and end.transient.code != IN_PROGRESS
        ]
        for result in gave_up:
            self._publish(result)
        results = [end.result for end in ends if end.result is not None] + gave_up
        errors = [end.permanent.as_result_error() for end in ends if end.permanent is not None]
        errors += [result.error for result in gave_up if result.error is not None]
        if errors:
            request_id = results[0].request_id if results else message.origin.message_id
            self._dead_letters.send(message.body, errors[0], request_id, message.origin.source.value)
        return results

    def _gave_up(self, end: _TargetEnd, origin: Origin) -> ResultEvent:
        assert end.transient is not None
        error = ResultError(
            end.transient.code, f"{end.transient.message} (gave up after {origin.attempt} attempts)", retryable=True
        )
        if end.target is not None:
            return _result(end.target, Outcome.FAILED, completed_at=utc_now(), api=end.transient.api, error=error)
        alarm = end.alarm
        return ResultEvent(
            outcome=Outcome.FAILED, request_id=alarm.request_id if alarm else origin.message_id,
            source=Source.ALARM if alarm else origin.source, received_at=origin.received_at,
            completed_at=utc_now(), attempts=origin.attempt, error=error,
            requested_by=f"cloudwatch-alarm:{alarm.alarm_name}"[:256] if alarm else None,
            requested_at=alarm.changed_at if alarm else None, alarm_arn=alarm.alarm_arn if alarm else None,
        )

    def _request_level_end(self, request: StopRequest, error: StopError, origin: Origin) -> _TargetEnd:
        """A request that failed before any campaign was known (credentials, listing all-active)."""
        placeholder = StopTarget(request, campaign_id="", account_id=request.account_id or "")
        if isinstance(error, TransientStopError):
            return _TargetEnd(placeholder, transient=error)
        outcome = Outcome.REJECTED if isinstance(error, RequestRejected) else Outcome.FAILED
        campaign_id = request.campaign_ids[0] if len(request.campaign_ids) == 1 else None
        result = _result(placeholder, outcome, completed_at=utc_now(), api=error.api, error=error.as_result_error(),
                         campaign_id=campaign_id)
        return _TargetEnd(placeholder, result=result, permanent=error)

    def _result_for_request_error(
        self, error: StopError, request_id: str, origin: Origin, fields: dict[str, Any],
        alarm: Any = None,
    ) -> ResultEvent:
        is_alarm = isinstance(alarm, AlarmStateChange)
        return ResultEvent(
            outcome=Outcome.REJECTED, request_id=request_id,
            source=Source.ALARM if is_alarm else origin.source,
            received_at=origin.received_at, completed_at=utc_now(), attempts=origin.attempt,
            stream_id=fields.get("streamId"), campaign_id=fields.get("campaignId"),
            campaign_type=fields.get("campaignType"), account_id=fields.get("accountId"),
            requested_by=f"cloudwatch-alarm:{alarm.alarm_name}"[:256] if is_alarm else None,
            requested_at=alarm.changed_at if is_alarm else None,
            alarm_arn=alarm.alarm_arn if is_alarm else None,
            error=error.as_result_error(),
        )

    def _end_rejected(self, message: InboundMessage, result: ResultEvent) -> list[ResultEvent]:
        assert result.error is not None
        self._publish(result)
        self._dead_letters.send(message.body, result.error, result.request_id, message.origin.source.value)
        logger.warning("Request rejected", extra={"error_code": result.error.code,
                                                  "error_message": result.error.message})
        return [result]

    def _publish(self, result: ResultEvent) -> None:
        try:
            self._publish_once(identity=result.identity(), result=result)
        except IdempotencyAlreadyInProgressError:
            # A duplicate of this message is publishing this very result right now; should that invocation
            # fail, its own message is retried and publishes it. Publishing here too would double it.
            logger.info("Result is being published by a duplicate delivery", extra={"outcome": result.outcome})


def _result(
    target: StopTarget, outcome: Outcome, *, completed_at: str, api: dict[str, Any] | None = None,
    error: ResultError | None = None, time_to_stop_ms: int | None = None, campaign_id: str | None = None,
) -> ResultEvent:
    request = target.request
    return ResultEvent(
        outcome=outcome,
        request_id=request.request_id,
        source=request.source,
        received_at=request.received_at,
        completed_at=completed_at,
        stream_id=request.stream_id,
        campaign_id=campaign_id if campaign_id is not None else (target.campaign_id or None),
        campaign_type=request.campaign_type.value,
        account_id=target.account_id or None,
        reason=request.reason,
        requested_by=request.requested_by,
        requested_at=request.requested_at,
        alarm_arn=request.alarm_arn,
        time_to_stop_ms=time_to_stop_ms,
        attempts=request.attempt,
        dry_run=request.dry_run,
        api=api,
        error=error,
    )
