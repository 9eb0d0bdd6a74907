"""`campaign-stop doctor` against the local stack and the Kore.ai simulator: read-only checks, fixes for failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack

from .conftest import ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, CREDENTIALS, STREAM_ID

SAMPLE_MAP = Path(__file__).resolve().parents[2] / "events" / "alarm_map.json"


def _checks(result: Any) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def _assert_nothing_secret(text: str) -> None:
    assert CLIENT_SECRET not in text
    assert "eyJ" not in text  # no JWT (header '{"…' base64url-encoded)


def _stop_queue_depth(stack: LocalStack) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.stop_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_every_check_passes_and_nothing_is_stopped(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    stack.put_alarm_map(json.loads(SAMPLE_MAP.read_text()))
    result = runner.invoke(app, ["-o", "json", "doctor", "--stream", STREAM_ID, "--campaign", "cd-1"])

    assert result.exit_code == 0, result.output
    checks = _checks(result)
    assert {name: check["status"] for name, check in checks.items()} == {
        "credentials secret": "pass", f"credentials for {STREAM_ID}": "pass", "token": "pass",
        "Kore.ai status call": "pass", "alarm map": "pass", "dead-letter queue": "pass", "stop queue": "pass",
        "results topic": "pass", "idempotency table": "pass",
    }
    assert "Active" in checks["Kore.ai status call"]["detail"]
    assert ACCOUNT_ID in checks[f"credentials for {STREAM_ID}"]["detail"]
    assert "2 entries, valid" in checks["alarm map"]["detail"]
    _assert_nothing_secret(result.output)
    # read-only: one status call, the campaign still active, nothing sent to the stop queue
    assert [call.kind for call in kore.requests] == ["status"]
    assert kore.campaign_status(STREAM_ID, "cd-1") == "Active"
    assert _stop_queue_depth(stack) == 0

    table = runner.invoke(app, ["doctor", "--stream", STREAM_ID, "--campaign", "cd-1"])
    assert table.exit_code == 0, table.output
    assert "all checks passed" in table.stdout and "Kore.ai status call" in table.stdout
    _assert_nothing_secret(table.output)


def test_without_a_campaign_the_secret_is_checked_stream_by_stream(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    stack.put_secret({"streams": {STREAM_ID: CREDENTIALS, "st-2": {"clientId": CLIENT_ID, "accountId": "acc-2"}}})
    result = runner.invoke(app, ["-o", "json", "doctor"])

    assert result.exit_code == 1, result.output
    checks = _checks(result)
    assert checks["credentials secret"]["detail"].endswith("2 stream entries")
    assert checks[f"credentials for {STREAM_ID}"]["status"] == "pass"
    assert checks["credentials for st-2"]["status"] == "fail"
    assert "no clientSecret" in checks["credentials for st-2"]["detail"]
    assert '"streams": {"st-2"' in checks["credentials for st-2"]["fix"]
    assert checks["default credentials"]["status"] == "pass"  # none, but every stream has its own
    assert checks["token"]["status"] == "pass"
    assert checks["Kore.ai status call"]["status"] == "skip"
    assert kore.requests == []
    _assert_nothing_secret(result.output)


def test_failures_come_with_their_fix(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    stack.put_alarm_map({"checkout-errors": {"stream": STREAM_ID, "campaignId": "cd-1"}})
    stack.client("sqs").delete_queue(QueueUrl=stack.dead_letter_queue_url)
    stack.client("dynamodb").update_time_to_live(
        TableName=stack.table_name, TimeToLiveSpecification={"Enabled": False, "AttributeName": "expiration"}
    )
    result = runner.invoke(app, ["-o", "json", "doctor", "--stream", STREAM_ID, "--campaign", "cd-unknown"])

    assert result.exit_code == 1, result.output
    checks = _checks(result)
    failed = {name for name, check in checks.items() if check["status"] == "fail"}
    assert failed == {"Kore.ai status call", "alarm map", "dead-letter queue", "idempotency table"}
    assert "HTTP 404" in checks["Kore.ai status call"]["detail"]
    assert "check both ids" in checks["Kore.ai status call"]["fix"]
    assert "streamId" in checks["alarm map"]["detail"] and "alarm-map put" in checks["alarm map"]["fix"]
    assert "does not exist" in checks["dead-letter queue"]["detail"]
    assert "update-time-to-live" in checks["idempotency table"]["fix"]
    assert all(checks[name]["fix"] for name in failed)

    table = runner.invoke(app, ["doctor", "--stream", STREAM_ID, "--campaign", "cd-unknown"])
    assert table.exit_code == 1
    assert "some checks failed" in table.stdout and "update-time-to-live" in table.stdout


def test_a_refused_token_names_the_credentials_and_prints_no_secret(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    wrong = "wrong-secret-0123456789abcdef0123456789"
    stack.put_secret({**CREDENTIALS, "clientSecret": wrong})
    result = runner.invoke(app, ["-o", "json", "doctor", "--stream", STREAM_ID, "--campaign", "cd-1"])

    assert result.exit_code == 1, result.output
    kore_check = _checks(result)["Kore.ai status call"]
    assert kore_check["status"] == "fail" and "HTTP 401" in kore_check["detail"]
    assert "clientSecret" in kore_check["fix"]
    assert wrong not in result.output
    _assert_nothing_secret(result.output)
    assert {call.kind for call in kore.requests} == {"status"}


def test_a_secret_that_is_missing_or_not_an_object(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    missing = runner.invoke(app, ["-o", "json", "doctor", "--secret-id", "no/such/secret"])
    assert missing.exit_code == 1
    check = _checks(missing)["credentials secret"]
    assert check["status"] == "fail" and "does not exist" in check["detail"] and "--secret-id" in check["fix"]
    assert _checks(missing)["token"]["status"] == "skip"

    stack.client("secretsmanager").put_secret_value(SecretId=stack.secret_id, SecretString='["not", "an object"]')
    wrong_shape = runner.invoke(app, ["-o", "json", "doctor"])
    assert wrong_shape.exit_code == 1
    check = _checks(wrong_shape)["credentials secret"]
    assert check["status"] == "fail" and "not a JSON object" in check["detail"]


def test_missing_settings_exit_2_naming_what_to_pass(
    runner: CliRunner, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    monkeypatch.delenv("KORE_BASE_URL")
    result = runner.invoke(app, ["-o", "json", "doctor"])

    assert result.exit_code == 2, result.output
    checks = _checks(result)
    assert checks["idempotency table"]["status"] == "not configured"
    assert "--table-name" in checks["idempotency table"]["fix"]
    assert "IDEMPOTENCY_TABLE_NAME" in checks["idempotency table"]["fix"]
    assert "KORE_BASE_URL" in checks["Kore.ai status call"]["fix"]
    assert checks["stop queue"]["status"] == "pass"  # the rest is still checked


def test_usage_errors_exit_2(runner: CliRunner, cli_env: dict[str, str]) -> None:
    alone = runner.invoke(app, ["doctor", "--campaign", "cd-1"])
    assert alone.exit_code == 2 and "--stream" in alone.output
    bad_id = runner.invoke(app, ["doctor", "--stream", STREAM_ID, "--campaign", "cd/../1"])
    assert bad_id.exit_code == 2 and "campaignId" in bad_id.output
