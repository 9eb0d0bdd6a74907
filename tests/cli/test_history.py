"""`campaign-stop history` and `campaign-stop results --request-id` reading the request history, against the local
stack: the real handler (behind the emulated event source mapping) writes the history as it serves requests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.local_stack import LocalStack
from devtools.poller import SqsEventSourceMapping
from stop_campaign.adapters.results import ResultsPublisher
from stop_campaign.domain.models import Outcome, ResultEvent, Source

from .conftest import STREAM_ID
from .test_results import _temporary, _when_listening, _without_metrics


def _served(stack: LocalStack, *bodies: dict[str, Any]) -> list[dict[str, Any]]:
    """Send the requests and wait until their results are published (read back through the stack's subscriber)."""
    sqs = stack.client("sqs")
    wanted = set()
    for body in bodies:
        sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(body))
        wanted.add(body["requestId"])
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while wanted - {result["requestId"] for result in results} and time.monotonic() < deadline:
        results += stack.drain_results()
        time.sleep(0.1)
    assert not wanted - {result["requestId"] for result in results}, results
    # The history is written after the results are published: served means the invocation ended (its message deleted).
    queue = SqsEventSourceMapping(stack)
    while queue.messages_in_queue() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queue.messages_in_queue() == 0, "the invocation did not end"
    return results


def _json(stdout: str) -> Any:
    return json.loads("\n".join(_without_metrics(stdout)))


def test_results_of_a_request_that_ended_before_the_command_started(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    published = _served(stack, {"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-done"], "requestId": "req-3am"})

    started = time.monotonic()
    result = runner.invoke(app, ["results", "--request-id", "req-3am", "--timeout", "30", "--output", "json"])
    assert result.exit_code == 0, result.output
    events = _json(result.stdout)
    outcomes = {e["campaignId"]: e["outcome"] for e in events if e.get("eventType") != "summary"}
    assert outcomes == {"cd-1": "stopped", "cd-done": "already_stopped"}  # not `[]`, as before the history
    assert {e["resultId"] for e in events if e.get("eventType") != "summary"} == {r["resultId"] for r in published}
    (summary,) = [e for e in events if e.get("eventType") == "summary"]
    assert summary["outcomes"] == {"stopped": 1, "already_stopped": 1}
    assert time.monotonic() - started < 25  # ends once nothing new came for a few seconds, not at --timeout
    assert _temporary(stack) == ([], [])


def test_results_shows_past_and_new_results_of_a_request_once_each(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    _served(stack, {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "req-both"})
    later = ResultEvent(outcome=Outcome.STOPPED, request_id="req-both", source=Source.SQS,
                        received_at="2026-01-01T00:00:00Z", completed_at="2026-01-01T00:00:01Z",
                        stream_id=STREAM_ID, campaign_id="cd-later", campaign_type="sms")
    publisher = ResultsPublisher(stack.results_topic_arn, stack.client("sns"))
    with _when_listening(stack, lambda: publisher.publish(later)):
        result = runner.invoke(app, ["results", "--request-id", "req-both", "--timeout", "30", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert sorted(e["campaignId"] for e in _json(result.stdout)) == ["cd-1", "cd-later"]


def test_results_outcome_filter_applies_to_the_past_results_too(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    _served(stack, {"streamId": STREAM_ID, "campaignIds": ["cd-2", "cd-unknown"], "requestId": "req-mixed"})
    result = runner.invoke(app, ["results", "--request-id", "req-mixed", "--outcome", "failed", "--timeout", "5",
                                 "-o", "json"])
    assert result.exit_code == 1, result.output  # a failed result was shown
    assert [(e["campaignId"], e["outcome"]) for e in _json(result.stdout)] == [("cd-unknown", "failed")]


def test_history_lists_recent_requests_with_their_counts(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    _served(stack, {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "req-first", "requestedBy": "ops"})
    _served(stack, {"streamId": STREAM_ID, "campaignIds": ["cd-2", "cd-unknown"], "requestId": "req-second"})

    result = runner.invoke(app, ["history", "--output", "json"])
    assert result.exit_code == 1, result.output  # req-second has a failed campaign
    rows = _json(result.stdout)
    assert [row["requestId"] for row in rows] == ["req-second", "req-first"]  # newest first
    assert rows[0]["outcomes"] == {"failed": 1, "stopped": 1} and rows[0]["campaigns"] == 2
    assert (rows[1]["outcomes"], rows[1]["source"], rows[1]["requestedBy"]) == ({"stopped": 1}, "sqs", "ops")

    limited = runner.invoke(app, ["history", "--limit", "1", "-o", "json"])
    assert [row["requestId"] for row in _json(limited.stdout)] == ["req-second"]

    table = runner.invoke(app, ["history"], env={"COLUMNS": "200"})
    assert "req-first" in table.stdout and "stopped 1" in table.stdout and "2 request(s)" in table.stdout


def test_history_of_an_empty_table_says_so_and_exits_0(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    result = runner.invoke(app, ["history", "--days", "2"])
    assert result.exit_code == 0, result.output
    assert "No request in the history for the last 2 day(s)" in result.stdout


def test_history_without_a_table_exits_2_naming_what_to_pass(
    runner: CliRunner, cli_env: dict[str, str], monkeypatch: Any
) -> None:
    monkeypatch.delenv("REQUEST_HISTORY_TABLE")
    result = runner.invoke(app, ["history"])
    assert result.exit_code == 2 and "REQUEST_HISTORY_TABLE" in result.output


def test_results_with_an_unreadable_history_warns_and_still_listens(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    result = runner.invoke(app, ["results", "--request-id", "req-x", "--history-table", "no-such-table",
                                 "--timeout", "1"])
    assert result.exit_code == 0, result.output
    assert "cannot read the request history no-such-table" in result.output
    assert _temporary(stack) == ([], [])
