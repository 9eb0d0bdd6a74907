"""Intake: every shape a stop request can arrive in, and every way it can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stop_campaign.intake import AlarmStateChange, InvalidRequest, Origin, parse_event, parse_sqs_body
from stop_campaign.models import CampaignType, Source, StopRequest

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
