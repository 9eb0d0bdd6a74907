"""Request expiry through the handler (GitHub issue 17): notAfter and MAX_REQUEST_AGE_SECONDS, over moto and the
Kore.ai simulator. How we know every request ended: the results topic and the dead-letter queue are drained and
asserted whole, and the simulator's log shows what was called (nothing, for an expired request)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import STREAM_ID

from devtools.lambda_runtime import LocalLambdaContext
from devtools.poller import SqsEventSourceMapping
from stop_campaign import app


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_ms_ago(**delta: float) -> str:
    return str(int((datetime.now(UTC) - timedelta(**delta)).timestamp() * 1000))


def attributes_of(letter: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in letter.get("MessageAttributes", {}).items()}


def test_a_request_past_its_not_after_is_rejected_without_a_call_and_dead_lettered(invoke, stack, kore, sqs):
    body = {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "late-1", "notAfter": ago(minutes=1)}
    request = sqs(body)
    assert invoke(request) == {"batchItemFailures": []}
    [result] = stack.drain_results()
    assert (result["outcome"], result["error"]["code"], result["campaignId"]) == ("rejected", "expired", "cd-1")
    assert "notAfter" in result["error"]["message"]
    assert kore.requests == []  # no token, no call
    [letter] = stack.drain_dead_letters()
    assert json.loads(letter["Body"]) == body
    assert attributes_of(letter)["errorCode"] == "expired"
    assert attributes_of(letter)["originalSentTimestamp"] == request["Records"][0]["attributes"]["SentTimestamp"]


def test_a_request_older_than_the_max_age_is_rejected(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("MAX_REQUEST_AGE_SECONDS", "3600")
    old = {"streamId": STREAM_ID, "campaigns": "all-active", "requestId": "old-1", "requestedAt": ago(hours=2)}
    invoke(sqs(old))
    waited = sqs({"streamId": STREAM_ID, "campaignId": "cd-2", "requestId": "old-2"})  # no requestedAt
    waited["Records"][0]["attributes"]["SentTimestamp"] = epoch_ms_ago(hours=2)  # two hours in the queue
    invoke(waited)
    fresh = {"streamId": STREAM_ID, "campaignId": "cd-3", "requestId": "fresh-1", "requestedAt": ago(minutes=59)}
    invoke(sqs(fresh))
    results = {result["requestId"]: result for result in stack.drain_results()}
    assert {name: (r["outcome"], (r["error"] or {}).get("code")) for name, r in results.items()} == {
        "old-1": ("rejected", "expired"), "old-2": ("rejected", "expired"), "fresh-1": ("stopped", None),
    }
    assert "from requestedAt" in results["old-1"]["error"]["message"]
    assert results["old-1"]["campaignId"] is None  # the whole all-active: nothing listed, nothing stopped
    assert "from sent" in results["old-2"]["error"]["message"]
    assert [call.kind for call in kore.requests] == ["stop_sms"]  # fresh-1's stop only: no list, no other stop
    assert len(stack.drain_dead_letters()) == 2


def test_an_old_alarm_state_change_stops_nothing(invoke, stack, kore, monkeypatch):
    monkeypatch.setenv("MAX_REQUEST_AGE_SECONDS", "3600")
    stack.put_alarm_map({"kill-sms": [{"streamId": STREAM_ID, "campaigns": "all-active"}]})
    changed = ago(hours=3)
    event = {"version": "0", "id": "e-old-alarm", "detail-type": "CloudWatch Alarm State Change",
             "source": "aws.cloudwatch", "account": "123456789012", "time": changed, "region": "us-east-1",
             "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:kill-sms"],
             "detail": {"alarmName": "kill-sms", "state": {"value": "ALARM", "timestamp": changed, "reason": "r"}}}
    [result] = invoke(event)["results"]
    assert (result["outcome"], result["error"]["code"], result["source"]) == ("rejected", "expired", "alarm")
    assert result["requestId"] == f"alarm:kill-sms:{changed}"
    assert kore.requests == []
    assert len(stack.drain_dead_letters()) == 1


def test_a_retry_of_a_request_taken_up_in_time_is_not_judged_again(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("MAX_REQUEST_AGE_SECONDS", "3600")
    body = {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "retried-1", "requestedAt": ago(hours=2)}
    invoke(sqs(body, receive_count=2))  # its first delivery was served (and handed back) while it was young
    [result] = stack.drain_results()
    assert result["outcome"] == "stopped"


def test_a_redriven_dead_letter_is_judged_by_its_original_age(stack, kore, cold_start, sqs, monkeypatch):
    """The dead letter keeps when its request was first sent (originalSentTimestamp); the redriven copy, sent now,
    is as old as that: with the original two hours old and a one-hour limit, it is expired and stops nothing."""
    monkeypatch.setenv("MAX_REQUEST_AGE_SECONDS", "3600")
    first = sqs({"streamId": STREAM_ID, "campaignId": "cd-gone", "requestId": "redriven-1"}, receive_count=2)
    first["Records"][0]["attributes"]["SentTimestamp"] = epoch_ms_ago(hours=2)  # taken up in time, then retried
    app.lambda_handler(first, LocalLambdaContext(timeout_seconds=30))
    [failed] = stack.drain_results()
    assert failed["outcome"] == "failed"  # no such campaign: dead-lettered
    [letter] = stack.drain_dead_letters()
    kept = attributes_of(letter)
    assert kept["originalSentTimestamp"] == first["Records"][0]["attributes"]["SentTimestamp"]

    kore.add_campaign(STREAM_ID, "cd-gone", campaign_type="sms", status="Active")  # the cause, fixed
    kore.reset_log()
    carried = {"originalSentTimestamp": kept["originalSentTimestamp"], "redrivenFrom": letter["MessageId"]}
    stack.client("sqs").send_message(  # as `campaign-stop dlq redrive` sends it: a new message, sent now
        QueueUrl=stack.stop_queue_url, MessageBody=letter["Body"],
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in carried.items()},
    )
    SqsEventSourceMapping(stack, handler=app.lambda_handler, retry_delay_seconds=1).poll_until_empty(max_seconds=30)
    [again] = stack.drain_results()
    assert (again["outcome"], again["error"]["code"], again["redrivenFrom"]) == (
        "rejected", "expired", letter["MessageId"])
    assert kore.stop_calls() == [] and kore.campaign_status(STREAM_ID, "cd-gone") == "Active"
    [letter_again] = stack.drain_dead_letters()
    assert attributes_of(letter_again)["originalSentTimestamp"] == kept["originalSentTimestamp"]


def test_the_continuation_of_an_accepted_request_is_not_judged(stack, kore, cold_start, monkeypatch):
    """Accepted while in time, then continued (the rate budget): the rest is served even once the request is older
    than the limit. The limit is lowered between the two instead of waiting an hour: the request is then too old."""
    monkeypatch.setenv("KORE_RATE_LIMIT", "1/8")
    request = {"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2"], "requestId": "continued-1",
               "requestedAt": ago(minutes=50)}
    app.lambda_handler(request, LocalLambdaContext(timeout_seconds=6))  # one stop now, the other handed over
    [first] = stack.drain_results()
    sqs = stack.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.stop_queue_url, WaitTimeSeconds=15,
                                   MessageAttributeNames=["All"], AttributeNames=["All"]).get("Messages", [])
    [continuation] = messages
    assert "continuation" in json.loads(continuation["Body"])
    sqs.change_message_visibility(QueueUrl=stack.stop_queue_url, ReceiptHandle=continuation["ReceiptHandle"],
                                  VisibilityTimeout=0)

    monkeypatch.setenv("MAX_REQUEST_AGE_SECONDS", "1800")  # the request (50 minutes old) is now past the limit
    cold_start()
    SqsEventSourceMapping(stack, handler=app.lambda_handler, retry_delay_seconds=1).poll_until_empty(max_seconds=30)
    results = [first, *stack.drain_results()]
    assert sorted((r["campaignId"], r["outcome"]) for r in results) == [("cd-1", "stopped"), ("cd-2", "stopped")]
    assert stack.drain_dead_letters() == []
    app.lambda_handler({**request, "requestId": "not-continued"}, LocalLambdaContext(timeout_seconds=6))
    [fresh] = stack.drain_results()  # the same request sent anew now is judged: too old
    assert (fresh["outcome"], fresh["error"]["code"]) == ("rejected", "expired")
