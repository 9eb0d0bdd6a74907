"""Kill switches and compliance triggers: alarms, stop-all, voice, dry runs and the audit trail."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from conftest import STREAM_ID

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
RESULT_SCHEMA = fastjsonschema.compile(
    json.loads((ROOT / "functions/stop_campaign/schemas/result_event_v1.json").read_text())
)
ALARM_MAP = json.loads((EVENTS / "alarm_map.json").read_text())


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def alarm(state: str = "ALARM", at: str = "2026-11-28T10:05:00.000+0000", name: str | None = None) -> dict[str, Any]:
    fired = copy.deepcopy(event("eventbridge_alarm_state_change.json"))
    fired["detail"]["state"].update(value=state, timestamp=at)
    if name:
        fired["detail"]["alarmName"] = name
        fired["resources"] = [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"]
    return fired


@pytest.fixture
def alarm_map(stack):
    stack.put_alarm_map(ALARM_MAP)
    return ALARM_MAP


def stopped_ids(kore) -> list[str]:
    return sorted(call.path.rsplit("/", 1)[1] for call in kore.stop_calls() if call.status == 200)


# -- alarms ----------------------------------------------------------------------------------------------


def test_alarm_into_alarm_stops_the_mapped_campaigns(invoke, stack, kore, alarm_map):
    invoke(alarm())
    assert stopped_ids(kore) == ["cd-1", "cd-2"]
    results = stack.drain_results()
    assert {r["campaignId"]: r["outcome"] for r in results} == {"cd-1": "stopped", "cd-2": "stopped"}
    for result in results:
        assert result["source"] == "alarm"
        assert result["alarmArn"] == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:checkout-sms-error-rate"
        assert result["requestedBy"] == "cloudwatch-alarm:checkout-sms-error-rate"
        assert result["reason"].startswith("CloudWatch alarm checkout-sms-error-rate entered ALARM: Threshold")
        assert result["requestedAt"] == "2026-11-28T10:05:00.000+0000"


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_alarm_leaving_alarm_is_ignored_not_an_error(invoke, stack, kore, alarm_map, state):
    response = invoke(alarm(state))
    assert kore.requests == []
    result = response["results"][0]
    assert (result["outcome"], result["error"], result["campaignId"]) == ("ignored", None, None)
    assert stack.drain_results() == [result]
    assert stack.drain_dead_letters() == []


def test_alarm_notification_through_sns_and_sqs_with_a_prefix_mapping_stops_all_active(invoke, stack, kore, alarm_map):
    assert invoke(event("sqs_sns_alarm_notification.json")) == {"batchItemFailures": []}
    assert stopped_ids(kore) == ["cd-1", "cd-2", "cd-3", "cd-4", "cd-5"]  # not the voice one, not the completed one
    results = stack.drain_results()
    assert {r["outcome"] for r in results} == {"stopped"} and len(results) == 5
    assert {r["alarmArn"] for r in results} == {
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:sms-stop-keyword-storm"
    }


def test_unmapped_alarm_is_rejected_into_the_dead_letter_queue(invoke, stack, kore, alarm_map):
    fired = alarm(name="billing-latency")
    invoke(fired)
    result = stack.drain_results()[0]
    assert (result["outcome"], result["error"]["code"]) == ("rejected", "unmapped_alarm")
    assert "'billing-latency' has no entry in the alarm map" in result["error"]["message"]
    assert result["alarmArn"].endswith(":alarm:billing-latency")
    assert json.loads(stack.drain_dead_letters()[0]["Body"]) == fired
    assert kore.requests == []


def test_duplicate_alarm_delivery_stops_nothing_twice_but_a_refire_stops_again(invoke, stack, kore, alarm_map):
    invoke(alarm(at="2026-11-28T10:05:00.000+0000"))
    invoke(alarm(at="2026-11-28T10:05:00.000+0000"))  # the same state change, delivered again
    assert len(kore.stop_calls()) == 2 and len(stack.drain_results()) == 2

    for campaign_id in ("cd-1", "cd-2"):  # someone restarted them; the alarm fires again later
        kore.add_campaign(STREAM_ID, campaign_id, campaign_type="sms", status="Active")
    kore.reset_log()
    invoke(alarm(at="2026-11-28T11:40:00.000+0000"))
    assert stopped_ids(kore) == ["cd-1", "cd-2"]
    assert {r["outcome"] for r in stack.drain_results()} == {"stopped"}


# -- stop-all --------------------------------------------------------------------------------------------


@pytest.fixture
def big_stream(kore):
    """105 stoppable SMS campaigns (two list pages) plus some that must be left alone."""
    statuses = ["Active", "Scheduled", "Rescheduled", "Preparing", "Paused"]
    for number in range(100):
        kore.add_campaign(STREAM_ID, f"cd-bulk-{number:03}", campaign_type="sms", status=statuses[number % 5])
    kore.add_campaign(STREAM_ID, "cd-ready", campaign_type="sms", status="Ready")
    kore.add_campaign(STREAM_ID, "cd-stopped", campaign_type="sms", status="Stopped")
    return kore


def test_all_active_spans_pages_and_a_failure_is_retried_for_that_campaign_only(
    invoke, stack, big_stream, sqs, monkeypatch
):
    kore = big_stream
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    monkeypatch.setenv("KORE_RATE_LIMIT", "1000/60")  # this test is about pages and retries, not the budget
    kore.inject(kind="stop_sms", campaign_id="cd-bulk-042", status=503, times=1)
    request = sqs({"streamId": STREAM_ID, "campaigns": "all-active", "requestId": "stop-all-1"})

    first = invoke(request)
    assert len(first["batchItemFailures"]) == 1  # back to the queue for the one that did not stop
    # pages 1 and 2, then the sweep from page 1 once the stops are done (the one left is not new)
    assert [call.body["page"] for call in kore.requests if call.kind == "list"] == [1, 2, 1]
    assert len(kore.stop_calls()) == 105
    results = stack.drain_results()
    assert len(results) == 104 and {r["outcome"] for r in results} == {"stopped"}
    assert kore.campaign_status(STREAM_ID, "cd-ready") == "Ready"

    kore.reset_log()
    request["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    assert invoke(request) == {"batchItemFailures": []}
    assert [call.path.rsplit("/", 1)[1] for call in kore.stop_calls()] == ["cd-bulk-042"]
    retried = stack.drain_results()
    assert [(r["campaignId"], r["outcome"], r["attempts"]) for r in retried] == [("cd-bulk-042", "stopped", 2)]


def test_all_active_with_nothing_to_stop_still_answers(invoke, stack, kore, sqs):
    invoke(sqs({"streamId": "st-empty", "campaigns": "all-active", "requestId": "empty-1"}))
    result = stack.drain_results()[0]
    assert (result["outcome"], result["campaignId"], result["streamId"]) == ("already_stopped", None, "st-empty")
    assert result["api"] == {"httpStatus": 200, "message": "Get All Campaigns listed no stoppable sms campaign"}


# -- voice -----------------------------------------------------------------------------------------------


def test_voice_campaigns_use_the_voice_stop_endpoint(invoke, stack, kore):
    response = invoke(event("direct_stop_voice.json"))
    call = kore.stop_calls()[0]
    assert (call.kind, call.path) == ("stop_voice", "/api/v2/public/st-1/campaign/trigger/cd-voice-1")
    assert call.query == {"accountId": "acc-1", "campaignType": "voice", "trigger": "stop"}
    result = response["results"][0]
    assert (result["outcome"], result["campaignType"]) == ("stopped", "voice")
    assert result["api"]["campaignInstanceId"].startswith("cid-")
    assert kore.campaign_status(STREAM_ID, "cd-voice-1") == "Stopped"


# -- dry runs --------------------------------------------------------------------------------------------


def test_dry_run_of_all_active_names_what_would_stop_and_changes_nothing(invoke, stack, kore):
    response = invoke(event("direct_stop_all_dry_run.json"))
    assert {call.kind for call in kore.requests} == {"list"}  # nothing that changes state
    assert sorted(r["campaignId"] for r in response["results"]) == ["cd-1", "cd-2", "cd-3", "cd-4", "cd-5"]
    assert {(r["outcome"], r["dryRun"]) for r in stack.drain_results()} == {("dry_run", True)}
    assert kore.campaign_status(STREAM_ID, "cd-1") == "Active"


def test_dry_run_through_an_alarm_map(invoke, stack, kore):
    stack.put_alarm_map({"checkout-sms-*": [{"streamId": STREAM_ID, "campaignIds": ["cd-1"], "dryRun": True}]})
    invoke(alarm())
    assert kore.requests == []
    assert [(r["campaignId"], r["outcome"]) for r in stack.drain_results()] == [("cd-1", "dry_run")]


# -- audit trail -----------------------------------------------------------------------------------------


def test_every_outcome_carries_who_why_when_and_validates_against_the_schema(invoke, stack, kore, sqs, alarm_map):
    audit = {"reason": "Complaint spike", "requestedBy": "compliance-monitor", "requestedAt": "2026-11-28T10:00:00Z"}
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1", **audit}))  # stopped
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-done", **audit}))  # already_stopped
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-2", "dryRun": True, **audit}))  # dry_run
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-nope", **audit}))  # failed
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "bad/id", **audit}))  # rejected
    invoke(alarm("OK"))  # ignored
    results = {r["outcome"]: r for r in stack.drain_results()}
    assert set(results) == {"stopped", "already_stopped", "dry_run", "failed", "rejected", "ignored"}
    for outcome, result in results.items():
        RESULT_SCHEMA(result)
        assert result["receivedAt"] and result["completedAt"] >= result["receivedAt"], outcome
        if outcome == "ignored":
            assert result["source"] == "alarm" and result["alarmArn"] and result["requestedBy"]
        elif outcome != "rejected":
            assert {k: result[k] for k in audit} == audit, outcome
    assert results["stopped"]["api"]["status"] == "Stopped" and results["stopped"]["timeToStopMs"] >= 0
    assert results["failed"]["api"]["httpStatus"] == 404


def test_an_alarm_that_failed_every_async_retry_ends_through_the_stop_queue(invoke, stack, kore, sqs, monkeypatch,
                                                                           alarm_map):
    from stop_campaign.service.processing import RetryLater

    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    kore.inject(kind="stop_sms", campaign_id="cd-2", status=503, times=100)
    fired = alarm()
    for _ in range(3):  # the invocation and Lambda's two asynchronous retries
        with pytest.raises(RetryLater):
            invoke(fired)
    assert [r["campaignId"] for r in stack.drain_results()] == ["cd-1"]  # stopped on the first try

    # Lambda's on-failure destination (the stop queue) delivers the invocation record; its last attempt:
    record = json.loads(json.loads((EVENTS / "sqs_lambda_failure_record.json").read_text())["Records"][0]["body"])
    record["requestPayload"] = fired
    assert invoke(sqs(record, receive_count=stack.max_receive_count)) == {"batchItemFailures": []}
    result = stack.drain_results()[0]
    assert (result["campaignId"], result["outcome"], result["source"]) == ("cd-2", "failed", "alarm")
    assert result["requestId"] == "alarm:checkout-sms-error-rate:2026-11-28T10:05:00.000+0000"
    dead = stack.drain_dead_letters()[0]
    assert dead["MessageAttributes"]["errorCode"]["StringValue"] == "api_unavailable"
    assert len(kore.stop_calls("cd-1")) == 1  # the campaign that stopped was not stopped again
