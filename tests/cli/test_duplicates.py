"""`stop --wait` with a request id that was already served: said at once, with the earlier results, against the
local stack and the real handler (which keeps the request history and republishes a reused id's results)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack

from .conftest import STREAM_ID
from .test_results import _without_metrics


def _document(stdout: str) -> dict[str, Any]:
    text = "\n".join(_without_metrics(stdout))
    return json.loads(text[text.index("{"):])  # type: ignore[no-any-return]


def _stop_calls(kore: KoreSimulator) -> int:
    return len(kore.stop_calls())


def test_a_served_request_id_is_a_duplicate_at_once(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str],
    function_running: Callable[[], None],
) -> None:
    first = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--request-id", "req-twice",
                                "--wait", "--timeout", "30"])
    assert first.exit_code == 0, first.output
    calls = _stop_calls(kore)

    again = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--request-id", "req-twice",
                                "--wait", "--timeout", "60"])
    assert again.exit_code == 0, again.output  # its earlier result: stopped
    assert "Timed out" not in again.stdout
    assert "Duplicate" in again.stdout and "req-twice was already served" in again.stdout
    assert "cd-1" in again.stdout and "stopped" in again.stdout  # the earlier results, shown
    # Nothing was sent: how we know no second request exists (and so no second result or dead letter).
    visible = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.stop_queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert visible["ApproximateNumberOfMessages"] == "0"
    assert _stop_calls(kore) == calls

    as_json = _document(runner.invoke(app, ["-o", "json", "stop", "--stream", STREAM_ID, "--campaign", "cd-1",
                                            "--request-id", "req-twice", "--wait"]).stdout)
    assert (as_json["duplicate"], as_json["sent"]) == (True, False)
    assert [(r["campaignId"], r["outcome"]) for r in as_json["results"]] == [("cd-1", "stopped")]


def test_without_the_history_the_republished_results_say_it(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str],
    function_running: Callable[[], None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI cannot read the history (here: no table named): it sends, and the function republishes the first
    results of the reused id, which carry that first request's requestedAt."""
    first = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-2", "--request-id", "req-reused",
                                "--wait", "--timeout", "30"])
    assert first.exit_code == 0, first.output
    monkeypatch.delenv("REQUEST_HISTORY_TABLE")  # the CLI's; the function's settings were read already
    time.sleep(1.1)  # another requestedAt (whole seconds): another message, not a copy of the first
    again = runner.invoke(app, ["-o", "json", "stop", "--stream", STREAM_ID, "--campaign", "cd-2",
                                "--request-id", "req-reused", "--wait", "--timeout", "30"])
    assert again.exit_code == 0, again.output
    document = _document(again.stdout)
    assert document["duplicate"] is True and document["timedOut"] is False
    assert [(r["campaignId"], r["outcome"]) for r in document["results"]] == [("cd-2", "stopped")]
