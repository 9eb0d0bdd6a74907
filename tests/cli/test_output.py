"""Output that reads anywhere: in a pipe (CliRunner's stdout is not a terminal), on a terminal of 80 columns, as
json and as jsonl, and help without type noise. Against the local stack, with the real handler publishing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.local_stack import LocalStack
from stop_campaign.adapters.dead_letter import DeadLetterQueue
from stop_campaign.adapters.results import ResultsPublisher
from stop_campaign.domain.models import Outcome, ResultError, ResultEvent, Source

from .conftest import STREAM_ID
from .test_results import _send, _stop_request, _temporary, _when_listening, _without_metrics

LONG_REQUEST_ID = "req-" + "0123456789abcdef" * 4  # 68 characters: wider than any column a terminal would give
LONG_MESSAGE = "Kore.ai API answered HTTP 404: Campaign not found\nin stream " + STREAM_ID + " " + "x" * 150


@pytest.fixture(autouse=True)
def not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe or a log: stdout is not a terminal and COLUMNS is not exported (bash does not export it)."""
    monkeypatch.delenv("COLUMNS", raising=False)


def _failed_result(campaign_id: str) -> ResultEvent:
    return ResultEvent(outcome=Outcome.FAILED, request_id=LONG_REQUEST_ID, source=Source.SQS,
                       received_at="2026-01-01T20:13:05Z", completed_at="2026-01-01T20:13:06Z",
                       stream_id=STREAM_ID, campaign_id=campaign_id, campaign_type="sms",
                       error=ResultError("stop_refused", LONG_MESSAGE))


@pytest.mark.parametrize("columns", [None, "80"])
def test_follow_prints_one_whole_line_per_event(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None],
    columns: str | None,
) -> None:
    """Neither a pipe nor an 80-column terminal breaks a time ("20:/13:/06"), splits a request id or narrows the
    error to a few characters: each event is one line with every field whole."""
    publisher = ResultsPublisher(stack.results_topic_arn, stack.client("sns"))
    with _when_listening(stack, lambda: publisher.publish(_failed_result("cd-x")),
                         _send(stack, _stop_request("req-follow-plain", "cd-1"))):
        result = runner.invoke(app, ["results", "--follow", "--timeout", "8"],
                               env={"COLUMNS": columns} if columns else {})
    assert result.exit_code == 1, result.output  # a failed result was shown
    lines = _without_metrics(result.stdout)
    assert lines[0].split() == ["AT", "(UTC)", "REQUEST", "STREAM", "CAMPAIGN", "OUTCOME", "ERROR", "CODE", "ERROR",
                                "MESSAGE"]
    (failed,) = [line for line in lines if "cd-x" in line]
    assert failed.split()[:6] == ["20:13:06", LONG_REQUEST_ID, STREAM_ID, "cd-x", "failed", "stop_refused"]
    assert " ".join(LONG_MESSAGE.split()) in failed  # whole, its newline folded into the line
    (stopped,) = [line for line in lines if "req-follow-plain" in line]
    assert stopped.split()[2:5] == [STREAM_ID, "cd-1", "stopped"]
    assert len(lines) == 3  # the header and one line per event; the notes went to stderr
    assert _temporary(stack) == ([], [])


def test_a_listing_in_a_pipe_keeps_each_dead_letter_on_one_line(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    writer = DeadLetterQueue(stack.dead_letter_queue_url, lambda: stack.client("sqs"))
    body = json.dumps({"streamId": STREAM_ID, "campaignId": "cd-unknown-7", "requestId": LONG_REQUEST_ID})
    message_id = writer.send(body, ResultError("stop_refused", LONG_MESSAGE), LONG_REQUEST_ID, "sqs")
    result = runner.invoke(app, ["dlq", "list"])
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if message_id in line]
    assert LONG_REQUEST_ID in row and "cd-unknown-7" in row and "stop_refused" in row
    assert " ".join(LONG_MESSAGE.split())[:120] in " ".join(row.split())
    assert "…" not in result.stdout


def test_doctor_in_a_pipe_shows_urls_whole(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["doctor"])
    assert "…" not in result.stdout, result.stdout
    assert result.exit_code == 0, result.output
    (kore_row,) = [line for line in result.stdout.splitlines() if "Kore.ai status call" in line]
    assert f"{cli_env['KORE_BASE_URL']}: give --stream and --campaign" in kore_row  # the URL whole, on its row


def test_jsonl_writes_one_object_a_line(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    writer = DeadLetterQueue(stack.dead_letter_queue_url, lambda: stack.client("sqs"))
    sent = {writer.send(json.dumps({"streamId": STREAM_ID, "campaignId": f"cd-{n}", "requestId": f"req-l-{n}"}),
                        ResultError("stop_refused", "gone"), f"req-l-{n}", "sqs") for n in range(3)}
    result = runner.invoke(app, ["-o", "jsonl", "dlq", "list"])
    assert result.exit_code == 0, result.output
    letters = [json.loads(line) for line in _without_metrics(result.stdout)]
    assert {letter["messageId"] for letter in letters} == sent  # the messages themselves, one a line
    assert {letter["campaignIds"][0] for letter in letters} == {"cd-0", "cd-1", "cd-2"}

    status = runner.invoke(app, ["status", "--output", "jsonl"])
    assert status.exit_code == 0, status.output
    (document,) = [json.loads(line) for line in _without_metrics(status.stdout)]  # one document: one line
    assert document["deadLetterQueue"]["waiting"] == 3


@pytest.mark.parametrize("command", [[], ["stop"], ["results"], ["history"], ["resume"], ["dlq", "redrive"],
                                     ["dlq", "list"], ["schedule", "create"], ["producers", "test"], ["hold", "list"],
                                     ["doctor"], ["status"]])
def test_help_shows_no_type_noise(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "╭" not in result.stdout and "--help" in result.stdout
    # An option says what its value is (STREAM_ID, SECONDS, URL), not a Python type; a choice still lists its values
    # (<sms|voice>). Arguments keep Typer's own `NAME <str>`.
    assert not re.search(r"^ +(-\w, )?--[\w-]+ <(bool|str|int|float|list|path)\b", result.stdout, re.M), result.stdout


def test_results_on_a_narrow_terminal_keep_each_event_whole(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    publisher = ResultsPublisher(stack.results_topic_arn, stack.client("sns"))
    with _when_listening(stack, lambda: publisher.publish(_failed_result("cd-y"))):
        result = runner.invoke(app, ["results", "--timeout", "20"], env={"COLUMNS": "100"})
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.stdout.splitlines() if "cd-y" in line]
    assert line.split()[:6] == ["20:13:06", LONG_REQUEST_ID, STREAM_ID, "cd-y", "failed", "stop_refused"]
    assert "1 result(s), 0 summary event(s)." in result.stdout
