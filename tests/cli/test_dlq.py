"""`campaign-stop dlq` against the local stack: dead letters written by the real handler (and one as the stop
queue's redrive policy leaves it), listed, shown and moved back, each exactly once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import botocore.client
import pytest
from typer.testing import CliRunner

from campaign_stop_cli.dlq import REASON_ATTRIBUTES
from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack
from devtools.poller import SqsEventSourceMapping
from stop_campaign.adapters.dead_letter import DeadLetterQueue
from stop_campaign.domain.models import ResultError

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


def _sent_timestamps(stack: LocalStack) -> dict[str, str]:
    """Each dead letter's SentTimestamp, left visible."""
    messages = stack.client("sqs").receive_message(
        QueueUrl=stack.dead_letter_queue_url, MaxNumberOfMessages=10, AttributeNames=["SentTimestamp"],
        VisibilityTimeout=0).get("Messages", [])
    return {message["MessageId"]: message["Attributes"]["SentTimestamp"] for message in messages}


def _cli_json(stdout: str) -> Any:
    """The CLI's JSON document (the in-process handler may print a metrics line of its own)."""
    return json.loads("\n".join(line for line in stdout.splitlines() if not line.startswith('{"_aws":')))


@pytest.fixture
def letters(stack: LocalStack, cli_env: dict[str, str]) -> Letters:
    """Two stop_refused and one invalid_request dead letter as the function writes them (its own writer; the
    last test has the handler write one), plus one without attributes, as the redrive policy moves a message."""
    sqs = stack.client("sqs")
    writer = DeadLetterQueue(stack.dead_letter_queue_url, lambda: sqs)
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
    writer = DeadLetterQueue(stack.dead_letter_queue_url, cache(lambda: stack.client("sqs")))
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


def _stop_queue_copies(stack: LocalStack, queue_url: str | None = None) -> Counter[str]:
    """redrivenFrom of every message now in the stop queue (each read once and deleted); every copy must carry
    it and none of the dead-letter reason attributes."""
    sqs = stack.client("sqs")
    url = queue_url or stack.stop_queue_url
    copies: Counter[str] = Counter()
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       MessageAttributeNames=["All"]).get("Messages", []):
        for message in batch:
            attributes = message.get("MessageAttributes", {})
            assert not set(attributes) & REASON_ATTRIBUTES, attributes
            copies[attributes.get("redrivenFrom", {}).get("StringValue", "?")] += 1
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return copies


def _dead_letter_ids(stack: LocalStack, queue_url: str | None = None) -> list[str]:
    """Every message id in the dead-letter queue, read by deleting (the end of a test)."""
    sqs = stack.client("sqs")
    url = queue_url or stack.dead_letter_queue_url
    ids: list[str] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            ids.append(message["MessageId"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return ids


def _refused_letters(stack: LocalStack, count: int) -> set[str]:
    writer = DeadLetterQueue(stack.dead_letter_queue_url, cache(lambda: stack.client("sqs")))
    return {writer.send(_request(f"req-{n}", f"cd-gone-{n}"), ResultError("stop_refused", "gone"), f"req-{n}", "sqs")
            for n in range(count)}


@contextmanager
def _another_reader(stack: LocalStack, holds: list[float | None]) -> Iterator[list[str]]:
    """Someone else reading the dead-letter queue meanwhile (another `dlq list`, a console's "poll for messages"):
    a thread that receives up to ten messages, holds them for each of ``holds`` seconds in turn (None: until the
    block ends), and makes them visible again (ChangeMessageVisibility 0). It has its first batch before the block
    starts; yields the ids it held first."""
    sqs = stack.client("sqs")  # its own client, as another process would have
    url = stack.dead_letter_queue_url
    first: list[str] = []
    started, ended = threading.Event(), threading.Event()

    def read() -> None:
        for turn, seconds in enumerate(holds):
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
            if turn == 0:
                first.extend(message["MessageId"] for message in batch)
                started.set()
            ended.wait(seconds)
            for message in batch:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)

    thread = threading.Thread(target=read, name="another-reader", daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield first
    finally:
        ended.set()
        thread.join(timeout=60)


def test_redrive_by_message_id_asks_first_and_moves_exactly_that_message_once(
    runner: CliRunner, stack: LocalStack, letters: Letters
) -> None:
    chosen = letters.refused[0]
    sent_timestamp = _sent_timestamps(stack)[chosen]
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
    # The reason (errorCode, errorMessage, requestId, source, retryable) stays behind: the function takes any of them
    # on a stop-queue message for SQS's move task's redrive; this copy names its dead letter instead, and when its
    # request was first sent (this dead letter's own SentTimestamp: it carried no originalSentTimestamp).
    assert copy.get("MessageAttributes", {}) == {
        "redrivenFrom": {"DataType": "String", "StringValue": chosen},
        "originalSentTimestamp": {"DataType": "String", "StringValue": sent_timestamp},
    }
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_between_send_and_delete_loses_nothing_and_sends_nothing_twice(
    runner: CliRunner, stack: LocalStack, letters: Letters, monkeypatch: pytest.MonkeyPatch,
    would_have_died: list[int], signum: int,
) -> None:
    """Ctrl-C, `kill` or a closed terminal right after a copy reached the stop queue, before its dead letter is
    deleted: the signal takes effect once that message is done, so no message is in both queues (or in none)."""
    make_api_call = botocore.client.BaseClient._make_api_call
    sends = [0]

    def signal_after_the_second_send(self: Any, operation: str, params: dict[str, Any]) -> Any:
        response = make_api_call(self, operation, params)
        if operation == "SendMessage" and params["QueueUrl"] == stack.stop_queue_url:
            sends[0] += 1
            if sends[0] == 2:
                os.kill(os.getpid(), signum)  # a real signal, delivered while the send returns
        return response

    with monkeypatch.context() as patch:  # not monkeypatch.undo(): that would undo the isolated environment too
        patch.setattr(botocore.client.BaseClient, "_make_api_call", signal_after_the_second_send)
        result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--all", "--yes"])
    assert would_have_died == []  # the command handled the signal itself
    assert result.exit_code == 1, result.output
    document = _cli_json(result.stdout)
    assert document["interrupted"] is True and len(document["movedIds"]) == 2
    in_dlq = {m["MessageId"] for m in _peek(stack, stack.dead_letter_queue_url)}
    copies = _stop_queue_copies(stack)
    assert copies == Counter(dict.fromkeys(document["movedIds"], 1))  # the second one finished: sent and deleted
    assert not in_dlq & set(copies)  # each message in exactly one queue
    assert in_dlq | set(copies) == {*letters.refused, letters.invalid, letters.bare}


def test_redrive_moves_the_letters_another_reader_held_at_first(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    """The question lists what could be read; the move takes every matching letter it meets, and looks again
    while someone else holds some, so all 35 move, each once."""
    sent = _refused_letters(stack, 35)
    with _another_reader(stack, holds=[1.5, 1.5]) as held_first:
        result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--all", "--yes"])
    assert len(held_first) == 10
    assert result.exit_code == 0, result.output
    document = _cli_json(result.stdout)
    assert set(document["movedIds"]) == sent and len(document["movedIds"]) == 35
    assert (document["mayRemain"], document["failed"]) == (None, 0)
    assert _stop_queue_copies(stack) == Counter(dict.fromkeys(sent, 1))
    assert _dead_letter_ids(stack) == []


def test_redrive_says_so_when_another_reader_keeps_letters_to_itself(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    """Letters held elsewhere for the whole run may match: exit 1 with a warning, and they stay in the queue."""
    sent = _refused_letters(stack, 32)
    with _another_reader(stack, holds=[None]) as held:
        result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--error-code", "stop_refused", "--yes"])
        assert result.exit_code == 1, result.output
        document = _cli_json(result.stdout)
        assert "matching dead letters may still be in" in " ".join(result.output.split())
        assert document["mayRemain"] == {"inFlight": 10, "unread": 0}
        assert set(document["movedIds"]) == sent - set(held) and document["failed"] == 0
    assert _stop_queue_copies(stack) == Counter(dict.fromkeys(sent - set(held), 1))
    assert sorted(_dead_letter_ids(stack)) == sorted(held)


def test_a_copy_that_fails_again_during_the_run_waits_for_the_next_one(
    runner: CliRunner, stack: LocalStack, letters: Letters, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moving what matches while moving must not take a new dead letter of a request this run just sent back
    (the function failing it again at once): nothing is sent twice in one run."""
    writer = DeadLetterQueue(stack.dead_letter_queue_url, cache(lambda: stack.client("sqs")))
    make_api_call = botocore.client.BaseClient._make_api_call
    again: list[str] = []

    def failing_again(self: Any, operation: str, params: dict[str, Any]) -> Any:
        response = make_api_call(self, operation, params)
        if operation == "SendMessage" and params["QueueUrl"] == stack.stop_queue_url and not again:
            time.sleep(0.01)  # SentTimestamp has millisecond resolution
            again.append(writer.send(params["MessageBody"], ResultError("stop_refused", "still gone"), "req", "sqs"))
        return response

    with monkeypatch.context() as patch:  # not monkeypatch.undo(): that would undo the isolated environment too
        patch.setattr(botocore.client.BaseClient, "_make_api_call", failing_again)
        result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--error-code", "stop_refused", "--yes"])
    assert result.exit_code == 0, result.output
    document = _cli_json(result.stdout)
    assert sorted(document["movedIds"]) == letters.refused and document["arrivedDuringRun"] == 1
    assert {m["MessageId"] for m in _peek(stack, stack.dead_letter_queue_url)} == {
        *again, letters.invalid, letters.bare}


def test_a_fifo_dead_letter_queue_is_redriven_past_the_first_ten_of_a_group(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    """A FIFO queue hands out no more of a message group while part of it is in flight: reading (and holding)
    saw ten at most; moving as it goes brings the rest into view."""
    sqs = stack.client("sqs")
    dlq = sqs.create_queue(QueueName="stop-requests-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    stop_queue = sqs.create_queue(QueueName="stop-requests.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    ids: dict[str, list[str]] = {"invalid_request": [], "stop_refused": []}
    for number in range(15):
        code = "invalid_request" if number < 3 else "stop_refused"  # the group's first three are not chosen
        ids[code].append(sqs.send_message(
            QueueUrl=dlq, MessageBody=_request(f"req-fifo-{number}", f"cd-{number}"), MessageGroupId=STREAM_ID,
            MessageDeduplicationId=f"dead-{number}",
            MessageAttributes={"errorCode": {"DataType": "String", "StringValue": code}},
        )["MessageId"])
    where = ["--dlq-url", dlq, "--queue-url", stop_queue]

    listed = runner.invoke(app, ["dlq", "list", "--dlq-url", dlq], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "FIFO queue shows only the first 10" in " ".join(listed.stdout.split())

    result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--error-code", "stop_refused", "--yes", *where])
    assert result.exit_code == 0, result.output
    document = _cli_json(result.stdout)
    assert sorted(document["movedIds"]) == sorted(ids["stop_refused"]) and document["mayRemain"] is None
    rest = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--all", "--yes", *where])
    assert rest.exit_code == 0, rest.output
    assert sorted(_cli_json(rest.stdout)["movedIds"]) == sorted(ids["invalid_request"])
    assert _stop_queue_copies(stack, stop_queue) == Counter(dict.fromkeys([*ids["invalid_request"],
                                                                          *ids["stop_refused"]], 1))
    assert _dead_letter_ids(stack, dlq) == []


def test_the_copy_leaves_every_dead_letter_reason_behind(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    """Scheduler's and EventBridge's dead-letter attributes stay behind like the function's own; the message's
    other attributes go along, and redrivenFrom names the dead letter."""
    sqs = stack.client("sqs")

    def text(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value}

    scheduler = {
        "ERROR_CODE": text("AWS.Scheduler.ClientError"), "ERROR_MESSAGE": text("Access denied"),
        "EXECUTION_ID": text("d32c5kddcf5bb8c3"), "EXHAUSTED_RETRY_CONDITION": text("MaximumEventAgeInSeconds"),
        "IS_PAYLOAD_TRUNCATED": text("false"), "RETRY_ATTEMPTS": text("12"),
        "SCHEDULED_TIME": text("2026-12-02T01:55:00Z"), "GROUP_NAME": text("quiet-hours"),
        "SCHEDULE_ARN": text("arn:aws:scheduler:us-east-1:123456789012:schedule/quiet-hours/eastern"),
        "TARGET_ARN": text(stack.stop_queue_arn), "traceparent": text("00-abc-def-01"),
    }
    eventbridge = {
        "ERROR_CODE": text("SQS_QUEUE_THROTTLED"), "ERROR_MESSAGE": text("slow down"),
        "RULE_ARN": text("arn:aws:events:us-east-1:123456789012:rule/stop"), "TARGET_ARN": text(stack.stop_queue_arn),
        "EXHAUSTED_RETRY_CONDITION": text("MaximumRetryAttempts"), "RETRY_ATTEMPTS": text("185"),
    }
    letters = {sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=_request(name, "cd-1"),
                                MessageAttributes=attributes)["MessageId"]: name
               for name, attributes in (("scheduler", scheduler), ("eventbridge", eventbridge))}
    result = runner.invoke(app, ["dlq", "redrive", "--all", "--yes"])
    assert result.exit_code == 0, result.output
    copies = {}
    for message in _peek(stack, stack.stop_queue_url):
        attributes = message.get("MessageAttributes", {})
        copies[letters[attributes["redrivenFrom"]["StringValue"]]] = set(attributes)
    assert copies == {"scheduler": {"redrivenFrom", "traceparent", "originalSentTimestamp"},
                      "eventbridge": {"redrivenFrom", "originalSentTimestamp"}}


@pytest.mark.parametrize("columns", ["80", "120"])
def test_list_shows_whole_message_ids_on_a_narrow_terminal(
    runner: CliRunner, stack: LocalStack, letters: Letters, columns: str
) -> None:
    """Operators copy the id into `dlq show` and `dlq redrive --message-id`: never cut, never wrapped."""
    result = runner.invoke(app, ["dlq", "list"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    assert all(len(line) <= int(columns) for line in result.stdout.splitlines())
    for message_id in letters.bodies:
        assert message_id in result.stdout, (message_id, result.stdout)


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


def test_redrive_shows_what_each_letter_stops_and_which_would_now_expire(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Judged as the function would judge it (its own parser and expiry rule): an hour-old request under a
    30-minute limit would be rejected as expired; one without requestedAt is as old as its first sending."""
    sqs = stack.client("sqs")
    writer = DeadLetterQueue(stack.dead_letter_queue_url, lambda: sqs)
    refused = ResultError("stop_refused", "Kore.ai API answered HTTP 404: Campaign not found")
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    old = writer.send(json.dumps({"streamId": STREAM_ID, "campaigns": "all-active", "requestId": "r-old",
                                  "requestedAt": hour_ago.strftime("%Y-%m-%dT%H:%M:%SZ")}), refused, "r-old", "sqs")
    first_sent = writer.send(_request("r-sent", "cd-9"), refused, "r-sent", "sqs",
                             sent_at=hour_ago.isoformat())  # the original message's SentTimestamp
    fresh = writer.send(_request("r-fresh", "cd-8"), refused, "r-fresh", "sqs")
    monkeypatch.setenv("MAX_REQUEST_AGE_SECONDS", "1800")

    result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--all", "--dry-run"])
    assert result.exit_code == 0, result.output
    document = _cli_json(result.stdout)
    verdicts = {message["messageId"]: message["redrive"] for message in document["messages"]}
    assert document["wouldExpire"] == 2
    assert verdicts[old]["stops"] == f"every active sms campaign of {STREAM_ID}" and verdicts[old]["wouldExpire"]
    assert "from requestedAt" in verdicts[old]["expiredBecause"] and verdicts[old]["requestAgeSeconds"] >= 3600
    assert verdicts[first_sent]["wouldExpire"] and "from sent" in verdicts[first_sent]["expiredBecause"]
    assert (verdicts[fresh]["stops"], verdicts[fresh]["wouldExpire"]) == (f"cd-8 of {STREAM_ID}", False)
    assert verdicts[fresh]["requestAgeSeconds"] < 600

    table = runner.invoke(app, ["dlq", "redrive", "--all", "--max-request-age", "86400"], input="n\n",
                          env={"COLUMNS": "250"})
    assert table.exit_code == 1  # declined: nothing moved
    assert "would stop" in table.stdout and "every active sms campaign" in table.stdout
    assert "expired" not in table.stdout.replace("would now be rejected as expired", "")  # a day: all in time
    warned = runner.invoke(app, ["dlq", "redrive", "--all"], input="n\n", env={"COLUMNS": "250"})
    assert "2 of these would now be rejected as expired" in " ".join(warned.output.split())
    assert _counts(stack, stack.stop_queue_url) == (0, 0)
