"""disableSchedule and the request history, through the real handler: moto's server as AWS, the Kore.ai simulator.

How we know every request ended: each test reads back what SNS delivered (the results subscriber queue) and the
dead-letter queue; the simulator's log says exactly which calls were made.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from conftest import ACCOUNT_ID, STREAM_ID

from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack

SCHEDULE_PATH = f"/campaign/api/v2/public/{STREAM_ID}/campaign/schedule"


@pytest.fixture
def kore_campaigns() -> list[tuple[str, str, str, str]]:
    return [(STREAM_ID, f"cd-{number}", "sms", "Active") for number in range(1, 4)]


@pytest.fixture
def recurring(kore: KoreSimulator) -> KoreSimulator:
    """Daily campaigns: cd-daily (sms), cd-daily-voice (voice), each named, each with an enabled recurrence."""
    kore.add_campaign(STREAM_ID, "cd-daily", name="Daily reminder", scheduling=True, recurrence=True)
    kore.add_campaign(STREAM_ID, "cd-daily-voice", "voice", name="Daily call", scheduling=True, recurrence=True)
    return kore


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def calls(kore: KoreSimulator) -> list[tuple[str | None, int]]:
    return [(request.kind, request.status) for request in kore.requests]


def history_items(stack: LocalStack, request_id: str) -> list[dict[str, Any]]:
    return stack.client("dynamodb").query(
        TableName=stack.history_table_name, KeyConditionExpression="requestId = :id",
        ExpressionAttributeValues={":id": {"S": request_id}},
    )["Items"]


# -- disableSchedule ----------------------------------------------------------------------------------------


def test_disable_schedule_stops_then_disables_by_name_and_the_next_recurrence_does_not_restart(
        invoke, sqs, stack, recurring):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-daily", "requestId": "req-for-good",
                "disableSchedule": True}))

    # The stop first; the name from the status call (a stop by id does not say it); then the schedule, by name.
    assert calls(recurring) == [("stop_sms", 200), ("status", 200), ("schedule", 200)]
    schedule_call = recurring.requests[-1]
    assert schedule_call.path == SCHEDULE_PATH
    assert schedule_call.query == {"enableSchedule": "false", "campaignName": "Daily reminder"}
    assert schedule_call.body == {} and schedule_call.headers["accountid"] == ACCOUNT_ID
    assert recurring.stop_calls()[0].at < recurring.requests[1].at  # never before the stop
    result = only(stack.drain_results())
    assert result["outcome"] == "stopped"
    assert result["schedule"] == {"disabled": True, "campaignName": "Daily reminder"}
    assert result["timeToStopMs"] is not None

    assert not recurring.fire_recurrence(STREAM_ID, "cd-daily")
    assert recurring.campaign_status(STREAM_ID, "cd-daily") == "Stopped"
    assert stack.drain_dead_letters() == []


def test_without_disable_schedule_no_schedule_call_and_the_recurrence_restarts_it(invoke, sqs, stack, recurring):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-daily", "requestId": "req-until-tomorrow"}))

    assert calls(recurring) == [("stop_sms", 200)]  # never disabled unasked
    assert "schedule" not in only(stack.drain_results())
    assert recurring.fire_recurrence(STREAM_ID, "cd-daily")
    assert recurring.campaign_status(STREAM_ID, "cd-daily") == "Active"


def test_an_already_stopped_campaign_gets_its_schedule_disabled_with_the_name_its_status_check_read(
        invoke, sqs, stack, recurring):
    recurring.add_campaign(STREAM_ID, "cd-daily", status="Stopped", name="Daily reminder", scheduling=True,
                           recurrence=True)
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-daily", "disableSchedule": True}))

    # The refused stop's status check already named it: no second status call.
    assert calls(recurring) == [("stop_sms", 400), ("status", 200), ("schedule", 200)]
    result = only(stack.drain_results())
    assert (result["outcome"], result["schedule"]["disabled"]) == ("already_stopped", True)
    assert not recurring.fire_recurrence(STREAM_ID, "cd-daily")


def test_all_active_takes_the_names_from_the_list_rows(invoke, sqs, stack, recurring):
    invoke(sqs({"streamId": STREAM_ID, "campaigns": "all-active", "requestId": "req-all-for-good",
                "disableSchedule": True}))

    kinds = [kind for kind, _ in calls(recurring)]
    assert kinds.count("status") == 0  # every name came with its row
    assert sorted(request.query["campaignName"] for request in recurring.requests if request.kind == "schedule") \
        == ["Daily reminder", "cd-1", "cd-2", "cd-3"]
    results = stack.drain_results()
    assert {result["campaignId"]: result["schedule"]["disabled"] for result in results} == {
        "cd-1": True, "cd-2": True, "cd-3": True, "cd-daily": True}
    assert all(result["outcome"] == "stopped" for result in results)


def test_voice_campaigns_are_disabled_by_the_same_call(invoke, sqs, stack, recurring):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-daily-voice", "campaignType": "voice",
                "disableSchedule": True}))
    assert calls(recurring) == [("stop_voice", 200), ("status", 200), ("schedule", 200)]
    assert only(stack.drain_results())["schedule"] == {"disabled": True, "campaignName": "Daily call"}


def test_a_refused_disable_never_undoes_the_stop_nor_fails_the_request(invoke, sqs, stack, recurring):
    recurring.inject("schedule", status=412)
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-daily", "disableSchedule": True}))

    result = only(stack.drain_results())
    assert result["outcome"] == "stopped" and result["error"] is None
    assert result["schedule"]["disabled"] is False
    assert result["schedule"]["error"]["code"] == "schedule_refused"
    assert recurring.campaign_status(STREAM_ID, "cd-daily") == "Stopped"
    assert stack.drain_dead_letters() == []  # a stopped campaign is not a dead letter


def test_an_unreachable_schedule_endpoint_is_said_retryable_and_the_stop_stands(invoke, sqs, stack, recurring,
                                                                                 monkeypatch):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    recurring.inject("schedule", status=503)
    assert invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-daily", "disableSchedule": True})) == {
        "batchItemFailures": []}
    schedule = only(stack.drain_results())["schedule"]
    assert schedule["disabled"] is False and schedule["error"]["retryable"] is True


def test_a_dry_run_disables_nothing(invoke, sqs, stack, recurring):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-daily", "dryRun": True, "disableSchedule": True}))
    assert calls(recurring) == []
    result = only(stack.drain_results())
    assert result["outcome"] == "dry_run" and "schedule" not in result


def test_a_redelivery_calls_the_schedule_endpoint_no_more(invoke, sqs, stack, recurring):
    body = {"streamId": STREAM_ID, "campaignId": "cd-daily", "requestId": "req-twice", "disableSchedule": True}
    invoke(sqs(body, message_ids=["m-1"]))
    invoke(sqs(body, message_ids=["m-1"], receive_count=2))
    assert [kind for kind, _ in calls(recurring)].count("schedule") == 1
    assert len(stack.drain_results()) == 1


def test_an_alarm_map_entry_with_disable_schedule_disables_only_its_campaigns(invoke, stack, recurring):
    stack.put_alarm_map({"kill-daily": [
        {"streamId": STREAM_ID, "campaignIds": ["cd-daily"], "disableSchedule": True},
        {"streamId": STREAM_ID, "campaignIds": ["cd-1"]},
    ]})
    invoke({"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
            "id": "evt-kill-daily", "time": "2026-11-28T10:00:00Z", "account": "123456789012",
            # the stack's own alarm: its default producer policy takes no other account's
            "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:kill-daily"],
            "detail": {"alarmName": "kill-daily", "state": {"value": "ALARM", "timestamp": "2026-11-28T10:00:00Z"}}})
    results = {result["campaignId"]: result for result in stack.drain_results()}
    assert results["cd-daily"]["schedule"]["disabled"] is True
    assert "schedule" not in results["cd-1"]
    assert [request.query["campaignName"] for request in recurring.requests if request.kind == "schedule"] == [
        "Daily reminder"]


# -- request history ----------------------------------------------------------------------------------------


def test_every_result_is_kept_in_the_history_after_it_is_published(invoke, sqs, stack, kore):
    invoke(sqs({"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2", "cd-404"], "requestId": "req-kept",
                "requestedBy": "ops"}))
    published = {result["campaignId"]: result for result in stack.drain_results()}

    items = history_items(stack, "req-kept")
    kept = {json.loads(item["result"]["S"])["campaignId"]: json.loads(item["result"]["S"])
            for item in items if item["entry"]["S"].startswith("result#")}
    assert kept == published  # the events exactly as published, one item per campaign
    request = only([item for item in items if item["entry"]["S"] == "request"])
    assert (request["count_stopped"]["N"], request["count_failed"]["N"]) == ("2", "1")
    assert request["source"]["S"] == "sqs" and request["requestedBy"]["S"] == "ops"
    assert published["cd-1"]["producer"] and json.loads(request["producer"]["S"]) == published["cd-1"]["producer"]
    assert request["day"]["S"] == request["at"]["S"][:10]
    assert json.loads(request["summary"]["S"])["outcomes"] == {"stopped": 2, "failed": 1}
    assert int(request["expiresAt"]["N"]) - int(items[0]["expiresAt"]["N"]) < 60
    # "which campaigns did request X stop": one query on the partition
    stopped = stack.client("dynamodb").query(
        TableName=stack.history_table_name,
        KeyConditionExpression="requestId = :id AND begins_with(entry, :results)",
        FilterExpression="outcome = :stopped",
        ExpressionAttributeValues={":id": {"S": "req-kept"}, ":results": {"S": "result#"},
                                   ":stopped": {"S": "stopped"}},
    )["Items"]
    assert sorted(item["campaignId"]["S"] for item in stopped) == ["cd-1", "cd-2"]


def test_history_is_kept_for_request_history_days(invoke, sqs, stack, monkeypatch):
    monkeypatch.setenv("REQUEST_HISTORY_DAYS", "3")
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "req-3-days"}))
    for item in history_items(stack, "req-3-days"):
        assert abs(int(item["expiresAt"]["N"]) - (time.time() + 3 * 86400)) < 120


def test_the_recent_index_lists_requests_newest_first(invoke, sqs, stack):
    for number in (1, 2, 3):
        invoke(sqs({"streamId": STREAM_ID, "campaignId": f"cd-{number}", "requestId": f"req-recent-{number}"}))
    request = next(item for item in history_items(stack, "req-recent-1") if item["entry"]["S"] == "request")
    listed = stack.client("dynamodb").query(
        TableName=stack.history_table_name, IndexName="recent", KeyConditionExpression="#day = :day",
        ExpressionAttributeNames={"#day": "day"}, ExpressionAttributeValues={":day": request["day"]},
        ScanIndexForward=False,
    )["Items"]
    assert [item["requestId"]["S"] for item in listed] == ["req-recent-3", "req-recent-2", "req-recent-1"]


def test_a_history_table_that_cannot_be_written_loses_no_result(invoke, sqs, stack, monkeypatch, kore):
    monkeypatch.setenv("REQUEST_HISTORY_TABLE", "no-such-table")
    assert invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "req-no-history"})) == {
        "batchItemFailures": []}
    result = only(stack.drain_results())
    assert (result["outcome"], result["requestId"]) == ("stopped", "req-no-history")
    assert stack.drain_dead_letters() == []
    assert len(kore.stop_calls()) == 1


def test_a_rejected_request_is_in_the_history_too(invoke, sqs, stack):
    invoke(sqs({"streamId": "bad id!", "campaignId": "cd-1", "requestId": "req-bad"}))
    only(stack.drain_results())
    items = history_items(stack, "req-bad")
    assert only([item for item in items if item["entry"]["S"] == "request"])["count_rejected"]["N"] == "1"
    assert len(stack.drain_dead_letters()) == 1
