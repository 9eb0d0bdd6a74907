"""Property-based: nothing a message can hold makes intake raise anything but a clear rejection.

Every input either becomes a request (a stop request, an alarm state change, a continuation) or an
InvalidRequest whose message and request id are bounded, so the rejected result echoing them stays small.
"""

from __future__ import annotations

import json
from typing import Any

from event_strategies import anything, notifications, stop_requests
from hypothesis import given, settings
from hypothesis import strategies as st

from stop_campaign.domain.intake import AlarmStateChange, InvalidRequest, parse_event, parse_sqs_body
from stop_campaign.domain.models import Continuation, Origin, RequestRejected, Source, StopRequest

ORIGIN = Origin(Source.SQS, "msg-1", "2026-11-28T10:00:00.000Z")
PARSED = (StopRequest, AlarmStateChange, Continuation)

def assert_clear(error: RequestRejected) -> None:
    assert error.code and 0 < len(error.message) <= 1024
    request_id = getattr(error, "request_id", "")
    assert len(request_id) <= 256
    for value in getattr(error, "fields", {}).values():
        assert isinstance(value, str) and len(value) <= 128


@settings(max_examples=400, deadline=None)
@given(anything | stop_requests | notifications)
def test_any_event_becomes_a_request_or_a_clear_rejection(event: Any) -> None:
    try:
        parsed = parse_event(event, ORIGIN)
    except RequestRejected as error:
        assert_clear(error)
    else:
        assert isinstance(parsed, PARSED)
        assert len(parsed.request_id) <= 1100  # alarm ids: name (≤ 512) and time (≤ 512)


@settings(max_examples=400, deadline=None)
@given(anything.map(json.dumps) | st.text(max_size=200) | st.binary(max_size=50).map(lambda b: b.decode("latin-1")))
def test_any_sqs_body_becomes_a_request_or_a_clear_rejection(body: str) -> None:
    try:
        parsed = parse_sqs_body(body, ORIGIN)
    except InvalidRequest as error:
        assert_clear(error)
    except RequestRejected as error:
        assert_clear(error)
    else:
        assert isinstance(parsed, PARSED)
