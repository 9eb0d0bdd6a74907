"""Decide: how a message ends, from how each campaign ended. Pure: no AWS, no sockets."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from stop_campaign.domain.decision import IN_PROGRESS, TargetEnd, decide, result_for
from stop_campaign.domain.intake import InvalidRequest, parse_sqs_body
from stop_campaign.domain.models import (
    CampaignType,
    Continuation,
    Origin,
    Outcome,
    PermanentStopError,
    Progress,
    Source,
    StopDeferred,
    StopRequest,
    StopTarget,
    TransientStopError,
)
from stop_campaign.domain.planning import PlannedRequest

NOW = "2026-11-28T10:00:05.000Z"
ORIGIN = Origin(Source.SQS, "msg-1", "2026-11-28T10:00:00.000Z", attempt=1)


def request(*campaign_ids: str, all_active: bool = False, **fields) -> StopRequest:
    return StopRequest(
        stream_id="st-1", campaign_type=CampaignType.SMS, request_id="req-1", source=Source.SQS,
        received_at="2026-11-28T10:00:00.000Z", campaign_ids=campaign_ids, all_active=all_active, **fields,
    )


def stopped(target: StopTarget, at: str = "2026-11-28T10:00:01.000Z") -> TargetEnd:
    return TargetEnd(target, result=result_for(target, Outcome.STOPPED, completed_at=at))


def failed(target: StopTarget) -> TargetEnd:
    error = PermanentStopError("stop_refused", "no such campaign")
    result = result_for(target, Outcome.FAILED, completed_at=NOW, error=error.as_result_error())
    return TargetEnd(target, result=result, permanent=error)


def transient(target: StopTarget, code: str = "api_unavailable") -> TargetEnd:
    return TargetEnd(target, transient=TransientStopError(code, "503 from the API"))


def deferred(target: StopTarget, resume_at: float = 1_000.0) -> TargetEnd:
    return TargetEnd(target, deferred=StopDeferred(resume_at, "the account's rate budget is spent for now"))


def targets(stop: StopRequest) -> list[StopTarget]:
    return [StopTarget(stop, campaign_id, "acc-1") for campaign_id in stop.campaign_ids]


def test_everything_stopped_ends_with_results_and_one_summary():
    stop = request("cd-1", "cd-2", "cd-3")
    first, second, third = targets(stop)
    ends = [stopped(first, "2026-11-28T10:00:01.500Z"), stopped(second, "2026-11-28T10:00:01.000Z"),
            stopped(third, "2026-11-28T10:00:02.000Z")]
    decision = decide([PlannedRequest(stop)], ends, ORIGIN, final_attempt=False, now=NOW)
    assert [result.campaign_id for result in decision.publish] == ["cd-1", "cd-2", "cd-3"]
    assert not decision.retry and not decision.continuations and decision.dead_letter is None
    [summary] = decision.summaries
    message = summary.as_message()
    assert message["eventType"] == "summary"
    assert (message["campaigns"], message["outcomes"], message["invocations"]) == (3, {"stopped": 3}, 1)
    assert (message["firstStopAt"], message["lastStopAt"]) == ("2026-11-28T10:00:01.000Z", "2026-11-28T10:00:02.000Z")
    assert message["durationMs"] == 5000


def test_a_single_campaign_request_has_no_summary():
    stop = request("cd-1")
    decision = decide([PlannedRequest(stop)], [stopped(targets(stop)[0])], ORIGIN, final_attempt=False, now=NOW)
    assert len(decision.publish) == 1 and decision.summaries == []


def test_transient_failure_hands_back_without_publishing_failures_that_may_change():
    stop = request("cd-1", "cd-2", "cd-3")
    first, second, third = targets(stop)
    decision = decide([PlannedRequest(stop)], [stopped(first), failed(second), transient(third)], ORIGIN,
                      final_attempt=False, now=NOW)
    assert [error.code for error in decision.retry] == ["api_unavailable"]
    # the stop that happened is reported now; the failure is decided again with the rest (one outcome each)
    assert [result.outcome for result in decision.publish] == [Outcome.STOPPED]
    assert decision.dead_letter is None and decision.summaries == [] and decision.continuations == []


def test_final_attempt_gives_up_with_failed_results_a_dead_letter_and_a_summary():
    stop = request("cd-1", "cd-2")
    first, second = targets(stop)
    decision = decide([PlannedRequest(stop)], [stopped(first), transient(second)],
                      Origin(Source.SQS, "msg-1", ORIGIN.received_at, attempt=5), final_attempt=True, now=NOW)
    assert [(r.campaign_id, r.outcome) for r in decision.publish] == [("cd-1", Outcome.STOPPED),
                                                                      ("cd-2", Outcome.FAILED)]
    assert decision.dead_letter is not None and decision.dead_letter.code == "api_unavailable"
    assert "gave up after 5 attempts" in decision.dead_letter.message
    assert decision.summaries[0].outcomes == {"stopped": 1, "failed": 1}
    assert decision.summaries[0].invocations == 5


def test_final_attempt_says_nothing_of_a_stop_another_invocation_holds():
    stop = request("cd-1")
    decision = decide([PlannedRequest(stop)], [transient(targets(stop)[0], IN_PROGRESS)], ORIGIN,
                      final_attempt=True, now=NOW)
    assert decision.publish == [] and decision.dead_letter is None and not decision.retry


def test_deferred_campaigns_continue_with_what_is_done_counted_and_no_retry_used():
    stop = request(all_active=True)
    listed = [StopTarget(stop, f"cd-{number}", "acc-1") for number in range(5)]
    ends = [stopped(listed[0]), stopped(listed[1]), deferred(listed[2], 1_500.0), deferred(listed[3], 1_400.0),
            deferred(listed[4], 1_400.0)]
    decision = decide([PlannedRequest(stop)], ends, ORIGIN, final_attempt=True, now=NOW)
    assert not decision.retry and decision.summaries == [] and decision.dead_letter is None
    assert len(decision.publish) == 2  # what did stop is reported now
    [later] = decision.continuations
    assert later.resume_at == 1_400.0
    rest = later.continuation.request
    assert rest.campaign_ids == ("cd-2", "cd-3", "cd-4") and not rest.all_active
    assert rest.request_id == stop.request_id  # same idempotency keys: nothing stopped is called again
    progress = later.continuation.progress
    assert (progress.segment, progress.invocations, progress.campaigns) == (2, 1, 5)
    assert dict(progress.tallies) == {"stopped": 2}


def test_the_last_segment_sums_up_every_segment():
    stop = request("cd-3", "cd-4")
    progress = Progress(segment=3, invocations=2, campaigns=4, tallies=(("already_stopped", 1), ("stopped", 1)),
                        first_stop_at="2026-11-28T10:00:00.500Z", last_stop_at="2026-11-28T10:00:00.500Z")
    first, second = targets(stop)
    decision = decide([PlannedRequest(stop, progress)], [stopped(first), failed(second)],
                      Origin(Source.SQS, "msg-3", NOW, attempt=2), final_attempt=False, now=NOW)
    [summary] = decision.summaries
    assert summary.campaigns == 4 and summary.invocations == 4
    assert summary.outcomes == {"already_stopped": 1, "stopped": 2, "failed": 1}
    assert summary.first_stop_at == "2026-11-28T10:00:00.500Z"
    assert decision.dead_letter is not None and decision.dead_letter.code == "stop_refused"


def test_a_list_that_could_not_be_read_in_time_continues_as_all_active():
    stop = request(all_active=True)
    decision = decide([PlannedRequest(stop)], [deferred(StopTarget(stop, "", ""))], ORIGIN, final_attempt=False,
                      now=NOW)
    [later] = decision.continuations
    assert later.continuation.request.all_active and later.continuation.request.campaign_ids == ()


@pytest.mark.parametrize("all_active", [False, True])
def test_a_continuation_round_trips_through_the_stop_queue(all_active):
    stop = request(*(() if all_active else ("cd-2", "cd-3")), all_active=all_active, reason="complaint spike",
                   requested_by="compliance", dry_run=False, account_id="acc-1")
    progress = Progress(segment=2, invocations=1, campaigns=3, tallies=(("stopped", 1),),
                        first_stop_at="2026-11-28T10:00:01.000Z", last_stop_at="2026-11-28T10:00:01.000Z")
    body = json.dumps(Continuation(stop, progress).as_message())
    parsed = parse_sqs_body(body, Origin(Source.SQS, "msg-2", "later", attempt=2))
    assert isinstance(parsed, Continuation)
    assert parsed.progress == progress
    assert parsed.request == replace(stop, attempt=2)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda body: body["request"].update(campaignIds=["../../admin"]),
        lambda body: body["request"].update(streamId="st 1"),
        lambda body: body["request"].update(campaignIds=[]),
        lambda body: body["request"].update(source="somewhere"),
        lambda body: body["continuation"].update(version="0"),
        lambda body: body["continuation"].update(tallies={"stopped": -1}),
        lambda body: body["continuation"].update(tallies={"exploded": 1}),
        lambda body: body["continuation"].update(tallies={"stopped": 0}),  # a summary counts only what happened
        lambda body: body["continuation"].update(segment="2"),
    ],
)
def test_a_forged_or_broken_continuation_is_rejected(mutate):
    body = Continuation(request("cd-2"), Progress(segment=2)).as_message()
    mutate(body)
    with pytest.raises(InvalidRequest, match="continuation"):
        parse_sqs_body(json.dumps(body), ORIGIN)


def test_a_request_that_makes_no_progress_invocation_after_invocation_gives_up_with_failed_results():
    stop = request("cd-1", "cd-2")
    first, second = targets(stop)
    stalled = Progress(segment=5, invocations=4, campaigns=2, stalled=4)
    decision = decide([PlannedRequest(stop, stalled)], [deferred(first), deferred(second)], ORIGIN,
                      final_attempt=False, now=NOW)
    assert decision.continuations == []  # no fifth hand-over of nothing
    assert [(r.campaign_id, r.outcome) for r in decision.publish] == [
        ("cd-1", Outcome.FAILED), ("cd-2", Outcome.FAILED)]
    assert decision.dead_letter is not None and decision.dead_letter.code == "no_progress"
    assert decision.summaries[0].outcomes == {"failed": 2}


def test_one_invocation_without_progress_still_continues():
    stop = request("cd-1", "cd-2")
    first, second = targets(stop)
    decision = decide([PlannedRequest(stop, Progress(segment=2, stalled=1))], [deferred(first), deferred(second)],
                      ORIGIN, final_attempt=False, now=NOW)
    [later] = decision.continuations
    assert later.continuation.progress.stalled == 2 and decision.publish == []


def test_a_stop_held_by_a_duplicate_on_the_final_attempt_leaves_the_summing_up_to_that_duplicate():
    stop = request("cd-1", "cd-2", "cd-3")
    first, second, third = targets(stop)
    decision = decide([PlannedRequest(stop)], [stopped(first), transient(second, IN_PROGRESS), deferred(third)],
                      ORIGIN, final_attempt=True, now=NOW)
    assert [r.campaign_id for r in decision.publish] == ["cd-1"]  # what this copy did is reported
    assert decision.summaries == [] and decision.continuations == []  # a short count would win otherwise
    assert decision.dead_letter is None and not decision.retry


def test_a_continuation_keeps_only_real_timestamps():
    body = Continuation(request("cd-2"), Progress(segment=2, tallies=(("stopped", 1),))).as_message()
    body["request"]["receivedAt"] = "not a date"
    body["continuation"]["firstStopAt"] = "yesterday"
    parsed = parse_sqs_body(json.dumps(body), ORIGIN)
    assert isinstance(parsed, Continuation)
    assert parsed.request.received_at == ORIGIN.received_at and parsed.progress.first_stop_at is None


def test_a_redriven_failure_is_a_new_result_while_copies_of_one_request_stay_one():
    """A dead letter redriven unchanged fails again: that must be a new result (the operator sees it). Copies of one
    request, even as separate messages, stay one result; so do successes, redriven or not."""
    stop = request("cd-1", "cd-2")
    first, second = targets(stop)

    def ended(origin: Origin):
        return decide([PlannedRequest(stop)], [stopped(first), failed(second)], origin, final_attempt=True, now=NOW)

    original = ended(ORIGIN)
    copy = ended(Origin(Source.SQS, "msg-2", ORIGIN.received_at))  # the producer sent it twice
    redriven = ended(Origin(Source.SQS, "msg-3", "2026-11-28T11:00:00.000Z", redriven_from="dead-letter-1"))
    again = ended(Origin(Source.SQS, "msg-4", "2026-11-28T12:00:00.000Z", redriven_from="dead-letter-2"))

    def ids(decision, outcome):
        return [result.result_id for result in decision.publish if result.outcome is outcome]

    assert ids(original, Outcome.FAILED) == ids(copy, Outcome.FAILED)
    assert len({*ids(original, Outcome.FAILED), *ids(redriven, Outcome.FAILED), *ids(again, Outcome.FAILED)}) == 3
    assert ids(original, Outcome.STOPPED) == ids(redriven, Outcome.STOPPED)
    [failure] = [result.as_message() for result in redriven.publish if result.outcome is Outcome.FAILED]
    assert failure["redrivenFrom"] == "dead-letter-1"
    assert all("redrivenFrom" not in result.as_message() for result in original.publish)


def waiting_turn(target: StopTarget, resume_at: float = 1_000.0) -> TargetEnd:
    return TargetEnd(target, deferred=StopDeferred(resume_at, "the account's rate budget is spent for now",
                                                   budget=True))


def test_waiting_for_the_budget_never_uses_up_a_request_however_long_it_queues():
    stop = request("cd-1", "cd-2")
    first, second = targets(stop)
    long_queue = Progress(segment=40, invocations=39, campaigns=2, stalled=4)
    decision = decide([PlannedRequest(stop, long_queue)], [waiting_turn(first), waiting_turn(second)], ORIGIN,
                      final_attempt=False, now=NOW, max_wait_seconds=3600)
    [later] = decision.continuations
    assert decision.publish == [] and decision.dead_letter is None
    assert later.continuation.progress.stalled == 0  # its turn is coming: not a stall
    assert (later.places, later.account_id) == (2, "acc-1")  # both wait for the budget: two places to book


def test_a_request_waiting_longer_than_max_wait_ends_failed_waited_too_long():
    stop = request("cd-1", "cd-2")
    first, second = targets(stop)
    decision = decide([PlannedRequest(stop, Progress(segment=3, campaigns=2))], [stopped(first), waiting_turn(second)],
                      ORIGIN, final_attempt=False, now="2026-11-28T16:00:01.000Z", max_wait_seconds=21600)
    assert decision.continuations == []
    assert {(result.campaign_id, result.outcome) for result in decision.publish} == {
        ("cd-1", Outcome.STOPPED), ("cd-2", Outcome.FAILED)}
    assert decision.dead_letter is not None and decision.dead_letter.code == "waited_too_long"
    [summary] = decision.summaries
    assert summary.outcomes == {"stopped": 1, "failed": 1}


@pytest.mark.parametrize("final_attempt", [True, False])
def test_decide_leaves_its_inputs_as_they_were(final_attempt):
    """Pure: what it ends (a final attempt's transient failure, a request that waited too long) it ends in copies."""
    stop, waiting = request("cd-1", "cd-2"), replace(request("cd-3", "cd-4"), request_id="req-2")
    first, second = targets(stop)
    third, fourth = targets(waiting)
    planned = [PlannedRequest(stop), PlannedRequest(waiting, Progress(segment=3, campaigns=2))]
    ends = [stopped(first), transient(second), stopped(third), waiting_turn(fourth)]
    before_planned, before_ends = list(planned), [replace(end) for end in ends]
    decide(planned, ends, Origin(Source.SQS, "msg-1", ORIGIN.received_at, attempt=5), final_attempt=final_attempt,
           now="2026-11-28T16:00:01.000Z", max_wait_seconds=21600)
    assert planned == before_planned and ends == before_ends
    assert ends[1].result is None and ends[3].deferred is not None and ends[3].result is None


def test_a_target_end_is_exactly_one_kind():
    target = targets(request("cd-1"))[0]
    assert [end.kind for end in (stopped(target), failed(target), transient(target), deferred(target))] == [
        "ended", "ended", "transient", "deferred"]
    with pytest.raises(ValueError, match="exactly one"):
        TargetEnd(target)
    with pytest.raises(ValueError, match="exactly one"):
        TargetEnd(target, transient=TransientStopError("api_unavailable", "503"),
                  deferred=StopDeferred(1.0, "the budget"))
    with pytest.raises(ValueError, match="permanent"):
        TargetEnd(target, transient=TransientStopError("api_unavailable", "503"),
                  permanent=PermanentStopError("stop_refused", "no such campaign"))
