"""Requests bigger than one invocation or one rate window: paced, continued, summed up, never half done.

How we know nothing is lost: every stoppable campaign has exactly one successful stop call in the simulator's
log and exactly one result on the results topic, the request has one summary that counts those results,
and the dead-letter queue is empty. How we know continuing used no retry attempt: every message the poller
delivered was on its first receive, and no invocation handed a message back.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import fastjsonschema
import pytest
from conftest import CREDENTIALS, STREAM_ID

from devtools.aws_faults import FaultyAwsProxy
from devtools.poller import SqsEventSourceMapping
from stop_campaign import app

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "functions/stop_campaign/schemas"
RESULT_SCHEMA = fastjsonschema.compile(json.loads((SCHEMAS / "result_event_v1.json").read_text()))
SUMMARY_SCHEMA = fastjsonschema.compile(json.loads((SCHEMAS / "summary_event_v1.json").read_text()))


LONG_STREAM = "st-long"  # a stream of its own: only this file's campaigns are in it


def add_campaigns(kore, count: int, prefix: str = "cd-long") -> list[str]:
    ids = [f"{prefix}-{number:03}" for number in range(count)]
    for campaign_id in ids:
        kore.add_campaign(LONG_STREAM, campaign_id, campaign_type="sms", status="Active")
    return ids


def successful_stops(kore) -> Counter:
    return Counter(call.path.rsplit("/", 1)[1] for call in kore.stop_calls() if call.status == 200)


def test_a_stop_all_past_the_rate_budget_continues_and_ends_whole(stack, kore, cold_start, monkeypatch):
    # A scaled model of 60 a minute: 10 calls per 2 s, on the platform and in the function, 6 s invocations.
    monkeypatch.setenv("KORE_RATE_LIMIT", "10/2")
    monkeypatch.setenv("HTTP_READ_TIMEOUT_SECONDS", "2")
    kore.set_rate_limit(max_requests=10, window_seconds=2.0, retry_after=1)
    campaigns = add_campaigns(kore, 25)
    kore.reset_log()
    stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(
        {"streamId": LONG_STREAM, "campaigns": "all-active", "requestId": "stop-all-long"}))

    # A message handed back would come back only after 30 s: a continuation must not wait for that.
    mapping = SqsEventSourceMapping(stack, handler=app.lambda_handler, function_timeout_seconds=6,
                                    retry_delay_seconds=30)
    started = time.monotonic()
    reports = mapping.poll_until_empty(max_seconds=60)
    elapsed = time.monotonic() - started

    stopped = successful_stops(kore)
    expected = set(campaigns)
    assert set(stopped) == expected and set(stopped.values()) == {1}  # every one, once
    assert all(not report.failed_ids and not report.error for report in reports)
    assert all(count == 1 for report in reports for count in report.receive_counts.values())
    assert len(reports) >= 3  # 26 calls at 10 per 2 s: three windows at least
    assert elapsed < 25  # paced by the budget (about 6 s), not by visibility timeouts (30 s each)

    calls = kore.requests
    refused = sum(1 for call in calls if call.status == 429)
    assert refused <= 0.1 * len(calls)

    results = stack.drain_results()
    for result in results:
        RESULT_SCHEMA(result)
    assert Counter(result["campaignId"] for result in results) == dict.fromkeys(expected, 1)
    assert {result["requestId"] for result in results} == {"stop-all-long"}
    [summary] = stack.drain_summaries()
    SUMMARY_SCHEMA(summary)
    assert summary["outcomes"] == {"stopped": len(expected)} and summary["campaigns"] == len(expected)
    assert summary["invocations"] == len(reports) and summary["allActive"] is True
    assert summary["firstStopAt"] <= summary["lastStopAt"]
    assert stack.drain_dead_letters() == []
    # Every segment ended near its deadline (paced), and each one's results are kept for a resume all the same.
    kept = stack.client("dynamodb").query(
        TableName=stack.history_table_name, KeyConditionExpression="requestId = :id",
        ExpressionAttributeValues={":id": {"S": "stop-all-long"}}, ConsistentRead=True)["Items"]
    assert sorted(item["campaignId"]["S"] for item in kept if "campaignId" in item) == sorted(expected)


def test_a_request_whose_list_cannot_be_read_in_time_continues_as_all_active(invoke, stack, kore, monkeypatch):
    monkeypatch.setenv("KORE_RATE_LIMIT", "1/30")
    kore.add_campaign(STREAM_ID, "cd-late", campaign_type="sms", status="Active")
    invoke({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "spends-the-budget"})
    response = invoke({"streamId": STREAM_ID, "campaigns": "all-active", "requestId": "all-later"})
    assert response == {"results": []}  # nothing ended yet: nothing reported, nothing failed
    [message] = stack.client("sqs").receive_message(
        QueueUrl=stack.stop_queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=0, VisibilityTimeout=0,
        AttributeNames=["All"],
    ).get("Messages", []) or [None]
    # delayed until the budget allows: not visible yet
    assert message is None
    delayed = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.stop_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert delayed["ApproximateNumberOfMessagesDelayed"] == "1"
    assert [call.kind for call in kore.requests] == ["stop_sms"]  # no list call was even tried


def test_an_all_active_that_found_nothing_is_the_same_answer_when_delivered_again(invoke, stack, kore, sqs):
    request = sqs({"streamId": "st-empty", "campaigns": "all-active", "requestId": "empty-1"})
    first = invoke(request)
    second = invoke(request)  # Powertools replays the stored list: it used to come back as None
    assert first["batchItemFailures"] == [] and second["batchItemFailures"] == []
    [result] = stack.drain_results()  # one result, not one per delivery
    assert (result["outcome"], result["campaignId"]) == ("already_stopped", None)
    assert stack.drain_dead_letters() == []


def test_an_alarm_with_a_dry_run_and_a_real_entry_for_one_campaign_stops_it(invoke, stack, kore):
    stack.put_alarm_map({"sms-complaints": [
        {"streamId": STREAM_ID, "campaignIds": ["cd-2"], "dryRun": True},
        {"streamId": STREAM_ID, "campaignId": "cd-2"},
    ]})
    fired = json.loads((ROOT / "events/eventbridge_alarm_state_change.json").read_text())
    fired["detail"]["alarmName"] = "sms-complaints"
    invoke(fired)
    assert kore.campaign_status(STREAM_ID, "cd-2") == "Stopped"
    results = stack.drain_results()
    assert sorted(result["outcome"] for result in results) == ["dry_run", "stopped"]
    summaries = stack.drain_summaries()
    assert sorted(json.dumps(s["outcomes"]) for s in summaries) == ['{"dry_run": 1}', '{"stopped": 1}']


def test_an_unexpected_error_in_a_fan_out_leaves_no_stop_running_behind(
    moto_server, function_env, cold_start, stack, kore, monkeypatch
):
    campaigns = add_campaigns(kore, 8, "cd-fan")
    kore.latency = 0.4  # stops in flight while another campaign's idempotency write fails
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with FaultyAwsProxy(moto_server.endpoint_url, fault_rate=0.5, operations=frozenset({"PutItem"}), seed=3) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        from devtools.lambda_runtime import LocalLambdaContext

        with pytest.raises(Exception) as raised:  # whatever the persistence layer raises
            app.lambda_handler({"streamId": LONG_STREAM, "campaignIds": campaigns, "requestId": "fan-1"},
                               LocalLambdaContext(timeout_seconds=30))
        returned = time.monotonic()
        assert proxy.injected
    assert "StopError" not in type(raised.value).__name__
    calls_then = len(kore.requests)
    time.sleep(1.0)
    assert len(kore.requests) == calls_then  # nothing finished inside a later invocation
    assert all(call.at <= returned for call in kore.requests)


def test_one_accounts_spent_budget_does_not_hold_back_another_accounts_stops(invoke, stack, kore, monkeypatch):
    monkeypatch.setenv("KORE_RATE_LIMIT", "2/60")
    monkeypatch.setenv("STOP_CONCURRENCY", "1")  # in map order: the first account runs dry before the second starts
    second_secret = "second-account-secret-0123456789abcdef01"
    kore.add_app(client_id="cs-second", client_secret=second_secret, account_id="acc-second")
    stack.put_secret({**CREDENTIALS, "streams": {
        "st-second": {"clientId": "cs-second", "clientSecret": second_secret, "accountId": "acc-second"}}})
    for stream, campaign_id in (("st-first", "cd-f1"), ("st-first", "cd-f2"), ("st-first", "cd-f3"),
                                ("st-second", "cd-s1"), ("st-second", "cd-s2")):
        kore.add_campaign(stream, campaign_id, campaign_type="sms", status="Active")
    stack.put_alarm_map({"two-accounts": [
        {"streamId": "st-first", "campaignIds": ["cd-f1", "cd-f2", "cd-f3"]},
        {"streamId": "st-second", "campaignIds": ["cd-s1", "cd-s2"]},
    ]})
    fired = json.loads((ROOT / "events/eventbridge_alarm_state_change.json").read_text())
    fired["detail"]["alarmName"] = "two-accounts"
    invoke(fired)
    stopped = successful_stops(kore)
    assert {"cd-s1", "cd-s2"} <= set(stopped)  # the second account's budget was its own
    assert sum(1 for campaign_id in stopped if campaign_id.startswith("cd-f")) == 2  # the first's allowed two
    delayed = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.stop_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert delayed["ApproximateNumberOfMessagesDelayed"] == "1"  # the first account's third stop continues
