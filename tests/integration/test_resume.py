"""Resume (``{"action": "resume", "resumeOf": ...}``) through the real handler: moto's server as AWS (the request
history included), the Kore.ai simulator as the platform.

How we know every request ended: each test reads back what SNS delivered (the results subscriber queue, every event
checked against its schema on the way) and the dead-letter queue; the simulator's log says exactly which calls were
made, to which path, with which query.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from conftest import ACCOUNT_ID, STREAM_ID

from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack
from devtools.poller import SqsEventSourceMapping
from stop_campaign import app

STOP = {"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2", "cd-3"], "requestId": "req-incident",
        "requestedBy": "oncall@example.com"}
RESUME = {"action": "resume", "resumeOf": "req-incident", "requestId": "req-undo", "requestedBy": "oncall@example.com"}
START_SMS = "/campaign/api/v2/public/{stream}/campaign/{campaign}"
VOICE_PATH = "/api/v2/public/{stream}/campaign/trigger/{campaign}"


@pytest.fixture
def kore_campaigns() -> list[tuple[str, str, str, str]]:
    """cd-1 and cd-2 running; cd-3 already stopped (by someone else) before the incident's stop; a voice one."""
    return [(STREAM_ID, "cd-1", "sms", "Active"), (STREAM_ID, "cd-2", "sms", "Active"),
            (STREAM_ID, "cd-3", "sms", "Stopped"), (STREAM_ID, "cd-voice-1", "voice", "Active")]


def by_campaign(results: list[dict[str, Any]]) -> dict[str, str]:
    return {result["campaignId"]: result["outcome"] for result in results}


@pytest.fixture
def stopped(invoke, sqs, stack: LocalStack, kore: KoreSimulator) -> KoreSimulator:
    """The incident's stop has run: cd-1 and cd-2 stopped by it, cd-3 found already stopped; its history is kept."""
    invoke(sqs(STOP))
    assert by_campaign(stack.drain_results()) == {"cd-1": "stopped", "cd-2": "stopped", "cd-3": "already_stopped"}
    stack.drain_summaries()
    kore.reset_log()
    return kore


def start_calls(kore: KoreSimulator) -> list[tuple[str | None, str, dict[str, str]]]:
    """The start calls made, by path (campaigns are started concurrently: their order is not the point)."""
    return sorted(((request.kind, request.path, request.query) for request in kore.start_calls()),
                  key=lambda call: call[1])


def test_resume_starts_exactly_the_campaigns_the_request_stopped(invoke, sqs, stack, stopped):
    invoke(sqs(RESUME))

    # cd-3 was already stopped when the incident's stop came: not that request's to start again.
    assert start_calls(stopped) == [
        ("start_sms", START_SMS.format(stream=STREAM_ID, campaign=campaign), {"campaignType": "sms",
                                                                             "trigger": "play"})
        for campaign in ("cd-1", "cd-2")]
    assert [request.kind for request in stopped.requests].count("status") == 2  # still Stopped? asked first
    assert all(request.headers["accountid"] == ACCOUNT_ID and request.jwt_claims for request in stopped.requests)
    assert [stopped.campaign_status(STREAM_ID, campaign) for campaign in ("cd-1", "cd-2", "cd-3")] == [
        "Active", "Active", "Stopped"]
    results = stack.drain_results()
    assert by_campaign(results) == {"cd-1": "resumed", "cd-2": "resumed"}
    for result in results:
        assert result["requestId"] == "req-undo" and result["resumeOf"] == "req-incident"
        assert result["schedule"] == {"reenabled": False}  # a schedule the stop disabled stays disabled
        assert result["api"]["status"] == "Active" and result["error"] is None
    summary = stack.drain_summaries()
    assert [(s["requestId"], s["resumeOf"], s["outcomes"], s["campaigns"]) for s in summary] == [
        ("req-undo", "req-incident", {"resumed": 2}, 2)]
    assert stack.drain_dead_letters() == []


def test_a_campaign_restarted_meanwhile_is_ignored_without_a_start_call(invoke, sqs, stack, stopped):
    stopped.add_campaign(STREAM_ID, "cd-2", status="Active")  # someone started it again by hand

    invoke(sqs(RESUME))

    assert [request.path for request in stopped.start_calls()] == [START_SMS.format(stream=STREAM_ID,
                                                                                     campaign="cd-1")]
    results = {result["campaignId"]: result for result in stack.drain_results()}
    assert {campaign: result["outcome"] for campaign, result in results.items()} == {"cd-1": "resumed",
                                                                                      "cd-2": "ignored"}
    assert results["cd-2"]["api"]["status"] == "Active" and "not Stopped" in results["cd-2"]["api"]["message"]
    assert stack.drain_dead_letters() == []


def test_a_redelivered_resume_makes_no_second_start_call_and_no_second_result(invoke, sqs, stack, stopped):
    event = sqs(RESUME, message_ids=["m-resume"])
    invoke(event)
    assert len(stopped.start_calls()) == 2
    assert len(stack.drain_results()) == 2 and len(stack.drain_summaries()) == 1

    invoke(event)  # the same message, delivered again
    invoke(sqs(RESUME, message_ids=["m-resume-copy"], receive_count=2))  # a copy of it, another message

    assert len(stopped.start_calls()) == 2  # no second start of either campaign
    assert stack.drain_results() == [] and stack.drain_summaries() == []
    assert stack.drain_dead_letters() == []


def test_a_dry_run_makes_no_call_and_says_what_would_be_started(invoke, sqs, stack, stopped):
    invoke(sqs(RESUME | {"dryRun": True, "requestId": "req-undo-dry"}))

    assert stopped.requests == []  # no call at all: not even the status check
    results = stack.drain_results()
    assert by_campaign(results) == {"cd-1": "dry_run", "cd-2": "dry_run"}
    assert all(result["dryRun"] and result["resumeOf"] == "req-incident" for result in results)
    assert [stopped.campaign_status(STREAM_ID, campaign) for campaign in ("cd-1", "cd-2")] == ["Stopped", "Stopped"]


def test_a_resume_of_an_unknown_request_is_rejected_and_dead_lettered(invoke, sqs, stack, kore):
    invoke(sqs(RESUME | {"resumeOf": "req-never-seen"}))

    assert kore.requests == []
    result = stack.drain_results()[0]
    assert (result["outcome"], result["requestId"], result["error"]["code"]) == ("rejected", "req-undo",
                                                                                 "unknown_request")
    assert "req-never-seen" in result["error"]["message"]
    [dead_letter] = stack.drain_dead_letters()
    assert dead_letter["MessageAttributes"]["errorCode"]["StringValue"] == "unknown_request"


def test_a_direct_invocation_resumes_voice_through_the_voice_path_with_trigger_play(invoke, sqs, stack, kore):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-voice-1", "campaignType": "voice",
                "requestId": "req-voice"}))
    assert by_campaign(stack.drain_results()) == {"cd-voice-1": "stopped"}
    kore.reset_log()

    answer = invoke({"action": "resume", "resumeOf": "req-voice", "requestId": "req-voice-undo"})

    assert start_calls(kore) == [("start_voice", VOICE_PATH.format(stream=STREAM_ID, campaign="cd-voice-1"),
                                  {"accountId": ACCOUNT_ID, "campaignType": "voice", "trigger": "play"})]
    assert kore.campaign_status(STREAM_ID, "cd-voice-1") == "Active"
    assert [(r["campaignId"], r["outcome"]) for r in answer["results"]] == [("cd-voice-1", "resumed")]
    assert by_campaign(stack.drain_results()) == {"cd-voice-1": "resumed"}


def test_a_request_that_stopped_nothing_itself_resumes_nothing(invoke, sqs, stack, kore):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-3", "requestId": "req-was-stopped"}))
    assert by_campaign(stack.drain_results()) == {"cd-3": "already_stopped"}
    kore.reset_log()

    invoke(sqs(RESUME | {"resumeOf": "req-was-stopped"}))

    assert kore.requests == []
    [result] = stack.drain_results()
    assert (result["outcome"], result["campaignId"], result["resumeOf"]) == ("ignored", None, "req-was-stopped")
    assert stack.drain_dead_letters() == []


def test_a_producer_may_resume_only_what_it_may_stop(invoke, sqs, stack, stopped, cold_start):
    stack.put_producer_policy({"producers": {"ops": {"senders": ["sqs:OPS*"], "allow": [
        {"streamId": STREAM_ID, "campaignIds": ["cd-1"]}]}}, "otherwise": "deny"})
    cold_start()  # a new container: the policy the stop read is not cached

    invoke(sqs(RESUME, sender_id="OPSROLE:someone"))

    assert [request.path for request in stopped.start_calls()] == [START_SMS.format(stream=STREAM_ID,
                                                                                     campaign="cd-1")]
    results = {result["campaignId"]: result for result in stack.drain_results()}
    assert results["cd-1"]["outcome"] == "resumed"
    assert (results["cd-2"]["outcome"], results["cd-2"]["error"]["code"]) == ("rejected", "not_authorized")
    assert stopped.campaign_status(STREAM_ID, "cd-2") == "Stopped"
    assert len(stack.drain_dead_letters()) == 1  # the refusal, as for a stop


def test_a_start_the_platform_refuses_fails_and_is_dead_lettered(invoke, sqs, stack, stopped):
    stopped.inject("start_sms", status=412, campaign_id="cd-2")

    invoke(sqs(RESUME))

    results = {result["campaignId"]: result for result in stack.drain_results()}
    assert results["cd-1"]["outcome"] == "resumed"
    assert (results["cd-2"]["outcome"], results["cd-2"]["error"]["code"]) == ("failed", "start_refused")
    assert len(stack.drain_dead_letters()) == 1


def test_a_start_the_api_fails_twice_is_retried_within_the_invocation(invoke, sqs, stack, stopped):
    stopped.inject("start_sms", status=503, times=2, campaign_id="cd-1")

    invoke(sqs(RESUME))

    assert [call.status for call in stopped.start_calls("cd-1")] == [503, 503, 200]
    assert by_campaign(stack.drain_results()) == {"cd-1": "resumed", "cd-2": "resumed"}
    assert stack.drain_dead_letters() == []


def test_a_resume_past_the_rate_budget_continues_as_a_resume(invoke, stack, kore, cold_start, monkeypatch):
    """Two calls a campaign (status, start) at 10 calls per 2 s and 6 s invocations: the rest of the resume is handed
    over to the stop queue, and its continuation starts campaigns; it never stops one."""
    campaigns = [f"cd-paced-{number:02}" for number in range(12)]
    for campaign_id in campaigns:
        kore.add_campaign(STREAM_ID, campaign_id, status="Active")
    invoke({"streamId": STREAM_ID, "campaignIds": campaigns, "requestId": "req-paced"})  # its history is kept
    assert {result["outcome"] for result in stack.drain_results()} == {"stopped"}
    stack.drain_summaries()
    kore.reset_log()
    monkeypatch.setenv("KORE_RATE_LIMIT", "10/2")
    kore.set_rate_limit(max_requests=10, window_seconds=2.0, retry_after=1)
    cold_start()
    mapping = SqsEventSourceMapping(stack, handler=app.lambda_handler, function_timeout_seconds=6,
                                    retry_delay_seconds=30)

    stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(
        {"action": "resume", "resumeOf": "req-paced", "requestId": "req-paced-undo"}))
    reports = mapping.poll_until_empty(max_seconds=60)

    assert len(reports) >= 2  # 24 calls at 10 per 2 s: continued at least once
    kinds = [call.kind for call in kore.requests if call.status == 200]
    # a status call takes its start's slot with it (a status call without its start is one cut off by the deadline)
    assert kinds.count("start_sms") == 12 and kinds.count("status") <= 14
    assert sum(1 for call in kore.requests if call.status == 429) <= 2  # paced by the budget, not by refusals
    assert all(not report.failed_ids and not report.error for report in reports)
    assert kore.stop_calls() == []  # a continuation of a resume is a resume
    started = Counter(call.path.rsplit("/", 1)[1] for call in kore.start_calls() if call.status == 200)
    assert started == dict.fromkeys(campaigns, 1)
    assert {kore.campaign_status(STREAM_ID, campaign_id) for campaign_id in campaigns} == {"Active"}
    results = stack.drain_results()
    assert Counter((r["campaignId"], r["outcome"], r["resumeOf"]) for r in results) == {
        (campaign_id, "resumed", "req-paced"): 1 for campaign_id in campaigns}
    [summary] = stack.drain_summaries()
    assert (summary["outcomes"], summary["campaigns"], summary["resumeOf"]) == ({"resumed": 12}, 12, "req-paced")
    assert stack.drain_dead_letters() == []
