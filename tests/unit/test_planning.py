"""Plan: which requests and campaigns a message asks for. Pure: no AWS, no sockets."""

from __future__ import annotations

import pytest

from stop_campaign.domain.intake import AlarmStateChange
from stop_campaign.domain.models import (
    CampaignType,
    Continuation,
    Origin,
    Outcome,
    Progress,
    Source,
    StopRequest,
    StopTarget,
)
from stop_campaign.domain.planning import ignored_alarm, merged, needs_alarm_map, planned_requests, unique_targets


def change(state: str = "ALARM") -> AlarmStateChange:
    return AlarmStateChange(
        alarm_name="sms-complaints", alarm_arn="arn:aws:cloudwatch:us-east-1:123456789012:alarm:sms-complaints",
        state=state, changed_at="2026-11-28T10:05:00.000+0000", reason="Threshold Crossed",
        received_at="2026-11-28T10:05:01.000Z",
    )


def request(*campaign_ids: str, dry_run: bool = False) -> StopRequest:
    return StopRequest(stream_id="st-1", campaign_type=CampaignType.SMS, request_id="r-1", source=Source.SQS,
                       received_at="2026-11-28T10:00:00.000Z", campaign_ids=campaign_ids, dry_run=dry_run)


def test_a_dry_run_and_a_real_stop_of_one_campaign_stay_two_targets():
    real, dry = request("cd-1"), request("cd-1", dry_run=True)
    kept = unique_targets([StopTarget(dry, "cd-1", "acc-1"), StopTarget(real, "cd-1", "acc-1")])
    assert {target.request.dry_run for target in kept} == {True, False}


def test_the_same_campaign_twice_is_stopped_once():
    first, second = request("cd-1", "cd-2"), request("cd-2")
    targets = [StopTarget(first, "cd-1", "a"), StopTarget(first, "cd-2", "a"), StopTarget(second, "cd-2", "a")]
    assert [target.campaign_id for target in unique_targets(targets)] == ["cd-1", "cd-2"]


def test_alarm_entries_for_one_stream_merge_into_one_request_and_dry_runs_stay_apart():
    alarm_map = {"sms-*": [
        {"streamId": "st-1", "campaignIds": ["cd-1", "cd-2"]},
        {"streamId": "st-1", "campaignId": "cd-3"},
        {"streamId": "st-1", "campaignIds": ["cd-2"], "dryRun": True},
        {"streamId": "st-2", "campaigns": "all-active"},
    ]}
    planned = planned_requests(change(), alarm_map)
    assert [(plan.request.stream_id, plan.request.campaign_ids, plan.request.dry_run, plan.request.all_active)
            for plan in planned] == [
        ("st-1", ("cd-1", "cd-2", "cd-3"), False, False),
        ("st-1", ("cd-2",), True, False),
        ("st-2", (), False, True),
    ]
    assert all(plan.reports_summary for plan in planned)  # an alarm always sums up


def test_a_continuation_is_planned_with_its_progress():
    rest = request("cd-7")
    progress = Progress(segment=4, invocations=3, campaigns=9, tallies=(("stopped", 8),))
    [plan] = planned_requests(Continuation(rest, progress))
    assert plan.request is rest and plan.progress is progress
    assert plan.reports_summary  # even with one campaign left: the request covered nine


@pytest.mark.parametrize(("stop", "sums_up"), [(request("cd-1"), False), (request("cd-1", "cd-2"), True)])
def test_only_multi_campaign_requests_sum_up(stop, sums_up):
    [plan] = planned_requests(stop)
    assert plan.reports_summary is sums_up


def test_an_alarm_leaving_alarm_needs_no_map_and_is_ignored():
    ok = change("OK")
    assert needs_alarm_map(change()) and not needs_alarm_map(ok)
    result = ignored_alarm(ok, Origin(Source.ALARM, "e-1", ok.received_at))
    assert result.outcome is Outcome.IGNORED and result.request_id == ok.request_id
    with pytest.raises(ValueError, match="alarm map"):
        planned_requests(change())


def test_alarm_entries_are_merged_only_when_they_agree_on_disable_schedule():
    asks = StopRequest(stream_id="st-1", campaign_type=CampaignType.SMS, request_id="r-1", source=Source.ALARM,
                       received_at="2026-11-28T10:00:00.000Z", campaign_ids=("cd-1",), disable_schedule=True)
    plain = StopRequest(stream_id="st-1", campaign_type=CampaignType.SMS, request_id="r-1", source=Source.ALARM,
                        received_at="2026-11-28T10:00:00.000Z", campaign_ids=("cd-2",))
    kept = merged([asks, plain])
    assert [(request.campaign_ids, request.disable_schedule) for request in kept] == [
        (("cd-1",), True), (("cd-2",), False)]  # cd-2's schedule is not disabled: its entry did not ask


def test_the_same_campaign_in_two_entries_keeps_the_one_that_asked_for_its_schedule_disabled():
    plain = request("cd-1")
    asks = StopRequest(stream_id="st-1", campaign_type=CampaignType.SMS, request_id="r-1", source=Source.SQS,
                       received_at="2026-11-28T10:00:00.000Z", campaign_ids=("cd-1",), disable_schedule=True)
    (kept,) = unique_targets([StopTarget(plain, "cd-1", "acc-1"), StopTarget(asks, "cd-1", "acc-1")])
    assert kept.request.disable_schedule is True
