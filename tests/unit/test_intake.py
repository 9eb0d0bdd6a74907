"""Intake: every shape a stop request can arrive in, and every way it can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stop_campaign.domain.intake import (
    ALARM_DETAIL_TYPE,
    REQUEST_ID_PATTERN,
    AlarmStateChange,
    InvalidRequest,
    Origin,
    alarm_request_id,
    parse_event,
    parse_sqs_body,
    redrive_marker,
)
from stop_campaign.domain.models import CampaignType, Continuation, Progress, Source, StopRequest

EVENTS = Path(__file__).resolve().parents[2] / "events"
SQS = Origin(Source.SQS, "sqs-message-id", "2026-11-28T10:00:01.000Z", attempt=2)


def body_of(event_file: str, index: int = 0) -> str:
    return json.loads((EVENTS / event_file).read_text())["Records"][index]["body"]


def request(body: object, origin: Origin = SQS) -> StopRequest:
    parsed = parse_sqs_body(json.dumps(body), origin)
    assert isinstance(parsed, StopRequest)
    return parsed


def rejection(body: object) -> InvalidRequest:
    text = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(InvalidRequest) as raised:
        parse_sqs_body(text, SQS)
    return raised.value


def test_plain_sqs_body_becomes_a_request_with_every_field():
    parsed = parse_sqs_body(body_of("sqs_stop_request.json"), SQS)
    assert parsed == StopRequest(
        stream_id="st-1", campaign_type=CampaignType.SMS, request_id="req-2026-11-28-0001", source=Source.SQS,
        received_at=SQS.received_at, campaign_ids=("cd-1",), reason="Complaint spike on short code 12345",
        requested_by="compliance-monitor", requested_at="2026-11-28T10:00:00Z", attempt=2,
    )


def test_request_id_defaults_to_the_sqs_message_id():
    assert request({"streamId": "st-1", "campaignId": "cd-1"}).request_id == "sqs-message-id"


def test_eventbridge_envelope_in_sqs_uses_the_event_id_and_source():
    parsed = parse_sqs_body(body_of("sqs_eventbridge_envelope.json"), SQS)
    assert isinstance(parsed, StopRequest)
    assert (parsed.request_id, parsed.source, parsed.campaign_ids) == (
        "7bf73129-1428-4cd3-a780-95db273d1602", Source.EVENTBRIDGE, ("cd-3",)
    )


def test_sns_notification_in_sqs_uses_the_sns_message_id():
    parsed = parse_sqs_body(body_of("sqs_sns_notification.json"), SQS)
    assert isinstance(parsed, StopRequest)
    assert (parsed.request_id, parsed.campaign_ids) == ("95df01b4-ee98-5cb9-9903-4c221d41eb5e", ("cd-4",))


def test_eventbridge_event_invoked_directly():
    event = json.loads((EVENTS / "eventbridge_stop_request.json").read_text())
    parsed = parse_event(event, Origin(Source.EVENTBRIDGE, event["id"], "2026-11-28T10:00:01.000Z"))
    assert isinstance(parsed, StopRequest)
    assert (parsed.source, parsed.request_id, parsed.requested_by) == (
        Source.EVENTBRIDGE, "8c084239-2539-4de4-b891-a6ec384e2703", "oncall@example.com"
    )


def test_direct_payload_keeps_its_own_request_id_and_list_of_campaigns():
    payload = json.loads((EVENTS / "direct_stop_request.json").read_text())
    parsed = parse_event(payload, Origin(Source.DIRECT, "lambda-request-id", "2026-11-28T10:00:01.000Z"))
    assert isinstance(parsed, StopRequest)
    assert (parsed.request_id, parsed.campaign_ids, parsed.source) == (
        "runbook-2026-11-28-01", ("cd-1", "cd-2"), Source.DIRECT
    )


def test_all_active_voice_dry_run():
    parsed = request({"streamId": "st-1", "campaigns": "all-active", "campaignType": "voice", "dryRun": True})
    assert (parsed.all_active, parsed.campaign_ids, parsed.campaign_type, parsed.dry_run) == (
        True, (), CampaignType.VOICE, True
    )


def test_unknown_fields_are_ignored_and_cannot_reach_the_call():
    parsed = request({"streamId": "st-1", "campaignId": "cd-1", "host": "evil.example", "path": "/x"})
    assert parsed.campaign_ids == ("cd-1",)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"campaignId": "cd-1"}, "streamId"),
        ({"streamId": 42, "campaignId": "cd-1"}, "request.streamId must be string"),
        ({"streamId": "st-1", "campaignId": ["cd-1"]}, "request.campaignId must be string"),
        ({"streamId": "st-1", "campaignIds": []}, "request.campaignIds must contain at least 1"),
        ({"streamId": "st-1", "campaignIds": [f"cd-{i}" for i in range(101)]}, "request.campaignIds must contain less"),
        ({"streamId": "st-1", "campaignId": "cd-1", "campaignType": "fax"}, "campaignType must be one of"),
        ({"streamId": "st-1", "campaignId": "cd-1", "dryRun": "yes"}, "request.dryRun must be boolean"),
        ({"streamId": "st-1", "campaignId": "cd-1", "requestedAt": "yesterday"}, "requestedAt must be date-time"),
        ({"streamId": "st-1", "campaignId": "cd-1", "reason": "x" * 513}, "request.reason must be shorter"),
        ({"streamId": "st-1", "campaigns": "everything"}, "request.campaigns must be one of"),
    ],
)
def test_invalid_fields_are_rejected_naming_the_field(body, names):
    assert names in rejection(body).message


@pytest.mark.parametrize(
    "bad_id", ["a/b", "cd-1?x=1", "cd#1", "..", "../admin", "cd\r\nX-Injected: 1", "cd-1\n", "-cd", "", "c d", "cd%2F1"]
)
@pytest.mark.parametrize("field", ["streamId", "campaignId", "accountId"])
def test_ids_that_could_change_the_path_or_headers_are_rejected(field, bad_id):
    body = {"streamId": "st-1", "campaignId": "cd-1", field: bad_id}
    error = rejection(body)
    assert f"request.{field}" in error.message
    assert bad_id not in error.fields.values()


def test_ten_kilobyte_strings_are_rejected_without_echoing_them():
    huge = "a" * 10_240
    for body in ({"streamId": huge, "campaignId": "cd-1"}, {"streamId": "st-1", "campaignId": "cd-1", "reason": huge}):
        error = rejection(body)
        assert huge not in str(error) and len(error.message) <= 300


@pytest.mark.parametrize(
    "selectors",
    [{}, {"campaignId": "cd-1", "campaignIds": ["cd-2"]}, {"campaignId": "cd-1", "campaigns": "all-active"}],
)
def test_exactly_one_campaign_selector(selectors):
    assert "exactly one of campaignId, campaignIds or campaigns" in rejection({"streamId": "st-1", **selectors}).message


@pytest.mark.parametrize("body", ["this is not JSON", "", "{", "[1, 2]", "42", "null", '"a string"'])
def test_bodies_that_are_not_json_objects(body):
    error = rejection(body)
    assert error.code == "invalid_request" and error.request_id == "sqs-message-id"


def test_oversized_body_is_rejected():
    assert "1 MiB" in rejection("x" * (1024 * 1024 + 1)).message


def test_rejection_keeps_the_well_formed_ids_for_the_result():
    error = rejection({"streamId": "st-1", "campaignId": "cd-1", "requestId": "r-1", "dryRun": "no"})
    assert (error.request_id, error.fields) == ("r-1", {"streamId": "st-1", "campaignId": "cd-1"})


def test_eventbridge_alarm_becomes_a_state_change():
    event = json.loads((EVENTS / "eventbridge_alarm_state_change.json").read_text())
    parsed = parse_event(event, Origin(Source.EVENTBRIDGE, event["id"], "2026-11-28T10:05:01.000Z"))
    assert parsed == AlarmStateChange(
        alarm_name="checkout-sms-error-rate",
        alarm_arn="arn:aws:cloudwatch:us-east-1:123456789012:alarm:checkout-sms-error-rate",
        state="ALARM", changed_at="2026-11-28T10:05:00.000+0000",
        reason=event["detail"]["state"]["reason"], received_at="2026-11-28T10:05:01.000Z",
        sent_at=event["time"],  # the event's time: its age, should the state change time be unreadable
    )
    assert parsed.request_id == "alarm:checkout-sms-error-rate:2026-11-28T10:05:00.000+0000"


def test_sns_alarm_notification_in_sqs_becomes_a_state_change():
    parsed = parse_sqs_body(body_of("sqs_sns_alarm_notification.json"), SQS)
    assert isinstance(parsed, AlarmStateChange)
    assert (parsed.alarm_name, parsed.state, parsed.changed_at, parsed.attempt) == (
        "sms-stop-keyword-storm", "ALARM", "2026-11-28T10:06:00.000+0000", 2
    )


def test_alarm_without_a_name_is_rejected():
    event = json.loads((EVENTS / "eventbridge_alarm_state_change.json").read_text())
    del event["detail"]["alarmName"]
    with pytest.raises(InvalidRequest, match="alarmName"):
        parse_event(event, SQS)


def test_a_failed_async_invocation_record_is_read_as_its_original_event():
    parsed = parse_sqs_body(body_of("sqs_lambda_failure_record.json"), SQS)
    assert isinstance(parsed, AlarmStateChange)
    assert parsed.request_id == "alarm:checkout-sms-error-rate:2026-11-28T10:05:00.000+0000"  # as first invoked
    assert parsed.attempt == SQS.attempt


def test_a_failed_direct_invocation_keeps_its_lambda_request_id():
    record = {"requestContext": {"requestId": "lambda-req-1", "condition": "RetriesExhausted"},
              "requestPayload": {"streamId": "st-1", "campaignId": "cd-1"}}
    parsed = request(record)
    assert (parsed.request_id, parsed.source) == ("lambda-req-1", Source.DIRECT)


# -- SNS invoking the function, the alarm's own Lambda action, and shapes that are neither -----------------

DIRECT = Origin(Source.DIRECT, "lambda-request-id", "2026-11-28T10:05:01.000Z")
SAME_CHANGE = "alarm:checkout-sms-error-rate:2026-11-28T10:05:00.000+0000"  # one state change, every sample


def sample(event_file: str) -> dict:
    return json.loads((EVENTS / event_file).read_text())


def sns_record(event_file: str) -> dict:
    return sample(event_file)["Records"][0]


def alarm_action(**state: object) -> dict:
    event = sample("alarm_lambda_action_metric.json")
    event["alarmData"]["state"].update(state)
    return event


def event_rejection(payload: object, origin: Origin = DIRECT) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as raised:
        parse_event(payload, origin)
    return raised.value


def test_alarm_lambda_action_of_a_metric_alarm_becomes_a_state_change():
    event = sample("alarm_lambda_action_metric.json")
    parsed = parse_event(event, DIRECT)
    assert parsed == AlarmStateChange(
        alarm_name="checkout-sms-error-rate",
        alarm_arn="arn:aws:cloudwatch:us-east-1:123456789012:alarm:checkout-sms-error-rate",
        state="ALARM", changed_at="2026-11-28T10:05:00.000+0000",
        reason="Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0).",
        received_at=DIRECT.received_at,
    )
    assert parsed.request_id == SAME_CHANGE


@pytest.mark.parametrize(
    ("event_file", "name", "changed_at", "reason_starts"),
    [
        ("alarm_lambda_action_metric_math.json", "sms-opt-out-ratio", "2026-11-28T10:07:00.000+0000",
         "Threshold Crossed: 1 out of the last 1 datapoints [0.08"),
        ("alarm_lambda_action_composite.json", "sms-delivery-health", "2026-11-28T10:08:00.000+0000",
         "arn:aws:cloudwatch:us-east-1:123456789012:alarm:sms-opt-out-ratio transitioned to ALARM"),
    ],
)
def test_alarm_lambda_action_of_metric_math_and_composite_alarms(event_file, name, changed_at, reason_starts):
    event = sample(event_file)
    parsed = parse_event(event, DIRECT)
    assert isinstance(parsed, AlarmStateChange)
    assert (parsed.alarm_name, parsed.state, parsed.changed_at, parsed.alarm_arn) == (
        name, "ALARM", changed_at, event["alarmArn"]
    )
    assert parsed.reason is not None and parsed.reason.startswith(reason_starts)
    assert parsed.request_id == f"alarm:{name}:{changed_at}"


def test_the_same_state_change_has_one_request_id_whichever_way_it_arrives():
    eventbridge = sample("eventbridge_alarm_state_change.json")
    sns_direct = sample("sns_direct_alarm_notification.json")
    ways = [
        parse_event(eventbridge, Origin(Source.EVENTBRIDGE, eventbridge["id"], DIRECT.received_at)),
        parse_event(sample("alarm_lambda_action_metric.json"), DIRECT),
        parse_event(sns_direct["Records"][0], DIRECT),  # as the handler hands over one SNS record
        parse_sqs_body(json.dumps(sns_direct["Records"][0]["Sns"]), SQS),  # the same notification, through SQS
    ]
    assert {(way.request_id, way.alarm_name, way.state) for way in ways if isinstance(way, AlarmStateChange)} == {
        (SAME_CHANGE, "checkout-sms-error-rate", "ALARM")
    }
    assert len(ways) == 4 and all(isinstance(way, AlarmStateChange) for way in ways)


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_alarm_lambda_action_leaving_alarm_is_ignored(state):
    from stop_campaign.domain.models import Outcome
    from stop_campaign.domain.planning import ignored_alarm, needs_alarm_map

    parsed = parse_event(alarm_action(value=state, timestamp="2026-11-28T10:20:00.000+0000"), DIRECT)
    assert isinstance(parsed, AlarmStateChange) and parsed.state == state
    assert not needs_alarm_map(parsed)  # nothing stops, the alarm map is not even read
    ignored = ignored_alarm(parsed, DIRECT)
    assert (ignored.outcome, ignored.source, ignored.request_id) == (
        Outcome.IGNORED, Source.ALARM, "alarm:checkout-sms-error-rate:2026-11-28T10:20:00.000+0000"
    )


def test_alarm_lambda_action_without_a_state_timestamp_uses_the_event_time():
    event = alarm_action()
    del event["alarmData"]["state"]["timestamp"]
    parsed = parse_event(event, DIRECT)
    assert isinstance(parsed, AlarmStateChange) and parsed.changed_at == event["time"]


def _without(path: str) -> dict:
    event = sample("alarm_lambda_action_metric.json")
    *parents, last = path.split(".")
    holder = event
    for key in parents:
        holder = holder[key]
    del holder[last]
    return event


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"source": "aws.cloudwatch"}, "CloudWatch alarm action: alarmData must be a JSON object"),
        ({**sample("alarm_lambda_action_metric.json"), "alarmData": "ALARM"},
         "CloudWatch alarm action: alarmData must be a JSON object"),
        (_without("alarmData.state"), "CloudWatch alarm action: alarmData.state must be a JSON object"),
        (_without("alarmData.alarmName"), "CloudWatch alarm action: alarmData.alarmName is missing or not a string"),
        (_without("alarmData.state.value"),
         "CloudWatch alarm action: alarmData.state.value is missing or not a string"),
        (alarm_action(value="FIRING"),
         "CloudWatch alarm action: alarmData.state.value must be one of ALARM, OK, INSUFFICIENT_DATA"),
        (alarm_action(value=["ALARM"]), "alarmData.state.value is missing or not a string"),
        ({**_without("alarmData.state.timestamp"), "time": None},
         "CloudWatch alarm action: alarmData.state.timestamp is missing or not a string"),
        ({**alarm_action(), "alarmData": {**alarm_action()["alarmData"], "alarmName": "x" * 513}},
         "alarmData.alarmName is missing or not a string"),
    ],
    ids=["no-alarm-data", "alarm-data-not-object", "no-state", "no-name", "no-state-value", "unknown-state",
         "state-not-string", "no-timestamp", "name-too-long"],
)
def test_malformed_alarm_lambda_actions_are_rejected_naming_the_piece(event, message):
    error = event_rejection(event)
    assert error.message == message or message in error.message
    assert (error.code, error.request_id) == ("invalid_request", "lambda-request-id")


def test_an_alarm_lambda_action_dead_lettered_and_redriven_is_understood():
    body = json.dumps(sample("alarm_lambda_action_metric.json"))  # what the direct path dead-letters
    parsed = parse_sqs_body(body, SQS)
    assert isinstance(parsed, AlarmStateChange) and parsed.request_id == SAME_CHANGE and parsed.attempt == 2


def test_a_failed_alarm_lambda_action_comes_back_as_the_same_state_change():
    record = {"requestContext": {"requestId": "lambda-req-1", "condition": "RetriesExhausted"},
              "requestPayload": sample("alarm_lambda_action_metric.json")}
    parsed = parse_sqs_body(json.dumps(record), SQS)
    assert isinstance(parsed, AlarmStateChange) and parsed.request_id == SAME_CHANGE


def test_sns_record_with_a_stop_request_uses_the_sns_message_id_and_source_direct():
    record = sns_record("sns_direct_stop_request.json")
    parsed = parse_event(record, DIRECT)
    assert isinstance(parsed, StopRequest)
    assert (parsed.request_id, parsed.source, parsed.campaign_ids, parsed.requested_by) == (
        "d4e5f607-1829-4b0c-9d1e-2f3a4b5c6d7e", Source.DIRECT, ("cd-3",), "carrier-monitor"
    )


def test_sns_record_keeps_a_request_id_the_request_names():
    record = sns_record("sns_direct_stop_request.json")
    record["Sns"]["Message"] = json.dumps({"streamId": "st-1", "campaignId": "cd-3", "requestId": "mine-1"})
    assert parse_event(record, DIRECT).request_id == "mine-1"


def test_sns_record_with_an_eventbridge_event_is_read_as_one():
    record = sns_record("sns_direct_stop_request.json")
    record["Sns"]["Message"] = json.dumps(sample("eventbridge_stop_request.json"))
    parsed = parse_event(record, DIRECT)
    assert isinstance(parsed, StopRequest)
    assert (parsed.source, parsed.request_id) == (Source.EVENTBRIDGE, "8c084239-2539-4de4-b891-a6ec384e2703")


def test_sns_direct_dead_letter_body_redriven_through_sqs_is_the_same_request():
    record = sns_record("sns_direct_stop_request.json")
    redriven = parse_sqs_body(json.dumps(record["Sns"]), SQS)  # the handler dead-letters the Sns object
    assert isinstance(redriven, StopRequest)
    assert redriven.request_id == parse_event(record, DIRECT).request_id == record["Sns"]["MessageId"]


def test_a_failed_sns_invocation_comes_back_with_the_sns_message_id():
    record = {"requestContext": {"requestId": "lambda-req-1", "condition": "RetriesExhausted"},
              "requestPayload": sample("sns_direct_stop_request.json")}
    parsed = parse_sqs_body(json.dumps(record), SQS)
    assert isinstance(parsed, StopRequest)
    assert (parsed.request_id, parsed.source) == ("d4e5f607-1829-4b0c-9d1e-2f3a4b5c6d7e", Source.DIRECT)


def _sns(**notification: object) -> dict:
    record = sns_record("sns_direct_stop_request.json")
    record["Sns"].update(notification)
    return record


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"EventSource": "aws:sns"}, "SNS record: Sns must be a JSON object"),
        ({"EventSource": "aws:sns", "Sns": "text"}, "SNS record: Sns must be a JSON object"),
        (_sns(Type="SubscriptionConfirmation"), "SNS message: Type is 'SubscriptionConfirmation'"),
        (_sns(Type=None), "SNS message: Type is missing or not a string"),
        (_sns(Message="not JSON"), "SNS message is not a JSON object"),
        (_sns(Message="[1, 2]"), "SNS message is not a JSON object"),
        (_sns(Message=None), "SNS message is not a JSON object"),
        (_sns(Message="[" * 100_000), "SNS message is not a JSON object"),
        (_sns(Message=json.dumps({"AlarmName": "checkout-sms-error-rate", "NewStateValue": "ALARM"})),
         "CloudWatch alarm notification: StateChangeTime is missing or not a string"),
        (_sns(Message=json.dumps({"streamId": "st-1"})), "exactly one of campaignId, campaignIds or campaigns"),
        ({"Records": [_sns(), _sns()]}, "SNS event: expected exactly one record, found 2"),
        ({"Records": []}, "unrecognized event: Records must be SQS records"),
        ({"Records": "x"}, "unrecognized event: Records must be SQS records"),
        ({"Records": [{"eventSource": "aws:kinesis"}]}, "unrecognized event: Records must be SQS records"),
        ({"Records": [_sns(), {"eventSource": "aws:sqs"}]}, "unrecognized event"),
        ({"Records": [{"eventSource": "aws:sqs", "messageId": "m-1", "body": "{}"}]},
         "SQS event: its records are served one by one"),
        ({"eventSource": "aws:sqs", "body": "{}"}, "SQS record: messageId is missing or not a string"),
        ({"eventSource": "aws:sqs", "messageId": "m-1"}, "SQS record: body is missing, empty or not a string"),
        ({"eventSource": "aws:sqs", "messageId": "m-1", "body": ""}, "SQS record: body is missing"),
    ],
)
def test_malformed_carriers_are_rejected_with_a_clear_message(payload, message):
    assert message in event_rejection(payload).message


def test_an_sns_rejection_is_keyed_on_the_sns_message_id():
    assert event_rejection(_sns(Message="not JSON")).request_id == "d4e5f607-1829-4b0c-9d1e-2f3a4b5c6d7e"


def test_an_sqs_record_without_a_body_is_rejected_under_its_message_id():
    assert event_rejection({"eventSource": "aws:sqs", "messageId": "m-1"}).request_id == "m-1"


def test_json_nested_deeper_than_python_allows_is_rejected_not_raised():
    assert "not valid JSON" in rejection("[" * 100_000 + "]" * 100_000).message


@pytest.mark.parametrize(
    "payload",
    [None, [], "text", 42, 4.2, True, {}, {"junk": 1}, {"Records": None}, {"Records": [None]}, {"Records": [[]]},
     {"source": "aws.cloudwatch", "alarmData": {"state": []}}, {"detail-type": "x", "detail": 1},
     {"detail-type": ALARM_DETAIL_TYPE, "source": "aws.cloudwatch", "detail": None},
     {"Type": "Notification", "TopicArn": "t"}, {"requestContext": {}, "requestPayload": None},
     {"continuation": None}, {"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": "{}"}}],
)
def test_intake_raises_nothing_but_invalid_request(payload):
    with pytest.raises(InvalidRequest):
        parse_event(payload, DIRECT)
    with pytest.raises(InvalidRequest):
        parse_sqs_body(json.dumps(payload), SQS)


def _string(value: str) -> dict[str, str]:
    return {"stringValue": value, "dataType": "String"}


@pytest.mark.parametrize(("attributes", "marker"), [
    ({}, None),  # a request as sent: copies of it are one request
    ({"traceparent": _string("00-abc")}, None),  # a producer's own attributes say nothing of a redrive
    ({"redrivenFrom": _string("dead-letter-7")}, "dead-letter-7"),  # campaign-stop dlq redrive
    ({"errorCode": _string("stop_refused"), "requestId": _string("r-1"), "source": _string("sqs")},
     "msg-9"),  # SQS's move task brought back one of ours: its reason came along
    ({"ERROR_CODE": _string("SQS_ERROR"), "RULE_ARN": _string("arn:aws:events:…")}, "msg-9"),  # EventBridge's
    ({"ERROR_CODE": _string("X"), "SCHEDULE_ARN": _string("arn:aws:scheduler:…")}, "msg-9"),  # Scheduler's
    ({"errorCode": _string("E42")}, None),  # a producer's own attribute of that name is no redrive
    ({"redrivenFrom": _string("x" * 300)}, "msg-9"),  # never echoes an id that is not well-formed
])
def test_a_redriven_dead_letter_is_recognised_by_its_attributes(attributes, marker):
    record = {"messageId": "msg-9", "body": "{}", "messageAttributes": attributes}
    assert redrive_marker(record) == marker


def test_a_record_without_attributes_is_no_redrive():
    assert redrive_marker({"messageId": "msg-9", "body": "{}"}) is None


@pytest.mark.parametrize("name", ["checkout sms error rate", "x" * 250, "Fehlerquote größer", "bad\ud800name"])
def test_an_alarm_request_id_is_well_formed_and_distinct_whatever_the_name(name):
    first = alarm_request_id(name, "2026-11-28T10:05:00.000+0000")
    assert REQUEST_ID_PATTERN.fullmatch(first) and first.endswith(":2026-11-28T10:05:00.000+0000")
    assert first == alarm_request_id(name, "2026-11-28T10:05:00.000+0000")  # every delivery: the same request
    assert first != alarm_request_id(name, "2026-11-28T11:05:00.000+0000")  # firing again later: a new one
    assert first != alarm_request_id(name + "y", "2026-11-28T10:05:00.000+0000")  # another alarm: another


def test_a_well_formed_alarm_request_id_is_unchanged():
    assert alarm_request_id("checkout-sms-error-rate", "2026-11-28T10:05:00.000+0000") == SAME_CHANGE


# -- disableSchedule ------------------------------------------------------------------------------------------


def test_disable_schedule_is_read_and_defaults_to_false():
    assert request({"streamId": "st-1", "campaignId": "cd-1", "disableSchedule": True}).disable_schedule is True
    assert request({"streamId": "st-1", "campaignId": "cd-1"}).disable_schedule is False
    assert rejection({"streamId": "st-1", "campaignId": "cd-1", "disableSchedule": "yes"}).message == (
        "request.disableSchedule must be boolean")


def test_the_sample_recurring_stop_asks_for_its_schedule_to_be_disabled():
    payload = json.loads((EVENTS / "direct_stop_recurring.json").read_text())
    assert request(payload).disable_schedule is True


def test_a_continuation_carries_disable_schedule():
    asked = request({"streamId": "st-1", "campaignIds": ["cd-1", "cd-2"], "disableSchedule": True})
    message = Continuation(asked, Progress(segment=2)).as_message()
    assert message["request"]["disableSchedule"] is True
    assert parse_sqs_body(json.dumps(message), SQS).request.disable_schedule is True  # type: ignore[union-attr]
    plain = Continuation(request({"streamId": "st-1", "campaignIds": ["cd-1"]}), Progress(segment=2)).as_message()
    assert "disableSchedule" not in plain["request"]
