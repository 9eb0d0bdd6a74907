"""`campaign-stop results` against the local stack: the real handler publishes while the CLI listens on its own
temporary subscription, which must be gone afterwards (Ctrl-C included)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client
import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from campaign_stop_cli.subscription import QUEUE_PREFIX
from devtools.local_stack import LocalStack
from stop_campaign.adapters.results import ResultsPublisher
from stop_campaign.domain.models import Outcome, ResultEvent, Source

from .conftest import STREAM_ID


def _temporary(stack: LocalStack) -> tuple[list[str], list[str]]:
    """The CLI's own queues and subscriptions to the results topic (the stack's subscriber excluded)."""
    queues = [url for url in stack.client("sqs").list_queues().get("QueueUrls", []) if QUEUE_PREFIX in url]
    subscriptions = stack.client("sns").list_subscriptions_by_topic(TopicArn=stack.results_topic_arn)["Subscriptions"]
    return queues, [s["SubscriptionArn"] for s in subscriptions if QUEUE_PREFIX in s["Endpoint"]]


def _stop_request(request_id: str, *campaigns: str) -> str:
    request: dict[str, Any] = {"streamId": STREAM_ID, "campaignType": "sms", "requestId": request_id}
    if len(campaigns) == 1:
        request["campaignId"] = campaigns[0]
    else:
        request["campaignIds"] = list(campaigns)
    return json.dumps(request)


@contextmanager
def _when_listening(stack: LocalStack, *actions: Callable[[], object]) -> Iterator[None]:
    """Run ``actions`` in a thread as soon as the CLI's temporary subscription exists: a fresh subscription sees
    only what is published after it, as an operator's does."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            deadline = time.monotonic() + 20
            while not _temporary(stack)[1]:
                if time.monotonic() > deadline:
                    raise TimeoutError("the CLI never subscribed")
                time.sleep(0.05)
            for action in actions:
                action()
        except BaseException as error:  # reported in the test's thread
            failures.append(error)

    thread = threading.Thread(target=run, name="publisher", daemon=True)
    thread.start()
    yield
    thread.join(timeout=30)
    assert not failures, failures


def _send(stack: LocalStack, body: str) -> Callable[[], object]:
    return lambda: stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=body)


def _without_metrics(stdout: str) -> list[str]:
    """The CLI's lines: the handler runs in this process and may print its metrics (EMF, one line) among them."""
    return [line for line in stdout.splitlines() if line.strip() and not line.startswith('{"_aws":')]


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _without_metrics(stdout)]


def test_results_filtered_by_request_id(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    with _when_listening(stack, _send(stack, _stop_request("req-wanted", "cd-1", "cd-done")),
                         _send(stack, _stop_request("req-other", "cd-2"))):
        result = runner.invoke(app, ["results", "--request-id", "req-wanted", "--timeout", "30", "--output", "json"])
    assert result.exit_code == 0, result.output
    events = json.loads("\n".join(_without_metrics(result.stdout)))
    assert {e["requestId"] for e in events} == {"req-wanted"}
    outcomes = {e["campaignId"]: e["outcome"] for e in events if e.get("eventType") != "summary"}
    assert outcomes == {"cd-1": "stopped", "cd-done": "already_stopped"}
    (summary,) = [e for e in events if e.get("eventType") == "summary"]
    assert summary["outcomes"] == {"stopped": 1, "already_stopped": 1}
    # The other request was served too, only filtered out (the stack's own subscriber saw it).
    deadline = time.monotonic() + 10
    seen: list[dict[str, Any]] = []
    while "req-other" not in {r["requestId"] for r in seen} and time.monotonic() < deadline:
        seen += stack.drain_results()
        time.sleep(0.1)
    assert "req-other" in {r["requestId"] for r in seen}
    assert _temporary(stack) == ([], [])


def test_results_filtered_by_outcome_show_error_code_and_message(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    with _when_listening(stack, _send(stack, _stop_request("req-ok", "cd-3")),
                         _send(stack, _stop_request("req-refused", "cd-unknown"))):
        result = runner.invoke(app, ["results", "--outcome", "failed", "--outcome", "rejected", "--stream", STREAM_ID,
                                     "--timeout", "30"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output  # a failed result was shown
    assert "req-refused" in result.stdout and "stop_refused" in result.stdout and "failed" in result.stdout
    assert "req-ok" not in result.stdout
    assert "1 result(s), 0 summary event(s)" in result.stdout
    assert _temporary(stack) == ([], [])


def test_follow_prints_each_result_once_and_ctrl_c_leaves_nothing_behind(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A result delivered twice (SNS delivers at least once): the function's own publisher, the same event twice.
    duplicate = ResultEvent(outcome=Outcome.FAILED, request_id="req-follow", source=Source.SQS,
                            received_at="2026-01-01T00:00:00Z", completed_at="2026-01-01T00:00:01Z",
                            stream_id=STREAM_ID, campaign_id="cd-x", campaign_type="sms")
    publisher = ResultsPublisher(stack.results_topic_arn, stack.client("sns"))
    expected_deliveries = 3  # the duplicate twice, and cd-1's result

    # Ctrl-C, pressed while the CLI waits on the queue once everything has arrived: raised from the AWS SDK's
    # call, where a real SIGINT would interrupt the long poll.
    delivered = [0]
    make_api_call = botocore.client.BaseClient._make_api_call

    def interrupted(self: Any, operation: str, params: dict[str, Any]) -> Any:
        ours = (operation == "ReceiveMessage" and QUEUE_PREFIX in params.get("QueueUrl", "")
                and threading.current_thread() is threading.main_thread())
        if ours and delivered[0] >= expected_deliveries:
            raise KeyboardInterrupt
        response = make_api_call(self, operation, params)
        if ours:
            delivered[0] += len(response.get("Messages", []))
        return response

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", interrupted)
    with _when_listening(stack, lambda: publisher.publish(duplicate), lambda: publisher.publish(duplicate),
                         _send(stack, _stop_request("req-follow", "cd-1"))):
        result = runner.invoke(app, ["-o", "json", "results", "--follow", "--request-id", "req-follow",
                                     "--timeout", "40"])
    assert result.exit_code == 1, result.output  # Ctrl-C ends --follow normally; exit 1 for the failed cd-x
    lines = _json_lines(result.stdout)
    assert sorted((e["campaignId"], e["outcome"]) for e in lines) == [("cd-1", "stopped"), ("cd-x", "failed")]
    assert len({e["resultId"] for e in lines}) == 2
    assert _temporary(stack) == ([], [])


def test_without_a_results_topic_exits_2(
    runner: CliRunner, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESULTS_TOPIC_ARN")
    result = runner.invoke(app, ["results", "--timeout", "1"])
    assert result.exit_code == 2 and "RESULTS_TOPIC_ARN" in result.output
    assert runner.invoke(app, ["results", "--outcome", "exploded"]).exit_code == 2
