"""`campaign-stop status` against the local stack: queue attributes and CloudWatch only, never a receive."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from campaign_stop_cli import status
from campaign_stop_cli.main import app
from devtools.local_stack import LocalStack
from devtools.template_loader import local_stack_settings
from stop_campaign.service.processing import OUTCOME_METRICS

FUNCTION_NAME = "campaign-stop-StopCampaignFunction-abc123"
DASHBOARD = "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name=campaign-stop"


def _put_metrics(stack: LocalStack, namespace: str, dimensions: dict[str, str], data: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    stack.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[
        {**item, "Timestamp": now, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}
        for item in data
    ])


def test_queue_depth_and_dead_letters_without_receiving(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody='{"streamId": "st-1", "campaignId": "cd-1"}')
    sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody='{"later": true}', DelaySeconds=60)
    sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody='{"taken": true}')
    taken = sqs.receive_message(QueueUrl=stack.stop_queue_url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    assert len(taken["Messages"]) == 1
    for number in range(2):
        sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=f'{{"dead": {number}}}')

    result = runner.invoke(app, ["-o", "json", "status"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["stopQueue"] == {"url": stack.stop_queue_url, "visible": 1, "inFlight": 1, "delayed": 1}
    assert document["deadLetterQueue"] == {"url": stack.dead_letter_queue_url, "waiting": 2, "inFlight": 0}
    assert document["cloudWatch"] is None and "STOP_FUNCTION_NAME" in document["cloudWatchNote"]

    table = runner.invoke(app, ["status"])
    assert table.exit_code == 0, table.output
    assert "no data" in table.stdout and "dead letters waiting" in table.stdout
    assert "Dashboard" not in table.stdout

    # status received nothing: the waiting message is on its first receive, the dead letters too
    [waiting] = sqs.receive_message(QueueUrl=stack.stop_queue_url, AttributeNames=["All"])["Messages"]
    assert waiting["Attributes"]["ApproximateReceiveCount"] == "1"
    letters = sqs.receive_message(QueueUrl=stack.dead_letter_queue_url, AttributeNames=["All"],
                                  MaxNumberOfMessages=10)["Messages"]
    assert [letter["Attributes"]["ApproximateReceiveCount"] for letter in letters] == ["1", "1"]


def test_cloudwatch_figures_of_a_deployed_stack(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOP_FUNCTION_NAME", FUNCTION_NAME)
    monkeypatch.setenv("DASHBOARD_URL", DASHBOARD)
    service = {"service": status.SERVICE}
    _put_metrics(stack, status.NAMESPACE, service, [
        {"MetricName": "CampaignsStopped", "Value": 3, "Unit": "Count"},
        {"MetricName": "StopFailures", "Value": 1, "Unit": "Count"},
        {"MetricName": "TimeToStop", "Values": [100, 200, 600], "Counts": [1, 1, 1], "Unit": "Milliseconds"},
    ])
    _put_metrics(stack, status.NAMESPACE, {"service": "another-service"}, [
        {"MetricName": "CampaignsStopped", "Value": 50, "Unit": "Count"},
    ])
    queue_name = stack.stop_queue_url.rsplit("/", 1)[-1]
    _put_metrics(stack, "AWS/SQS", {"QueueName": queue_name}, [
        {"MetricName": "ApproximateAgeOfOldestMessage", "Value": 42, "Unit": "Seconds"},
    ])
    _put_metrics(stack, "AWS/Lambda", {"FunctionName": FUNCTION_NAME}, [
        {"MetricName": "Invocations", "Value": 5, "Unit": "Count"},
    ])

    result = runner.invoke(app, ["-o", "json", "status", "--window", "30"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    cloudwatch = document["cloudWatch"]
    assert cloudwatch["windowMinutes"] == 30
    assert cloudwatch["outcomes"] == {"stopped": 3, "already_stopped": None, "dry_run": None, "ignored": None,
                                      "rejected": None, "failed": 1, "resumed": None}
    assert cloudwatch["timeToStopMs"] == {"count": 3, "average": 300, "maximum": 600}
    assert cloudwatch["oldestMessageAgeSeconds"] == 42
    assert (cloudwatch["invocations"], cloudwatch["errors"], cloudwatch["throttles"]) == (5, None, None)
    assert document["dashboardUrl"] == DASHBOARD and document["functionName"] == FUNCTION_NAME

    table = runner.invoke(app, ["status"])
    assert table.exit_code == 0, table.output
    assert "mean 300 ms, max 600 ms" in table.stdout and "42 s" in table.stdout
    assert f"Dashboard: {DASHBOARD}" in table.stdout


def test_missing_queue_settings_exit_2(
    runner: CliRunner, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2 and "DEAD_LETTER_QUEUE_URL" in result.output and "--dlq-url" in result.output
    gone = runner.invoke(app, ["status", "--dlq-url", cli_env["STOP_QUEUE_URL"] + "-gone"])
    assert gone.exit_code == 2 and "does not exist" in gone.output


def test_metric_names_are_the_functions_own() -> None:
    environment = local_stack_settings()["environment"]
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == status.NAMESPACE
    assert environment["POWERTOOLS_SERVICE_NAME"] == status.SERVICE
    assert {outcome.value: name for outcome, name in OUTCOME_METRICS.items()} == status.OUTCOME_METRICS
