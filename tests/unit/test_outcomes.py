"""What each API answer means for a stop: the decision table, without any HTTP."""

from __future__ import annotations

import pytest

from stop_campaign.domain.models import ApiResponse
from stop_campaign.domain.outcomes import StopVerdict, confirmation, describe_refusal, finished_status, judge_stop


def answer(status: int, body: dict | None = None) -> ApiResponse:
    return ApiResponse(status=status, body=body, latency_ms=1.0)


STOPPED = {"status": "Stopped", "message": "Campaign Stopped", "updatedAt": "2025-12-05T12:07:54.225Z",
           "campaignExecutionType": "NORMAL"}


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (200, STOPPED, StopVerdict.STOPPED),
        (200, None, StopVerdict.STOPPED),
        (202, {"unexpected": True}, StopVerdict.STOPPED),
        (200, {"status": "Stopped", "message": "Campaign is already stopped"}, StopVerdict.ALREADY_STOPPED),
        (401, {"errors": [{"msg": "Invalid JWT token", "code": 4002}]}, StopVerdict.UNAUTHORIZED),
        (429, None, StopVerdict.TRANSIENT),
        (500, None, StopVerdict.TRANSIENT),
        (503, None, StopVerdict.TRANSIENT),
        (408, None, StopVerdict.TRANSIENT),
        (501, None, StopVerdict.TRANSIENT),
        (520, None, StopVerdict.TRANSIENT),
        (400, {"errors": [{"msg": "Campaign is already stopped"}]}, StopVerdict.REFUSED),
        (404, {"errors": [{"msg": "Campaign not found"}]}, StopVerdict.REFUSED),
        (412, {"errors": [{"msg": "Validation errors/ Invalid arguments"}]}, StopVerdict.REFUSED),
        (302, None, StopVerdict.REFUSED),  # redirects are never followed
    ],
)
def test_verdicts(status, body, verdict):
    assert judge_stop(answer(status, body)) is verdict


def test_confirmation_copies_the_documented_fields():
    assert confirmation(answer(200, STOPPED)).as_result_field() == {"httpStatus": 200, **STOPPED}


def test_confirmation_tolerates_missing_extra_and_mistyped_fields():
    body = {"status": "Stopped", "campaignExecutionType": 7, "campaignInstanceId": "cid-1", "extra": {"x": 1}}
    assert confirmation(answer(200, body)).as_result_field() == {
        "httpStatus": 200, "status": "Stopped", "campaignInstanceId": "cid-1"
    }


@pytest.mark.parametrize("key", ["msg", "message"])
def test_error_envelope_message_in_either_spelling(key):
    refusal = answer(412, {"errors": [{key: "Validation errors/ Invalid arguments", "code": 412}]})
    assert describe_refusal(refusal) == "Kore.ai API answered HTTP 412: Validation errors/ Invalid arguments"
    assert confirmation(refusal).message == "Validation errors/ Invalid arguments"


@pytest.mark.parametrize(
    ("body", "finished"),
    [
        ({"status": "success", "data": {"id": "cd-1", "status": "Stopped"}}, "Stopped"),
        ({"status": "success", "data": {"id": "cd-1", "status": "Completed"}}, "Completed"),
        ({"status": "success", "data": {"id": "cd-1", "status": "Active"}}, None),
        ({"status": "success", "data": None}, None),
        (None, None),
    ],
)
def test_finished_status(body, finished):
    assert finished_status(answer(200, body)) == finished


def test_a_failed_status_call_never_means_finished():
    assert finished_status(answer(404, {"data": {"status": "Stopped"}})) is None


def test_a_token_echoed_by_the_platform_is_never_copied():
    token = "eyJhbGciOiJIUzI1NiJ9.eyJhcHBJZCI6ImNzLTEifQ.c2lnbmF0dXJl"
    refusal = answer(401, {"errors": [{"msg": f"Invalid JWT token {token}", "code": 4002}]})
    assert token not in describe_refusal(refusal)
    assert confirmation(refusal).message == "Invalid JWT token [token removed]"
