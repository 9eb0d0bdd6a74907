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
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)

from stop_campaign.adapters.alarm_targets import AlarmTargets
from stop_campaign.adapters.dead_letter import DeadLetterQueue
from stop_campaign.adapters.history import RequestHistory
from stop_campaign.adapters.kore_client import DEADLINE_MARGIN_SECONDS, Deadline
from stop_campaign.adapters.producer_policy import ProducerPolicySource
from stop_campaign.adapters.stop_queue import StopQueue
from stop_campaign.domain.alarms import ALARM_STATE
from stop_campaign.domain.decision import IN_PROGRESS, ContinueLater, Decision, TargetEnd, decide, result_for
from stop_campaign.domain.intake import AlarmStateChange, InvalidRequest, expiry, parse_event, parse_sqs_body
from stop_campaign.domain.listing import ListPaging, PageRead
from stop_campaign.domain.models import (
    Continuation,
    Origin,
    Outcome,
    PermanentStopError,
    Producer,
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
from stop_campaign.domain.planning import (
    PlannedRequest,
    alarm_requester,
    ignored_alarm,
    needs_alarm_map,
    planned_requests,
    target_key,
    unique_targets,
)
from stop_campaign.domain.policy import NotAuthorized, ProducerPolicy, Sender, judge_request, producer_of
from stop_campaign.domain.provenance import DIRECT_DELIVERY, Delivery, sender_of, verified
from stop_campaign.domain.readonly import readonly_dataclass
from stop_campaign.domain.resume import (
    SCHEDULE_NOT_REENABLED,
    HoldRelease,
    ResumeRequest,
    UnknownRequest,
    resumed_requests,
)
from stop_campaign.pacing.account_budgets import AccountBudgets
from stop_campaign.pacing.rate_ledger import LedgerBusy, LedgerUnavailable
from stop_campaign.pacing.rate_schedule import URGENT
from stop_campaign.service.stopper import LIST_PAGE_SIZE, CampaignStopper, lane, schedule_not_disabled

if TYPE_CHECKING:  # built and imported at their first use (composition.py): a cold start imports none of the holds
    from stop_campaign.adapters.alarm_states import AlarmStates
    from stop_campaign.adapters.holds import HoldStore

logger = Logger(child=True)

StopOnce = Callable[..., StopOutcome]  # stopper.stop behind idempotency, keyed on StopTarget.idempotency_key()
# publisher.publish behind idempotency, keyed on ResultEvent.publication(); its record says which message published
# what (see ``published``), so a message repeating a served request publishes it again (``republish_once``).
PublishOnce = Callable[..., Any]
PublishSummaryOnce = Callable[..., Any]  # publisher.publish_summary behind idempotency, keyed on its identity()
RepublishOnce = Callable[..., str]  # publisher.republish behind idempotency, keyed on the identity and the message
ResolveOnce = Callable[..., PageRead]  # one page of the all-active list behind idempotency, keyed on request and page
HandOverOnce = Callable[..., str]  # StopQueue.continue_later behind idempotency, keyed on request and segment
DeadLetterOnce = Callable[..., str]  # DeadLetterQueue.send behind idempotency, keyed on the failure result
# stopper.disable_schedule behind idempotency, keyed on StopTarget.idempotency_key(): a redelivery calls it no more
DisableOnce = Callable[..., dict[str, Any]]
StartOnce = Callable[..., StopOutcome]  # stopper.start behind idempotency, keyed on the target and the action (resume)

MAX_DELAY_SECONDS = 900  # SQS's DelaySeconds ceiling
EARLY_ARRIVAL_SECONDS = 3  # a continuation with booked places arrives this much before its first is due
BOOKING_SECONDS = 1.0  # the least time a hand-over may spend booking its places (without them it queues on arrival)
# Reads of an all-active list: the first, and sweeps while one finds campaigns the one before passed over (a
# sweep is read whole before its stops, so only campaigns started meanwhile by others can make another one).
MAX_LIST_READS = 3


@readonly_dataclass
class InboundMessage:
    body: str  # the message exactly as it arrived: this is what the dead-letter queue receives
    origin: Origin
    payload: Any = None  # already decoded (direct invocations); None means parse ``body``
    final_attempt: bool = False  # the last delivery before the redrive policy: give up with a result now
    # How it came, as Lambda's event says: who sent it (provenance.py). A factory: shapes are not hashable.
    delivery: Delivery = field(default_factory=lambda: DIRECT_DELIVERY)


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
    Outcome.RESUMED: "CampaignsResumed",
}


def observed(publish: Callable[[ResultEvent], str], telemetry: Telemetry) -> Callable[..., dict[str, Any]]:
    """The function made idempotent for publishing: metrics are counted once per result, like the result."""

    def publish_result(*, identity: dict[str, Any], result: ResultEvent, delivery: str | None = None,
                       ) -> dict[str, Any]:
        message_id = publish(result)
        telemetry.count(OUTCOME_METRICS[result.outcome])
        if result.hold_of and result.outcome is Outcome.STOPPED:
            telemetry.count("HoldRestops")  # a held campaign found running again, stopped again
        if result.time_to_stop_ms is not None:
            telemetry.milliseconds("TimeToStop", result.time_to_stop_ms)
        return published(message_id, delivery, result.as_message())

    return publish_result


# The history writes are waited for until this long before the invocation's end: the end-of-invocation bookkeeping
# (app.SETTLE_SECONDS, 2 s) and the return. A write still running then goes on in its thread, counted as unconfirmed.
HISTORY_RESERVE_SECONDS = 2.5


def disabling(stopper: CampaignStopper, telemetry: Telemetry) -> Callable[..., dict[str, Any]]:
    """The function made idempotent for disabling a schedule: ``key`` is what idempotency hashes. A success or a
    refusal is kept (a redelivery calls nothing again); what may succeed later raises, and keeps no record."""

    def disable_schedule(*, key: dict[str, str], target: StopTarget, deadline: Deadline) -> dict[str, Any]:
        schedule = stopper.disable_schedule(target, deadline)
        if schedule.get("disabled"):
            telemetry.count("SchedulesDisabled")
        else:
            telemetry.count("ScheduleDisableFailures")
        return schedule

    return disable_schedule


def published(message_id: str, delivery: str | None, message: dict[str, Any]) -> dict[str, Any]:
    """What a publication's idempotency record keeps: the SNS message id, which message published it (``delivery``,
    a digest of its body; None for a continuation) and the event as published, to publish again unchanged."""
    return {"messageId": message_id, "delivery": delivery, "message": message}


def republishing(republish: Callable[[dict[str, Any]], str]) -> Callable[..., str]:
    """The function made idempotent for publishing again: once per repeating message (``identity`` names it)."""

    def republish_event(*, identity: dict[str, Any], message: dict[str, Any]) -> str:
        return republish(message)

    return republish_event


def observed_summary(publish: Callable[[SummaryEvent], str], telemetry: Telemetry,
                     ) -> Callable[..., dict[str, Any]]:
    """The function made idempotent for summaries: a stop-all's duration is counted once, like its summary."""

    def publish_summary(*, identity: dict[str, Any], summary: SummaryEvent, delivery: str | None = None,
                        ) -> dict[str, Any]:
        message_id = publish(summary)
        if summary.all_active:
            telemetry.milliseconds("StopAllDuration", summary.duration_ms)
        return published(message_id, delivery, summary.as_message())

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


def starting(stopper: CampaignStopper, telemetry: Telemetry) -> Callable[..., StopOutcome]:
    """The function made idempotent for a resume's start: ``key`` is what idempotency hashes. ``resumed`` and
    ``ignored`` are kept (a redelivery calls nothing again); a failure raises and keeps no record."""

    def start_campaign(*, key: dict[str, str], target: StopTarget, deadline: Deadline, made: list[StopOutcome],
                       ) -> StopOutcome:
        outcome = stopper.start(target, deadline)
        made.append(outcome)
        if outcome.api_latency_ms is not None:
            telemetry.milliseconds("ApiLatency", outcome.api_latency_ms)
        return outcome

    return start_campaign


def remember_stoppable(stopper: CampaignStopper) -> Callable[..., PageRead]:
    """The function made idempotent for ``all-active``, one page at a time: keyed on the request, the read of the
    list (the first, or a sweep) and the page, so a redelivery works on the same pages as the first delivery, and
    a campaign stopped then (and no longer listed as active) still gets its result. One record a page: a whole
    list of 5,000 long ids would not fit one DynamoDB item, and stops of page 1 need only page 1 kept."""

    def list_page(
        *, key: dict[str, Any], request: StopRequest, account_id: str, paging: dict[str, int], deadline: Deadline,
        sending: threading.Event | None = None,
    ) -> PageRead:
        # ``sending``: the page's call has its place in the account's budget (page 1's stops may follow it)
        return stopper.list_page(request, account_id, paging, deadline, sending.set if sending is not None else None)

    return list_page


@readonly_dataclass
class _EndedInPlanning:
    results: list[ResultEvent]


@readonly_dataclass
class _Authorized:
    """A message's requests once judged by the producer policy: every one (decide sums them up), those with
    anything left to stop, and the ends of what their producer may not stop (no call is made for those)."""

    planned: list[PlannedRequest]
    runnable: list[PlannedRequest]
    refused: list[TargetEnd]
    delivery: str | None = None  # what tells a repeat of the message from another one (see ``_delivery``)


def handing_over(queue: StopQueue, budgets: AccountBudgets | None) -> Callable[..., str]:
    """The function made idempotent for hand-overs: a redelivered segment does not continue the request twice
    (nor book its places twice)."""

    def continue_later(
        *, key: dict[str, Any], later: ContinueLater, book_by: float, waitable: float,
        redriven_from: str | None = None,
    ) -> str:
        continuation = _with_places(later, key, budgets)
        resume_at, early = later.resume_at, min(1.0, waitable)
        if continuation.request.ticket and budgets is not None:
            first = _book(budgets, later, continuation.request.ticket, book_by)
            if first is not None:
                # Early enough to be there when the place is due, not so early that it cannot wait for it.
                resume_at, early = first, min(EARLY_ARRIVAL_SECONDS, waitable)
            else:
                continuation = Continuation(replace(continuation.request, ticket=None), continuation.progress)
        # SQS delays in whole seconds: rounded up, the continuation arrives at most ``early`` ahead (never so early
        # that it cannot wait for its slot and must be handed over again), and less than a second later than that.
        delay = min(MAX_DELAY_SECONDS, max(0, math.ceil(resume_at - time.time() - early)))
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

    def send(*, key: dict[str, Any], body: str, error: ResultError, request_id: str, source: str,
             sent_at: str | None = None) -> str:
        return queue.send(body, error, request_id, source, sent_at)

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


class _FanOut:
    """The stops of one message, each on the executor as soon as its campaign is known (named campaigns at
    once, listed ones as their page comes in); one gate for all of them. Used from one thread."""

    def __init__(
        self, stop: Callable[[StopTarget, Deadline, float, _Gate], TargetEnd], executor: Executor, deadline: Deadline,
        started: float, expect_calls: Callable[[list[StopTarget], Deadline], None],
    ) -> None:
        self._stop = stop
        self._expect_calls = expect_calls
        self._executor = executor
        self._deadline = deadline
        self._started = started
        self._gate = _Gate()
        self._futures: list[tuple[StopTarget, Future[TargetEnd]]] = []
        self._keys: set[str] = set()

    def start(self, targets: list[StopTarget]) -> None:
        new = [target for target in targets if target_key(target) not in self._keys]
        # The same campaign twice in one message is one stop (planning.unique_targets).
        new = list({target_key(target): target for target in new}.values())
        self._expect_calls(new, self._deadline)  # their grants come while the idempotency records are written
        for target in new:
            self._keys.add(target_key(target))
            future = self._executor.submit(self._stop, target, self._deadline, self._started, self._gate)
            self._futures.append((target, future))

    def wait_for(self, request: StopRequest) -> None:
        wait([future for target, future in self._futures if target.request is request])

    def ends(self) -> list[TargetEnd]:
        futures = [future for _, future in self._futures]
        wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def abandon(self) -> None:
        self._gate.abandon()
        wait([future for _, future in self._futures])


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
        producer_policy: ProducerPolicySource | None = None,
        signing_key: Callable[[], bytes] | None = None,
        republish_once: RepublishOnce | None = None,
        max_request_age_seconds: float = math.inf,
        disable_once: DisableOnce | None = None,
        history: RequestHistory | None = None,
        start_once: StartOnce | None = None,
        holds: Callable[[], HoldStore] | None = None,
        alarm_states: Callable[[], AlarmStates] | None = None,
    ) -> None:
        """``producer_policy`` None: every producer may stop everything. ``signing_key``: the key continuations
        are signed with (None: none is honoured). ``history`` None: nothing is remembered, and no resume can be
        served. ``holds`` (the hold store's factory) None: no hold is kept (``hold: true`` stops once, and a resume
        releases none)."""
        self._start_once = start_once
        self._holds = holds
        self._alarm_states = alarm_states
        self._disable_once = disable_once
        self._history = history
        self._max_wait_seconds = max_wait_seconds
        self._producer_policy = producer_policy
        self._signing_key = signing_key
        self._republish_once = republish_once
        self._max_request_age_seconds = max_request_age_seconds
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
        return self._serve(message, planned, deadline, started)

    def serve_planned(
        self, message: InboundMessage, planned: list[PlannedRequest], deadline: Deadline, started: float,
    ) -> list[ResultEvent]:
        """Requests planned by the function itself (a hold check's re-stops): run, decided and reported like a
        message's (``message`` is what a dead letter keeps). Each is judged by the producer policy as it is now, as
        its producer's own (the alarm's): a campaign it may no longer stop is left out, with a warning (a hold
        re-stops only what the alarm may stop; it asks nothing of a campaign it leaves alone)."""
        policy = self._producer_policy.current() if self._producer_policy is not None else None
        allowed: list[PlannedRequest] = []
        for plan in planned:
            producer = plan.request.producer
            sender = Sender(producer.kind, producer.id) if producer is not None else Sender("direct", "-")
            verdict = judge_request(policy, sender, plan.request)
            if verdict.refused:
                refused = [campaign_id for campaign_id, _ in verdict.refused]
                logger.warning("Held campaigns the producer policy no longer lets their alarm stop: left alone",
                               extra={"producer": str(sender), "refused": refused})
            if verdict.allowed:
                request = replace(plan.request, campaign_ids=verdict.allowed, producer=producer_of(sender, policy))
                allowed.append(replace(plan, request=request))
        return self._serve(message, _Authorized(allowed, allowed, []), deadline, started) if allowed else []

    def _serve(self, message: InboundMessage, planned: _Authorized, deadline: Deadline, started: float,
               ) -> list[ResultEvent]:
        runnable, released = release_holds(self._holds, planned.runnable, message.final_attempt)
        ends = [*released, *self._run(runnable, deadline, started)]
        ends = self._disable_schedules(ends, deadline)  # after every stop of the message, never before one
        decision = decide(planned.planned, [*planned.refused, *ends], message.origin,
                          final_attempt=message.final_attempt, now=utc_now(), max_wait_seconds=self._max_wait_seconds)
        self._report(message, decision, deadline, planned.delivery, (planned.planned, ends))
        return decision.publish

    # -- plan ------------------------------------------------------------------------------------------

    def _plan(self, message: InboundMessage) -> _Authorized | _EndedInPlanning:
        origin = message.origin
        parsed: StopRequest | AlarmStateChange | ResumeRequest | Continuation | None = None
        sender = sender_of(message.delivery, None, message.body, message.payload)  # before the body is read
        producer = Producer(sender.kind, sender.id)
        delivery: str | None = stable_id({"body": message.body})  # until it is read: what a rejection repeats
        try:
            policy = self._producer_policy.current() if self._producer_policy is not None else None
            producer = producer_of(sender, policy)
            if message.payload is not None:
                parsed = parse_event(message.payload, origin)
            else:
                parsed = parse_sqs_body(message.body, origin)
            sender = self._sender(message, parsed)
            producer = producer_of(sender, policy)
            delivery = (_delivery([PlannedRequest(parsed)]) if isinstance(parsed, StopRequest)
                        else _resume_delivery(parsed) if isinstance(parsed, ResumeRequest) else None)
            if isinstance(parsed, AlarmStateChange) and not needs_alarm_map(parsed):
                ignored = replace(ignored_alarm(parsed, origin), producer=producer)
                self._keep_history([self._publish(ignored, delivery)], [], None)
                self._end_holds_of(parsed)
                return _EndedInPlanning([ignored])
            # First served (not a retry of a request taken up before, nor the function's own hand-over): in time?
            late = None if isinstance(parsed, Continuation) or origin.attempt > 1 else expiry(
                parsed, datetime.now(UTC), self._max_request_age_seconds)
            if late is not None:
                alarm = parsed if isinstance(parsed, AlarmStateChange) else None
                return self._end_unserved(message, late, late.request_id, late.fields, alarm=alarm, delivery=delivery,
                                          producer=producer)
            if isinstance(parsed, ResumeRequest):
                return self._plan_resume(message, replace(parsed, producer=producer), policy, sender, delivery)
            alarm_map = self._alarm_targets.alarm_map() if needs_alarm_map(parsed) else None
            planned = [replace(plan, request=replace(plan.request, producer=producer))
                       for plan in planned_requests(parsed, alarm_map)]
            return self._authorize(planned, policy, sender, _delivery(planned))  # what was asked, before judging
        except InvalidRequest as error:
            return self._end_unserved(message, error, error.request_id, error.fields, delivery=delivery,
                                      producer=producer)
        except NotAuthorized as error:  # a continuation this function did not hand over: none of it is believed
            return self._end_unserved(message, error, origin.message_id, delivery=delivery, producer=producer)
        except RequestRejected as error:
            request_id = _named_id(parsed, origin)
            return self._end_unserved(message, error, request_id, alarm=parsed, delivery=delivery, producer=producer)
        except TransientStopError as error:  # the alarm map, the policy or the signing key could not be read
            if not message.final_attempt:
                raise RetryLater([error]) from None
            alarm = parsed if isinstance(parsed, AlarmStateChange) else None
            request_id = _named_id(parsed, origin)
            return self._end_unserved(message, error, request_id, alarm=alarm, gave_up_after=origin.attempt,
                                      delivery=delivery, producer=producer)

    def _plan_resume(
        self, message: InboundMessage, resume: ResumeRequest, policy: ProducerPolicy | None, sender: Sender,
        delivery: str | None,
    ) -> _Authorized | _EndedInPlanning:
        """A resume's requests, from the history of the request it resumes (domain/resume.py), judged by the producer
        policy like stops of the same campaigns. A request the history does not know is rejected (UnknownRequest);
        one that stopped no campaign ends in one ``ignored`` result."""
        if self._history is None:
            raise UnknownRequest("no request history is configured (REQUEST_HISTORY_TABLE): nothing can be resumed")
        history = self._history.results(resume.resume_of)
        if not history:
            raise UnknownRequest(f"the request history has no result of request {resume.resume_of!r} (never served, "
                                 "older than REQUEST_HISTORY_DAYS, or another id)")
        planned = [PlannedRequest(request) for request in resumed_requests(resume, history)]
        if not planned:
            nothing = _nothing_to_resume(resume, message.origin)
            self._keep_history([self._publish(nothing, delivery)], [], None)
            return _EndedInPlanning([nothing])
        logger.info("Resuming the campaigns a request stopped", extra={
            "resume_of": resume.resume_of, "campaign_count": sum(len(plan.request.campaign_ids) for plan in planned)})
        return self._authorize(planned, policy, sender, delivery)

    def _sender(
        self, message: InboundMessage, parsed: StopRequest | AlarmStateChange | ResumeRequest | Continuation,
    ) -> Sender:
        """Who sent it: what the delivery says; for a continuation, the producer of the request it continues,
        once its signature proves this function handed it over (NotAuthorized otherwise)."""
        if not isinstance(parsed, Continuation):
            return sender_of(message.delivery, parsed, message.body, message.payload)
        request = parsed.request
        if self._signing_key is None or not verified(parsed, self._signing_key()) or request.producer is None:
            raise NotAuthorized("continuation: not handed over by this function (no valid signature)")
        return Sender(request.producer.kind, request.producer.id)

    def _authorize(
        self, planned: list[PlannedRequest], policy: ProducerPolicy | None, sender: Sender, delivery: str | None,
    ) -> _Authorized:
        """Each request judged campaign by campaign (all-active as a whole): what its producer may not stop ends
        ``rejected`` (not_authorized) here, before any call."""
        judged: list[PlannedRequest] = []
        runnable: list[PlannedRequest] = []
        refused: list[TargetEnd] = []
        for plan in planned:
            verdict = judge_request(policy, sender, plan.request,
                                    all_active=plan.request.all_active or plan.progress.all_active)
            if verdict.all_active_refused is not None:
                judged.append(plan)
                refused.append(_request_level_end(plan.request, NotAuthorized(verdict.all_active_refused)))
                continue
            if verdict.refused:
                plan = replace(plan, request=replace(plan.request, campaign_ids=verdict.allowed),
                               refused=len(verdict.refused))
                now = utc_now()
                for campaign_id, why in verdict.refused:
                    target = StopTarget(plan.request, campaign_id, plan.request.account_id or "")
                    error = NotAuthorized(why)
                    refused.append(TargetEnd(target, result=result_for(
                        target, Outcome.REJECTED, completed_at=now, error=error.as_result_error()), permanent=error))
                logger.warning("Campaigns refused by the producer policy", extra={
                    "producer": str(sender), "refused": [campaign_id for campaign_id, _ in verdict.refused]})
            judged.append(plan)
            if plan.request.all_active or plan.request.campaign_ids:
                runnable.append(plan)
        return _Authorized(judged, runnable, refused, delivery)

    # -- run -------------------------------------------------------------------------------------------

    def _run(self, planned: list[PlannedRequest], deadline: Deadline, started: float) -> list[TargetEnd]:
        ends: list[TargetEnd] = []
        explicit: list[StopTarget] = []
        lists: list[tuple[StopRequest, str]] = []
        for plan in planned:
            request = plan.request
            try:
                credentials = self._stopper.credentials_for(request)
            except StopError as error:
                ends.append(_request_level_end(request, error))
                continue
            if request.all_active:
                lists.append((request, credentials.account_id))
            else:
                explicit.extend(StopTarget(request, campaign_id, credentials.account_id)
                                for campaign_id in request.campaign_ids)
        explicit = unique_targets(explicit)
        if not lists and len(explicit) == 1:  # the common case: no thread hop on the hot path
            self._stopper.expect_calls(explicit, deadline)  # the grant comes while the idempotency record is written
            return [*ends, self._stop_target(explicit[0], deadline, started, _Gate())]
        fan_out = _FanOut(self._stop_target, self._executor, deadline, started, self._stopper.expect_calls)
        try:
            fan_out.start(explicit)  # named campaigns do not wait for any list
            for request, account_id in lists:
                end = self._stop_all_active(request, account_id, fan_out, deadline)
                if end is not None:
                    ends.append(end)
        except BaseException:
            fan_out.abandon()  # nothing is left running behind an error, to finish inside a later invocation
            raise
        return [*ends, *fan_out.ends()]

    def _stop_all_active(
        self, request: StopRequest, account_id: str, fan_out: _FanOut, deadline: Deadline
    ) -> TargetEnd | None:
        """List the stream and stop what it lists, page by page as the pages come in. A request-level end when
        the list cannot be read (or lists nothing); None when its campaigns are all in ``fan_out``.

        The list is filtered by status, so a campaign stopped before a later page is read leaves the list and
        shifts that page: a campaign could be passed over. Once the stops are done the list is read again from
        page 1 (a sweep; its stops wait until it is read whole, so it shifts nothing itself), until a read finds
        nothing new or nothing could shift it: a read of one page (nothing is read after it), a dry run (no stop
        call), a platform seen to ignore the status filter (a stop changes a status, not a position)."""
        key = {
            "accountId": account_id, "streamId": request.stream_id, "campaignType": request.campaign_type.value,
            "requestId": request.request_id, "dryRun": request.dry_run,
        }
        known: set[str] = set()
        try:
            for read in range(1, MAX_LIST_READS + 1):
                paging = ListPaging(LIST_PAGE_SIZE)
                new = self._read_list(request, account_id, key | {"read": read}, paging, fan_out, deadline, known)
                if read == 1:
                    logger.info("Resolved all-active campaigns", extra={"stream_id": request.stream_id,
                                                                        "campaign_count": len(new)})
                elif new:
                    logger.info("A sweep of the list found campaigns the first read passed over",
                                extra={"stream_id": request.stream_id, "campaign_count": len(new), "read": read})
                if (read > 1 and not new) or request.dry_run or paging.pages == 1 or paging.unfiltered:
                    break
                fan_out.wait_for(request)  # the list is read again once what it listed is stopped
        except StopDeferred as deferred:  # the list could not be read in time: the whole request continues
            return TargetEnd(_placeholder(request), deferred=deferred)
        except IdempotencyAlreadyInProgressError:  # a duplicate delivery is reading this very list right now
            busy = TransientStopError(IN_PROGRESS, "the same list is being read by another invocation")
            return TargetEnd(_placeholder(request), transient=busy)
        except StopError as error:
            return _request_level_end(request, error)
        return None if known else _nothing_to_stop(request)

    def _read_list(
        self, request: StopRequest, account_id: str, key: dict[str, Any], paging: ListPaging, fan_out: _FanOut,
        deadline: Deadline, known: set[str],
    ) -> list[str]:
        """One read of the whole list; the ids it found that ``known`` (earlier reads) did not, added to it.
        Their stops start as their page comes in when page 1 told how long the list is, and this is the first
        read; otherwise once the list is read to its end (a list too long is then never half stopped)."""
        held: list[str] = []
        found: list[str] = []
        outstanding: dict[Future[PageRead], dict[str, int]] = {}
        names: dict[str, str] = {}  # what the rows call them: disableSchedule then needs no status call

        def targets(ids: list[str]) -> list[StopTarget]:
            return [StopTarget(request, campaign_id, account_id, names.get(campaign_id)) for campaign_id in ids]

        def take(fields: dict[str, int], page: PageRead) -> list[str]:
            names.update(page.get("names") or {})
            fresh = [campaign_id for campaign_id in paging.take(fields, page) if campaign_id not in known]
            known.update(fresh)
            found.extend(fresh)
            return fresh

        def stop(fresh: list[str]) -> None:
            if key["read"] == 1 and paging.counted:
                fan_out.start(targets(fresh))
            else:
                held.extend(fresh)

        def ask(fields: dict[str, int]) -> threading.Event:
            sending = threading.Event()
            future = self._executor.submit(self._read_page, key, request, account_id, fields, deadline, sending)
            future.add_done_callback(lambda _: sending.set())  # a replayed page is never sent
            outstanding[future] = fields
            return sending

        try:
            [first] = paging.requests()  # page 1, read on this thread: no hop before the first stops can start
            on_first = take(first, self._read_page(key, request, account_id, first, deadline))
            for sending in [ask(fields) for fields in paging.requests()]:
                sending.wait()  # the later pages go out (budget taken) before page 1's stops, which would shift them
            stop(on_first)
            while outstanding:
                done, _ = wait(outstanding, return_when=FIRST_COMPLETED)
                for future in done:
                    stop(take(outstanding.pop(future), future.result()))
                for fields in paging.requests():
                    ask(fields)
        finally:
            wait(outstanding)  # no page read left running behind an error
        fan_out.start(targets(held))
        return found

    def _read_page(
        self, key: dict[str, Any], request: StopRequest, account_id: str, fields: dict[str, int], deadline: Deadline,
        sending: threading.Event | None = None,
    ) -> PageRead:
        return self._resolve_once(key=key | {"page": fields["page"]}, request=request, account_id=account_id,
                                  paging=fields, deadline=deadline, sending=sending)

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
            elif request.resume_of is not None:
                stop = self._start_once_reported(target, deadline)
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
        if stop.campaign_name and not target.campaign_name:
            target = replace(target, campaign_name=stop.campaign_name)  # the status check named it
        return TargetEnd(target, result=result)

    # -- schedules (disableSchedule) --------------------------------------------------------------------

    def _disable_schedules(self, ends: list[TargetEnd], deadline: Deadline) -> list[TargetEnd]:
        """Each campaign this message stopped or found stopped whose request asked for ``disableSchedule`` gets its
        recurring schedule disabled, once every stop of the message has been made (a disable never delays a stop
        of its own message); the outcome stays what the stop made it, whatever the schedule call says."""
        asked = [index for index, end in enumerate(ends) if _disables_schedule(end)]
        if not asked:
            return ends
        ends = list(ends)
        if len(asked) == 1:
            ends[asked[0]] = self._disable_schedule(ends[asked[0]], deadline)
        else:
            done = self._executor.map(lambda index: self._disable_schedule(ends[index], deadline), asked)
            for index, end in zip(asked, list(done), strict=True):
                ends[index] = end
        return ends

    def _disable_schedule(self, end: TargetEnd, deadline: Deadline) -> TargetEnd:
        target = end.target
        assert end.result is not None
        logger.thread_safe_append_keys(request_id=target.request.request_id, campaign_id=target.campaign_id)
        try:
            if self._disable_once is not None:
                schedule = self._disable_once(key=target.idempotency_key(), target=target, deadline=deadline)
            else:
                schedule = self._stopper.disable_schedule(target, deadline)
        except StopDeferred as deferred:
            schedule = schedule_not_disabled("not_attempted", f"not called: {deferred.why}", retryable=True)
        except TransientStopError as error:
            schedule = schedule_not_disabled(error.code, error.message, retryable=True)
        except IdempotencyAlreadyInProgressError:
            schedule = schedule_not_disabled("not_attempted", "being disabled by another invocation", retryable=True)
        except Exception as error:  # never lets a schedule undo or fail the stop it follows
            logger.exception("Disabling the schedule failed unexpectedly")
            schedule = schedule_not_disabled("schedule_error", type(error).__name__, retryable=True)
        finally:
            logger.thread_safe_remove_keys(["request_id", "campaign_id"])
        if not schedule.get("disabled"):
            why = schedule.get("error") or {}
            logger.warning("Campaign stopped, its schedule not disabled", extra={"error_code": why.get("code")})
            if why.get("retryable"):
                self._telemetry.count("ScheduleDisableFailures")
        return replace(end, result=replace(end.result, schedule=schedule))

    def _start_once_reported(self, target: StopTarget, deadline: Deadline) -> StopOutcome:
        """A resume's start, behind idempotency (keyed on the campaign, the resume's request id and the action), and
        reported like a stop when its record could not be completed (see ``_stop_once_reported``)."""
        if self._start_once is None:
            return self._stopper.start(target, deadline)
        made: list[StopOutcome] = []
        try:
            return self._start_once(key={**target.idempotency_key(), "action": "resume"}, target=target,
                                    deadline=deadline, made=made)
        except IdempotencyPersistenceLayerError:
            if not made:
                raise
            logger.warning("Start made but its idempotency record could not be completed; reporting it now")
            return made[0]

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

    def _report(
        self, message: InboundMessage, decision: Decision, deadline: Deadline, delivery: str | None,
        served: tuple[list[PlannedRequest], list[TargetEnd]] = ([], []),
    ) -> None:
        """Stops first, reports second: the last campaign of a stop-all does not wait for results. The request
        history comes last of all (it can wait; a hand-over or a dead letter cannot), after the holds that the
        requests ``served`` begin (or add to)."""
        published = self._publish_each(decision.publish, delivery)
        for later in decision.continuations:
            self._hand_over(later, message.origin.redriven_from, deadline)
        summaries = [self._publish_summary(summary, delivery) for summary in decision.summaries]
        failure = next((result for result in decision.publish if result.error is not None), None)
        if decision.dead_letter is not None:
            self._dead_letter(message, decision.dead_letter, decision.dead_letter_request_id, failure)
        unkept = self._keep_holds(*served, final_attempt=message.final_attempt)
        self._keep_history(published, summaries, deadline)
        if decision.retry or unkept:
            raise RetryLater([*decision.retry, *unkept])

    # -- holds (an alarm-map entry's hold: true) --------------------------------------------------------

    def _keep_holds(self, planned: list[PlannedRequest], ends: list[TargetEnd], *, final_attempt: bool,
                    ) -> list[StopError]:
        """An alarm request with ``hold: true`` (not a dry run) begins its hold once served, or adds the campaigns of
        this segment to it. A write that fails hands the message back (another attempt stops nothing twice and
        writes the hold then); on the final attempt it is logged, and the campaigns stay stopped, unheld."""
        asked = [plan for plan in planned if plan.request.hold and not plan.request.dry_run
                 and not plan.request.hold_of]
        if not asked:
            return []
        if self._holds is None:
            logger.warning("hold: true asked, but HOLDS_TABLE is not set: the campaigns are stopped once, not held")
            return []
        from stop_campaign.domain.holds import held_entries, item_fields, scope_of  # only when a hold is asked

        store = self._holds()
        unkept: list[StopError] = []
        for plan in asked:
            request = plan.request
            all_active = request.all_active or plan.progress.all_active
            results = [end.result for end in ends if end.target.request is request and end.result is not None]
            campaigns = held_entries(request, all_active, results)
            if not campaigns:  # nothing it stopped (or may stop) to keep stopped
                continue
            try:
                store.record(request.request_id, item_fields(request, utc_now()), [scope_of(request, all_active)],
                             campaigns)
            except Exception as error:  # whatever the table or the SDK raised: the stops stand either way
                logger.warning("Could not write the hold", extra={
                    "request_id": request.request_id, "error": f"{type(error).__name__}: {error}"[:300]})
                self._telemetry.count("HoldWriteFailures")
                if not final_attempt:
                    unkept.append(TransientStopError("holds_unavailable", "the hold could not be written"))
                continue
            logger.info("Hold kept", extra={"hold_of": request.request_id, "stream_id": request.stream_id})
        return unkept

    def _end_holds_of(self, alarm: AlarmStateChange) -> None:
        """An alarm leaving ALARM ends its active holds begun before that change, once DescribeAlarms agrees that
        it is out of ALARM (a state change anyone could send to the stop queue ends nothing on its word alone; an
        alarm this account cannot see, another account's, is taken at its word). A failure is logged: the next
        hold check asks CloudWatch itself."""
        if self._holds is None:
            return
        from stop_campaign.domain.holds import ended_by  # only for an alarm leaving ALARM

        try:
            store = self._holds()
            holds = [hold for hold in store.active()
                     if hold.alarm_name == alarm.alarm_name and ended_by(hold, alarm.changed_at)]
            if not holds:
                return
            states = self._alarm_states().states([alarm.alarm_name]) if self._alarm_states is not None else {}
            state = states.get(alarm.alarm_name)
            if state == ALARM_STATE:
                logger.warning("Alarm said to leave ALARM is still in ALARM: its holds stay",
                               extra={"alarm_name": alarm.alarm_name})
                return
            for hold in holds:
                if store.end(hold.hold_of, f"alarm {alarm.alarm_name} changed to {alarm.state}"):
                    self._telemetry.count("HoldsEnded")
                    logger.info("Hold ended: its alarm left ALARM", extra={"hold_of": hold.hold_of})
        except Exception as error:  # the hold check ends it then; an ignored alarm's result is already out
            logger.warning("Could not end the holds of an alarm leaving ALARM", extra={
                "alarm_name": alarm.alarm_name, "error": f"{type(error).__name__}: {error}"[:300]})

    def list_running(self, request: StopRequest, account_id: str, deadline: Deadline) -> list[str]:
        """Every campaign the stream lists in a stoppable status: Get All Campaigns v2, one call per page, each page
        behind idempotency as a stop-all's (a repeat of the same request reads the pages it kept) and paced by the
        account's budget. A hold check's listing: read whole before any stop, page after page."""
        key = {
            "accountId": account_id, "streamId": request.stream_id, "campaignType": request.campaign_type.value,
            "requestId": request.request_id, "dryRun": request.dry_run, "read": 1,
        }
        paging = ListPaging(LIST_PAGE_SIZE)
        while not paging.done:
            pages = paging.requests()
            if not pages:
                break
            for fields in pages:
                paging.take(fields, self._read_page(key, request, account_id, fields, deadline))
        return paging.campaign_ids

    def _publish_each(self, results: list[ResultEvent], delivery: str | None) -> list[dict[str, Any] | None]:
        if len(results) == 1:
            return [self._publish(results[0], delivery)]
        # iterating re-raises a publish failure: the message is then retried, and nothing is lost
        return list(self._executor.map(lambda result: self._publish(result, delivery), results))

    def _keep_history(
        self, results: list[dict[str, Any] | None], summaries: list[dict[str, Any] | None], deadline: Deadline | None,
    ) -> None:
        """Write the events as published (``None``: published by another invocation, which writes it) to the request
        history. Every write is idempotent (a campaign's item is replaced, its request's counts move only when its
        outcome does), so a redelivery may write again. A failure loses nothing that was promised (the events are
        published, the request goes on): it is logged and counted (HistoryWriteFailures), never raised."""
        history = self._history
        writes = [(history.record_result, message) for message in results if message is not None] + [
            (history.record_summary, message) for message in summaries if message is not None] if history else []
        if not writes:
            return

        def write(record: Callable[[dict[str, Any]], None], message: dict[str, Any]) -> None:
            try:
                record(message)
            except Exception as error:  # whatever the table or the SDK raised: history must not fail a request
                logger.warning("Could not write the request history", extra={
                    "request_id": message.get("requestId"), "error": f"{type(error).__name__}: {error}"[:300]})
                self._telemetry.count("HistoryWriteFailures")

        if deadline is None:
            for pair in writes:
                write(*pair)
            return
        # Not skipped for want of time (a paced request's segments end near their deadline, and resume reads this):
        # the writes, a few ms each, are waited for as long as the invocation can spare.
        unconfirmed = wait([self._executor.submit(write, *pair) for pair in writes],
                           timeout=max(0.0, deadline.seconds_left() - HISTORY_RESERVE_SECONDS)).not_done
        if unconfirmed:
            logger.warning("Request history writes not confirmed before the invocation's end", extra={
                "request_id": writes[0][1].get("requestId"), "writes": len(unconfirmed)})
            self._telemetry.count("HistoryWriteFailures", len(unconfirmed))

    def _dead_letter(
        self, message: InboundMessage, error: ResultError, request_id: str | None, failure: ResultEvent | None,
    ) -> None:
        """Once per failure: copies of one request that arrived as separate messages leave one dead letter, so a
        redrive brings the request back once. Keyed on the failure result's identity (the delivery, when none)."""
        key = failure.identity() if failure is not None else {"delivery": message.origin.message_id}
        try:
            self._dead_letter_once(
                key=key, body=message.body, error=error, request_id=request_id or message.origin.message_id,
                source=message.origin.source.value, sent_at=message.origin.sent_at,
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
        alarm: Any = None, gave_up_after: int | None = None, delivery: str | None = None,
        producer: Producer | None = None,
    ) -> _EndedInPlanning:
        """A message that ends before any campaign is known: one result, and the message as a dead letter."""
        result = _unserved_result(message.origin, error, request_id, fields or {}, alarm, gave_up_after, producer)
        assert result.error is not None
        published = self._publish(result, delivery)
        self._dead_letter(message, result.error, result.request_id, result)
        self._keep_history([published], [], None)
        logger.warning("Request not served", extra={"error_code": result.error.code,
                                                    "error_message": result.error.message})
        return _EndedInPlanning([result])

    def _publish(self, result: ResultEvent, delivery: str | None = None) -> dict[str, Any] | None:
        """Publish once; the event as it was published (by this invocation or an earlier one: a campaign's one
        outcome), None when a duplicate delivery is publishing it right now."""
        identity = result.publication()
        try:
            record = self._publish_once(identity=identity, result=result, delivery=delivery)
        except IdempotencyAlreadyInProgressError:
            # A duplicate of this message is publishing this very result right now; should that invocation
            # fail, its own message is retried and publishes it. Publishing here too would double it.
            logger.info("Result is being published by a duplicate delivery", extra={"outcome": result.outcome})
            return None
        self._publish_again(record, identity, delivery)
        return _as_published(record, result.as_message())

    def _publish_summary(self, summary: SummaryEvent, delivery: str | None = None) -> dict[str, Any] | None:
        identity = summary.identity()
        try:
            record = self._publish_summary_once(identity=identity, summary=summary, delivery=delivery)
        except IdempotencyAlreadyInProgressError:
            logger.info("Summary is being published by a duplicate delivery")
            return None
        self._publish_again(record, identity, delivery)
        return _as_published(record, summary.as_message())

    def _publish_again(self, record: Any, identity: dict[str, Any], delivery: str | None) -> None:
        """A request id used again by another message (another body: not a copy, nor a redelivery) stops nothing
        twice, and its idempotency records would otherwise drop it without a word: the event as first published
        goes out again, the same resultId, once per such message, so whoever waits for that request id sees it.
        A record from before records said who published (a bare message id) is left as it is, and so is one a
        continuation published (no ``delivery``): which message began that request is not known there, and a late
        copy of that very message would publish the result a second time."""
        if (delivery is None or self._republish_once is None or not isinstance(record, dict)
                or record.get("delivery") in (None, delivery) or not isinstance(record.get("message"), dict)):
            return
        try:
            self._republish_once(identity={**identity, "delivery": delivery}, message=record["message"])
        except IdempotencyAlreadyInProgressError:
            return  # a copy of this very message is publishing it again right now
        logger.info("Request id used again by another message: its result is published again",
                    extra={"result_id": record["message"].get("resultId")})


def _delivery(planned: list[PlannedRequest]) -> str | None:
    """What tells a message repeating a request (a copy, a redelivery: publishes nothing again) from another message
    using its request id for something else (publishes the results again: see ``_publish_again``): a digest of what
    the producer asked, whatever carried it. None for an alarm (its request id is its state change: a repeat is a
    copy) and for a continuation (the function's own hand-over)."""
    if len(planned) != 1 or planned[0].progress.segment > 1 or planned[0].request.source is Source.ALARM:
        return None
    request = planned[0].request
    return stable_id({
        "streamId": request.stream_id, "campaignType": request.campaign_type.value,
        "campaignIds": list(request.campaign_ids), "allActive": request.all_active, "requestId": request.request_id,
        "reason": request.reason, "requestedBy": request.requested_by, "requestedAt": request.requested_at,
        "accountId": request.account_id, "dryRun": request.dry_run, "notAfter": request.not_after,
    } | ({"disableSchedule": True} if request.disable_schedule else {}))


def release_holds(
    holds: Callable[[], HoldRelease] | None, runnable: list[PlannedRequest], final_attempt: bool,
) -> tuple[list[PlannedRequest], list[TargetEnd]]:
    """Before any start of a resume, the hold of the request it resumes ends (a hold check would stop again what the
    resume starts); a dry run releases nothing. What may run now, and the ends of what may not: a release that fails
    starts nothing of its resume; the message is tried again (RetryLater), and after its last attempt those campaigns
    end ``failed``."""
    resumes = sorted({str(plan.request.resume_of) for plan in runnable
                      if plan.request.resume_of is not None and not plan.request.dry_run})
    if holds is None or not resumes:
        return runnable, []
    try:
        store = holds()  # made at its first use (composition.hold_parts)
        for request_id in resumes:
            store.release(request_id)
    except Exception as error:  # whatever the hold store raised: no start while the hold may still stand
        logger.warning("Could not release the hold of the request to resume", extra={
            "error": f"{type(error).__name__}: {error}"[:300]})
        failure = TransientStopError("hold_not_released", f"the hold could not be released: {type(error).__name__}")
        if not final_attempt:
            raise RetryLater([failure]) from None
        held = [plan for plan in runnable if plan.request.resume_of is not None and not plan.request.dry_run]
        return [plan for plan in runnable if plan not in held], [
            TargetEnd(StopTarget(plan.request, campaign_id, plan.request.account_id or ""), transient=failure)
            for plan in held for campaign_id in plan.request.campaign_ids]
    return runnable, []


def _named_id(parsed: Any, origin: Origin) -> str:
    """The request id a rejection of ``parsed`` is reported under: an alarm's or a resume's own, else the delivery's."""
    return parsed.request_id if isinstance(parsed, AlarmStateChange | ResumeRequest) else origin.message_id


def _resume_delivery(resume: ResumeRequest) -> str:
    """``_delivery`` of a resume: what its producer asked."""
    return stable_id({"action": "resume", "resumeOf": resume.resume_of, "requestId": resume.request_id,
                      "reason": resume.reason, "requestedBy": resume.requested_by,
                      "requestedAt": resume.requested_at, "dryRun": resume.dry_run})


def _nothing_to_resume(resume: ResumeRequest, origin: Origin) -> ResultEvent:
    """The request to resume stopped no campaign itself (each was already stopped, or it failed): one ``ignored``
    result says so, and nothing is called."""
    return ResultEvent(
        outcome=Outcome.IGNORED, request_id=resume.request_id, source=resume.source,
        received_at=resume.received_at, completed_at=utc_now(), attempts=origin.attempt, reason=resume.reason,
        requested_by=resume.requested_by, requested_at=resume.requested_at, dry_run=resume.dry_run,
        api={"httpStatus": 200, "message": f"request {resume.resume_of} stopped no campaign: nothing to resume"},
        producer=resume.producer, resume_of=resume.resume_of, schedule=dict(SCHEDULE_NOT_REENABLED),
    )


def _as_published(record: Any, made: dict[str, Any]) -> dict[str, Any]:
    """The event a publication's record says went out (an earlier delivery's, for a copy), else the one just made
    (a record from before records kept the message)."""
    message = record.get("message") if isinstance(record, dict) else None
    return message if isinstance(message, dict) else made


def _disables_schedule(end: TargetEnd) -> bool:
    """Asked (``disableSchedule``), not a dry run, and the campaign is stopped: by this request or before it."""
    request = end.target.request
    return (request.disable_schedule and not request.dry_run and bool(end.target.campaign_id)
            and end.result is not None and end.result.outcome in (Outcome.STOPPED, Outcome.ALREADY_STOPPED))


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
    origin: Origin, error: StopError, request_id: str, fields: dict[str, Any], alarm: Any, gave_up_after: int | None,
    producer: Producer | None,
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
        error=result_error, redriven_from=origin.redriven_from, producer=producer,
    )
