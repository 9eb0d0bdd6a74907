"""Guard rails of the operator's commands (GitHub issue 17): an all-active stop, an all-active schedule and a firing
without --at show what they would stop (a dry run through the real handler) and need the stream id typed; without a
terminal they refuse (exit 2) instead of stopping unseen. Text from results, the API and AWS is never read as Rich
markup. `doctor` sends its token only to a documented Kore.ai host (or this machine) unless told otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer import testing
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack

from .conftest import STREAM_ID

ACTIVE = ["cd-1", "cd-2", "cd-3"]  # the simulator's active SMS campaigns of st-1 (conftest.kore_campaigns)
HOSTILE = "refused [/] for [link=https://evil.example]your account[/link] [bold]now"


@pytest.fixture
def at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin is a terminal (CliRunner's stdin says it is one; stdout and stderr stay plain, uncoloured files)."""
    monkeypatch.setattr(testing._NamedTextIOWrapper, "isatty", lambda self: self.name == "<stdin>")


def _stop_queue_depth(stack: LocalStack) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.stop_queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _statuses(kore: KoreSimulator) -> dict[str, str | None]:
    return {campaign_id: kore.campaign_status(STREAM_ID, campaign_id) for campaign_id in ACTIVE}


# -- stop --all-active ---------------------------------------------------------------------------------------


def test_stop_all_active_without_a_terminal_or_yes_is_refused_and_sends_nothing(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--all-active"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "needs a terminal" in message and "--yes" in message and "nothing was sent" in message
    assert _stop_queue_depth(stack) == 0 and kore.requests == []
    as_json = runner.invoke(app, ["-o", "json", "stop", "--stream", STREAM_ID, "--all-active", "--wait"])
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["exitCode"] == 2


def test_stop_all_active_shows_the_dry_run_and_stops_once_the_stream_id_is_typed(
    runner: CliRunner, kore: KoreSimulator, cli_env: dict[str, str], function_running: Callable[[], None],
    at_a_terminal: None,
) -> None:
    wrong = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--all-active", "--timeout", "30"], input="st-2\n")
    assert wrong.exit_code == 1, wrong.output
    assert all(campaign_id in wrong.stdout for campaign_id in ACTIVE)  # what the dry run found
    assert "Would stop 3 campaign(s) of st-1" in wrong.stdout and "nothing was stopped" in wrong.output
    assert set(_statuses(kore).values()) == {"Active"}
    assert kore.stop_calls() == []  # the dry run lists, it stops nothing

    typed = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--all-active", "--wait", "--timeout", "30"],
                          input=f"{STREAM_ID}\n")
    assert typed.exit_code == 0, typed.output
    assert "Type the stream id (st-1)" in typed.output
    assert set(_statuses(kore).values()) == {"Stopped"}


def test_yes_skips_the_dry_run_and_the_question(
    runner: CliRunner, kore: KoreSimulator, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    result = runner.invoke(app, ["-o", "json", "stop", "--stream", STREAM_ID, "--all-active", "--yes", "--wait",
                                 "--timeout", "30"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout[result.stdout.index("{\n"):result.stdout.rindex("\n}") + 2])
    assert sorted(r["campaignId"] for r in document["results"]) == ACTIVE and "preview" not in document
    assert [call.kind for call in kore.requests].count("list") >= 1 and len(kore.stop_calls()) == 3


def test_a_dry_run_all_active_needs_no_confirmation(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--all-active", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert _stop_queue_depth(stack) == 1


# -- schedules --------------------------------------------------------------------------------------------


def test_an_all_active_schedule_and_a_firing_now_ask_first(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, scheduler_env: dict[str, str],
    function_running: Callable[[], None], at_a_terminal: None,
) -> None:
    create = ["schedule", "create", "nightly", "--stream", STREAM_ID, "--all-active", "--cron", "55 20 * * ? *",
              "--timezone", "America/New_York", "--timeout", "30"]
    declined = runner.invoke(app, create, input="no\n")
    assert declined.exit_code == 1, declined.output
    assert all(campaign_id in declined.stdout for campaign_id in ACTIVE)
    assert stack.client("scheduler").list_schedules(GroupName=scheduler_env["SCHEDULE_GROUP_NAME"])["Schedules"] == []
    created = runner.invoke(app, create, input=f"{STREAM_ID}\n")
    assert created.exit_code == 0, created.output
    assert kore.stop_calls() == []  # creating stops nothing, the dry run neither

    fired = runner.invoke(app, ["schedule", "fire", "nightly", "--timeout", "30"], input="wrong\n")
    assert fired.exit_code == 1 and "nothing was stopped" in fired.output
    assert set(_statuses(kore).values()) == {"Active"}
    at_time = runner.invoke(app, ["schedule", "fire", "nightly", "--at", "2025-12-01T20:55"])  # a past firing
    assert at_time.exit_code == 0, at_time.output  # --at resends one firing: no question


def test_schedule_commands_refuse_without_a_terminal(
    runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str]
) -> None:
    create = ["schedule", "create", "nightly", "--stream", STREAM_ID, "--all-active", "--cron", "55 20 * * ? *",
              "--timezone", "America/New_York"]
    assert runner.invoke(app, create).exit_code == 2
    assert runner.invoke(app, [*create, "--dry-run-request"]).exit_code == 0  # sends dry runs: nothing to guard
    named = ["schedule", "create", "one", "--stream", STREAM_ID, "--campaign", "cd-1", "--cron", "55 20 * * ? *",
             "--timezone", "America/New_York"]
    assert runner.invoke(app, named).exit_code == 0
    refused = runner.invoke(app, ["schedule", "fire", "one"])
    assert refused.exit_code == 2 and "needs a terminal" in " ".join(refused.output.split())
    assert _stop_queue_depth(stack) == 0


# -- nothing from outside is markup ---------------------------------------------------------------------------


def test_an_api_message_with_markup_is_shown_as_text_by_stop_wait(
    runner: CliRunner, kore: KoreSimulator, cli_env: dict[str, str], function_running: Callable[[], None]
) -> None:
    kore.inject(kind="stop_sms", status=400, body={"message": HOSTILE}, times=1)
    kore.inject(kind="status", status=400, body={"message": HOSTILE}, times=1)
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--wait", "--timeout", "30"],
                           env={"COLUMNS": "400"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output  # failed: shown, not crashed
    assert "[/]" in result.stdout and "[link=https://evil.example]" in result.stdout
    assert "\x1b]8;" not in result.stdout  # no terminal hyperlink was made


def test_results_dlq_and_alarm_map_print_outside_text_as_it_is(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], tmp_path: Any
) -> None:
    stack.client("sqs").send_message(
        QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps({"streamId": STREAM_ID, "requestId": "r[/]"}),
        MessageAttributes={"errorCode": {"DataType": "String", "StringValue": "[/]"},
                           "errorMessage": {"DataType": "String", "StringValue": HOSTILE},
                           "requestId": {"DataType": "String", "StringValue": "r[/]"},
                           "source": {"DataType": "String", "StringValue": "[bold]sqs"}})
    for columns in ("200", "80"):  # the table, and the narrow layout
        listed = runner.invoke(app, ["dlq", "list"], env={"COLUMNS": columns})
        assert listed.exit_code == 0, listed.output
        assert "[link=https://evil.example]" in listed.stdout and "r[/]" in listed.stdout
    shown = runner.invoke(app, ["dlq", "redrive", "--all", "--dry-run"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "[link=https://evil.example]" in shown.stdout

    hostile_map = tmp_path / "map.json"
    hostile_map.write_text(json.dumps({"[/]bad": [{"streamId": "st-[/]", "campaignId": "cd-1"}]}))
    checked = runner.invoke(app, ["alarm-map", "validate", str(hostile_map)], env={"COLUMNS": "200"})
    assert checked.exit_code == 2, checked.output  # invalid: reported, not crashed
    assert "[/]bad[0]" in checked.output, checked.output

    missing = runner.invoke(app, ["dlq", "list", "--dlq-url", f"{stack.dead_letter_queue_url}-[/]gone"])
    assert missing.exit_code == 2 and "[/]gone" in missing.output  # an AWS error quoting it, as text


# -- doctor's token -----------------------------------------------------------------------------------------


def _kore_check(result: Any) -> dict[str, str]:
    return next(check for check in json.loads(result.stdout)["checks"] if check["name"] == "Kore.ai status call")


def test_doctor_sends_no_token_to_an_undocumented_host(
    runner: CliRunner, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    doctor = ["-o", "json", "doctor", "--stream", STREAM_ID, "--campaign", "cd-1"]
    refused = runner.invoke(app, [*doctor, "--kore-base-url", "https://kore.example.invalid"])
    check = _kore_check(refused)
    assert refused.exit_code == 1 and check["status"] == "fail"
    assert "not a documented Kore.ai host; no token was sent" in check["detail"]
    assert "--allow-host kore.example.invalid" in check["fix"] and "platform.kore.ai" in check["fix"]

    allowed = runner.invoke(app, [*doctor, "--kore-base-url", "https://kore.example.invalid",
                                  "--allow-host", "kore.example.invalid"])
    assert "not a documented" not in _kore_check(allowed)["detail"]  # tried: the host does not resolve
    assert kore.requests == []

    local = runner.invoke(app, doctor)  # the simulator on 127.0.0.1: this machine
    assert _kore_check(local)["status"] == "pass", local.output
    assert [call.kind for call in kore.requests] == ["status"]
