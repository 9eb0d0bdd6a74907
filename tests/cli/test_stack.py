"""`--stack NAME` / CAMPAIGN_STOP_STACK: resources from a CloudFormation stack's outputs (created in moto's server),
between a command's own flags and the environment variables."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from campaign_stop_cli import common
from campaign_stop_cli.main import app
from devtools.local_stack import FAKE_AWS_CREDENTIALS, LocalStack

from .conftest import STREAM_ID


def _context(stack: str) -> typer.Context:
    """The context a command runs in, with --stack given (as the main callback keeps it)."""
    return typer.Context(get_command(app), obj={"stack": stack})


STACK_MAP = {"stack-alarm": {"streamId": STREAM_ID, "campaignId": "cd-1"}}


def _template(extra_outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "Parameters": {"KoreBaseUrl": {"Type": "String", "Default": "https://kore.example.com"}},
        "Resources": {
            "StopQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"stop-{uuid.uuid4().hex[:8]}"}},
            "AlarmTargets": {"Type": "AWS::SSM::Parameter", "Properties": {
                "Name": f"/stack-test/{uuid.uuid4().hex[:8]}", "Type": "String", "Value": json.dumps(STACK_MAP)}},
            "ResultsTopic": {"Type": "AWS::SNS::Topic"},
        },
        "Outputs": {
            "StopQueueUrl": {"Value": {"Ref": "StopQueue"}},
            "AlarmTargetsParameterName": {"Value": {"Ref": "AlarmTargets"}},
            "ResultsTopicArn": {"Value": {"Ref": "ResultsTopic"}},
            **{key: {"Value": value} for key, value in extra_outputs.items()},
        },
    }


@pytest.fixture
def make_stack(stack: LocalStack, cli_env: dict[str, str]) -> Callable[..., tuple[str, dict[str, str]]]:
    """Create a CloudFormation stack in moto; returns its (unique) name and outputs."""

    def create(**extra_outputs: str) -> tuple[str, dict[str, str]]:
        name = f"campaign-stop-{uuid.uuid4().hex[:10]}"
        cloudformation = stack.client("cloudformation")
        cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(_template(extra_outputs)))
        described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        return name, {item["OutputKey"]: item["OutputValue"] for item in described["Outputs"]}

    return create


def _parameter_shown(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["parameter"])


def test_outputs_come_after_flags_and_before_variables(
    runner: CliRunner, stack: LocalStack, make_stack: Callable[..., tuple[str, dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, outputs = make_stack()
    from_stack = outputs["AlarmTargetsParameterName"]
    from_variable = stack.alarm_parameter  # ALARM_TARGETS_PARAMETER, set by cli_env

    assert _parameter_shown(runner.invoke(app, ["-o", "json", "alarm-map", "show"])) == from_variable
    shown = runner.invoke(app, ["--stack", name, "-o", "json", "alarm-map", "show"])
    assert _parameter_shown(shown) == from_stack
    assert json.loads(shown.stdout)["alarmMap"] == STACK_MAP
    flagged = runner.invoke(app, ["--stack", name, "-o", "json", "alarm-map", "show", "--parameter", from_variable])
    assert _parameter_shown(flagged) == from_variable

    monkeypatch.setenv("CAMPAIGN_STOP_STACK", name)
    assert _parameter_shown(runner.invoke(app, ["-o", "json", "alarm-map", "show"])) == from_stack


def test_stop_sends_to_the_stacks_queue(
    runner: CliRunner, stack: LocalStack, make_stack: Callable[..., tuple[str, dict[str, str]]]
) -> None:
    name, outputs = make_stack()
    result = runner.invoke(app, ["--stack", name, "stop", "--stream", STREAM_ID, "--campaign", "cd-1",
                                 "--requested-by", "ops"])
    assert result.exit_code == 0, result.output
    sqs = stack.client("sqs")
    [message] = sqs.receive_message(QueueUrl=outputs["StopQueueUrl"])["Messages"]
    assert json.loads(message["Body"])["requestId"] == result.stdout.strip()
    stop_queue = sqs.get_queue_attributes(QueueUrl=stack.stop_queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert stop_queue["Attributes"]["ApproximateNumberOfMessages"] == "0"  # not the variable's queue


def test_a_missing_output_falls_back_to_the_variable_then_exits_2(
    runner: CliRunner, stack: LocalStack, make_stack: Callable[..., tuple[str, dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, _ = make_stack()  # no StopBusName output
    via_variable = runner.invoke(app, ["--stack", name, "-o", "json", "stop", "--stream", STREAM_ID,
                                       "--campaign", "cd-1", "--via", "bus", "--requested-by", "ops"])
    assert via_variable.exit_code == 0, via_variable.output
    assert json.loads(via_variable.stdout)["busName"] == stack.bus_name

    monkeypatch.delenv("STOP_BUS_NAME")
    missing = runner.invoke(app, ["--stack", name, "stop", "--stream", STREAM_ID, "--campaign", "cd-1",
                                  "--via", "bus"])
    assert missing.exit_code == 2
    message = " ".join(missing.output.split())
    assert f"stack {name} has no output StopBusName" in message
    assert "--bus-name" in message and "STOP_BUS_NAME" in message


def test_a_stack_parameter_of_the_same_name_serves_too(
    make_stack: Callable[..., tuple[str, dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = make_stack()
    monkeypatch.delenv("KORE_BASE_URL")
    with _context(name):
        assert common.resource("kore_base_url", None, common.OutputFormat.TABLE) == "https://kore.example.com"


def test_a_stack_that_does_not_exist_exits_2(runner: CliRunner, cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["--stack", "no-such-stack", "alarm-map", "show"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "stack no-such-stack does not exist" in message and "--stack" in message

    as_json = runner.invoke(app, ["--stack", "no-such-stack", "-o", "json", "status"])
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["exitCode"] == 2

    # a flag needs no stack: nothing is looked up
    flagged = runner.invoke(app, ["--stack", "no-such-stack", "alarm-map", "show", "--parameter",
                                  cli_env["ALARM_TARGETS_PARAMETER"]])
    assert flagged.exit_code == 0, flagged.output


def test_outputs_are_read_once_per_process(
    stack: LocalStack, make_stack: Callable[..., tuple[str, dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, outputs = make_stack()
    monkeypatch.delenv("STOP_QUEUE_URL")
    mode = common.OutputFormat.TABLE
    seen: list[dict[str, str]] = []
    barrier = threading.Barrier(4)

    def read() -> None:
        barrier.wait()
        seen.append(common.stack_values(name, mode))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(seen) == 4 and all(values is seen[0] for values in seen)  # one describe_stacks, shared

    stack.client("cloudformation").delete_stack(StackName=name)
    with _context(name):
        assert common.resource("stop_queue_url", None, mode) == outputs["StopQueueUrl"]  # cached, no second read


def test_a_blank_stack_variable_counts_as_none(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGN_STOP_STACK", "  ")
    assert _parameter_shown(runner.invoke(app, ["-o", "json", "alarm-map", "show"])) == stack.alarm_parameter
    assert _parameter_shown(runner.invoke(app, ["--stack", " ", "-o", "json", "alarm-map", "show"])) == (
        stack.alarm_parameter)


def test_no_test_sees_the_developers_stack_profile_or_resources() -> None:
    """`CAMPAIGN_STOP_STACK=prod AWS_PROFILE=prod pytest tests/cli` must neither fail nor reach an account: the
    autouse fixture in conftest.py clears them (and the credentials are fake) before every test."""
    leaked = [name for name in (common.STACK_VARIABLE, "AWS_PROFILE", *common.RESOURCE_VARIABLES.values())
              if name in os.environ]
    assert leaked == []
    assert {name: os.environ.get(name) for name in FAKE_AWS_CREDENTIALS} == FAKE_AWS_CREDENTIALS
