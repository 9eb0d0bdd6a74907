"""Alarm names as CloudWatch allows them (spaces, up to 255 characters, any Unicode) and as a hand-made message
could spell them: every result of one alarm's request, across continuations, carries one request id."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.poller import SqsEventSourceMapping
from stop_campaign import app
from stop_campaign.domain.intake import REQUEST_ID_PATTERN

ROOT = Path(__file__).resolve().parents[2]
NAMED_STREAM = "st-named"


def fired(name: str) -> dict:
    event = json.loads((ROOT / "events/eventbridge_alarm_state_change.json").read_text())
    event["detail"]["alarmName"] = name
    return event


@pytest.mark.parametrize("name", ["checkout sms error rate", "sms-" + "x" * 246], ids=["spaces", "250-chars"])
def test_an_alarm_request_keeps_its_id_across_continuations(name, invoke, stack, kore, monkeypatch):
    monkeypatch.setenv("KORE_RATE_LIMIT", "3/2")  # seven campaigns at three per 2 s: three segments
    campaigns = [f"cd-n{number}" for number in range(7)]
    for campaign_id in campaigns:
        kore.add_campaign(NAMED_STREAM, campaign_id, campaign_type="sms", status="Active")
    stack.put_alarm_map({name: [{"streamId": NAMED_STREAM, "campaignIds": campaigns}]})

    first = invoke(fired(name), timeout_seconds=6)  # short: the rest must continue
    [request_id] = {result["requestId"] for result in first["results"]}
    assert request_id.startswith("alarm:") and len(request_id) <= 256
    assert request_id.endswith(":2026-11-28T10:05:00.000+0000")  # the state change time is never cut off
    mapping = SqsEventSourceMapping(stack, handler=app.lambda_handler, function_timeout_seconds=6)
    started = time.monotonic()
    reports = mapping.poll_until_empty(max_seconds=30)
    assert time.monotonic() - started < 25 and len(reports) >= 2

    results = stack.drain_results()
    assert Counter(result["campaignId"] for result in results) == dict.fromkeys(campaigns, 1)
    assert {result["requestId"] for result in results} == {request_id}
    [summary] = stack.drain_summaries()
    assert summary["requestId"] == request_id and summary["outcomes"] == {"stopped": 7}
    assert stack.drain_dead_letters() == []




def sent(message: dict, attribute: str) -> str:
    return message["MessageAttributes"][attribute]["StringValue"]


@pytest.mark.parametrize("carrier", ["direct", "sqs"])
def test_an_alarm_name_with_a_lone_surrogate_is_served_with_the_name_made_valid_text(carrier, invoke, stack, sqs):
    # CloudWatch never sends one; a hand-made message can, as a JSON escape. The kill switch still fires: the map
    # is matched on the exact name, and every text that leaves the function says U+FFFD for what cannot be sent.
    stack.put_alarm_map({"sms-*": [{"streamId": "st-1", "campaignIds": ["cd-1"]}]})
    event = fired("sms-\ud800-rate")
    event["detail"]["state"]["reason"] = "spike \udfff\x01 seen"
    response = invoke(event if carrier == "direct" else sqs(json.dumps(event)))
    assert response.get("batchItemFailures", []) == []
    [result] = stack.drain_results()
    assert result["outcome"] == "stopped" and result["campaignId"] == "cd-1"
    assert result["requestId"].startswith("alarm:sms-_-rate~") and result["requestId"].isascii()
    assert result["requestedBy"] == "cloudwatch-alarm:sms-\ufffd-rate"
    assert result["reason"] == "CloudWatch alarm sms-\ufffd-rate entered ALARM: spike \ufffd\ufffd seen"
    [summary] = stack.drain_summaries()
    assert summary["requestId"] == result["requestId"]
    assert stack.drain_dead_letters() == []


def test_an_api_refusal_with_unsendable_text_ends_failed_and_dead_lettered(invoke, stack, kore, caplog):
    kore.inject(kind="stop_sms", status=400, body={"errors": [{"msg": "bad\ud800 \x01 thing"}]}, campaign_id="cd-2")
    request = {"streamId": "st-1", "campaignId": "cd-2", "requestId": "refused-oddly", "reason": "why\udc00"}
    [answer] = invoke(request)["results"]
    assert answer["outcome"] == "failed" and answer["reason"] == "why\ufffd"  # the answer says what was published
    [logged] = [record for record in caplog.records if record.getMessage() == "Stop failed"]
    line = app.logger.registered_handler.format(logged)  # as the function writes it to stdout
    assert "bad\\ud800" in line and line.encode()  # shown, and writable: the line is not dropped
    [result] = stack.drain_results()
    assert result["error"]["message"] == "Kore.ai API answered HTTP 400: bad\ufffd \ufffd thing"
    assert result["reason"] == "why\ufffd"
    [letter] = stack.drain_dead_letters()
    assert json.loads(letter["Body"]) == request  # the original, as it came (JSON escapes are plain ASCII)
    assert sent(letter, "errorCode") == "stop_refused" and "bad\ufffd \ufffd thing" in sent(letter, "errorMessage")


def test_a_hand_made_sqs_record_with_a_lone_surrogate_is_rejected_and_dead_lettered(invoke, stack, sqs):
    event = sqs("placeholder")
    event["Records"][0]["body"] = "not json \ud800"  # no SQS queue delivers this; a direct invocation can
    assert invoke(event)["batchItemFailures"] == []  # not retried for ever: it ends now
    [result] = stack.drain_results()
    assert result["outcome"] == "rejected" and result["error"]["code"] == "invalid_request"
    [letter] = stack.drain_dead_letters()
    assert letter["Body"] == "not json \ufffd"  # all of it that SQS can hold


# Any character at all, lone surrogates and control characters included (Hypothesis' text leaves surrogates out).
any_text = st.text(st.characters(codec=None, categories=None), max_size=300)
firings = itertools.count()  # every example a new state change: the same one again would rightly publish nothing


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=any_text, reason=any_text)
def test_any_alarm_name_and_reason_end_in_one_sendable_result(invoke, stack, name, reason):
    stack.put_alarm_map({"sms-*": [{"streamId": "st-1", "campaignIds": ["cd-1"], "dryRun": True}]})
    event = fired("sms-" + name)
    event["detail"]["state"]["reason"] = reason
    at = next(firings)
    event["detail"]["state"]["timestamp"] = f"2026-11-28T10:{at // 60 % 60:02}:{at % 60:02}.000+0000"
    [answer] = invoke(event)["results"]
    [result] = stack.drain_results()
    assert result == answer and result["outcome"] == "dry_run"
    assert REQUEST_ID_PATTERN.fullmatch(result["requestId"])
    assert json.dumps(result, ensure_ascii=False).encode()  # valid text throughout: no lone surrogate left
    stack.drain_summaries()
    assert stack.drain_dead_letters() == []
