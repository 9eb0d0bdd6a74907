"""A request id used again by another message (GitHub issue 17): no second stop, and the original outcome published
again with the same resultId, so whoever waits for that request id sees it. Copies and redeliveries of one message
still publish nothing new. Through the handler, over moto and the Kore.ai simulator; every test drains the results
topic and the dead-letter queue."""

from __future__ import annotations

from conftest import STREAM_ID


def test_a_reused_request_id_stops_nothing_again_and_publishes_the_original_result_again(invoke, stack, kore, sqs):
    first = {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "reused-1",
             "requestedAt": "2026-11-28T10:00:00Z", "reason": "first"}
    invoke(sqs(first))
    [original] = stack.drain_results()
    assert original["outcome"] == "stopped"

    again = {**first, "requestedAt": "2026-11-28T15:00:00Z", "reason": "a new request, an old id"}
    second_delivery = sqs(again, message_ids=["second-message"])
    invoke(second_delivery)
    assert len(kore.stop_calls()) == 1  # no second stop call
    [republished] = stack.drain_results()
    assert republished == original  # the very event: same resultId, outcome, completedAt, reason
    assert stack.drain_dead_letters() == []

    second_delivery["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    invoke(second_delivery)  # that message delivered again: published for it already
    invoke(sqs(again))  # an exact copy of it in another message: the same request, nothing new
    invoke(sqs(first))  # and of the first
    assert stack.drain_results() == [] and len(kore.stop_calls()) == 1


def test_a_reused_multi_campaign_request_id_republishes_every_result_and_the_summary(invoke, stack, kore, sqs):
    first = {"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2", "cd-done"], "requestId": "reused-many",
             "requestedAt": "2026-11-28T10:00:00Z"}
    kore.add_campaign(STREAM_ID, "cd-done", campaign_type="sms", status="Completed")
    invoke(sqs(first))
    originals = {result["resultId"]: result for result in stack.drain_results()}
    [summary] = stack.drain_summaries()
    assert len(originals) == 3
    calls = len(kore.requests)

    invoke(sqs({**first, "requestedAt": "2026-11-29T10:00:00Z"}))
    assert len(kore.requests) == calls  # nothing called again
    assert {result["resultId"]: result for result in stack.drain_results()} == originals
    assert stack.drain_summaries() == [summary]


def test_a_reused_request_id_of_a_rejected_request_publishes_the_rejection_again(invoke, stack, kore, sqs):
    body = {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "reused-bad", "accountId": "acc-other"}
    invoke(sqs(body))
    [rejected] = stack.drain_results()
    assert rejected["error"]["code"] == "account_mismatch"
    assert len(stack.drain_dead_letters()) == 1
    invoke(sqs({**body, "reason": "try again"}))
    assert stack.drain_results() == [rejected]
    assert kore.requests == []


def test_a_late_copy_of_a_request_a_continuation_finished_publishes_nothing_new(invoke, stack, kore, sqs):
    """The request waited for the platform (a 429 past the time left) and a hand-over finished it; the result that
    continuation published cannot say which message began the request, so a late copy of that message (another SQS
    message, the same body) must not take it for a reused id: one result, as with any copy."""
    kore.inject(kind="stop_sms", status=429, retry_after=8, times=1)
    body = {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "continued-then-copied"}
    invoke(sqs(body), timeout_seconds=6)  # handed over: back when the platform said it may be
    queue = stack.client("sqs")
    messages: list[dict] = []
    for _ in range(15):
        messages = queue.receive_message(QueueUrl=stack.stop_queue_url, MaxNumberOfMessages=10,
                                         MessageAttributeNames=["All"], WaitTimeSeconds=1).get("Messages", [])
        if messages:
            break
    [continuation] = messages
    invoke(sqs(continuation["Body"]))
    [result] = stack.drain_results()
    assert result["outcome"] == "stopped"

    invoke(sqs(body, message_ids=["a-late-copy"]))
    assert stack.drain_results() == []  # nothing published again
    assert [call.status for call in kore.stop_calls()] == [429, 200]  # nor stopped again
    assert stack.drain_dead_letters() == []
