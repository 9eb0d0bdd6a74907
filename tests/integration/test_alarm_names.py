"""Alarm names as CloudWatch allows them (spaces, up to 255 characters, any Unicode) and as a hand-made message
could spell them: every result of one alarm's request, across continuations, carries one request id."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from devtools.poller import SqsEventSourceMapping
from stop_campaign import app

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
