"""`campaign-stop stop` against the local stack, with the real handler behind the event source emulation."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

import botocore.client
import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from campaign_stop_cli.subscription import CREATED_BY, QUEUE_PREFIX, RETENTION_SECONDS
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack
from devtools.poller import SqsEventSourceMapping

from .conftest import STREAM_ID


def _queues_and_subscriptions(stack: LocalStack) -> tuple[list[str], list[str]]:
    queues = stack.client("sqs").list_queues().get("QueueUrls", [])
    subscriptions = [s["SubscriptionArn"] for s in stack.client("sns").list_subscriptions()["Subscriptions"]]
    return sorted(queues), sorted(subscriptions)


def _json_document(stdout: str) -> dict[str, Any]:
    """The CLI's JSON document (the in-process handler may print a line of its own around it)."""
    start = stdout.index("{\n")
    return json.loads(stdout[start:stdout.rindex("\n}") + 2])


def test_stop_sends_a_valid_request_that_the_handler_stops(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--reason", "test"])
    assert result.exit_code == 0, result.output
    request_id = result.stdout.strip()
    body = json.loads(stack.client("sqs").receive_message(QueueUrl=stack.stop_queue_url,
                                                          VisibilityTimeout=0)["Messages"][0]["Body"])
    assert body["requestId"] == request_id
    assert body["requestedBy"].startswith("arn:aws:")  # STS caller identity
    SqsEventSourceMapping(stack).poll_until_empty(max_seconds=20)
    (published,) = stack.drain_results()
    assert (published["requestId"], published["campaignId"], published["outcome"]) == (request_id, "cd-1", "stopped")
    assert kore.campaign_status(STREAM_ID, "cd-1") != "Active"


def test_stop_via_bus_with_json_output(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["--output", "json", "stop", "--stream", STREAM_ID, "--campaign", "cd-2",
                                 "--via", "bus", "--request-id", "req-cli-bus", "--requested-by", "ops"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["requestId"] == "req-cli-bus" and document["eventId"]
    SqsEventSourceMapping(stack, queue_url=stack.events_queue_url, queue_arn=stack.events_queue_arn,
                          max_receive_count=stack.max_receive_count).poll_until_empty(max_seconds=20)  # the bus's
    (published,) = stack.drain_results()
    assert (published["requestId"], published["requestedBy"], published["outcome"]) == ("req-cli-bus", "ops", "stopped")


def test_wait_sees_every_result_and_leaves_nothing_behind(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    before = _queues_and_subscriptions(stack)
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--campaign", "cd-2",
                                 "--campaign", "cd-done", "--wait", "--timeout", "30", "--output", "json"])
    assert result.exit_code == 0, result.output
    document = _json_document(result.stdout)
    outcomes = {r["campaignId"]: r["outcome"] for r in document["results"]}
    assert outcomes == {"cd-1": "stopped", "cd-2": "stopped", "cd-done": "already_stopped"}
    assert document["summary"]["outcomes"] == {"stopped": 2, "already_stopped": 1}
    assert _queues_and_subscriptions(stack) == before


def test_wait_on_one_campaign_shows_a_table(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-3", "--wait", "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert "cd-3" in result.stdout and "stopped" in result.stdout


def test_a_failing_campaign_exits_1(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    before = _queues_and_subscriptions(stack)
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-unknown", "--wait",
                                 "--timeout", "30"])
    assert result.exit_code == 1, result.output
    assert "failed" in result.stdout and "stop_refused" in result.stdout
    assert _queues_and_subscriptions(stack) == before


def test_wait_times_out_with_exit_3_and_cleans_up(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    before = _queues_and_subscriptions(stack)
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--all-active", "--dry-run", "--wait",
                                 "--timeout", "1"])  # nothing polls the stop queue
    assert result.exit_code == 3, result.output
    assert _queues_and_subscriptions(stack) == before


def test_an_invalid_request_exits_2_and_sends_nothing(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    before = _queues_and_subscriptions(stack)
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd/../1", "--wait"])
    assert result.exit_code == 2
    assert "request.campaignId must match pattern" in result.output
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=stack.stop_queue_url, AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert _queues_and_subscriptions(stack) == before


def test_usage_errors_exit_2(runner: CliRunner, cli_env: dict[str, str], monkeypatch: Any) -> None:
    both = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--all-active"])
    assert both.exit_code == 2 and "either --campaign" in both.output
    monkeypatch.delenv("STOP_QUEUE_URL")
    missing = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1"])
    assert missing.exit_code == 2 and "STOP_QUEUE_URL" in missing.output
    bad_type = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--type", "fax"])
    assert bad_type.exit_code == 2


@pytest.mark.parametrize("output", ["table", "json"])
def test_ctrl_c_while_waiting_says_which_request_and_leaves_nothing_behind(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    # A real SIGINT (Ctrl-C), delivered while the CLI long-polls the temporary queue, after the request went out.
    make_api_call = botocore.client.BaseClient._make_api_call

    def interrupted(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "ReceiveMessage" and QUEUE_PREFIX in params.get("QueueUrl", ""):
            os.kill(os.getpid(), signal.SIGINT)
        return make_api_call(self, operation, params)

    with monkeypatch.context() as patch:  # not monkeypatch.undo(): that would undo the isolated environment too
        patch.setattr(botocore.client.BaseClient, "_make_api_call", interrupted)
        before = _queues_and_subscriptions(stack)
        result = runner.invoke(app, ["-o", output, "stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--wait",
                                     "--request-id", "req-interrupted"])
    assert result.exit_code == 130, result.output
    if output == "json":
        document = _json_document(result.stdout)
        assert (document["requestId"], document["interrupted"], document["sent"]) == ("req-interrupted", True, True)
        assert (document["results"], document["exitCode"]) == ([], 130)
    else:
        text = " ".join(result.stdout.split())
        assert "Interrupted: request req-interrupted was sent; 0 result(s) arrived so far" in text
        assert "campaign-stop results --request-id req-interrupted --follow" in text
    assert _queues_and_subscriptions(stack) == before
    (sent,) = stack.client("sqs").receive_message(QueueUrl=stack.stop_queue_url)["Messages"]
    assert json.loads(sent["Body"])["requestId"] == "req-interrupted"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_while_waiting_removes_the_temporary_queue_and_subscription(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    would_have_died: list[int], signum: int,
) -> None:
    """`kill` (a cancelled CI job) or a closed terminal would end the process before its `finally`: while the
    subscription exists they count as Ctrl-C. The queue itself is short-lived and tagged, should anything be left."""
    make_api_call = botocore.client.BaseClient._make_api_call
    seen: dict[str, Any] = {}

    def killed(self: Any, operation: str, params: dict[str, Any]) -> Any:
        url = params.get("QueueUrl", "")
        if operation == "ReceiveMessage" and QUEUE_PREFIX in url and not seen:
            sqs = stack.client("sqs")
            seen["attributes"] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            seen["tags"] = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
            os.kill(os.getpid(), signum)
        return make_api_call(self, operation, params)

    with monkeypatch.context() as patch:  # not monkeypatch.undo(): that would undo the isolated environment too
        patch.setattr(botocore.client.BaseClient, "_make_api_call", killed)
        before = _queues_and_subscriptions(stack)
        result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--wait", "--timeout", "20"])
    assert would_have_died == []  # handled by the command, not by the process's default (death)
    assert result.exit_code == 130, result.output
    assert _queues_and_subscriptions(stack) == before
    assert seen["attributes"]["MessageRetentionPeriod"] == str(RETENTION_SECONDS)
    assert seen["tags"]["created-by"] == CREATED_BY and seen["tags"]["created-at"].endswith("Z")
    assert signal.getsignal(signum) is not None and would_have_died == []  # the previous handlers are back
    os.kill(os.getpid(), signum)
    assert would_have_died == [signum]


def test_ctrl_c_during_create_queue_leaves_no_queue_behind(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after SQS created the queue but before its URL came back: the name was chosen first, so the clean-up
    finds it."""
    make_api_call = botocore.client.BaseClient._make_api_call

    def interrupted(self: Any, operation: str, params: dict[str, Any]) -> Any:
        response = make_api_call(self, operation, params)
        if operation == "CreateQueue" and params["QueueName"].startswith(QUEUE_PREFIX):
            os.kill(os.getpid(), signal.SIGINT)
        return response

    with monkeypatch.context() as patch:  # not monkeypatch.undo(): that would undo the isolated environment too
        patch.setattr(botocore.client.BaseClient, "_make_api_call", interrupted)
        before = _queues_and_subscriptions(stack)
        result = runner.invoke(app, ["-o", "json", "stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--wait"])
    assert result.exit_code == 130, result.output
    assert _json_document(result.stdout)["sent"] is False  # interrupted before the request went out
    assert _queues_and_subscriptions(stack) == before
    attributes = stack.client("sqs").get_queue_attributes(QueueUrl=stack.stop_queue_url, AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
