"""One inbound message, from arrival to where it ends, in four stages: plan, run, decide, report.

* plan: parse the message and find its requests and campaigns (planning.py; the alarm map, credentials and
  the all-active list are fetched here);
* run: stop the campaigns, concurrently, each paced by its account's rate budget and the deadline;
* decide: hand back, end, or continue later (decision.py, pure);
* report: publish results and summaries, hand the rest over, dead-letter what failed.

The processor talks to the outside only through the edges it is given, each wrapped in idempotency where a
repeat would be visible, so it can be exercised with moto and a local API without any Lambda.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, wait
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)

from stop_campaign.alarm_targets import AlarmTargets
from stop_campaign.dead_letter import DeadLetterQueue
from stop_campaign.decision import IN_PROGRESS, ContinueLater, Decision, TargetEnd, decide, result_for
from stop_campaign.intake import AlarmStateChange, InvalidRequest, Origin, parse_event, parse_sqs_body
from stop_campaign.kore_client import DEADLINE_MARGIN_SECONDS, Deadline
from stop_campaign.models import (
    Continuation,
    Outcome,
    PermanentStopError,
    RequestRejected,
    ResultError,
    ResultEvent,
    Source,
    StopDeferred,
    StopError,
    StopOutcome,
    StopRequest,
    StopTarget,
    SummaryEvent,
    TransientStopError,
    stable_id,
    utc_now,
)
from stop_campaign.planning import (
    PlannedRequest,
    alarm_requester,
    ignored_alarm,
    needs_alarm_map,
    planned_requests,
    unique_targets,
)
from stop_campaign.rate_budget import AccountBudgets, LedgerBusy, LedgerUnavailable
from stop_campaign.rate_schedule import URGENT
from stop_campaign.records import Record, replace
from stop_campaign.stop_queue import StopQueue
from stop_campaign.stopper import CampaignStopper, lane

logger = Logger(child=True)

StopOnce = Callable[..., StopOutcome]  # stopper.stop behind idempotency, keyed on StopTarget.idempotency_key()
PublishOnce = Callable[..., str]  # publisher.publish behind idempotency, keyed on ResultEvent.publication()
PublishSummaryOnce = Callable[..., str]  # publisher.publish_summary behind idempotency, keyed on its identity()
ResolveOnce = Callable[..., dict[str, list[str]]]  # the all-active list behind idempotency, keyed on the request
HandOverOnce = Callable[..., str]  # StopQueue.continue_later behind idempotency, keyed on request and segment
DeadLetterOnce = Callable[..., str]  # DeadLetterQueue.send behind idempotency, keyed on the failure result

MAX_DELAY_SECONDS = 900  # SQS's DelaySeconds ceiling
EARLY_ARRIVAL_SECONDS = 3  # a continuation with booked places arrives this much before its first is due
BOOKING_SECONDS = 1.0  # the least time a hand-over may spend booking its places (without them it queues on arrival)


class InboundMessage(Record):
    body: str  # the message exactly as it arrived: this is what the dead-letter queue receives
    origin: Origin
    payload: Any = None  # already decoded (direct invocations); None means parse ``body``
    final_attempt: bool = False  # the last delivery before the redrive policy: give up with a result now


class RetryLater(Exception):
    """Raised to hand the whole message back to its source (queue redelivery or Lambda async retry)."""

    def __init__(self, errors: list[StopError]) -> None:
        super().__init__("; ".join(sorted({f"{error.code}: {error.message}" for error in errors})))
        self.errors = errors


@dataclass
class Telemetry:
    """EMF metrics; a lock because the records of a batch finish on several threads at once."""

    metrics: Metrics
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str, value: float = 1) -> None:
        with self._lock:
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

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


def observed_summary(publish: Callable[[SummaryEvent], str], telemetry: Telemetry) -> Callable[..., str]:
    """The function made idempotent for summaries: a stop-all's duration is counted once, like its summary."""

    def publish_summary(*, identity: dict[str, Any], summary: SummaryEvent) -> str:
        message_id = publish(summary)
        if summary.all_active:
            telemetry.milliseconds("StopAllDuration", summary.duration_ms)
        return message_id

    return publish_summary


def stop_and_observe(stopper: CampaignStopper, telemetry: Telemetry) -> Callable[..., StopOutcome]:
    """The function made idempotent for stopping: ``key`` is what idempotency hashes."""

    def stop_campaign(
        *, key: dict[str, str], target: StopTarget, deadline: Deadline, started: float, made: list[StopOutcome],
    ) -> StopOutcome:
        outcome = stopper.stop(target, deadline, started)
        made.append(outcome)  # the caller learns of the stop even when its record cannot be completed afterwards
        if outcome.api_latency_ms is not None:
            telemetry.milliseconds("ApiLatency", outcome.api_latency_ms)
        return outcome

    return stop_campaign


def remember_stoppable(stopper: CampaignStopper) -> Callable[..., dict[str, list[str]]]:
    """The function made idempotent for ``all-active``: a redelivery works on the same campaigns as the first
    delivery, so a campaign stopped then (and no longer listed as active) still gets its result. A dict, since
    Powertools replays a stored empty list as None."""

    def stoppable_campaigns(
        *, key: dict[str, Any], request: StopRequest, account_id: str, deadline: Deadline
    ) -> dict[str, list[str]]:
        return {"campaignIds": stopper.stoppable_campaigns(request, account_id, deadline)}

    return stoppable_campaigns


class _EndedInPlanning(Record):
    results: list[ResultEvent]


def handing_over(queue: StopQueue, budgets: AccountBudgets | None) -> Callable[..., str]:
    """The function made idempotent for hand-overs: a redelivered segment does not continue the request twice
    (nor book its places twice)."""

    def continue_later(
        *, key: dict[str, Any], later: ContinueLater, book_by: float, waitable: float,
        redriven_from: str | None = None,
    ) -> str:
        continuation, early = _with_places(later, key, budgets), 0
        resume_at = later.resume_at
        if continuation.request.ticket and budgets is not None:
            first = _book(budgets, later, continuation.request.ticket, book_by)
            if first is not None:
                # Early enough to be there when the place is due, not so early that it cannot wait for it.
                resume_at, early = first, math.floor(min(EARLY_ARRIVAL_SECONDS, waitable))
            else:
                continuation = Continuation(replace(continuation.request, ticket=None), continuation.progress)
        # Rounded down: the continuation arrives up to a second early and its first call waits the rest for its
        # slot, rather than a second late on every hand-over.
        delay = min(MAX_DELAY_SECONDS, max(0, math.floor(resume_at - time.time()) - early))
        return queue.continue_later(continuation, delay, redriven_from)

    return continue_later


def _with_places(later: ContinueLater, key: dict[str, Any], budgets: AccountBudgets | None) -> Continuation:
    """The continuation, with the ticket its places are booked under when it waits for the budget. Kill switches
    book none: they are served ahead of every queue when they come back."""
    continuation = later.continuation
    request = continuation.request
    if budgets is None or not later.places or not later.account_id or lane(request) == URGENT:
        return continuation
    if request.ticket:
        return continuation
    scope = {name: value for name, value in key.items() if name != "segment"}  # one ticket for every segment
    return Continuation(replace(request, ticket=stable_id(scope)[:16]), continuation.progress)


def _book(budgets: AccountBudgets, later: ContinueLater, ticket: str, book_by: float) -> float | None:
    """When the ticket's first place is due; None when none could be booked (then it queues on arrival)."""
    try:
        return budgets.book(later.account_id, ticket, later.places, not_after=book_by)
    except (LedgerUnavailable, LedgerBusy) as error:
        logger.warning("No places booked for the rest of the request", extra={"error": str(error)})
        return None


def sending_dead_letters(queue: DeadLetterQueue) -> Callable[..., str]:
    """The function made idempotent for dead letters, keyed on the failure they carry."""

    def send(*, key: dict[str, Any], body: str, error: ResultError, request_id: str, source: str) -> str:
        return queue.send(body, error, request_id, source)

    return send


class _Gate:
    """Closes a fan-out account by account: after an account's first deferral no further stop of that account
    starts (another account's budget is its own); after an unexpected error, none at all."""

    def __init__(self) -> None:
        self._deferred: dict[str, StopDeferred] = {}
        self._abandoned: StopDeferred | None = None

    def deferred_for(self, account_id: str) -> StopDeferred | None:
        return self._abandoned or self._deferred.get(account_id)

    def close(self, account_id: str, deferred: StopDeferred) -> None:
        self._deferred.setdefault(account_id, deferred)

    def abandon(self) -> None:
        self._abandoned = self._abandoned or StopDeferred(time.time(), "the fan-out was abandoned")


class MessageProcessor:
    def __init__(
        self,
        *,
        stopper: CampaignStopper,
        stop_once: StopOnce,
        publish_once: PublishOnce,
        publish_summary_once: PublishSummaryOnce,
        resolve_once: ResolveOnce,
        hand_over_once: HandOverOnce,
        dead_letter_once: DeadLetterOnce,
        alarm_targets: AlarmTargets,
        executor: Executor,
        telemetry: Telemetry,
        max_wait_seconds: float = math.inf,
    ) -> None:
        self._max_wait_seconds = max_wait_seconds
        self._stopper = stopper
        self._stop_once = stop_once
        self._publish_once = publish_once
        self._publish_summary_once = publish_summary_once
        self._resolve_once = resolve_once
        self._hand_over_once = hand_over_once
        self._dead_letter_once = dead_letter_once
        self._alarm_targets = alarm_targets
        self._executor = executor
        self._telemetry = telemetry

    def process(self, message: InboundMessage, deadline: Deadline, started: float) -> list[ResultEvent]:
        """Every path ends in published results (and a summary), a dead letter, a continuation or RetryLater."""
        planned = self._plan(message)
        if isinstance(planned, _EndedInPlanning):  # rejected, ignored, or the alarm map unreadable to the end
            return planned.results
        ends = self._run(planned, deadline, started)
        decision = decide(planned, ends, message.origin, final_attempt=message.final_attempt, now=utc_now(),
                          max_wait_seconds=self._max_wait_seconds)
        self._report(message, decision, deadline)
        return decision.publish

    # -- plan ------------------------------------------------------------------------------------------

    def _plan(self, message: InboundMessage) -> list[PlannedRequest] | _EndedInPlanning:
        origin = message.origin
        parsed: StopRequest | AlarmStateChange | Continuation | None = None
        try:
            if message.payload is not None:
                parsed = parse_event(message.payload, origin)
            else:
                parsed = parse_sqs_body(message.body, origin)
            if isinstance(parsed, AlarmStateChange) and not needs_alarm_map(parsed):
                ignored = ignored_alarm(parsed, origin)
                self._publish(ignored)
                return _EndedInPlanning([ignored])
            alarm_map = self._alarm_targets.alarm_map() if needs_alarm_map(parsed) else None
            return planned_requests(parsed, alarm_map)
        except InvalidRequest as error:
            return self._end_unserved(message, error, error.request_id, error.fields)
        except RequestRejected as error:
            request_id = parsed.request_id if isinstance(parsed, AlarmStateChange) else origin.message_id
            return self._end_unserved(message, error, request_id, alarm=parsed)
        except TransientStopError as error:  # the alarm map could not be read
            if not message.final_attempt:
                raise RetryLater([error]) from None
            alarm = parsed if isinstance(parsed, AlarmStateChange) else None
            request_id = alarm.request_id if alarm else origin.message_id
            return self._end_unserved(message, error, request_id, alarm=alarm, gave_up_after=origin.attempt)

    def _targets_for(self, request: StopRequest, deadline: Deadline) -> list[StopTarget]:
        credentials = self._stopper.credentials_for(request)
        campaign_ids = request.campaign_ids
        if request.all_active:
            key = {
                "accountId": credentials.account_id, "streamId": request.stream_id,
                "campaignType": request.campaign_type.value, "requestId": request.request_id,
                "dryRun": request.dry_run,
            }
            listed = self._resolve_once(key=key, request=request, account_id=credentials.account_id, deadline=deadline)
            campaign_ids = tuple(listed["campaignIds"])
            logger.info("Resolved all-active campaigns", extra={"stream_id": request.stream_id,
                                                                "campaign_count": len(campaign_ids)})
        return [StopTarget(request, campaign_id, credentials.account_id) for campaign_id in campaign_ids]

    # -- run -------------------------------------------------------------------------------------------

    def _run(self, planned: list[PlannedRequest], deadline: Deadline, started: float) -> list[TargetEnd]:
        ends: list[TargetEnd] = []
        targets: list[StopTarget] = []
        for plan in planned:
            request = plan.request
            try:
                request_targets = self._targets_for(request, deadline)
            except StopDeferred as deferred:  # the list could not be read in time: the whole request continues
                ends.append(TargetEnd(_placeholder(request), deferred=deferred))
                continue
            except IdempotencyAlreadyInProgressError:  # a duplicate delivery is reading this very list right now
                busy = TransientStopError(IN_PROGRESS, "the same list is being read by another invocation")
                ends.append(TargetEnd(_placeholder(request), transient=busy))
                continue
            except StopError as error:
                ends.append(_request_level_end(request, error))
                continue
            if not request_targets:
                ends.append(_nothing_to_stop(request))
            targets.extend(request_targets)
        ends.extend(self._stop_each(unique_targets(targets), deadline, started))
        return ends

    def _stop_each(self, targets: list[StopTarget], deadline: Deadline, started: float) -> list[TargetEnd]:
        self._stopper.expect_calls(targets, deadline)  # their grants come while the idempotency records are written
        if len(targets) == 1:  # the common case: no thread hop on the hot path
            return [self._stop_target(targets[0], deadline, started, _Gate())]
        gate = _Gate()
        futures = [self._executor.submit(self._stop_target, target, deadline, started, gate) for target in targets]
        wait(futures)  # nothing is left running behind an error, to finish inside a later invocation
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def _stop_target(self, target: StopTarget, deadline: Deadline, started: float, gate: _Gate) -> TargetEnd:
        closed = gate.deferred_for(target.account_id)
        if closed is not None:
            return TargetEnd(target, deferred=closed)
        request = target.request
        logger.thread_safe_append_keys(
            correlation_id=request.request_id, request_id=request.request_id,
            stream_id=request.stream_id, campaign_id=target.campaign_id,
        )
        try:
            if request.dry_run:
                stop = StopOutcome(outcome=Outcome.DRY_RUN.value, api=None, completed_at=utc_now())
            else:
                stop = self._stop_once_reported(target, deadline, started)
        except StopDeferred as deferred:
            gate.close(target.account_id, deferred)
            return TargetEnd(target, deferred=deferred)
        except IdempotencyAlreadyInProgressError:
            # Another invocation is stopping this very campaign for this very request; it will report.
            error = TransientStopError(IN_PROGRESS, "the same stop is being handled by another invocation")
            return TargetEnd(target, transient=error)
        except TransientStopError as error:
            logger.warning("Stop not confirmed yet; will retry", extra={"error_code": error.code})
            return TargetEnd(target, transient=error)
        except (PermanentStopError, RequestRejected) as error:
            result = result_for(target, Outcome.REJECTED if isinstance(error, RequestRejected) else Outcome.FAILED,
                                completed_at=utc_now(), api=error.api, error=error.as_result_error())
            logger.error("Stop failed", extra={"error_code": error.code, "error_message": error.message})
            return TargetEnd(target, result=result, permanent=error)
        except BaseException:
            gate.abandon()
            raise
        finally:
            logger.thread_safe_remove_keys(["correlation_id", "request_id", "stream_id", "campaign_id"])
        result = result_for(target, Outcome(stop.outcome), completed_at=stop.completed_at, api=stop.api,
                            time_to_stop_ms=stop.time_to_stop_ms)
        return TargetEnd(target, result=result)

    def _stop_once_reported(self, target: StopTarget, deadline: Deadline, started: float) -> StopOutcome:
        """The stop, behind idempotency. When the call was made but its record could not be completed (an AWS
        fault after the stop), the stop is still reported now, rather than retried: a retry would find the campaign
        stopped and say ``already_stopped`` (and a duplicate that does so anyway publishes nothing: see
        ResultEvent.publication)."""
        made: list[StopOutcome] = []
        try:
            return self._stop_once(key=target.idempotency_key(), target=target, deadline=deadline, started=started,
                                   made=made)
        except IdempotencyPersistenceLayerError:
            if not made:  # no call was made (the in-progress record), or it failed (its record's deletion)
                raise
            logger.warning("Stop made but its idempotency record could not be completed; reporting it now")
            return made[0]

    # -- report ----------------------------------------------------------------------------------------

    def _report(self, message: InboundMessage, decision: Decision, deadline: Deadline) -> None:
        """Stops first, reports second: the last campaign of a stop-all does not wait for results."""
        self._publish_each(decision.publish)
        for later in decision.continuations:
            self._hand_over(later, message.origin.redriven_from, deadline)
        for summary in decision.summaries:
            self._publish_summary(summary)
        failure = next((result for result in decision.publish if result.error is not None), None)
        if decision.dead_letter is not None:
            self._dead_letter(message, decision.dead_letter, decision.dead_letter_request_id, failure)
        if decision.retry:
            raise RetryLater(decision.retry)

    def _publish_each(self, results: list[ResultEvent]) -> None:
        if len(results) == 1:
            self._publish(results[0])
        elif results:  # iterating re-raises a publish failure: the message is then retried, and nothing is lost
            list(self._executor.map(self._publish, results))

    def _dead_letter(
        self, message: InboundMessage, error: ResultError, request_id: str | None, failure: ResultEvent | None,
    ) -> None:
        """Once per failure: copies of one request that arrived as separate messages leave one dead letter, so a
        redrive brings the request back once. Keyed on the failure result's identity (the delivery, when none)."""
        key = failure.identity() if failure is not None else {"delivery": message.origin.message_id}
        try:
            self._dead_letter_once(
                key=key, body=message.body, error=error, request_id=request_id or message.origin.message_id,
                source=message.origin.source.value,
            )
        except IdempotencyAlreadyInProgressError:
            logger.info("The dead letter is being sent by a duplicate delivery")

    def _hand_over(self, later: ContinueLater, redriven_from: str | None, deadline: Deadline) -> None:
        continuation = later.continuation
        request = continuation.request
        key = {
            "requestId": request.request_id, "streamId": request.stream_id, "accountId": request.account_id,
            "campaignType": request.campaign_type.value, "dryRun": request.dry_run,
            "allActive": continuation.progress.all_active, "segment": continuation.progress.segment,
        } | ({"redrivenFrom": redriven_from} if redriven_from else {})  # a redrive continues anew
        try:
            # Booking may use the time left but the margin the hand-over itself and the results need.
            book_by = time.time() + max(BOOKING_SECONDS, deadline.seconds_left() - DEADLINE_MARGIN_SECONDS)
            self._hand_over_once(key=key, later=later, book_by=book_by, waitable=deadline.waitable_seconds(),
                                 redriven_from=redriven_from)
        except IdempotencyAlreadyInProgressError:
            # A duplicate of this message is handing this very segment over right now; should it fail, its own
            # message is retried and hands it over. Sending here too would continue the request twice.
            logger.info("The rest of the request is being handed over by a duplicate delivery")
            return
        self._telemetry.count("Continuations")
        logger.info("Handed the rest of the request over", extra={
            "request_id": request.request_id, "campaigns_left": len(request.campaign_ids),
            "segment": continuation.progress.segment,
        })

    def _end_unserved(
        self, message: InboundMessage, error: StopError, request_id: str, fields: dict[str, Any] | None = None,
        alarm: Any = None, gave_up_after: int | None = None,
    ) -> _EndedInPlanning:
        """A message that ends before any campaign is known: one result, and the message as a dead letter."""
        result = _unserved_result(message.origin, error, request_id, fields or {}, alarm, gave_up_after)
        assert result.error is not None
        self._publish(result)
        self._dead_letter(message, result.error, result.request_id, result)
        logger.warning("Request not served", extra={"error_code": result.error.code,
                                                    "error_message": result.error.message})
        return _EndedInPlanning([result])

    def _publish(self, result: ResultEvent) -> None:
        try:
            self._publish_once(identity=result.publication(), result=result)
        except IdempotencyAlreadyInProgressError:
            # A duplicate of this message is publishing this very result right now; should that invocation
            # fail, its own message is retried and publishes it. Publishing here too would double it.
            logger.info("Result is being published by a duplicate delivery", extra={"outcome": result.outcome})

    def _publish_summary(self, summary: SummaryEvent) -> None:
        try:
            self._publish_summary_once(identity=summary.identity(), summary=summary)
        except IdempotencyAlreadyInProgressError:
            logger.info("Summary is being published by a duplicate delivery")


def _placeholder(request: StopRequest) -> StopTarget:
    return StopTarget(request, campaign_id="", account_id=request.account_id or "")


def _nothing_to_stop(request: StopRequest) -> TargetEnd:
    """``all-active`` found no stoppable campaign: still one result, so the sender knows."""
    placeholder = _placeholder(request)
    outcome = Outcome.DRY_RUN if request.dry_run else Outcome.ALREADY_STOPPED
    # Says what was seen, so a mistyped stream id is not mistaken for a stream that is all stopped.
    api = {"httpStatus": 200, "message": f"Get All Campaigns listed no stoppable {request.campaign_type} campaign"}
    return TargetEnd(placeholder, result=result_for(placeholder, outcome, completed_at=utc_now(), api=api))


def _request_level_end(request: StopRequest, error: StopError) -> TargetEnd:
    """A request that failed before any campaign was known (credentials, listing all-active)."""
    placeholder = _placeholder(request)
    if isinstance(error, TransientStopError):
        return TargetEnd(placeholder, transient=error)
    outcome = Outcome.REJECTED if isinstance(error, RequestRejected) else Outcome.FAILED
    campaign_id = request.campaign_ids[0] if len(request.campaign_ids) == 1 else None
    result = result_for(placeholder, outcome, completed_at=utc_now(), api=error.api, error=error.as_result_error(),
                        campaign_id=campaign_id)
    return TargetEnd(placeholder, result=result, permanent=error)


def _unserved_result(
    origin: Origin, error: StopError, request_id: str, fields: dict[str, Any], alarm: Any, gave_up_after: int | None
) -> ResultEvent:
    """``rejected`` for a request that cannot be served; ``failed`` when a transient error outlasted the attempts."""
    is_alarm = isinstance(alarm, AlarmStateChange)
    outcome, result_error = Outcome.REJECTED, error.as_result_error()
    if gave_up_after is not None:
        outcome = Outcome.FAILED
        result_error = ResultError(
            error.code, f"{error.message} (gave up after {gave_up_after} attempts)", retryable=True
        )
    return ResultEvent(
        outcome=outcome, request_id=request_id,
        source=Source.ALARM if is_alarm else origin.source,
        received_at=origin.received_at, completed_at=utc_now(), attempts=origin.attempt,
        stream_id=fields.get("streamId"), campaign_id=fields.get("campaignId"),
        campaign_type=fields.get("campaignType"), account_id=fields.get("accountId"),
        requested_by=alarm_requester(alarm) if is_alarm else None,
        requested_at=alarm.changed_at if is_alarm else None,
        alarm_arn=alarm.alarm_arn if is_alarm else None,
        error=result_error, redriven_from=origin.redriven_from,
    )
