"""Request expiry (intake.expiry): a request's own notAfter and MAX_REQUEST_AGE_SECONDS, judged against a time given
as a parameter: nothing here sleeps or reads the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stop_campaign.domain.intake import (
    ORIGINAL_SENT_ATTRIBUTE,
    AlarmStateChange,
    RequestExpired,
    epoch_ms,
    expiry,
    first_sent_at,
    parse_sqs_body,
    parse_stop_request,
)
from stop_campaign.domain.models import Origin, Source, StopRequest

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = 86400


def request(sent_at: str | None = None, **fields: object) -> StopRequest:
    origin = Origin(Source.SQS, "m-1", "2026-11-29T12:00:00Z", sent_at=sent_at)
    return parse_stop_request({"streamId": "st-1", "campaignId": "cd-1", "requestId": "r-1", **fields}, origin, "m-1")


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat().replace("+00:00", "Z")


def test_a_fresh_request_may_be_served() -> None:
    assert expiry(request(requestedAt=ago(hours=23)), NOW, DAY) is None


def test_a_request_past_its_not_after_is_expired_whatever_its_age() -> None:
    late = expiry(request(requestedAt=ago(minutes=5), notAfter=ago(minutes=1)), NOW, DAY)
    assert isinstance(late, RequestExpired)
    assert (late.code, late.request_id) == ("expired", "r-1")
    assert "notAfter" in late.message and late.fields == {"streamId": "st-1", "campaignType": "sms",
                                                          "campaignId": "cd-1"}
    assert expiry(request(notAfter=ago(minutes=-1)), NOW, DAY) is None  # a minute from now: still in time


def test_age_runs_from_requested_at_first() -> None:
    old = expiry(request(sent_at=ago(minutes=1), requestedAt=ago(days=2)), NOW, DAY)
    assert isinstance(old, RequestExpired) and "from requestedAt" in old.message and "172800 s old" in old.message
    assert expiry(request(sent_at=ago(days=2), requestedAt=ago(minutes=1)), NOW, DAY) is None


def test_without_requested_at_age_runs_from_when_the_message_was_first_sent() -> None:
    old = expiry(request(sent_at=ago(days=1, seconds=1)), NOW, DAY)
    assert isinstance(old, RequestExpired) and "from sent" in old.message
    assert expiry(request(sent_at=ago(days=1)), NOW, DAY) is None  # exactly the limit: still served


def test_a_request_whose_age_nothing_tells_is_served() -> None:
    assert expiry(request(), NOW, DAY) is None


def test_an_alarm_is_as_old_as_its_state_change() -> None:
    alarm = AlarmStateChange("kill-sms", None, "ALARM", ago(days=3), None, "2026-11-29T12:00:00Z")
    late = expiry(alarm, NOW, DAY)
    assert isinstance(late, RequestExpired) and late.request_id == alarm.request_id and late.fields == {}
    assert expiry(AlarmStateChange("kill-sms", None, "ALARM", ago(minutes=1), None, "now"), NOW, DAY) is None
    unreadable = AlarmStateChange("kill-sms", None, "ALARM", "yesterday-ish", None, "now", sent_at=ago(days=2))
    assert isinstance(expiry(unreadable, NOW, DAY), RequestExpired)  # then from when it was sent


def test_times_without_an_offset_are_utc_and_alarm_offsets_are_read() -> None:
    assert isinstance(expiry(request(sent_at="2026-11-28T11:59:59"), NOW, DAY), RequestExpired)
    alarm = AlarmStateChange("a", None, "ALARM", "2026-11-28T11:00:00.000+0000", None, "now")
    assert isinstance(expiry(alarm, NOW, DAY), RequestExpired)


def test_the_schema_takes_not_after_as_a_date_time() -> None:
    assert request(notAfter="2026-11-30T00:00:00Z").not_after == "2026-11-30T00:00:00Z"
    with pytest.raises(Exception, match="notAfter"):
        request(notAfter="tomorrow")


def test_a_redriven_dead_letter_keeps_its_original_sent_time() -> None:
    record = {"attributes": {"SentTimestamp": str(epoch_ms("2026-11-29T11:59:00Z"))},
              "messageAttributes": {ORIGINAL_SENT_ATTRIBUTE: {"stringValue": "1795176000000", "dataType": "String"}}}
    assert first_sent_at(record) == "2026-11-20T12:00:00.000Z"  # the original, not the redriven copy's own
    del record["messageAttributes"]
    assert first_sent_at(record) == "2026-11-29T11:59:00.000Z"
    assert first_sent_at({"attributes": {"SentTimestamp": "soon"}}) is None
    assert epoch_ms("2026-11-20T12:00:00.000Z") == 1795176000000 and epoch_ms("not a time") is None


def test_the_sent_time_reaches_a_request_in_an_eventbridge_envelope() -> None:
    envelope = ('{"id": "e-1", "detail-type": "Stop Campaign Request", "source": "x", "time": "2026-11-27T10:00:00Z",'
                ' "detail": {"streamId": "st-1", "campaignId": "cd-1"}}')
    from_event = parse_sqs_body(envelope, Origin(Source.SQS, "m-1", "now"))
    assert isinstance(from_event, StopRequest) and from_event.sent_at == "2026-11-27T10:00:00Z"
    assert isinstance(expiry(from_event, NOW, DAY), RequestExpired)
    from_sqs = parse_sqs_body(envelope, Origin(Source.SQS, "m-1", "now", sent_at=ago(minutes=1)))
    assert expiry(from_sqs, NOW, DAY) is None  # SQS's SentTimestamp comes before the event's time
