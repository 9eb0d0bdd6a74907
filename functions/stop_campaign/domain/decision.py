"""Decide: how a message ends, from how each of its campaigns ended in this invocation. Plain Python, no I/O.

A message ends in exactly one of these ways, and this module picks it:

* **hand back** (``retry`` set): something failed that another attempt may fix, and this is not the final
  attempt. The message returns to its queue; results already final are published meanwhile, ``failed`` ones
  are not (they are decided again with the rest, so a campaign never gets two different outcomes).
* **end**: every campaign has a final result, published; a ``failed`` or ``rejected`` one also sends the
  message to the dead-letter queue; a request covering several campaigns also gets its summary.
* **continue**: campaigns not attempted because the rate budget or this invocation's time ran out go back to
  the stop queue as a Continuation, delayed until the budget allows. That is not a retry: it uses none of
  the message's attempts, and campaigns already ended are carried as counts, never called again.

Waiting for the budget never ends a request: it gives up only when it has waited longer than
``max_wait_seconds`` since it first arrived (``waited_too_long``), or when invocation after invocation could not
make a single call for want of time (``no_progress``: a function timeout too short for one call).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from stop_campaign.domain.models import (
    Continuation,
    Origin,
    Outcome,
    Progress,
    ResultError,
    ResultEvent,
    StopDeferred,
    StopError,
    StopRequest,
    StopTarget,
    SummaryEvent,
    TransientStopError,
)
from stop_campaign.domain.planning import PlannedRequest
from stop_campaign.domain.readonly import readonly_dataclass
from stop_campaign.domain.resume import SCHEDULE_NOT_REENABLED

# A stop held by another invocation of the same request: that invocation reports it.
IN_PROGRESS = "in_progress"
# Invocations in a row that ran out of time before a single call of a request (waiting for the budget is not
# counted) before it gives up on the rest.
MAX_STALLED_INVOCATIONS = 5


EndKind = Literal["ended", "transient", "deferred"]


@readonly_dataclass
class TargetEnd:
    """How one campaign ended in this invocation: exactly one of ``result``, ``transient`` or ``deferred`` is set
    (``kind`` says which; a ``permanent`` error only comes with a result), checked when it is made. A request that
    failed before its campaigns were known (credentials, listing) or found none has one end whose target has
    campaign id ""."""

    target: StopTarget
    result: ResultEvent | None = None  # "ended": final for the request (permanent failures included)
    transient: StopError | None = None  # "transient": not stopped, another attempt may succeed
    permanent: StopError | None = None  # comes with a failed or rejected ``result``
    deferred: StopDeferred | None = None  # "deferred": not attempted; continues in a later invocation

    def __post_init__(self) -> None:
        if sum(part is not None for part in (self.result, self.transient, self.deferred)) != 1:
            raise ValueError("a TargetEnd has exactly one of result, transient and deferred")
        if self.permanent is not None and self.result is None:
            raise ValueError("a TargetEnd's permanent error comes with its result")

    @property
    def kind(self) -> EndKind:
        if self.result is not None:
            return "ended"
        return "transient" if self.transient is not None else "deferred"


@readonly_dataclass
class ContinueLater:
    continuation: Continuation
    resume_at: float  # epoch seconds: the earliest the rate budget allows the next call
    places: int = 0  # calls it waits for the budget to make: the places to book in the account's queue
    account_id: str = ""  # whose queue


@dataclass(slots=True)
class Decision:
    publish: list[ResultEvent] = field(default_factory=list)
    continuations: list[ContinueLater] = field(default_factory=list)
    summaries: list[SummaryEvent] = field(default_factory=list)
    dead_letter: ResultError | None = None
    dead_letter_request_id: str | None = None
    retry: list[StopError] = field(default_factory=list)  # non-empty: hand the message back


def decide(
    planned: list[PlannedRequest], ends: list[TargetEnd], origin: Origin, *, final_attempt: bool, now: str,
    max_wait_seconds: float = math.inf,
) -> Decision:
    transient = [end for end in ends if end.transient is not None]
    if transient and not final_attempt:
        final = [end.result for end in ends if end.result is not None and end.permanent is None]
        return Decision(publish=final, retry=[end.transient for end in transient if end.transient is not None])

    # Final attempt: what still fails gets its `failed` result. A stop held by another invocation of this very
    # request is that invocation's to report, so this copy says nothing of it. The caller's ends are not changed:
    # ended ones are new copies.
    ends = [
        replace(end, result=gave_up(end.target, end.transient, origin, now), transient=None)
        if end.transient is not None and end.transient.code != IN_PROGRESS else end
        for end in ends
    ]
    # A stop-all whose list was not read to its end is listed again by its continuation, from the pages kept
    # for it: every campaign of it gets its result then. A stopped one may be published now (the same result
    # comes again and is dropped as a copy); a failure is decided again then, so no campaign gets two outcomes.
    relisted = {id(end.target.request) for end in ends if end.deferred is not None and not end.target.campaign_id}
    decision = Decision(publish=[
        end.result for end in ends
        if end.result is not None and not (end.result.error is not None and id(end.target.request) in relisted)
    ])
    errors = [result for result in decision.publish if result.error is not None]
    if errors:
        decision.dead_letter = errors[0].error
        decision.dead_letter_request_id = errors[0].request_id

    for plan in planned:
        own = [end for end in ends if end.target.request is plan.request]
        if not own:  # every campaign of it was a duplicate of another request's in this message
            continue
        if any(end.transient is not None and end.transient.code == IN_PROGRESS for end in own):
            # A duplicate delivery holds one of its campaigns: that copy sums the request up or hands it over,
            # counting the campaign this copy cannot. Doing it here too would win with a short count.
            continue
        deferred = [end for end in own if end.deferred is not None]
        progress = advance(plan, own, origin, counted=id(plan.request) not in relisted)
        why = _why_give_up(plan.request, progress, now, max_wait_seconds) if deferred else None
        if why is not None:
            if id(plan.request) in relisted:  # it ends here after all: its failures too
                decision.publish.extend(end.result for end in own if end.result is not None and end.result.error)
            given_up = _give_up_waiting(decision, deferred, origin, now, why)
            own = [given_up.get(id(end), end) for end in own]
            progress = advance(plan, own, origin)
            deferred = []
        if deferred:
            if any(not end.target.campaign_id for end in deferred):  # its list was never read: list it then
                rest = plan.request
            else:
                rest = replace(plan.request, campaign_ids=tuple(end.target.campaign_id for end in deferred),
                               all_active=False)
            continuation = Continuation(rest, progress)
            resume_at = min(end.deferred.resume_at for end in deferred if end.deferred is not None)
            # a resume's campaign takes two calls (its status, then its start): one place each
            per_campaign = 2 if plan.request.resume_of is not None else 1
            places = per_campaign * sum(1 for end in deferred if end.deferred is not None and end.deferred.budget)
            queue = next((end.target.account_id for end in deferred if end.target.account_id), "")
            decision.continuations.append(ContinueLater(continuation, resume_at, places, queue))
        elif plan.reports_summary:
            account_id = next((end.target.account_id for end in own if end.target.account_id), None)
            decision.summaries.append(summarize(plan.request, account_id, progress, now, origin.redriven_from))
    if decision.dead_letter is not None and origin.redriven_from:
        decision.publish = [
            replace(result, redriven_from=origin.redriven_from) if result.error is not None else result
            for result in decision.publish
        ]
    return decision


def _why_give_up(request: StopRequest, progress: Progress, now: str, max_wait_seconds: float) -> StopError | None:
    if progress.stalled >= MAX_STALLED_INVOCATIONS:
        return TransientStopError("no_progress", "no call could be made")
    arrived = _instant(request.received_at)
    if arrived and _instant(now) - arrived > max_wait_seconds:
        return TransientStopError(
            "waited_too_long", f"still waiting for the account's rate budget {max_wait_seconds:g} s after arriving"
        )
    return None


def _give_up_waiting(
    decision: Decision, deferred: list[TargetEnd], origin: Origin, now: str, why: StopError
) -> dict[int, TargetEnd]:
    """End with ``failed`` rather than continue for ever: the ended copy of each deferred end, by the id of the
    end it replaces (``decision`` gets their results)."""
    given_up: dict[int, TargetEnd] = {}
    for end in deferred:
        assert end.deferred is not None
        stalled = TransientStopError(why.code, f"{why.message}: {end.deferred.why}")
        result = gave_up(end.target, stalled, origin, now)
        given_up[id(end)] = replace(end, result=result, deferred=None)
        decision.publish.append(result)
    if decision.dead_letter is None and decision.publish[-1].error is not None:
        decision.dead_letter = decision.publish[-1].error
        decision.dead_letter_request_id = decision.publish[-1].request_id
    return given_up


def advance(plan: PlannedRequest, ends: list[TargetEnd], origin: Origin, counted: bool = True) -> Progress:
    """The request's progress after this invocation: its counts, and the next segment should it continue.
    ``counted`` False: its campaigns are counted by the continuation that lists them again."""
    tallies = Counter(dict(plan.progress.tallies))
    stop_times = [plan.progress.first_stop_at, plan.progress.last_stop_at]
    for end in ends if counted else ():
        if end.result is None:
            continue
        tallies[end.result.outcome.value] += 1
        if end.result.outcome is Outcome.STOPPED:
            stop_times.append(end.result.completed_at)
    known = sorted(time for time in stop_times if time)
    ended_here = any(end.result is not None for end in ends)
    waiting_turn = any(end.deferred is not None and end.deferred.budget for end in ends)
    return Progress(
        segment=plan.progress.segment + 1,
        invocations=plan.progress.invocations + origin.attempt,
        campaigns=plan.progress.campaigns or (sum(1 for end in ends if end.target.campaign_id) if counted else 0),
        tallies=tuple(sorted(tallies.items())),
        first_stop_at=known[0] if known else None,
        last_stop_at=known[-1] if known else None,
        stalled=0 if ended_here or waiting_turn else plan.progress.stalled + 1,
        all_active=plan.progress.all_active or plan.request.all_active,
    )


def summarize(
    request: StopRequest, account_id: str | None, progress: Progress, now: str, redriven_from: str | None = None,
) -> SummaryEvent:
    return SummaryEvent(
        request=request,
        account_id=account_id or request.account_id,
        all_active=progress.all_active,
        campaigns=progress.campaigns,
        outcomes=dict(progress.tallies),
        first_stop_at=progress.first_stop_at,
        last_stop_at=progress.last_stop_at,
        completed_at=now,
        duration_ms=max(0, round((_instant(now) - _instant(request.received_at)) * 1000)),
        invocations=progress.invocations,
        redriven_from=redriven_from,
    )


def _instant(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:  # a continuation carries the first receivedAt as text: never let it break an ending
        return 0.0


def gave_up(target: StopTarget, error: StopError, origin: Origin, now: str) -> ResultEvent:
    why = ResultError(error.code, f"{error.message} (gave up after {origin.attempt} attempts)", retryable=True)
    return result_for(target, Outcome.FAILED, completed_at=now, api=error.api, error=why)


def result_for(
    target: StopTarget, outcome: Outcome, *, completed_at: str, api: dict | None = None,
    error: ResultError | None = None, time_to_stop_ms: int | None = None, campaign_id: str | None = None,
) -> ResultEvent:
    """The result event for one campaign of one request."""
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
        producer=request.producer,
        resume_of=request.resume_of,
        schedule=dict(SCHEDULE_NOT_REENABLED) if request.resume_of is not None else None,
        hold_of=request.hold_of,
    )
