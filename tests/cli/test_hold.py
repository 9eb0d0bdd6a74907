"""`campaign-stop hold list` and `hold release` against the local stack: the real handler (run in this process)
begins the hold when the alarm fires and keeps it with each hold check."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.lambda_runtime import LocalLambdaContext
from devtools.local_stack import LocalStack
from stop_campaign import app as function

from .conftest import STREAM_ID
from .test_results import _without_metrics

ALARM = "kill-checkout"
FIRED_AT = "2026-11-28T10:05:00.000+0000"
HOLD_OF = f"alarm:{ALARM}:{FIRED_AT}"


def _invoke(event: dict[str, Any]) -> Any:
    return function.lambda_handler(event, LocalLambdaContext())


def _json(stdout: str) -> Any:
    return json.loads("\n".join(_without_metrics(stdout)))


@pytest.fixture
def held(stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]) -> KoreSimulator:
    """The alarm in ALARM (on moto's CloudWatch) has fired: cd-1 and cd-2 are stopped and held."""
    stack.put_alarm_map({ALARM: [{"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2"], "hold": True}]})
    cloudwatch = stack.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName=ALARM, Namespace="Checkout", MetricName="SmsErrors", Statistic="Sum",
                                Period=60, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="test")
    _invoke({"id": "evt-1", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
             "account": "123456789012", "time": "2026-11-28T10:05:00Z",
             "resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}"],
             "detail": {"alarmName": ALARM, "state": {"value": "ALARM", "timestamp": FIRED_AT}}})
    assert kore.campaign_status(STREAM_ID, "cd-1") == "Stopped"
    stack.drain_results()
    return kore


def test_hold_list_shows_the_active_hold(runner: CliRunner, held: KoreSimulator) -> None:
    result = runner.invoke(app, ["hold", "list", "-o", "json"])
    assert result.exit_code == 0, result.output
    (row,) = _json(result.stdout)
    assert (row["requestId"], row["alarmName"], row["status"]) == (HOLD_OF, ALARM, "active")
    assert row["streams"] == [{"streamId": STREAM_ID, "campaignType": "sms", "accountId": None, "selection": "ids",
                               "campaignIds": ["cd-1", "cd-2"]}]
    assert row["since"]

    table = runner.invoke(app, ["hold", "list"], env={"COLUMNS": "220"})
    assert table.exit_code == 0, table.output
    assert ALARM in table.stdout and HOLD_OF in table.stdout and "cd-1, cd-2" in table.stdout
    assert "1 hold(s)" in table.stdout


def test_hold_list_as_jsonl_is_one_hold_a_line(runner: CliRunner, held: KoreSimulator) -> None:
    result = runner.invoke(app, ["hold", "list", "-o", "jsonl"])
    assert result.exit_code == 0, result.output
    (line,) = _without_metrics(result.stdout)
    assert json.loads(line)["requestId"] == HOLD_OF


def test_hold_release_ends_the_hold_and_the_next_check_stops_nothing(
    runner: CliRunner, held: KoreSimulator, stack: LocalStack
) -> None:
    result = runner.invoke(app, ["hold", "release", HOLD_OF])
    assert result.exit_code == 0, result.output
    assert "Released the hold" in result.stdout

    held.restart(STREAM_ID, "cd-1")
    held.reset_log()
    assert _invoke({"action": "hold-check", "at": "2026-11-28T10:06:00Z"})["holds"] == []
    assert held.requests == [] and stack.drain_results() == []
    assert held.campaign_status(STREAM_ID, "cd-1") == "Active"  # released: nothing stops it again

    listed = runner.invoke(app, ["hold", "list", "-o", "json"])
    assert _json(listed.stdout) == []
    everything = runner.invoke(app, ["hold", "list", "--all", "-o", "json"])
    assert [(row["requestId"], row["status"], row["endReason"]) for row in _json(everything.stdout)] == [
        (HOLD_OF, "released", "released")]


def test_releasing_twice_is_no_error(runner: CliRunner, held: KoreSimulator) -> None:
    runner.invoke(app, ["hold", "release", HOLD_OF])
    again = runner.invoke(app, ["hold", "release", HOLD_OF, "-o", "json"])
    assert again.exit_code == 0, again.output
    document = _json(again.stdout)
    assert (document["released"], document["status"]) == (False, "released")


def test_releasing_an_unknown_hold_exits_1_saying_so(runner: CliRunner, held: KoreSimulator) -> None:
    result = runner.invoke(app, ["hold", "release", "alarm:no-such:hold"])
    assert result.exit_code == 1  # a request id not found, as for dead letters (docs/operate/index.md)
    assert "no hold alarm:no-such:hold" in result.output and "hold list" in result.output


def test_hold_list_without_a_table_exits_2_naming_what_to_pass(
    runner: CliRunner, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOLDS_TABLE")
    result = runner.invoke(app, ["hold", "list"])
    assert result.exit_code == 2 and "HOLDS_TABLE" in result.output and "--holds-table" in result.output


def test_hold_list_with_no_hold_says_so(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["hold", "list"])
    assert result.exit_code == 0 and "No hold is active." in result.stdout
