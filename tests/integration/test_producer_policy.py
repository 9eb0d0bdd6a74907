"""Who may stop what (contracts.md, "Who may stop what"), through the real handler over moto and the simulator.

Each rule of the producer policy, with the sender read from what AWS sets: the SQS SenderId, the events queue's
envelope, the alarm's ARN, the SNS topic, a direct invocation. What a producer may not stop ends ``rejected`` /
``not_authorized`` with the message in the dead-letter queue, and the simulator's log shows no call for it
(how we know nothing reached Kore.ai). Forged envelopes, forged continuations and foreign alarms are refused;
every result and summary names its producer.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import STREAM_ID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.local_stack import LOCAL_FUNCTION_ROLE_ID

EVENTS = Path(__file__).resolve().parents[2] / "events"
ACCOUNT = "123456789012"  # moto's, and the sample events'
FRAUD_ROLE = "AROAFRAUDSERVICEROLE01"
FRAUD_SENDER = f"{FRAUD_ROLE}:fraud-worker"
STRANGER = "AROASTRANGERROLE00000:someone"
POLICY: dict[str, Any] = {
    "producers": {
        "fraud-service": {
            "senders": [f"sqs:{FRAUD_ROLE}:*", f"events:{ACCOUNT}/com.example.fraud"],
            "allow": [{"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2*"], "campaignType": "sms"}],
        },
        "kill-switches": {"senders": [f"alarm:{ACCOUNT}"], "allow": [{"streamId": "*", "allActive": True}]},
        "operators": {"senders": ["direct:-"], "allow": [{"streamId": STREAM_ID, "allActive": True}]},
    },
    "otherwise": "deny",
}


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def policy(stack) -> dict[str, Any]:
    stack.put_producer_policy(POLICY)
    return POLICY


def stopped(kore) -> list[str]:
    return sorted(call.path.rsplit("/", 1)[1] for call in kore.stop_calls() if call.status == 200)


def ended(stack) -> dict[str | None, dict[str, Any]]:
    return {result["campaignId"]: result for result in stack.drain_results()}


def refused(result: dict[str, Any]) -> bool:
    return result["outcome"] == "rejected" and result["error"]["code"] == "not_authorized"


def letters(stack) -> list[str]:
    return [letter["MessageAttributes"]["errorCode"]["StringValue"] for letter in stack.drain_dead_letters()]


def request(**fields: Any) -> dict[str, Any]:
    return {"streamId": STREAM_ID, "requestId": f"req-{uuid.uuid4().hex[:12]}", **fields}


# -- sqs: the SenderId -----------------------------------------------------------------------------------


def test_a_producer_stops_what_its_entry_allows_and_results_name_it(invoke, stack, kore, sqs, policy):
    assert invoke(sqs(request(campaignId="cd-1"), sender_id=FRAUD_SENDER)) == {"batchItemFailures": []}
    assert stopped(kore) == ["cd-1"]
    [result] = stack.drain_results()
    assert result["outcome"] == "stopped"
    assert result["producer"] == {"kind": "sqs", "id": FRAUD_SENDER, "name": "fraud-service"}
    assert stack.drain_dead_letters() == []


def test_a_request_with_several_campaigns_is_judged_campaign_by_campaign(invoke, stack, kore, sqs, policy):
    body = request(campaignIds=["cd-1", "cd-3", "cd-2"])
    invoke(sqs(body, sender_id=FRAUD_SENDER))
    assert stopped(kore) == ["cd-1", "cd-2"] and len(kore.stop_calls()) == 2  # none for cd-3
    results = ended(stack)
    assert {key: value["outcome"] for key, value in results.items()} == {
        "cd-1": "stopped", "cd-2": "stopped", "cd-3": "rejected"}
    assert refused(results["cd-3"]) and "fraud-service" in results["cd-3"]["error"]["message"]
    [summary] = stack.drain_summaries()
    assert summary["outcomes"] == {"stopped": 2, "rejected": 1} and summary["campaigns"] == 3
    assert summary["producer"] == {"kind": "sqs", "id": FRAUD_SENDER, "name": "fraud-service"}
    [letter] = stack.drain_dead_letters()
    assert letter["MessageAttributes"]["errorCode"]["StringValue"] == "not_authorized"
    assert json.loads(letter["Body"]) == body  # the original, to redrive once the policy allows it


@pytest.mark.parametrize("asked", [
    {"campaigns": "all-active"},  # no allActive in its entry
    {"campaignId": "cd-1", "campaignType": "voice"},  # its entry is for sms only
    {"campaignId": "cd-1", "streamId": "st-other"},  # another stream
    {"campaignId": "cd-3"},  # not among its campaignIds
])
def test_outside_its_rights_a_producer_is_refused_without_a_call(invoke, stack, kore, sqs, policy, asked):
    invoke(sqs(request(**asked), sender_id=FRAUD_SENDER))
    assert kore.requests == []  # not a stop, not a list, not even a token
    [result] = stack.drain_results()
    assert refused(result) and result["producer"]["name"] == "fraud-service"
    assert letters(stack) == ["not_authorized"]


def test_a_sender_that_is_no_producer_gets_what_otherwise_says(invoke, stack, kore, sqs, policy):
    invoke(sqs(request(campaignId="cd-1"), sender_id=STRANGER))
    assert kore.requests == []
    [result] = stack.drain_results()
    assert refused(result) and result["producer"] == {"kind": "sqs", "id": STRANGER, "name": None}
    assert letters(stack) == ["not_authorized"]

    stack.put_producer_policy({**POLICY, "otherwise": "allow"})
    _fresh_container()  # a new container reads the policy anew (a warm one after PRODUCER_POLICY_CACHE_SECONDS)
    invoke(sqs(request(campaignId="cd-4"), sender_id=STRANGER))
    assert stopped(kore) == ["cd-4"]
    assert stack.drain_results()[0]["producer"] == {"kind": "sqs", "id": STRANGER, "name": None}


def _fresh_container() -> None:
    """A new Lambda container: settings, clients and the cached policy read anew."""
    from stop_campaign import app, settings

    app.container.cache_clear()
    settings.get_settings.cache_clear()


def test_without_a_policy_setting_everyone_may_stop_everything(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("PRODUCER_POLICY_PARAMETER", "")
    stack.put_producer_policy({"producers": {}, "otherwise": "deny"})  # not read: the function has no setting
    invoke(sqs(request(campaigns="all-active", campaignType="voice"), sender_id=STRANGER))
    assert stopped(kore) == ["cd-voice-1"]
    [result] = stack.drain_results()
    assert result["producer"] == {"kind": "sqs", "id": STRANGER, "name": None}


def test_an_invalid_policy_refuses_rather_than_guesses(invoke, stack, kore, sqs):
    stack.client("ssm").put_parameter(Name=stack.producer_policy_parameter, Value='{"producers": []}',
                                      Type="String", Overwrite=True)
    invoke(sqs(request(campaignId="cd-1")))
    assert kore.requests == []
    [result] = stack.drain_results()
    assert result["outcome"] == "rejected" and result["error"]["code"] == "invalid_producer_policy"
    assert letters(stack) == ["invalid_producer_policy"]


# -- events: only through the events queue ---------------------------------------------------------------


def envelope(account: str = ACCOUNT, source: str = "com.example.fraud", **detail: Any) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Stop Campaign Request", "source": source,
            "account": account, "time": "2026-11-28T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"streamId": STREAM_ID, **detail}}


def test_the_stop_bus_producer_is_the_events_account_and_source(invoke, stack, kore, sqs, policy):
    invoke(sqs(envelope(campaignId="cd-2"), queue_arn=stack.events_queue_arn, sender_id="AIDAEVENTBRIDGE"))
    assert stopped(kore) == ["cd-2"]
    [result] = stack.drain_results()
    assert result["producer"] == {"kind": "events", "id": f"{ACCOUNT}/com.example.fraud", "name": "fraud-service"}


def test_another_accounts_events_are_refused(invoke, stack, kore, sqs, policy):
    invoke(sqs(envelope(account="999999999999", campaignId="cd-1"), queue_arn=stack.events_queue_arn))
    assert kore.requests == []
    [result] = stack.drain_results()
    assert refused(result) and result["producer"]["id"] == "999999999999/com.example.fraud"


def test_an_envelope_sent_straight_to_the_stop_queue_is_a_message_from_its_sqs_sender(
    invoke, stack, kore, sqs, policy
):
    """The envelope says account 123456789012 and source com.example.fraud, but its sender wrote that."""
    invoke(sqs(envelope(campaignId="cd-1"), sender_id=STRANGER))
    assert kore.requests == []
    [result] = stack.drain_results()
    assert refused(result) and result["producer"] == {"kind": "sqs", "id": STRANGER, "name": None}
    assert letters(stack) == ["not_authorized"]


def test_the_stop_bus_delivers_through_its_events_queue(stack, kore, cold_start, policy):
    """PutEvents on the local stack's bus: the rule sends the event to the events queue, not the stop queue."""
    from devtools.poller import SqsEventSourceMapping
    from stop_campaign import app

    stack.client("events").put_events(Entries=[{
        "EventBusName": stack.bus_name, "Source": "com.example.fraud", "DetailType": "Stop Campaign Request",
        "Detail": json.dumps({"streamId": STREAM_ID, "campaignId": "cd-1"}),
    }])
    stop_queue = SqsEventSourceMapping(stack, handler=app.lambda_handler, retry_delay_seconds=0)
    assert stop_queue.messages_in_queue() == 0
    events_queue = SqsEventSourceMapping(stack, queue_url=stack.events_queue_url, queue_arn=stack.events_queue_arn,
                                         handler=app.lambda_handler, retry_delay_seconds=0)
    events_queue.poll_until_empty(10)
    assert stopped(kore) == ["cd-1"]
    [result] = stack.drain_results()
    assert result["producer"] == {"kind": "events", "id": f"{ACCOUNT}/com.example.fraud", "name": "fraud-service"}


# -- alarms: the alarm's account -------------------------------------------------------------------------


def alarm(account: str = ACCOUNT) -> dict[str, Any]:
    fired = event("eventbridge_alarm_state_change.json")
    fired["resources"] = [f"arn:aws:cloudwatch:us-east-1:{account}:alarm:checkout-sms-error-rate"]
    fired["account"] = account
    fired["detail"]["state"]["timestamp"] = f"2026-11-28T10:{uuid.uuid4().int % 60:02d}:00.000+0000"
    return fired


def test_an_alarm_of_a_named_account_stops_what_the_alarm_map_says(invoke, stack, kore, policy):
    stack.put_alarm_map(event("alarm_map.json"))
    invoke(alarm())
    assert stopped(kore) == ["cd-1", "cd-2"]
    results = ended(stack)
    assert {result["producer"]["name"] for result in results.values()} == {"kill-switches"}
    assert results["cd-1"]["producer"] == {"kind": "alarm", "id": ACCOUNT, "name": "kill-switches"}


@pytest.mark.parametrize("way", ["eventbridge-rule", "alarm-lambda-action", "sns-direct"])
def test_a_foreign_alarm_stops_nothing(invoke, stack, kore, policy, way):
    """An alarm of account 999999999999 with a mapped name: by any way it comes, nothing is called."""
    stack.put_alarm_map(event("alarm_map.json"))
    foreign = "arn:aws:cloudwatch:us-east-1:999999999999:alarm:checkout-sms-error-rate"
    if way == "eventbridge-rule":
        fired = alarm("999999999999")
    elif way == "alarm-lambda-action":
        fired = event("alarm_lambda_action_metric.json")
        fired["alarmArn"] = foreign
    else:
        fired = event("sns_direct_alarm_notification.json")
        notification = fired["Records"][0]["Sns"]
        notification["Message"] = json.dumps({**json.loads(notification["Message"]), "AlarmArn": foreign})
    invoke(fired)
    assert kore.requests == []
    results = stack.drain_results()
    assert results and all(refused(result) for result in results)
    assert {result["producer"]["id"] for result in results} == {"999999999999"}
    assert letters(stack) == ["not_authorized"]


def test_an_alarm_envelope_in_the_stop_queue_is_its_senders_not_the_alarms(invoke, stack, kore, sqs, policy):
    stack.put_alarm_map(event("alarm_map.json"))
    invoke(sqs(alarm(), sender_id=STRANGER))
    assert kore.requests == []
    results = stack.drain_results()
    assert results and all(refused(r) and r["producer"] == {"kind": "sqs", "id": STRANGER, "name": None}
                           for r in results)


def test_lambdas_on_failure_record_keeps_the_original_invocations_producer(invoke, stack, kore, sqs, policy):
    """Lambda sends it to the stop queue as the function's role: the alarm inside is the alarm's. The same record
    from anyone else is a message from that sender."""
    stack.put_alarm_map(event("alarm_map.json"))
    record = {"version": "1.0", "requestContext": {"requestId": str(uuid.uuid4()), "condition": "RetriesExhausted",
                                                    "approximateInvokeCount": 3},
              "requestPayload": alarm(), "responseContext": {"statusCode": 200}}
    invoke(sqs(record, sender_id=STRANGER))
    assert kore.requests == [] and all(refused(r) for r in stack.drain_results())
    stack.drain_dead_letters()

    invoke(sqs(record, sender_id=f"{LOCAL_FUNCTION_ROLE_ID}:campaign-stop-function"))
    assert stopped(kore) == ["cd-1", "cd-2"]
    assert {r["producer"]["name"] for r in stack.drain_results()} == {"kill-switches"}


# -- direct and SNS -----------------------------------------------------------------------------------


def test_a_direct_invocation_is_direct(invoke, stack, kore, policy):
    response = invoke(request(campaigns="all-active", campaignType="voice"))
    assert [r["outcome"] for r in response["results"]] == ["stopped"]
    assert response["results"][0]["producer"] == {"kind": "direct", "id": "-", "name": "operators"}
    assert stopped(kore) == ["cd-voice-1"]


def test_sns_invoking_the_function_is_its_topic(invoke, stack, kore, policy):
    fired = event("sns_direct_stop_request.json")
    topic = fired["Records"][0]["Sns"]["TopicArn"]
    invoke(fired)
    assert kore.requests == []
    [result] = stack.drain_results()
    assert refused(result) and result["producer"] == {"kind": "sns", "id": topic, "name": None}


# -- continuations: honoured only when this function handed them over ----------------------------------


def test_a_continuation_is_honoured_only_as_the_function_handed_it_over(invoke, stack, kore, sqs, policy,
                                                                        monkeypatch):
    monkeypatch.setenv("KORE_RATE_LIMIT", "1/8")  # one call now, the rest after the 6 s invocation
    body = request(campaignIds=["cd-1", "cd-2"])
    invoke(sqs(body, sender_id=FRAUD_SENDER), timeout_seconds=6)
    [first] = stopped(kore)  # whichever of the two got the budget's one call
    [rest] = {"cd-1", "cd-2"} - {first}
    message = _receive_delayed(stack)
    handed_over = json.loads(message["Body"])
    assert handed_over["request"]["campaignIds"] == [rest]
    assert handed_over["producer"] == {"kind": "sqs", "id": FRAUD_SENDER, "name": "fraud-service"}
    assert handed_over["signature"].startswith("hmac-sha256:")
    kore.reset_log()
    stack.drain_results()

    forgeries = {
        "unsigned": {k: v for k, v in handed_over.items() if k != "signature"},
        "more campaigns": {**handed_over, "request": {**handed_over["request"], "campaignIds": [rest, "cd-3"]}},
        "another producer": {**handed_over, "producer": {"kind": "alarm", "id": ACCOUNT, "name": "kill-switches"}},
        "made up": {**handed_over, "signature": "hmac-sha256:" + "0" * 64},
    }
    for name, forged in forgeries.items():
        invoke(sqs(forged, sender_id=FRAUD_SENDER))
        assert kore.requests == [], name
        [result] = stack.drain_results()
        assert refused(result), name
        assert result["producer"] == {"kind": "sqs", "id": FRAUD_SENDER, "name": "fraud-service"}, name
    assert Counter(letters(stack)) == {"not_authorized": len(forgeries)}

    # The genuine one, even sent again by someone else (an operator's redrive): the original producer's.
    monkeypatch.setenv("KORE_RATE_LIMIT", "60/60")
    _fresh_container()
    invoke(sqs(message["Body"], sender_id=STRANGER))
    assert stopped(kore) == [rest]
    [result] = stack.drain_results()
    assert result["producer"] == {"kind": "sqs", "id": FRAUD_SENDER, "name": "fraud-service"}
    [summary] = stack.drain_summaries()
    assert summary["outcomes"] == {"stopped": 2} and summary["producer"]["name"] == "fraud-service"


def _receive_delayed(stack) -> dict[str, Any]:
    sqs = stack.client("sqs")
    give_up = time.monotonic() + 20
    while time.monotonic() < give_up:
        messages = sqs.receive_message(QueueUrl=stack.stop_queue_url, WaitTimeSeconds=2,
                                       AttributeNames=["All"]).get("Messages", [])
        if messages:
            sqs.delete_message(QueueUrl=stack.stop_queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
            return messages[0]
    raise AssertionError("no continuation arrived in the stop queue")


# -- any sender ---------------------------------------------------------------------------------------

SENDER_IDS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@EXAMPLES
@given(sender_id=SENDER_IDS, session=SENDER_IDS)
def test_any_sender_is_judged_by_its_sender_id_alone(invoke, stack, kore, sqs, policy, sender_id, session):
    """Whatever SenderId SQS reports: the fraud role's sessions (any session name) stop cd-1, anyone else
    stops nothing; the result names the sender exactly as reported, and a refusal is a dead letter."""
    for sender, allowed in ((f"{FRAUD_ROLE}:{session}", True), (sender_id, sender_id.startswith(f"{FRAUD_ROLE}:"))):
        kore.add_campaign(STREAM_ID, "cd-1", campaign_type="sms", status="Active")
        kore.reset_log()
        invoke(sqs(request(campaignId="cd-1"), sender_id=sender))
        [result] = stack.drain_results()
        assert result["producer"]["id"] == sender and result["producer"]["kind"] == "sqs"
        if allowed:
            assert result["outcome"] == "stopped" and stopped(kore) == ["cd-1"]
            assert stack.drain_dead_letters() == []
        else:
            assert refused(result) and kore.requests == []
            assert letters(stack) == ["not_authorized"]
        stack.drain_summaries()

