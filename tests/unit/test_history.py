"""The request history's item shapes (domain/history.py). Pure: no AWS, no sockets."""

from __future__ import annotations

import json
from dataclasses import replace

from stop_campaign.domain.history import listing_row, request_fields, result_entry, stopped_campaigns
from stop_campaign.domain.models import Outcome, ResultEvent, Source


def result(**fields: object) -> dict:
    event = ResultEvent(outcome=Outcome.STOPPED, request_id="req-1", source=Source.ALARM,
                        received_at="2026-11-28T10:00:01.000Z", completed_at="2026-11-28T10:00:01.400Z",
                        stream_id="st-1", campaign_id="cd-1", campaign_type="sms", account_id="acc-1",
                        requested_by="cloudwatch-alarm:x", reason="why")
    return {**event.as_message(), **fields}


def test_one_campaign_has_one_entry_whatever_its_outcome():
    assert result_entry(result()) == "result#st-1#sms#cd-1#acc-1#live"
    assert result_entry(result(outcome="failed")) == result_entry(result())
    assert result_entry(result(dryRun=True)) == "result#st-1#sms#cd-1#acc-1#dry"
    assert result_entry(result(campaignId=None, streamId=None)) == "result#-#sms#-#acc-1#live"


def test_the_request_item_is_dated_by_when_the_request_was_first_seen():
    fields = request_fields(result())
    assert (fields["day"], fields["at"]) == ("2026-11-28", "2026-11-28T10:00:01.000Z")
    assert (fields["source"], fields["requestedBy"], fields["streamId"]) == ("alarm", "cloudwatch-alarm:x", "st-1")
    assert "producer" not in fields and "alarmArn" not in fields  # nothing stored for what the event lacks


def test_a_producer_on_the_results_is_kept_for_the_listing():
    producer = {"kind": "sqs", "id": "AROA:x", "name": "fraud-service"}
    fields = request_fields(result(producer=producer))
    row = listing_row({"requestId": "req-1", **fields, "count_stopped": 2, "count_failed": 1, "count_ignored": 0})
    assert row["producer"] == producer
    assert (row["campaigns"], row["outcomes"]) == (3, {"failed": 1, "stopped": 2})


def test_a_listing_row_carries_the_summary_when_there_was_one():
    summary = {"eventType": "summary", "outcomes": {"stopped": 2}}
    row = listing_row({"requestId": "req-1", "at": "2026-11-28T10:00:01.000Z", "summary": json.dumps(summary)})
    assert row["summary"] == summary and row["receivedAt"] == "2026-11-28T10:00:01.000Z"


def test_which_campaigns_a_request_stopped_itself():
    results = [result(), result(campaignId="cd-2", outcome="already_stopped"), result(campaignId=None)]
    assert [event["campaignId"] for event in stopped_campaigns(results)] == ["cd-1"]


def test_the_schedule_field_is_in_the_message_only_when_asked_and_never_in_the_identity():
    plain = ResultEvent(outcome=Outcome.STOPPED, request_id="req-1", source=Source.SQS, received_at="t",
                        completed_at="t", campaign_id="cd-1")
    disabled = replace(plain, schedule={"disabled": True})
    assert "schedule" not in plain.as_message()
    assert disabled.as_message()["schedule"] == {"disabled": True}
    assert disabled.result_id == plain.result_id  # one campaign, one outcome: the same result
