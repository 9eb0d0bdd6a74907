"""`campaign-stop producers`: the policy checked by the function's own code, written only when valid, role ARNs
resolved to the role ids SQS reports, and `test` saying which entry decides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.local_stack import LocalStack

TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
POLICY: dict[str, Any] = {
    "producers": {
        "fraud-service": {
            "senders": ["sqs:AROAEXAMPLEROLEID:*", "events:111122223333/com.example.fraud"],
            "allow": [{"streamId": "st-1", "campaignIds": ["cd-1", "cd-2*"], "campaignType": "sms"}]},
        "kill-switches": {"senders": ["alarm:123456789012"], "allow": [{"streamId": "*", "allActive": True}]},
    },
    "otherwise": "deny",
}


def _write(tmp_path: Path, document: Any, name: str = "policy.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def _stored(stack: LocalStack) -> Any:
    return json.loads(stack.client("ssm").get_parameter(Name=stack.producer_policy_parameter)["Parameter"]["Value"])


def test_validate_accepts_the_contracts_example_and_names_every_problem(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(app, ["producers", "validate", str(_write(tmp_path, POLICY))]).exit_code == 0
    broken = {"producers": {
        "a": {"senders": ["queue:x"], "allow": [{"streamId": "st-1", "campaignId": "cd-1"}]},
        "b": {"senders": ["sqs:x"], "allow": [{"campaignIds": ["c*d"]}]},
    }, "otherwise": "sometimes"}
    result = runner.invoke(app, ["-o", "json", "producers", "validate", str(_write(tmp_path, broken))])
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["problems"]
    for expected in ("producers.a.senders[0]", "producers.a.allow[0]: unknown field 'campaignId'",
                     "producers.b.allow[0].streamId", "producers.b.allow[0].campaignIds", "otherwise must be"):
        assert any(expected in problem for problem in problems), (expected, problems)
    duplicate = '{"producers": {"a": {"senders": ["sqs:x"], "allow": []}, "a": {"senders": ["sqs:y"], "allow": []}}}'
    assert runner.invoke(app, ["producers", "validate", str(_write(tmp_path, duplicate))]).exit_code == 2
    table = runner.invoke(app, ["producers", "validate", str(_write(tmp_path, broken))])
    assert table.exit_code == 2 and "producers.a.allow[0]" in table.output  # shown as written, not as markup


def test_put_refuses_an_invalid_policy_and_writes_a_valid_one(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    before = _stored(stack)
    refused = runner.invoke(app, ["producers", "put", str(_write(tmp_path, {"producers": []})), "--yes"])
    assert refused.exit_code == 2 and _stored(stack) == before  # the stack's default is untouched
    declined = runner.invoke(app, ["producers", "put", str(_write(tmp_path, POLICY))], input="n\n")
    assert declined.exit_code == 1 and _stored(stack) == before
    written = runner.invoke(app, ["-o", "json", "producers", "put", str(_write(tmp_path, POLICY)), "--yes"])
    assert written.exit_code == 0, written.output
    assert json.loads(written.stdout)["written"] is True and _stored(stack) == POLICY
    shown = runner.invoke(app, ["-o", "json", "producers", "show"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["policy"] == POLICY


def test_put_resolves_role_and_user_arns_to_the_ids_sqs_reports(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    iam = stack.client("iam")
    role = iam.create_role(RoleName="fraud-service", Path="/producers/",
                           AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]
    user = iam.create_user(UserName="batch-job")["User"]
    with_arns = json.loads(json.dumps(POLICY))
    with_arns["producers"]["fraud-service"]["senders"] = [f"sqs:{role['Arn']}", f"sqs:{user['Arn']}"]
    path = _write(tmp_path, with_arns)
    assert runner.invoke(app, ["producers", "validate", str(path)]).exit_code == 0  # a file may name ARNs

    result = runner.invoke(app, ["-o", "json", "producers", "put", str(path), "--yes"])
    assert result.exit_code == 0, result.output
    assert role["RoleId"].startswith("AROA") and json.loads(result.stdout)["resolved"] == {
        f"sqs:{role['Arn']}": f"sqs:{role['RoleId']}:*", f"sqs:{user['Arn']}": f"sqs:{user['UserId']}"}
    assert _stored(stack)["producers"]["fraud-service"]["senders"] == [f"sqs:{role['RoleId']}:*",
                                                                       f"sqs:{user['UserId']}"]
    # the stored policy names ids only: an ARN put there by hand is a problem `show` reports
    stack.put_producer_policy(with_arns)
    shown = runner.invoke(app, ["-o", "json", "producers", "show"])
    assert shown.exit_code == 2 and any("names an IAM ARN" in p for p in json.loads(shown.stdout)["problems"])

    unknown = json.loads(json.dumps(with_arns))
    unknown["producers"]["fraud-service"]["senders"] = ["sqs:arn:aws:iam::999999999999:role/elsewhere"]
    failed = runner.invoke(app, ["producers", "put", str(_write(tmp_path, unknown, "unknown.json")), "--yes"])
    assert failed.exit_code == 1 and "get-role" in failed.output


def test_test_explains_campaign_by_campaign_which_entry_decides(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    stack.put_producer_policy(POLICY)
    asked = json.dumps({"streamId": "st-1", "campaignIds": ["cd-1", "cd-3", "cd-22"]})
    result = runner.invoke(app, ["-o", "json", "producers", "test", "--sender", "sqs:AROAEXAMPLEROLEID:worker",
                                 "--request", asked])
    assert result.exit_code == 1  # cd-3 is refused
    document = json.loads(result.stdout)
    assert (document["producer"], document["matchedBy"]) == ("fraud-service", "sqs:AROAEXAMPLEROLEID:*")
    assert [(row["campaign"], row["allowed"], row["entry"]) for row in document["campaigns"]] == [
        ("cd-1", True, 0), ("cd-3", False, None), ("cd-22", True, 0)]

    request_file = _write(tmp_path, {"streamId": "st-9", "campaigns": "all-active"}, "request.json")
    alarm = runner.invoke(app, ["producers", "test", "--sender", "alarm:123456789012", "--request",
                                str(request_file)])
    assert alarm.exit_code == 0, alarm.output
    assert "kill-switches" in alarm.stdout and "allow[0]" in alarm.stdout

    stranger = runner.invoke(app, ["-o", "json", "producers", "test", "--sender", "alarm:999999999999",
                                   "--request", str(request_file), "--file", str(_write(tmp_path, POLICY))])
    assert stranger.exit_code == 1 and json.loads(stranger.stdout)["producer"] is None
    assert runner.invoke(app, ["producers", "test", "--sender", "nobody", "--request", asked]).exit_code == 2
    assert runner.invoke(app, ["producers", "test", "--sender", "direct:-", "--request", "{}"]).exit_code == 2


def test_show_reads_the_stacks_default_policy(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    shown = runner.invoke(app, ["producers", "show"])
    assert shown.exit_code == 0, shown.output
    assert "this-account" in shown.stdout and stack.producer_policy_parameter in shown.stdout
