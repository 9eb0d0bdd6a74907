"""One exit-code rule for every command: 0 success, 1 a request or campaign failed, 2 usage or configuration, 3 timed
out. Against the local stack (moto's server), with the real handler where a request must be served."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.local_stack import LocalStack

from .conftest import STREAM_ID

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3

# Every command with a resource it cannot do without: the variable naming it.
NEEDS = [
    (["stop", "--stream", STREAM_ID, "--campaign", "cd-1"], "STOP_QUEUE_URL"),
    (["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--wait"], "RESULTS_TOPIC_ARN"),
    (["results", "--timeout", "1"], "RESULTS_TOPIC_ARN"),
    (["history"], "REQUEST_HISTORY_TABLE"),
    (["dlq", "list"], "DEAD_LETTER_QUEUE_URL"),
    (["dlq", "show", "some-id"], "DEAD_LETTER_QUEUE_URL"),
    (["dlq", "redrive", "--all", "--yes"], "DEAD_LETTER_QUEUE_URL"),
    (["dlq", "redrive", "--all", "--yes"], "STOP_QUEUE_URL"),
    (["status"], "STOP_QUEUE_URL"),
    (["status"], "DEAD_LETTER_QUEUE_URL"),
    (["alarm-map", "show"], "ALARM_TARGETS_PARAMETER"),
    (["producers", "show"], "PRODUCER_POLICY_PARAMETER"),
]


@pytest.mark.parametrize(("command", "variable"), NEEDS, ids=lambda value: " ".join(value)
                         if isinstance(value, list) else value)
def test_a_missing_setting_exits_2_and_names_it(
    runner: CliRunner, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, command: list[str], variable: str
) -> None:
    monkeypatch.delenv(variable)
    result = runner.invoke(app, command)
    assert result.exit_code == EXIT_USAGE, result.output
    assert variable in result.output


def _nowhere(stack: LocalStack, kind: str) -> str:
    """A resource of the stack's account that does not exist."""
    if kind == "queue":
        return f"{stack.endpoint_url}/{stack.account_id}/campaign-stop-NoSuchQueue"
    if kind == "topic":
        return f"arn:aws:sns:us-east-1:{stack.account_id}:campaign-stop-NoSuchTopic"
    return "/campaign-stop/no-such-parameter"


MISSING = [
    (["stop", "--stream", STREAM_ID, "--campaign", "cd-1"], "STOP_QUEUE_URL", "queue"),
    (["results", "--timeout", "1"], "RESULTS_TOPIC_ARN", "topic"),
    (["history"], "REQUEST_HISTORY_TABLE", "table"),
    (["dlq", "list"], "DEAD_LETTER_QUEUE_URL", "queue"),
    (["dlq", "show", "some-id"], "DEAD_LETTER_QUEUE_URL", "queue"),
    (["dlq", "redrive", "--all", "--yes"], "STOP_QUEUE_URL", "queue"),
    (["status"], "STOP_QUEUE_URL", "queue"),
    (["alarm-map", "show"], "ALARM_TARGETS_PARAMETER", "parameter"),
    (["producers", "show"], "PRODUCER_POLICY_PARAMETER", "parameter"),
]


@pytest.mark.parametrize(("command", "variable", "kind"), MISSING,
                         ids=[f"{' '.join(command)}: {variable}" for command, variable, _ in MISSING])
def test_a_resource_that_does_not_exist_exits_2(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    command: list[str], variable: str, kind: str,
) -> None:
    """The setup points at nothing: a configuration error (before, `stop` said 1 and `status` 2)."""
    monkeypatch.setenv(variable, "campaign-stop-NoSuchTable" if kind == "table" else _nowhere(stack, kind))
    result = runner.invoke(app, command)
    assert result.exit_code == EXIT_USAGE, result.output
    json_mode = runner.invoke(app, ["-o", "json", *command])
    assert json_mode.exit_code == EXIT_USAGE
    assert json.loads(json_mode.stdout[json_mode.stdout.index("{"):])["exitCode"] == EXIT_USAGE


@pytest.mark.parametrize("command", [["stop", "--stream", STREAM_ID], ["results", "--outcome", "exploded"],
                                     ["dlq", "redrive"], ["dlq", "list", "--older-than", "soon"],
                                     ["history", "--limit", "0"], ["status", "--no-such-flag"]])
def test_usage_errors_exit_2(runner: CliRunner, cli_env: dict[str, str], command: list[str]) -> None:
    assert runner.invoke(app, command).exit_code == EXIT_USAGE


def test_stop_wait_exits_0_1_or_3(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    stopped = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--wait", "--timeout", "30"])
    assert stopped.exit_code == EXIT_OK, stopped.output
    refused = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-unknown", "--wait",
                                  "--timeout", "30"])
    assert refused.exit_code == EXIT_FAILED, refused.output
    assert "stop_refused" in refused.stdout


def test_stop_wait_with_nothing_serving_exits_3(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-2", "--wait", "--timeout", "1"])
    assert result.exit_code == EXIT_TIMEOUT, result.output
    assert "Timed out" in result.stdout


def test_dlq_exits_1_for_what_it_cannot_find_or_move(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    assert runner.invoke(app, ["dlq", "list"]).exit_code == EXIT_OK  # empty is not a failure
    missing = runner.invoke(app, ["dlq", "show", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code == EXIT_FAILED, missing.output
    unknown = runner.invoke(app, ["dlq", "redrive", "--error-code", "stop_refussed", "--yes"])
    assert unknown.exit_code == EXIT_FAILED, unknown.output
    assert "no dead letter has error code stop_refussed" in unknown.output
