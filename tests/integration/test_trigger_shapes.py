"""Every way a trigger can reach the handler (GitHub issue 9), over moto and the Kore.ai simulator.

One alarm state change (checkout-sms-error-rate into ALARM at 10:05, mapped to cd-1 and cd-2 in
events/alarm_map.json) arrives four ways: an EventBridge rule event, an SNS notification in the stop queue, SNS
invoking the function, and the alarm's own Lambda action. Each stops the campaigns exactly once; the same change
again, by any way, stops nothing. Then: what SNS and alarm actions do on failure, shapes the handler does not
know (never a raise, always a result), odd SQS records, and FIFO batches that fail as a whole.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from conftest import STREAM_ID

from stop_campaign.service.processing import RetryLater

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
RESULT_SCHEMA = fastjsonschema.compile(
    json.loads((ROOT / "functions/stop_campaign/schemas/result_event_v1.json").read_text())
)
ALARM_MAP = json.loads((EVENTS / "alarm_map.json").read_text())
ALARM_ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:checkout-sms-error-rate"
FIRED_AT = "2026-11-28T10:05:00.000+0000"
SAME_CHANGE = f"alarm:checkout-sms-error-rate:{FIRED_AT}"
SNS_STOP_MESSAGE_ID = "d4e5f607-1829-4b0c-9d1e-2f3a4b5c6d7e"
WAYS = ["eventbridge-rule", "sns-in-sqs", "sns-direct", "alarm-lambda-action"]


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def valid(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for result in results:
        RESULT_SCHEMA(result)
    return results


def results_of(stack) -> list[dict[str, Any]]:
    return valid(stack.drain_results())


def stopped_ids(kore) -> list[str]:
    return sorted(call.path.rsplit("/", 1)[1] for call in kore.stop_calls() if call.status == 200)


@pytest.fixture
def alarm_map(stack):
    stack.put_alarm_map(ALARM_MAP)
    return ALARM_MAP


def alarm_by(way: str, sqs, *, state: str = "ALARM", at: str = FIRED_AT, name: str | None = None) -> dict[str, Any]:
    """The alarm state change as ``way`` delivers it (the samples are all the same change: 10:05, into ALARM)."""
    name = name or "checkout-sms-error-rate"
    arn = ALARM_ARN.replace("checkout-sms-error-rate", name)
    if way == "eventbridge-rule":
        fired = event("eventbridge_alarm_state_change.json")
        fired["detail"].update(alarmName=name)
        fired["detail"]["state"].update(value=state, timestamp=at)
        fired["resources"] = [arn]
        return fired
    if way == "alarm-lambda-action":
        fired = event("alarm_lambda_action_metric.json")
        fired["alarmArn"] = arn
        fired["alarmData"].update(alarmName=name)
        fired["alarmData"]["state"].update(value=state, timestamp=at)
        return fired
    fired = event("sns_direct_alarm_notification.json")
    notification = fired["Records"][0]["Sns"]
    message = json.loads(notification["Message"])
    message.update(AlarmName=name, AlarmArn=arn, NewStateValue=state, StateChangeTime=at)
    notification["Message"] = json.dumps(message)
    if way == "sns-direct":
        return fired
    assert way == "sns-in-sqs"
    return sqs(notification)  # an SNS subscription of the stop queue (raw delivery off) delivers this body


# -- one alarm, four ways ------------------------------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_each_way_stops_the_mapped_campaigns_exactly_once(invoke, stack, kore, sqs, alarm_map, way):
    response = invoke(alarm_by(way, sqs))
    if way == "sns-in-sqs":
        assert response == {"batchItemFailures": []}
    else:
        assert {r["outcome"] for r in valid(response["results"])} == {"stopped"}
    assert stopped_ids(kore) == ["cd-1", "cd-2"] and len(kore.stop_calls()) == 2
    results = results_of(stack)
    assert sorted(r["campaignId"] for r in results) == ["cd-1", "cd-2"]
    for result in results:
        assert (result["outcome"], result["source"], result["requestId"]) == ("stopped", "alarm", SAME_CHANGE)
        assert (result["alarmArn"], result["requestedAt"]) == (ALARM_ARN, FIRED_AT)
        assert result["requestedBy"] == "cloudwatch-alarm:checkout-sms-error-rate"
        assert result["reason"].startswith("CloudWatch alarm checkout-sms-error-rate entered ALARM: Threshold")
    summary = stack.drain_summaries()
    assert [(s["requestId"], s["campaigns"], s["outcomes"]) for s in summary] == [(SAME_CHANGE, 2, {"stopped": 2})]
    assert stack.drain_dead_letters() == []

    kore.reset_log()
    invoke(alarm_by(way, sqs))  # the same state change, delivered again the same way
    assert kore.stop_calls() == []
    assert results_of(stack) == [] and stack.drain_summaries() == []


def test_the_same_state_change_by_every_way_stops_once(invoke, stack, kore, sqs, alarm_map):
    for way in WAYS:
        invoke(alarm_by(way, sqs))
    assert len(kore.stop_calls("cd-1")) == 1 and len(kore.stop_calls("cd-2")) == 1
    assert sorted((r["campaignId"], r["outcome"]) for r in results_of(stack)) == [
        ("cd-1", "stopped"), ("cd-2", "stopped")
    ]
    assert len(stack.drain_summaries()) == 1
    assert stack.drain_dead_letters() == []


@pytest.mark.parametrize("way", WAYS)
def test_the_alarm_firing_again_later_stops_again(invoke, stack, kore, sqs, alarm_map, way):
    invoke(alarm_by(way, sqs))
    for campaign_id in ("cd-1", "cd-2"):  # restarted; the alarm fires again later
        kore.add_campaign(STREAM_ID, campaign_id, campaign_type="sms", status="Active")
    kore.reset_log()
    stack.drain_results()
    invoke(alarm_by(way, sqs, at="2026-11-28T11:40:00.000+0000"))
    assert stopped_ids(kore) == ["cd-1", "cd-2"]
    assert {r["requestId"] for r in results_of(stack)} == {"alarm:checkout-sms-error-rate:2026-11-28T11:40:00.000+0000"}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_a_change_out_of_alarm_is_ignored_by_every_way(invoke, stack, kore, sqs, alarm_map, way, state):
    invoke(alarm_by(way, sqs, state=state, at="2026-11-28T10:20:00.000+0000"))
    assert kore.requests == []
    result = results_of(stack)
    assert [(r["outcome"], r["source"], r["campaignId"], r["error"]) for r in result] == [
        ("ignored", "alarm", None, None)
    ]
    assert result[0]["requestId"] == "alarm:checkout-sms-error-rate:2026-11-28T10:20:00.000+0000"
    assert stack.drain_dead_letters() == []


def test_eventbridge_ok_sample_is_ignored(invoke, stack, kore, alarm_map):
    assert [r["outcome"] for r in valid(invoke(event("eventbridge_alarm_ok.json"))["results"])] == ["ignored"]
    assert kore.requests == []


@pytest.mark.parametrize(
    ("event_file", "name"),
    [("alarm_lambda_action_metric_math.json", "sms-opt-out-ratio"),
     ("alarm_lambda_action_composite.json", "sms-delivery-health")],
)
def test_metric_math_and_composite_alarm_actions_stop_through_a_prefix_entry(invoke, stack, kore, alarm_map,
                                                                            event_file, name):
    response = invoke(event(event_file))
    assert stopped_ids(kore) == ["cd-1", "cd-2", "cd-3", "cd-4", "cd-5"]  # "sms-*": all-active SMS campaigns
    assert len(valid(response["results"])) == 5
    results = results_of(stack)
    assert {(r["outcome"], r["source"], r["requestedBy"]) for r in results} == {
        ("stopped", "alarm", f"cloudwatch-alarm:{name}")
    }
    assert {r["alarmArn"] for r in results} == {f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"}


# -- SNS invoking the function: stop requests, failures, dead letters ------------------------------------


def test_sns_direct_stop_request_stops_once_with_the_sns_message_id(invoke, stack, kore):
    response = invoke(event("sns_direct_stop_request.json"))
    assert [(r["campaignId"], r["outcome"]) for r in valid(response["results"])] == [("cd-3", "stopped")]
    result = results_of(stack)[0]
    assert (result["source"], result["requestId"], result["requestedBy"]) == (
        "direct", SNS_STOP_MESSAGE_ID, "carrier-monitor"
    )
    kore.reset_log()
    invoke(event("sns_direct_stop_request.json"))  # SNS delivers at least once
    assert kore.stop_calls() == [] and results_of(stack) == []


def test_sns_direct_transient_failure_raises_then_ends_through_the_stop_queue(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    kore.inject(kind="stop_sms", campaign_id="cd-3", status=503, times=100)
    sns_event = event("sns_direct_stop_request.json")
    for _ in range(3):  # SNS's asynchronous invocation and Lambda's two retries
        with pytest.raises(RetryLater, match="api_unavailable"):
            invoke(sns_event)
    assert results_of(stack) == []

    record = {"version": "1.0", "requestContext": {"requestId": "e4b46cbf-0000", "condition": "RetriesExhausted"},
              "requestPayload": sns_event}  # Lambda's on-failure destination: the stop queue
    assert invoke(sqs(record, receive_count=stack.max_receive_count)) == {"batchItemFailures": []}
    result = results_of(stack)[0]
    assert (result["campaignId"], result["outcome"], result["source"], result["requestId"]) == (
        "cd-3", "failed", "direct", SNS_STOP_MESSAGE_ID
    )
    assert stack.drain_dead_letters()[0]["MessageAttributes"]["errorCode"]["StringValue"] == "api_unavailable"


def test_sns_direct_rejection_dead_letters_the_notification_which_redrives(invoke, stack, kore, sqs, cold_start,
                                                                          alarm_map):
    fired = alarm_by("sns-direct", sqs, name="billing-latency")
    result = valid(invoke(fired)["results"])[0]
    assert (result["outcome"], result["error"]["code"], result["source"]) == ("rejected", "unmapped_alarm", "alarm")
    dead = stack.drain_dead_letters()
    assert [json.loads(d["Body"]) for d in dead] == [fired["Records"][0]["Sns"]]
    assert dead[0]["MessageAttributes"]["requestId"]["StringValue"] == (
        f"alarm:billing-latency:{FIRED_AT}"
    )

    stack.put_alarm_map({**ALARM_MAP, "billing-latency": [{"streamId": STREAM_ID, "campaignIds": ["cd-4"]}]})
    cold_start()  # a new container reads the fixed map
    stack.drain_results()
    assert invoke(sqs(dead[0]["Body"])) == {"batchItemFailures": []}  # redriven through the stop queue
    assert stopped_ids(kore) == ["cd-4"]
    assert [(r["outcome"], r["source"]) for r in results_of(stack)] == [("stopped", "alarm")]


def test_alarm_action_rejection_dead_letters_the_event_which_redrives(invoke, stack, kore, sqs, cold_start,
                                                                     alarm_map):
    fired = alarm_by("alarm-lambda-action", sqs, name="billing-latency")
    assert valid(invoke(fired)["results"])[0]["error"]["code"] == "unmapped_alarm"
    dead = stack.drain_dead_letters()
    assert [json.loads(d["Body"]) for d in dead] == [fired]
    stack.put_alarm_map({**ALARM_MAP, "billing-latency": [{"streamId": STREAM_ID, "campaignIds": ["cd-4"]}]})
    cold_start()
    stack.drain_results()
    assert invoke(sqs(dead[0]["Body"])) == {"batchItemFailures": []}
    assert stopped_ids(kore) == ["cd-4"]


def test_alarm_action_that_failed_every_async_retry_ends_through_the_stop_queue(invoke, stack, kore, sqs,
                                                                               monkeypatch, alarm_map):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    kore.inject(kind="stop_sms", campaign_id="cd-2", status=503, times=100)
    fired = event("alarm_lambda_action_metric.json")
    for _ in range(3):
        with pytest.raises(RetryLater):
            invoke(fired)
    assert [r["campaignId"] for r in results_of(stack)] == ["cd-1"]
    record = {"version": "1.0", "requestContext": {"requestId": "e4b46cbf-0001", "condition": "RetriesExhausted"},
              "requestPayload": fired}
    assert invoke(sqs(record, receive_count=stack.max_receive_count)) == {"batchItemFailures": []}
    result = results_of(stack)[0]
    assert (result["campaignId"], result["outcome"], result["requestId"]) == ("cd-2", "failed", SAME_CHANGE)
    assert len(kore.stop_calls("cd-1")) == 1


# -- shapes the handler does not know: a result, never a raise ----------------------------------------------


def _sns_with(**notification: Any) -> dict[str, Any]:
    fired = event("sns_direct_stop_request.json")
    fired["Records"][0]["Sns"].update(notification)
    return fired


UNKNOWN = {
    "null": None,
    "list": [1, 2],
    "string": "stop everything",
    "number": 42,
    "empty-object": {},
    "junk-object": {"hello": "world", "nested": {"a": [1, 2]}},
    "empty-records": {"Records": []},
    "records-not-a-list": {"Records": "x"},
    "kinesis-records": {"Records": [{"eventSource": "aws:kinesis", "kinesis": {"data": "e30="}}]},
    "records-of-junk": {"Records": [1, None, "x"]},
    "sqs-and-sns-mixed": {"Records": [{"eventSource": "aws:sqs", "messageId": "m-1", "body": "{}"},
                                      {"EventSource": "aws:sns", "Sns": {}}]},
    "cloudwatch-without-alarm-data": {"source": "aws.cloudwatch", "alarmArn": ALARM_ARN},
    "eventbridge-without-detail-object": {"detail-type": "Stop Campaign Request", "detail": "cd-1", "id": "e-1"},
}
UNKNOWN_SNS = {
    "sns-without-notification": {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0"}]},
    "sns-subscription-confirmation": _sns_with(Type="SubscriptionConfirmation"),
    "sns-message-not-json": _sns_with(Message="STOP"),
}


@pytest.mark.parametrize("name", list(UNKNOWN))
def test_unknown_shapes_end_rejected_and_never_raise(invoke, stack, kore, name):
    shape = copy.deepcopy(UNKNOWN[name])
    response = invoke(shape)
    results = valid(response["results"])
    assert [(r["outcome"], r["error"]["code"], r["source"]) for r in results] == [
        ("rejected", "invalid_request", "eventbridge" if name.startswith("eventbridge") else "direct")
    ]
    assert results_of(stack) == results
    dead = stack.drain_dead_letters()  # the event as it came, for whoever sent it by mistake
    assert [json.loads(d["Body"]) for d in dead] == [shape]
    assert kore.requests == []


@pytest.mark.parametrize("name", list(UNKNOWN_SNS))
def test_malformed_sns_events_end_rejected_and_never_raise(invoke, stack, kore, name):
    shape = UNKNOWN_SNS[name]
    results = valid(invoke(copy.deepcopy(shape))["results"])
    assert [(r["outcome"], r["error"]["code"], r["source"]) for r in results] == [
        ("rejected", "invalid_request", "direct")
    ]
    record = shape["Records"][0]
    kept = [json.loads(d["Body"]) for d in stack.drain_dead_letters()]
    # the notification, as the stop queue would read it back; the record itself when it has none
    assert kept == [record.get("Sns", record)]
    assert kore.requests == []


def test_two_sns_records_are_served_one_by_one(invoke, stack, kore):
    shape = {"Records": [_sns_with()["Records"][0], _sns_with(MessageId="other")["Records"][0]]}
    results = valid(invoke(copy.deepcopy(shape))["results"])
    assert [(r["campaignId"], r["outcome"], r["requestId"]) for r in results] == [
        ("cd-3", "stopped", SNS_STOP_MESSAGE_ID), ("cd-3", "already_stopped", "other")
    ]


def test_rejections_explain_themselves(invoke, stack):
    errors = {name: valid(invoke(copy.deepcopy(shape))["results"])[0]["error"]["message"]
              for name, shape in {**UNKNOWN, **UNKNOWN_SNS}.items()}
    assert errors["null"] == errors["string"] == "a stop request must be a JSON object"
    assert errors["kinesis-records"].startswith("unrecognized event: Records must be SQS records")
    assert errors["cloudwatch-without-alarm-data"] == "CloudWatch alarm action: alarmData must be a JSON object"
    assert errors["sns-without-notification"].startswith("SNS record: Sns must be a JSON object")
    assert errors["sns-subscription-confirmation"].startswith("SNS message: Type is 'SubscriptionConfirmation'")
    assert errors["sns-message-not-json"] == "SNS message is not a JSON object"
    assert errors["eventbridge-without-detail-object"] == "EventBridge detail must be a JSON object"


# -- odd SQS records --------------------------------------------------------------------------------------


def test_sqs_records_without_a_body_or_a_message_id_are_rejected_and_dead_lettered(invoke, stack, kore, sqs):
    batch = sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}, {"streamId": STREAM_ID, "campaignId": "cd-2"},
                "placeholder")
    _, no_id, no_body = batch["Records"]
    del no_id["messageId"]  # its body is a valid request: kept as the dead letter, so it can be redriven
    del no_body["body"]
    assert invoke(batch) == {"batchItemFailures": []}  # nothing to retry: neither can ever succeed
    assert stopped_ids(kore) == ["cd-1"]
    results = {r["campaignId"] or r["requestId"]: r for r in results_of(stack)}
    assert results["cd-1"]["outcome"] == "stopped"
    rejected = [r for r in results.values() if r["outcome"] == "rejected"]
    assert sorted(r["error"]["message"] for r in rejected) == [
        "SQS record: body is missing, empty or not a string", "SQS record: messageId is missing or not a string"
    ]
    assert {r["source"] for r in rejected} == {"sqs"}
    kept = sorted(d["Body"] for d in stack.drain_dead_letters())
    assert kept == sorted([no_id["body"], json.dumps(no_body)])


@pytest.mark.parametrize("attributes", [None, "x", {}, {"ApproximateReceiveCount": "many"},
                                        {"ApproximateReceiveCount": 3}, {"ApproximateReceiveCount": "-1"}])
def test_sqs_records_with_odd_attributes_are_served_as_a_first_attempt(invoke, stack, kore, sqs, attributes):
    batch = sqs({"streamId": STREAM_ID, "campaignId": "cd-1"})
    batch["Records"][0]["attributes"] = attributes
    assert invoke(batch) == {"batchItemFailures": []}
    assert [(r["outcome"], r["attempts"]) for r in results_of(stack)] == [("stopped", 1)]


@pytest.mark.parametrize("fifo", [False, True])
def test_sqs_body_that_is_not_a_string_is_rejected(invoke, stack, kore, sqs, fifo):
    batch = sqs("placeholder")
    batch["Records"][0]["body"] = {"streamId": STREAM_ID, "campaignId": "cd-1"}
    if fifo:
        batch["Records"][0]["eventSourceARN"] = stack.stop_queue_arn + ".fifo"
        batch["Records"][0]["attributes"] = None
    assert invoke(batch) == {"batchItemFailures": []}
    assert kore.requests == []
    assert [(r["outcome"], r["error"]["message"]) for r in results_of(stack)] == [
        ("rejected", "SQS record: body is missing, empty or not a string")
    ]
    assert len(stack.drain_dead_letters()) == 1


# -- FIFO batches --------------------------------------------------------------------------------------------


def _fifo(stack, batch: dict[str, Any], groups: list[str]) -> dict[str, Any]:
    for record, group in zip(batch["Records"], groups, strict=True):
        record["eventSourceARN"] = stack.stop_queue_arn + ".fifo"
        record["attributes"]["MessageGroupId"] = group
    return batch


def test_fifo_batch_whose_every_record_fails_answers_item_failures(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    kore.inject(kind="stop_sms", status=503, times=100)
    batch = _fifo(stack, sqs({"streamId": STREAM_ID, "campaignId": "cd-1"},
                             {"streamId": STREAM_ID, "campaignId": "cd-2"}), ["g-1", "g-2"])
    response = invoke(batch)  # no BatchProcessingError: the queue takes them back, no function error
    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in batch["Records"]]}
    assert results_of(stack) == [] and stack.drain_dead_letters() == []


def test_fifo_failure_holds_back_the_rest_of_its_group_only(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    kore.inject(kind="stop_sms", campaign_id="cd-1", status=503, times=100)
    batch = _fifo(stack, sqs({"streamId": STREAM_ID, "campaignId": "cd-1"},
                             {"streamId": STREAM_ID, "campaignId": "cd-2"},
                             {"streamId": STREAM_ID, "campaignId": "cd-3"}), ["g-1", "g-1", "g-2"])
    first, second, _ = (r["messageId"] for r in batch["Records"])
    assert invoke(batch) == {"batchItemFailures": [{"itemIdentifier": first}, {"itemIdentifier": second}]}
    assert kore.stop_calls("cd-2") == []  # never attempted ahead of cd-1: order within the group kept
    assert [(r["campaignId"], r["outcome"]) for r in results_of(stack)] == [("cd-3", "stopped")]
