"""Holds' pure logic (domain/holds.py, and what alarms, planning and intake carry of them). No AWS, no sockets."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from stop_campaign.domain.alarms import requests_for_alarm
from stop_campaign.domain.holds import (
    ACTIVE,
    Scope,
    alarm_name_of,
    check_request_id,
    check_time,
    ended_by,
    held_entries,
    hold_from_item,
    item_fields,
    listing_row,
    scope_of,
    to_restop,
)
from stop_campaign.domain.intake import AlarmStateChange, parse_sqs_body
from stop_campaign.domain.models import (
    CampaignType,
    Continuation,
    Origin,
    Outcome,
    Producer,
    Progress,
    RequestRejected,
    ResultEvent,
    Source,
    StopRequest,
)
from stop_campaign.domain.planning import merged

ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:kill-checkout"
FIRED = AlarmStateChange(alarm_name="kill-checkout", alarm_arn=ARN, state="ALARM",
                         changed_at="2026-11-28T10:05:00.000+0000", reason=None, received_at="2026-11-28T10:05:01Z")


def alarm_requests(*entries: dict) -> list[StopRequest]:
    return requests_for_alarm(FIRED, {"kill-checkout": list(entries)})


def result(campaign_id: str, outcome: Outcome) -> ResultEvent:
    return ResultEvent(outcome=outcome, request_id="r", source=Source.ALARM, received_at="2026-11-28T10:05:01Z",
                       completed_at="2026-11-28T10:05:02Z", stream_id="st-1", campaign_id=campaign_id)


# -- what a hold holds -----------------------------------------------------------------------------------


def test_an_alarm_map_entry_asks_for_a_hold_with_a_boolean():
    held, plain = alarm_requests({"streamId": "st-1", "campaignIds": ["cd-1"], "hold": True},
                                 {"streamId": "st-2", "campaignIds": ["cd-2"]})
    assert (held.hold, plain.hold) == (True, False)
    with pytest.raises(RequestRejected, match="hold must be boolean"):
        alarm_requests({"streamId": "st-1", "campaignIds": ["cd-1"], "hold": "yes"})


def test_held_and_unheld_entries_of_one_stream_stay_two_requests():
    requests = merged(alarm_requests({"streamId": "st-1", "campaignIds": ["cd-1"], "hold": True},
                                     {"streamId": "st-1", "campaignIds": ["cd-2"]},
                                     {"streamId": "st-1", "campaignIds": ["cd-3"], "hold": True}))
    assert [(request.campaign_ids, request.hold) for request in requests] == [
        (("cd-1", "cd-3"), True), (("cd-2",), False)]


def test_explicit_ids_are_held_whatever_their_results():
    (request,) = alarm_requests({"streamId": "st-1", "campaignIds": ["cd-1", "cd-2"], "hold": True})
    assert held_entries(request, False, [result("cd-1", Outcome.FAILED)]) == {"st-1|sms||cd-1", "st-1|sms||cd-2"}


def test_all_active_holds_what_its_request_stopped_or_found_stopped():
    (request,) = alarm_requests({"streamId": "st-1", "campaigns": "all-active", "hold": True, "accountId": "acc-1"})
    results = [result("cd-1", Outcome.STOPPED), result("cd-2", Outcome.ALREADY_STOPPED),
               result("cd-3", Outcome.FAILED), replace(result("x", Outcome.ALREADY_STOPPED), campaign_id=None)]
    assert held_entries(request, True, results) == {"st-1|sms|acc-1|cd-1", "st-1|sms|acc-1|cd-2"}
    assert scope_of(request).encoded() == "st-1|sms|acc-1|all-active"
    # its continuation names the campaigns still to stop: those are held (and it is still an all-active hold)
    rest = replace(request, all_active=False, campaign_ids=("cd-7",))
    assert held_entries(rest, True, []) == {"st-1|sms|acc-1|cd-7"}
    assert scope_of(rest, all_active=True).selection == "all-active"


def test_only_held_campaigns_the_list_shows_running_are_stopped_again_in_list_order():
    assert to_restop({"cd-1", "cd-3", "cd-9"}, ["cd-3", "cd-2", "cd-1", "cd-3"]) == ["cd-3", "cd-1"]
    assert to_restop({"cd-1"}, []) == []
    assert to_restop(set(), ["cd-1"]) == []


# -- the check's names -----------------------------------------------------------------------------------


def test_a_check_is_named_by_the_schedules_time_else_by_its_interval_slot():
    now = datetime(2026, 11, 28, 10, 6, 42, tzinfo=UTC)
    assert check_time("2026-11-28T10:06:00Z", now, 60) == "2026-11-28T10:06:00Z"
    assert check_time(None, now, 60) == "2026-11-28T10:06:00Z"
    assert check_time(None, now.replace(second=5), 60) == check_time(None, now, 60)  # one slot: one name
    assert check_time(None, now, 300) == "2026-11-28T10:05:00Z"
    assert check_time("not a time", now, 60) == "2026-11-28T10:06:00Z"
    assert check_time("2026-11-28T12:06:00+02:00", now, 60) == "2026-11-28T10:06:00Z"


def test_a_checks_request_id_fits_the_request_id_limit():
    assert check_request_id("alarm:x:t", "2026-11-28T10:06:00Z") == "hold:alarm:x:t:2026-11-28T10:06:00Z"
    long_id = "alarm:" + "a" * 250
    named = check_request_id(long_id, "2026-11-28T10:06:00Z")
    assert len(named) <= 256 and named.startswith("hold:~") and named.endswith(":2026-11-28T10:06:00Z")
    assert named == check_request_id(long_id, "2026-11-28T10:06:00Z")
    assert named != check_request_id(long_id + "b", "2026-11-28T10:06:00Z")


def test_only_a_change_out_of_alarm_after_the_one_that_began_the_hold_ends_it():
    (request,) = alarm_requests({"streamId": "st-1", "campaignIds": ["cd-1"], "hold": True})
    hold = hold_from_item({"requestId": "h", **item_fields(request, "2026-11-28T10:05:02Z"),
                           "scopes": {"st-1|sms||ids"}, "campaigns": {"st-1|sms||cd-1"}})
    assert ended_by(hold, "2026-11-28T10:09:00.000+0000")
    assert ended_by(hold, "2026-11-28T10:05:00.000+0000")  # the same instant: not an earlier episode
    assert not ended_by(hold, "2026-11-28T09:59:00.000+0000")  # a late OK of an earlier episode
    assert not ended_by(hold, "2026-11-28T11:04:00+01:00")
    assert ended_by(hold, None) and ended_by(hold, "garbage")  # unknown times end it (DescribeAlarms agreed)
    assert ended_by(replace(hold, alarm_changed_at=None), "2026-11-28T09:00:00Z")


# -- items -----------------------------------------------------------------------------------------------


def test_a_hold_item_round_trips_and_lists():
    (request,) = alarm_requests({"streamId": "st-1", "campaignIds": ["cd-1", "cd-2"], "hold": True})
    request = replace(request, producer=Producer("alarm", "123456789012", "kill-switches"))
    fields = item_fields(request, "2026-11-28T10:05:02Z")
    assert fields == {"alarmName": "kill-checkout", "alarmArn": ARN, "alarmChangedAt": FIRED.changed_at,
                      "producer": json.dumps({"id": "123456789012", "kind": "alarm", "name": "kill-switches"}),
                      "createdAt": "2026-11-28T10:05:02Z", "status": ACTIVE}
    item = {"requestId": request.request_id, **fields, "scopes": {"st-1|sms||ids", "st-2|voice|acc-2|all-active"},
            "campaigns": {"st-1|sms||cd-1", "st-1|sms||cd-2", "st-2|voice|acc-2|cd-9"}}
    hold = hold_from_item(item)
    assert hold.producer == Producer("alarm", "123456789012", "kill-switches")
    assert hold.held_in(Scope("st-1", "sms", "")) == {"cd-1", "cd-2"}
    assert hold.held_in(Scope("st-2", "voice", "acc-2")) == {"cd-9"}
    assert hold.held_in(Scope("st-2", "sms", "acc-2")) == set()
    row = listing_row(hold, item | {"endedAt": "2026-11-28T11:00:00Z"})
    assert row["requestId"] == "alarm:kill-checkout:2026-11-28T10:05:00.000+0000"
    assert row["streams"] == [
        {"streamId": "st-1", "campaignType": "sms", "accountId": None, "selection": "ids",
         "campaignIds": ["cd-1", "cd-2"]},
        {"streamId": "st-2", "campaignType": "voice", "accountId": "acc-2", "selection": "all-active",
         "campaignIds": ["cd-9"]}]
    assert row["endedAt"] == "2026-11-28T11:00:00Z" and "endReason" not in row


def test_the_alarm_name_comes_from_its_arn_else_from_who_asked():
    (request,) = alarm_requests({"streamId": "st-1", "campaignIds": ["cd-1"], "hold": True})
    assert alarm_name_of(request) == "kill-checkout"
    assert alarm_name_of(replace(request, alarm_arn=None)) == "kill-checkout"


# -- what carries holdOf ---------------------------------------------------------------------------------


def test_a_restop_result_says_which_hold_it_keeps_and_others_do_not():
    plain = result("cd-1", Outcome.STOPPED)
    assert "holdOf" not in plain.as_message()
    restop = replace(plain, hold_of="alarm:x:t")
    assert restop.as_message()["holdOf"] == "alarm:x:t"
    assert restop.identity() == plain.identity()  # its own request id tells it apart


def test_a_continuation_carries_hold_and_hold_of():
    request = StopRequest(stream_id="st-1", campaign_type=CampaignType.SMS, request_id="hold:alarm:x:t:c",
                          source=Source.ALARM, received_at="2026-11-28T10:06:00Z", campaign_ids=("cd-1",),
                          hold=True, hold_of="alarm:x:t")
    message = Continuation(request, Progress(segment=2)).as_message()
    assert (message["request"]["hold"], message["request"]["holdOf"]) == (True, "alarm:x:t")
    origin = Origin(Source.SQS, "m-1", "2026-11-28T10:06:01Z")
    parsed = parse_sqs_body(json.dumps(message), origin).request  # type: ignore[union-attr]
    assert (parsed.hold, parsed.hold_of) == (True, "alarm:x:t")
    plain = Continuation(replace(request, hold=False, hold_of=None), Progress(segment=2)).as_message()
    assert "hold" not in plain["request"] and "holdOf" not in plain["request"]


def test_a_hold_check_back_as_a_failed_invocation_is_rejected_saying_the_next_check_redoes_it():
    record = {"version": "1.0", "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted"},
              "requestPayload": {"action": "hold-check", "at": "2026-11-28T10:06:00Z"}}
    with pytest.raises(RequestRejected, match="the next scheduled check does its work"):
        parse_sqs_body(json.dumps(record), Origin(Source.SQS, "m-1", "2026-11-28T10:07:00Z"))
