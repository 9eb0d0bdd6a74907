"""Dead letters you can search: `dlq list` filters, `dlq show` by request id, `dlq redrive --request-id --wait`
following the redriven request to its new result; against the local stack and the real handler."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack
from stop_campaign.adapters.dead_letter import DeadLetterQueue
from stop_campaign.domain.models import ResultError

from .conftest import STREAM_ID
from .test_results import _without_metrics


def _json(stdout: str) -> Any:
    return json.loads("\n".join(_without_metrics(stdout)))


def _write(stack: LocalStack, request_id: str, body: dict[str, Any], code: str = "stop_refused") -> str:
    writer = DeadLetterQueue(stack.dead_letter_queue_url, lambda: stack.client("sqs"))
    return writer.send(json.dumps({"requestId": request_id, **body}), ResultError(code, f"{code} here"), request_id,
                       "sqs")


def _listed(runner: CliRunner, *flags: str) -> set[str]:
    result = runner.invoke(app, ["-o", "json", "dlq", "list", *flags])
    assert result.exit_code == 0, result.output
    return {letter["requestId"] for letter in _json(result.stdout)["messages"]}


def _wait_for_dead_letter(runner: CliRunner, request_id: str) -> None:
    """Until the handler (served by the function_running thread) has dead-lettered the request: each look is a
    `dlq list`, which long-polls a second."""
    for _ in range(30):
        if _listed(runner, "--request-id", request_id):
            return
    raise AssertionError(f"{request_id} never reached the dead-letter queue")


def test_list_filters_and_shows_the_campaign(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    _write(stack, "req-a", {"streamId": STREAM_ID, "campaignId": "cd-a"})
    _write(stack, "req-b", {"streamId": "st-2", "campaignIds": ["cd-b", "cd-a"]}, "api_unavailable")
    _write(stack, "req-c", {"streamId": "st-2", "campaigns": "all-active"}, "expired")

    assert _listed(runner) == {"req-a", "req-b", "req-c"}
    assert _listed(runner, "--request-id", "req-b") == {"req-b"}
    assert _listed(runner, "--stream", "st-2") == {"req-b", "req-c"}
    assert _listed(runner, "--campaign", "cd-a") == {"req-a", "req-b"}
    assert _listed(runner, "--campaign", "all-active") == {"req-c"}
    assert _listed(runner, "--error-code", "expired", "--error-code", "stop_refused") == {"req-a", "req-c"}
    assert _listed(runner, "--stream", "st-2", "--error-code", "expired") == {"req-c"}  # every filter holds
    assert _listed(runner, "--older-than", "1h") == set()  # written just now
    assert _listed(runner, "--older-than", "0") == {"req-a", "req-b", "req-c"}

    table = runner.invoke(app, ["dlq", "list", "--stream", "st-2"])
    assert table.exit_code == 0, table.output
    assert "st-2 / cd-b, cd-a" in table.stdout and "st-2 / all-active" in table.stdout
    assert "2 shown matching, of 3 read" in table.stdout

    unknown = runner.invoke(app, ["dlq", "list", "--error-code", "stop_refussed"])
    assert unknown.exit_code == 0, unknown.output
    assert "no dead letter has error code stop_refussed" in unknown.output
    assert "api_unavailable 1, expired 1, stop_refused 1" in unknown.output  # the codes there are


def test_show_by_request_id(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    message_id = _write(stack, "req-shown", {"streamId": STREAM_ID, "campaignId": "cd-s"})
    _write(stack, "req-other", {"streamId": STREAM_ID, "campaignId": "cd-o"})
    result = runner.invoke(app, ["-o", "json", "dlq", "show", "req-shown"])
    assert result.exit_code == 0, result.output
    document = _json(result.stdout)
    assert (document["messageId"], document["campaignIds"], document["body"]["campaignId"]) == (
        message_id, ["cd-s"], "cd-s")
    table = runner.invoke(app, ["dlq", "show", "req-shown"])
    assert table.exit_code == 0 and message_id in table.stdout and "cd-o" not in table.stdout


def test_redrive_wait_follows_the_request_to_its_new_result(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str],
    function_running: Callable[[], None],
) -> None:
    # A request that failed while the campaign was unknown to the platform; it is known now (the cause fixed).
    stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(
        {"streamId": STREAM_ID, "campaignId": "cd-late", "requestId": "req-late"}))
    _wait_for_dead_letter(runner, "req-late")
    kore.add_campaign(STREAM_ID, "cd-late", "sms", "Active")

    result = runner.invoke(app, ["dlq", "redrive", "--request-id", "req-late", "--yes", "--wait", "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert "Moved 1 dead letter(s)" in result.stdout
    assert "Request req-late:" in result.stdout and "cd-late" in result.stdout and "stopped" in result.stdout
    assert kore.campaign_status(STREAM_ID, "cd-late") != "Active"
    assert _listed(runner) == set()  # how we know it ended in a result, not in the dead-letter queue again


def test_redrive_wait_exits_1_when_the_request_fails_again(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(
        {"streamId": STREAM_ID, "campaignId": "cd-never", "requestId": "req-never"}))
    _wait_for_dead_letter(runner, "req-never")
    result = runner.invoke(app, ["-o", "json", "dlq", "redrive", "--request-id", "req-never", "--yes", "--wait",
                                 "--timeout", "30"])
    assert result.exit_code == 1, result.output
    document = _json(result.stdout)
    assert document["moved"] == 1 and document["exitCode"] == 1
    (followed,) = document["followed"]["requests"]
    assert followed["requestId"] == "req-never" and followed["complete"]
    assert [(r["campaignId"], r["outcome"]) for r in followed["results"]] == [("cd-never", "failed")]
    assert _listed(runner, "--request-id", "req-never") == {"req-never"}  # in the dead-letter queue again
