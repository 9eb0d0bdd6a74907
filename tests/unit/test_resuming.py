"""Resume's pure logic (domain/resume.py, intake of a resume request, what its results and continuations carry) and
the hold release before any start (service.processing.release_holds) with a small in-memory hold store. No AWS, no
sockets."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

import pytest

from stop_campaign.domain.decision import TargetEnd, decide, result_for
from stop_campaign.domain.intake import InvalidRequest, parse_continuation, parse_event
from stop_campaign.domain.models import (
    ApiResponse,
    CampaignType,
    Continuation,
    Origin,
    Outcome,
    Progress,
    ResultEvent,
    Source,
    StopDeferred,
    StopRequest,
    StopTarget,
)
from stop_campaign.domain.planning import PlannedRequest
from stop_campaign.domain.resume import ResumeRequest, current_status, resumed_requests, started
from stop_campaign.service.processing import RetryLater, release_holds
from stop_campaign.service.stopper import PairedSlots

ORIGIN = Origin(Source.SQS, "m-1", "2026-12-03T10:00:00.000Z")
RESUME = ResumeRequest(resume_of="req-incident", request_id="req-undo", source=Source.SQS,
                       received_at="2026-12-03T10:00:00.000Z", requested_by="oncall")


def stop_result(campaign_id: str, outcome: str = "stopped", **fields: Any) -> dict[str, Any]:
    event = ResultEvent(outcome=Outcome(outcome), request_id="req-incident", source=Source.ALARM,
                        received_at="2026-12-03T09:00:00.000Z", completed_at="2026-12-03T09:00:01.000Z",
                        stream_id="st-1", campaign_id=campaign_id, campaign_type="sms", account_id="acc-1")
    return {**event.as_message(), **fields}


# -- which campaigns a resume starts ---------------------------------------------------------------------------


def test_only_the_campaigns_the_request_stopped_itself_are_resumed():
    history = [stop_result("cd-1"), stop_result("cd-2", "already_stopped"), stop_result("cd-3"),
               stop_result("cd-4", "failed"), stop_result("cd-5", "rejected")]

    [request] = resumed_requests(RESUME, history)

    assert request.campaign_ids == ("cd-1", "cd-3")
    assert (request.request_id, request.resume_of, request.stream_id, request.account_id) == (
        "req-undo", "req-incident", "st-1", "acc-1")
    assert (request.requested_by, request.all_active, request.disable_schedule) == ("oncall", False, False)


def test_one_request_per_stream_type_and_account_in_the_order_the_history_lists_them():
    history = [stop_result("cd-1"), stop_result("cv-1", campaignType="voice"), stop_result("cd-9", streamId="st-2"),
               stop_result("cd-2"), stop_result("cd-7", accountId="acc-2")]

    requests = resumed_requests(RESUME, history)

    assert [(r.stream_id, r.campaign_type, r.account_id, r.campaign_ids) for r in requests] == [
        ("st-1", CampaignType.SMS, "acc-1", ("cd-1", "cd-2")), ("st-1", CampaignType.VOICE, "acc-1", ("cv-1",)),
        ("st-2", CampaignType.SMS, "acc-1", ("cd-9",)), ("st-1", CampaignType.SMS, "acc-2", ("cd-7",))]


def test_dry_run_results_and_unreadable_rows_resume_nothing():
    history = [stop_result("cd-1", dryRun=True), stop_result("cd-2", streamId="../x"),
               stop_result("cd-3", campaignId=None), stop_result("cd-4", campaignType="fax")]
    assert resumed_requests(RESUME, history) == []


def test_a_dry_run_resume_makes_dry_run_requests():
    [request] = resumed_requests(replace(RESUME, dry_run=True), [stop_result("cd-1")])
    assert request.dry_run


# -- reading a resume request ----------------------------------------------------------------------------------


def test_a_resume_request_is_read_from_a_message():
    parsed = parse_event({"action": "resume", "resumeOf": "req-incident", "requestId": "req-undo",
                          "requestedBy": "oncall", "dryRun": True}, ORIGIN)
    assert parsed == ResumeRequest(resume_of="req-incident", request_id="req-undo", source=Source.SQS,
                                   received_at=ORIGIN.received_at, requested_by="oncall", dry_run=True)


def test_a_resume_in_an_eventbridge_detail_is_read_too():
    parsed = parse_event({"detail-type": "Campaign Stop Request", "source": "ops", "id": "ev-1",
                          "detail": {"action": "resume", "resumeOf": "req-incident"}}, ORIGIN)
    assert isinstance(parsed, ResumeRequest) and parsed.request_id == "ev-1" and parsed.source is Source.EVENTBRIDGE


@pytest.mark.parametrize(("body", "says"), [
    ({"action": "resume"}, "resumeOf"),
    ({"action": "resume", "resumeOf": ""}, "resumeOf"),
    ({"action": "resume", "resumeOf": "has space"}, "resumeOf"),
    ({"action": "resume", "resumeOf": "req-1", "requestId": "req-1"}, "this very request"),
    ({"action": "undo", "resumeOf": "req-1"}, "action"),
    ({"action": "resume", "resumeOf": "req-1", "dryRun": "yes"}, "dryRun"),
])
def test_a_malformed_resume_is_rejected_saying_why(body, says):
    with pytest.raises(InvalidRequest) as error:
        parse_event(body, ORIGIN)
    assert says in error.value.message


def test_a_stop_request_may_say_action_stop():
    parsed = parse_event({"action": "stop", "streamId": "st-1", "campaignId": "cd-1"}, ORIGIN)
    assert isinstance(parsed, StopRequest) and parsed.resume_of is None


# -- results, publication, continuation ------------------------------------------------------------------------


def resume_target(campaign_id: str = "cd-1", **fields: Any) -> StopTarget:
    [request] = resumed_requests(RESUME, [stop_result(campaign_id)])
    return StopTarget(replace(request, **fields), campaign_id, "acc-1")


def test_every_result_of_a_resume_names_what_it_resumes_and_that_schedules_stay_disabled():
    result = result_for(resume_target(), Outcome.RESUMED, completed_at="2026-12-03T10:00:01.000Z")
    message = result.as_message()
    assert (message["outcome"], message["resumeOf"], message["schedule"]) == (
        "resumed", "req-incident", {"reenabled": False})
    stop = result_for(StopTarget(replace(resume_target().request, resume_of=None), "cd-1", "acc-1"),
                      Outcome.STOPPED, completed_at="2026-12-03T10:00:01.000Z").as_message()
    assert "resumeOf" not in stop and "schedule" not in stop


def test_resumed_and_ignored_are_one_publication_of_a_campaign():
    """A start whose idempotency record was lost: the next delivery finds it running (ignored), and publishes
    nothing more, since the campaign's one outcome is out already."""
    resumed = result_for(resume_target(), Outcome.RESUMED, completed_at="2026-12-03T10:00:01.000Z")
    ignored = replace(resumed, outcome=Outcome.IGNORED)
    assert resumed.publication() == ignored.publication()
    assert resumed.result_id != ignored.result_id


def test_a_resume_summarizes_even_one_campaign():
    target = resume_target()
    plan = PlannedRequest(target.request)
    end = TargetEnd(target, result=result_for(target, Outcome.RESUMED, completed_at="2026-12-03T10:00:01.000Z"))
    decision = decide([plan], [end], ORIGIN, final_attempt=False, now="2026-12-03T10:00:02.000Z")
    [summary] = decision.summaries
    message = summary.as_message()
    assert (message["outcomes"], message["resumeOf"], message["campaigns"]) == ({"resumed": 1}, "req-incident", 1)


def test_a_continuation_of_a_resume_is_still_a_resume():
    continuation = Continuation(resume_target().request, Progress(segment=2))
    parsed = parse_continuation(json.loads(json.dumps(continuation.as_message())), ORIGIN)
    assert parsed.request.resume_of == "req-incident" and parsed.request.campaign_ids == ("cd-1",)
    stop = Continuation(replace(resume_target().request, resume_of=None), Progress(segment=2))
    assert parse_continuation(json.loads(json.dumps(stop.as_message())), ORIGIN).request.resume_of is None


# -- what the platform's answers mean ---------------------------------------------------------------------------


def test_status_and_start_answers():
    assert current_status(ApiResponse(200, {"status": "success", "data": {"status": "Stopped"}}, 1)) == "Stopped"
    assert current_status(ApiResponse(200, {"status": "success", "data": {}}, 1)) is None
    assert current_status(ApiResponse(404, {"data": {"status": "Stopped"}}, 1)) is None
    assert started(ApiResponse(200, {"status": "Active", "message": "Campaign Started"}, 1))
    assert not started(ApiResponse(200, {"status": "failure"}, 1))
    assert not started(ApiResponse(412, None, 1))


# -- the hold is released first ---------------------------------------------------------------------------------


class InMemoryHolds:
    """A hold store that keeps its holds in a dict: what HoldRelease needs, nothing more."""

    def __init__(self, *held: str, broken: bool = False) -> None:
        self.held = set(held)
        self.released: list[str] = []
        self._broken = broken

    def release(self, request_id: str) -> None:
        if self._broken:
            raise ConnectionError("hold store unreachable")
        self.released.append(request_id)
        self.held.discard(request_id)


def test_a_resume_releases_the_hold_of_the_request_it_resumes_once():
    holds = InMemoryHolds("req-incident", "alarm:other")
    requests = resumed_requests(RESUME, [stop_result("cd-1"), stop_result("cd-9", streamId="st-2")])
    plans = [PlannedRequest(request) for request in requests]

    runnable, ends = release_holds(lambda: holds, plans, final_attempt=False)

    assert (runnable, ends) == (plans, [])
    assert holds.released == ["req-incident"] and holds.held == {"alarm:other"}


def test_a_dry_run_or_a_stop_releases_no_hold():
    holds = InMemoryHolds("req-incident")
    dry = [PlannedRequest(request) for request in resumed_requests(replace(RESUME, dry_run=True),
                                                                    [stop_result("cd-1")])]
    stop = [PlannedRequest(StopRequest("st-1", CampaignType.SMS, "req-x", Source.SQS, "t", ("cd-1",)))]
    assert release_holds(lambda: holds, [*dry, *stop], final_attempt=False) == ([*dry, *stop], [])
    assert holds.released == []
    assert release_holds(None, stop, final_attempt=False) == (stop, [])


def test_a_hold_that_cannot_be_released_starts_nothing():
    plans = [PlannedRequest(request) for request in resumed_requests(RESUME, [stop_result("cd-1"),
                                                                              stop_result("cd-2")])]
    with pytest.raises(RetryLater) as retry:
        release_holds(lambda: InMemoryHolds(broken=True), plans, final_attempt=False)
    assert retry.value.errors[0].code == "hold_not_released"

    runnable, ends = release_holds(lambda: InMemoryHolds(broken=True), plans, final_attempt=True)
    assert runnable == []
    assert [(end.target.campaign_id, end.kind, end.transient and end.transient.code) for end in ends] == [
        ("cd-1", "transient", "hold_not_released"), ("cd-2", "transient", "hold_not_released")]


# -- a resume's two calls take their budget slots together -------------------------------------------------------


class CountingBudget:
    """A pacer with ``slots`` calls left: what the account's budget does, without time."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.taken = 0

    def acquire(self, not_after: float) -> float:
        if self.taken == self.slots:
            raise StopDeferred(0.0, "spent", budget=True)
        self.taken += 1
        return 0.0

    def throttled(self, retry_after: float | None) -> None:
        """Not needed here."""


def test_the_status_call_takes_the_starts_slot_and_the_start_uses_it():
    budget, pair = CountingBudget(slots=2), PairedSlots(threading.Lock())
    pair.first(budget).acquire(1.0)
    assert budget.taken == 2
    pair.second(budget).acquire(1.0)  # its slot is already held
    assert budget.taken == 2
    with pytest.raises(StopDeferred):
        pair.second(budget).acquire(1.0)  # a retry of the start needs a slot of its own


def test_no_status_call_when_its_start_would_find_no_slot():
    budget = CountingBudget(slots=1)
    with pytest.raises(StopDeferred):
        PairedSlots(threading.Lock()).first(budget).acquire(1.0)


def test_a_resume_waiting_for_the_budget_books_two_places_a_campaign():
    target = resume_target()
    end = TargetEnd(target, deferred=StopDeferred(5.0, "spent", budget=True))
    decision = decide([PlannedRequest(target.request)], [end], ORIGIN, final_attempt=False,
                      now="2026-12-03T10:00:02.000Z")
    [later] = decision.continuations
    assert later.places == 2 and later.continuation.request.resume_of == "req-incident"
