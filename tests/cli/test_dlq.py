"""`campaign-stop dlq` against the local stack: dead letters written by the real handler (and one as the stop
queue's redrive policy leaves it), listed, shown and moved back, each exactly once."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import botocore.client
import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack
from devtools.poller import SqsEventSourceMapping
from stop_campaign.dead_letter import DeadLetterQueue
from stop_campaign.models import ResultError

from .conftest import STREAM_ID

NO_REASON_MARK = "no attributes"


@dataclass
class Letters:
    refused: list[str]  # message ids of the two stop_refused dead letters
    invalid: str  # invalid_request
    bare: str  # no attributes, as the redrive policy moves a message
    bodies: dict[str, str]  # message id -> body


def _request(request_id: str, campaign_id: str) -> str:
    return json.dumps({"streamId": STREAM_ID, "campaignId": campaign_id, "campaignType": "sms",
                       "requestId": request_id})


def _peek(stack: LocalStack, queue_url: str) -> list[dict[str, Any]]:
    """Every message of a (short) queue, left visible."""
    messages = stack.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0,
    ).get("Messages", [])
    return list(messages)


def _counts(stack: LocalStack, queue_url: str) -> tuple[int, int]:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _cli_json(stdout: str) -> Any:
    """The CLI's JSON document (the in-process handler may print a metrics line of its own)."""
    return json.loads("\n".join(line for line in stdout.splitlines() if not line.startswith('{"_aws":')))


@pytest.fixture
def letters(stack: LocalStack, cli_env: dict[str, str]) -> Letters:
    """Two stop_refused and one invalid_request dead letter as the function writes them (its own writer; the
    last test has the handler write one), plus one without attributes, as the redrive policy moves a message."""
    sqs = stack.client("sqs")
    writer = DeadLetterQueue(stack.dead_letter_queue_url, sqs)
    refused = ResultError("stop_refused", "Kore.ai API answered HTTP 404: Campaign not found")
    bodies = {}
    for request_id, campaign_id in (("req-refused-1", "cd-unknown-1"), ("req-refused-2", "cd-unknown-2")):
        body = _request(request_id, campaign_id)
        bodies[writer.send(body, refused, request_id, "sqs")] = body
    invalid_body = json.dumps({"streamId": STREAM_ID, "requestId": "req-invalid"})  # names no campaign
    invalid = writer.send(invalid_body, ResultError("invalid_request", "request must name campaigns"), "req-invalid",
                          "sqs")
    bodies[invalid] = invalid_body
    bare_body = _request("req-bare", "cd-3")
    bare = sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=bare_body)["MessageId"]
    bodies[bare] = bare_body
    return Letters(sorted(i for i in bodies if i not in (invalid, bare)), invalid, bare, bodies)


def test_list_shows_every_dead_letter_and_leaves_them_visible(
    runner: CliRunner, stack: LocalStack, letters: Letters
) -> None:
    result = runner.invoke(app, ["dlq", "list", "--output", "json"])
    assert result.exit_code == 0, result.output
    document = _cli_json(result.stdout)
    shown = {m["messageId"]: m for m in document["messages"]}
    assert len(document["messages"]) == len(shown) == 4  # each message once
    assert {shown[i]["errorCode"] for i in letters.refused} == {"stop_refused"}
    assert shown[letters.refused[0]]["errorMessage"].startswith("Kore.ai API answered HTTP 404")
    assert shown[letters.refused[0]]["source"] == "sqs"
    assert shown[letters.invalid]["errorCode"] == "invalid_request"
    assert shown[letters.invalid]["requestId"] == "req-invalid"
    assert (shown[letters.bare]["writer"], shown[letters.bare]["errorCode"]) == ("redrive-policy", None)
    assert shown[letters.bare]["requestId"] == "req-bare"  # read from the body
    assert _counts(stack, stack.dead_letter_queue_url) == (4, 0)

    table = runner.invoke(app, ["dlq", "list"], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "stop_refused" in table.stdout and letters.bare in table.stdout and NO_REASON_MARK in table.stdout
    limited = _cli_json(runner.invoke(app, ["dlq", "list", "--limit", "2", "-o", "json"]).stdout)
    assert limited["shown"] == 2
    assert _counts(stack, stack.dead_letter_queue_url) == (4, 0)


def test_list_reads_past_the_first_ten_messages(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    # moto answers in queue order: a scan that only let messages go at once would see the first ten for ever.
    writer = DeadLetterQueue(stack.dead_letter_queue_url, stack.client("sqs"))
    sent = {writer.send(_request(f"req-{n}", f"cd-{n}"), ResultError("stop_refused", "gone"), f"req-{n}", "sqs")
            for n in range(23)}
    result = runner.invoke(app, ["-o", "json", "dlq", "list", "--limit", "100"])
    assert result.exit_code == 0, result.output
    assert {m["messageId"] for m in _cli_json(result.stdout)["messages"]} == sent
    assert _counts(stack, stack.dead_letter_queue_url) == (23, 0)


def test_show_prints_the_body_and_the_attributes(runner: CliRunner, stack: LocalStack, letters: Letters) -> None:
    refused = letters.refused[0]
    result = runner.invoke(app, ["dlq", "show", refused, "-o", "json"])
    assert result.exit_code == 0, result.output
    document = _cli_json(result.stdout)
    assert document["bodyIsJson"] and document["body"] == json.loads(letters.bodies[refused])
    assert document["attributes"]["errorCode"] == "stop_refused"
    assert document["attributes"]["retryable"] == "false"
    assert "SentTimestamp" in document["systemAttributes"]

    bare = runner.invoke(app, ["dlq", "show", letters.bare], env={"COLUMNS": "200"})
    assert bare.exit_code == 0, bare.output
    assert NO_REASON_MARK in bare.stdout and '"requestId": "req-bare"' in bare.stdout  # pretty-printed body

    missing = runner.invoke(app, ["dlq", "show", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code == 1 and "not in" in missing.output
    assert _counts(stack, stack.dead_letter_queue_url) == (4, 0)


def _stop_queue_copies(stack: LocalStack) -> Counter[str]:
    """redrivenFrom of every message now in the stop queue (each read once and deleted)."""
    sqs = stack.client("sqs")
    copies: Counter[str] = Counter()
    while batch := sqs.receive_message(QueueUrl=stack.stop_queue_url, MaxNumberOfMessages=10,
                                       MessageAttributeNames=["All"]).get("Messages", []):
        for message in batch:
            copies[message.get("MessageAttributes", {}).get("redrivenFrom", {}).get("StringValue", "?")] += 1
            sqs.delete_message(QueueUrl=stack.stop_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return copies


def test_redrive_by_message_id_asks_first_and_moves_exactly_that_message_once(
    runner: CliRunner, stack: LocalStack, letters: Letters
) -> None:
    chosen = letters.refused[0]
    declined = runner.invoke(app, ["dlq", "redrive", "--message-id", chosen], input="n\n")
    assert declined.exit_code == 1
    assert _counts(stack, stack.stop_queue_url) == (0, 0) and _counts(stack, stack.dead_letter_queue_url) == (4, 0)

    result = runner.invoke(app, ["dlq", "redrive", "--message-id", chosen], input="y\n")
    assert result.exit_code == 0, result.output
    assert "Moved 1 dead letter(s)" in result.stdout
    remaining = {m["MessageId"] for m in _peek(stack, stack.dead_letter_queue_url)}
    assert remaining == {letters.refused[1], letters.invalid, letters.bare}
    (copy,) = _peek(stack, stack.stop_queue_url)
    assert copy["Body"] == letters.bodies[chosen]  # unchanged
    assert set(copy.get("MessageAttributes", {})) == {"requestId", "redrivenFrom"}  # the reason stays behind
    assert _stop_queue_copies(stack) == Counter({chosen: 1})

    again = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--message-id", chosen, "--yes"])
    assert again.exit_code == 1  # already moved: not found
    assert _cli_json(again.stdout)["notFound"] == [chosen]
    assert _counts(stack, stack.stop_queue_url) == (0, 0)


def test_redrive_by_error_code_moves_only_those(runner: CliRunner, stack: LocalStack, letters: Letters) -> None:
    dry = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--error-code", "stop_refused", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert sorted(m["messageId"] for m in _cli_json(dry.stdout)["messages"]) == letters.refused
    assert _counts(stack, stack.stop_queue_url) == (0, 0) and _counts(stack, stack.dead_letter_queue_url) == (4, 0)

    result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--error-code", "stop_refused", "--yes"])
    assert result.exit_code == 0, result.output
    document = _cli_json(result.stdout)
    assert (document["moved"], document["failed"], document["method"]) == (2, 0, "one-by-one")
    assert sorted(document["movedIds"]) == letters.refused
    assert _stop_queue_copies(stack) == Counter(dict.fromkeys(letters.refused, 1))
    remaining = {m["MessageId"] for m in _peek(stack, stack.dead_letter_queue_url)}
    assert remaining == {letters.invalid, letters.bare}
    assert _counts(stack, stack.dead_letter_queue_url) == (2, 0)  # the others made visible again


def test_redrive_all_falls_back_cleanly_where_there_is_no_move_task(
    runner: CliRunner, stack: LocalStack, letters: Letters
) -> None:
    result = runner.invoke(app, ["dlq", "redrive", "--all", "--yes"])  # moto has no StartMessageMoveTask
    assert result.exit_code == 0, result.output
    assert "did not start a message move task" in result.output
    assert "Traceback" not in result.output and "<html" not in result.output.lower()
    assert "Moved 4 dead letter(s)" in result.stdout
    assert _counts(stack, stack.dead_letter_queue_url) == (0, 0)
    assert _stop_queue_copies(stack) == Counter({letters.refused[0]: 1, letters.refused[1]: 1, letters.invalid: 1,
                                                 letters.bare: 1})


def test_redrive_all_follows_the_move_task_and_moves_nothing_itself(
    runner: CliRunner, stack: LocalStack, letters: Letters, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where SQS runs the move task (AWS), the CLI must only follow it: moving one by one as well would send
    messages twice. moto lacks the two calls, so they are answered here, at the SDK's edge."""
    make_api_call = botocore.client.BaseClient._make_api_call
    calls: list[str] = []

    def with_move_tasks(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "StartMessageMoveTask":
            calls.append(operation)
            return {"TaskHandle": "task-1"}
        if operation == "ListMessageMoveTasks":
            calls.append(operation)
            return {"Results": [{"Status": "COMPLETED", "SourceArn": params["SourceArn"],
                                 "ApproximateNumberOfMessagesMoved": 4, "ApproximateNumberOfMessagesToMove": 4}]}
        return make_api_call(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", with_move_tasks)
    result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--all", "--yes"])
    assert result.exit_code == 0, result.output
    document = _cli_json(result.stdout)
    assert (document["method"], document["moved"], document["moveTask"]["status"]) == ("move-task", 4, "COMPLETED")
    assert calls == ["StartMessageMoveTask", "ListMessageMoveTasks"]
    assert _counts(stack, stack.stop_queue_url) == (0, 0)  # nothing sent by the CLI itself


def test_ctrl_c_during_a_redrive_loses_nothing(
    runner: CliRunner, stack: LocalStack, letters: Letters, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_api_call = botocore.client.BaseClient._make_api_call
    sends = [0]

    def interrupted_on_second_send(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "SendMessage" and threading.current_thread() is threading.main_thread():
            sends[0] += 1
            if sends[0] == 2:
                raise KeyboardInterrupt
        return make_api_call(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", interrupted_on_second_send)
    result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--all", "--yes"])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert _cli_json(result.stdout)["interrupted"] is True
    in_dlq = {m["MessageId"] for m in _peek(stack, stack.dead_letter_queue_url)}
    copies = _stop_queue_copies(stack)
    assert sum(copies.values()) == 1 and not in_dlq & set(copies)  # each message in exactly one queue
    assert in_dlq | set(copies) == {*letters.refused, letters.invalid, letters.bare}


def test_a_redriven_request_that_fails_again_gets_a_new_result_and_a_new_dead_letter(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=_request("req-again", "cd-unknown"))
    SqsEventSourceMapping(stack).poll_until_empty(max_seconds=30)
    (first,) = stack.drain_results()
    (dead,) = _peek(stack, stack.dead_letter_queue_url)
    assert first["outcome"] == "failed"
    shown = runner.invoke(app, ["-o", "json", "dlq", "show", dead["MessageId"]])  # as the handler wrote it
    assert shown.exit_code == 0, shown.output
    document = _cli_json(shown.stdout)
    assert (document["errorCode"], document["requestId"], document["source"]) == ("stop_refused", "req-again", "sqs")
    assert document["body"] == json.loads(_request("req-again", "cd-unknown"))

    result = runner.invoke(app, ["dlq", "redrive", "--message-id", dead["MessageId"], "--yes"])
    assert result.exit_code == 0, result.output
    SqsEventSourceMapping(stack).poll_until_empty(max_seconds=30)  # the cause (no such campaign) is not fixed

    (again,) = _peek(stack, stack.dead_letter_queue_url)
    assert again["MessageId"] != dead["MessageId"] and again["Body"] == dead["Body"]
    results = stack.drain_results()
    assert [(r["requestId"], r["outcome"]) for r in results] == [("req-again", "failed")], (
        "the redriven delivery published no result of its own (a failed result's identity must include the "
        "delivery's SQS message id)")
    assert results[0]["resultId"] != first["resultId"]


def test_usage_errors_exit_2(runner: CliRunner, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner.invoke(app, ["dlq", "redrive"]).exit_code == 2
    both = runner.invoke(app, ["dlq", "redrive", "--all", "--error-code", "stop_refused"])
    assert both.exit_code == 2 and "exactly one of" in both.output
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")
    missing = runner.invoke(app, ["dlq", "list"])
    assert missing.exit_code == 2 and "DEAD_LETTER_QUEUE_URL" in missing.output
