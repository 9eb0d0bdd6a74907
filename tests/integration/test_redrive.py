"""A dead letter sent back (GitHub issue 10): a redrive that fails again says so in a new result, while copies of
one request stay one result and one dead letter. Through the stop queue, the emulated event source and the real
handler, over moto and the Kore.ai simulator."""

from __future__ import annotations

import json
from pathlib import Path

import fastjsonschema
from conftest import STREAM_ID

from devtools.poller import SqsEventSourceMapping
from stop_campaign import app

ROOT = Path(__file__).resolve().parents[2]
RESULT_SCHEMA = fastjsonschema.compile(
    json.loads((ROOT / "functions/stop_campaign/schemas/result_event_v1.json").read_text())
)
REQUEST = {"streamId": STREAM_ID, "campaignId": "cd-missing", "requestId": "req-redrive-1"}


def run_until_empty(stack) -> None:
    SqsEventSourceMapping(stack, handler=app.lambda_handler, retry_delay_seconds=1).poll_until_empty(max_seconds=30)


def failures(stack) -> list[dict]:
    results = stack.drain_results()
    for result in results:
        RESULT_SCHEMA(result)
    return [result for result in results if result["outcome"] == "failed"]


def redrive(stack, letter: dict, **attributes: str) -> None:
    """What `campaign-stop dlq redrive` does: the body back to the stop queue, marked with the dead letter's id."""
    marks = {"redrivenFrom": letter["MessageId"], **attributes}
    stack.client("sqs").send_message(
        QueueUrl=stack.stop_queue_url, MessageBody=letter["Body"],
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in marks.items()},
    )


def test_copies_of_a_failing_request_are_one_result_and_one_dead_letter(stack, kore, cold_start):
    sqs = stack.client("sqs")
    for _ in range(2):  # the producer sent it twice: two SQS messages, one request
        sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(REQUEST))
    run_until_empty(stack)

    [failure] = failures(stack)
    assert failure["error"]["code"] == "stop_refused" and "redrivenFrom" not in failure
    [letter] = stack.drain_dead_letters()
    assert json.loads(letter["Body"]) == REQUEST


def test_a_redrive_that_fails_again_is_a_new_result_each_time(stack, kore, cold_start):
    stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(REQUEST))
    run_until_empty(stack)
    [first] = failures(stack)
    [letter] = stack.drain_dead_letters()

    redrive(stack, letter)  # the cause (an unknown campaign) is not fixed
    run_until_empty(stack)
    [second] = failures(stack)
    [second_letter] = stack.drain_dead_letters()
    assert second["redrivenFrom"] == letter["MessageId"]
    assert second["resultId"] != first["resultId"] and second["requestId"] == first["requestId"]
    assert second_letter["Body"] == letter["Body"]

    redrive(stack, second_letter)
    redrive(stack, second_letter)  # a redrive tool that sent it twice: still one result for that redrive
    run_until_empty(stack)
    [third] = failures(stack)
    assert third["redrivenFrom"] == second_letter["MessageId"]
    assert len({first["resultId"], second["resultId"], third["resultId"]}) == 3
    assert len(stack.drain_dead_letters()) == 1


def test_a_redrive_after_the_fix_stops_the_campaign(stack, kore, cold_start):
    stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(REQUEST))
    run_until_empty(stack)
    failures(stack)
    [letter] = stack.drain_dead_letters()

    kore.add_campaign(STREAM_ID, "cd-missing", campaign_type="sms", status="Active")  # the cause, fixed
    redrive(stack, letter)
    run_until_empty(stack)
    [result] = stack.drain_results()
    assert result["outcome"] == "stopped" and "redrivenFrom" not in result  # a success is one result per request
    assert stack.drain_dead_letters() == []


def test_a_message_moved_back_by_the_move_task_counts_as_a_redrive(stack, kore, cold_start):
    """SQS's StartMessageMoveTask adds no mark, but the copy keeps the dead letter's own reason attributes."""
    stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(REQUEST))
    run_until_empty(stack)
    [first] = failures(stack)
    [letter] = stack.drain_dead_letters()
    reasons = {name: value["StringValue"] for name, value in letter["MessageAttributes"].items()}
    assert {"errorCode", "requestId", "source"} <= set(reasons)
    stack.client("sqs").send_message(
        QueueUrl=stack.stop_queue_url, MessageBody=letter["Body"],
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in reasons.items()},
    )
    run_until_empty(stack)
    [second] = failures(stack)
    assert second["resultId"] != first["resultId"] and second["redrivenFrom"]
