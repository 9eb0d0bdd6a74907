"""`campaign-stop alarm-map`: entries checked by the function's own code, SSM written only when valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.local_stack import LocalStack

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MAP = REPO_ROOT / "events" / "alarm_map.json"


def _write(tmp_path: Path, alarm_map: Any, name: str = "map.json") -> Path:
    path = tmp_path / name
    path.write_text(alarm_map if isinstance(alarm_map, str) else json.dumps(alarm_map), encoding="utf-8")
    return path


def test_the_sample_map_is_valid(runner: CliRunner) -> None:
    result = runner.invoke(app, ["alarm-map", "validate", str(SAMPLE_MAP)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout


def test_validate_reports_every_problem_with_its_key(runner: CliRunner, tmp_path: Path) -> None:
    broken = {
        "checkout-errors": {"stream": "st-1", "campaignId": "cd-1"},  # "stream" instead of "streamId"
        "voice-*": [{"streamId": "st-1", "campaigns": "all-active", "campaignType": "voice"},
                    {"streamId": "st-1", "campaignId": "cd/1"}],
        "empty": [],
        "not-a-target": "st-1",
    }
    result = runner.invoke(app, ["--output", "json", "alarm-map", "validate", str(_write(tmp_path, broken))])
    assert result.exit_code == 2
    problems = {p["key"]: p["message"] for p in json.loads(result.stdout)["problems"]}
    assert set(problems) == {"checkout-errors", "voice-*[1]", "empty", "not-a-target"}
    assert "streamId" in problems["checkout-errors"]
    assert "unknown field 'stream' (did you mean 'streamId'?)" in problems["checkout-errors"]
    assert "campaignId must match pattern" in problems["voice-*[1]"]


def test_validate_catches_stream_in_table_mode(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, {"checkout-errors": [{"stream": "st-1", "campaigns": "all-active"}]})
    result = runner.invoke(app, ["alarm-map", "validate", str(path)])
    assert result.exit_code == 2
    assert "checkout-errors" in result.output and "streamId" in result.output


def test_validate_warns_about_shadowing_and_duplicates_fail(runner: CliRunner, tmp_path: Path) -> None:
    target = {"streamId": "st-1", "campaigns": "all-active"}
    shadowing = {"sms-*": target, "sms-critical-*": target, "sms-critical-checkout": target}
    result = runner.invoke(app, ["-o", "json", "alarm-map", "validate", str(_write(tmp_path, shadowing))])
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert {w["key"] for w in warnings} == {"sms-*", "sms-critical-*"}
    assert any("longer prefix 'sms-critical-*'" in w["message"] for w in warnings)
    assert any("exact entry wins" in w["message"] for w in warnings)
    strict = runner.invoke(app, ["alarm-map", "validate", "--strict", str(_write(tmp_path, shadowing))])
    assert strict.exit_code == 2
    duplicate = '{"a": {"streamId": "st-1", "campaignId": "cd-1"}, "a": {"streamId": "st-1", "campaignId": "cd-2"}}'
    assert runner.invoke(app, ["alarm-map", "validate", str(_write(tmp_path, duplicate))]).exit_code == 2
    assert runner.invoke(app, ["alarm-map", "validate", str(_write(tmp_path, "[1]"))]).exit_code == 2


def test_validate_takes_hold_as_a_boolean_and_warns_about_a_held_dry_run(runner: CliRunner, tmp_path: Path) -> None:
    held = {"checkout-errors": [{"streamId": "st-1", "campaignIds": ["cd-1"], "hold": True},
                                {"streamId": "st-2", "campaigns": "all-active", "hold": True, "dryRun": True}]}
    result = runner.invoke(app, ["-o", "json", "alarm-map", "validate", str(_write(tmp_path, held))])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["problems"] == []  # hold is a field of the entry, not an unknown one
    assert report["warnings"] == [{"key": "checkout-errors[1]",
                                   "message": "hold with dryRun: a dry run stops nothing, so nothing is held"}]
    not_boolean = {"checkout-errors": {"streamId": "st-1", "campaignId": "cd-1", "hold": "yes"}}
    broken = runner.invoke(app, ["-o", "json", "alarm-map", "validate", str(_write(tmp_path, not_boolean))])
    assert broken.exit_code == 2
    assert "hold must be boolean" in json.loads(broken.stdout)["problems"][0]["message"]
    tried = runner.invoke(app, ["-o", "json", "alarm-map", "test", "checkout-errors", "--file",
                                str(_write(tmp_path, held))])
    assert [stop["hold"] for stop in json.loads(tried.stdout)["stops"]] == [True, True]


def test_put_refuses_an_invalid_map_and_writes_a_valid_one(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ssm = stack.client("ssm")
    invalid = _write(tmp_path, {"checkout-errors": {"stream": "st-1", "campaignId": "cd-1"}}, "invalid.json")
    refused = runner.invoke(app, ["alarm-map", "put", str(invalid), "--yes"])
    assert refused.exit_code == 2
    assert ssm.get_parameter(Name=stack.alarm_parameter)["Parameter"]["Value"] == "{}"

    written = runner.invoke(app, ["alarm-map", "put", str(SAMPLE_MAP), "--yes"])
    assert written.exit_code == 0, written.output
    stored = ssm.get_parameter(Name=stack.alarm_parameter)["Parameter"]
    assert json.loads(stored["Value"]) == json.loads(SAMPLE_MAP.read_text())
    assert stored["Type"] == "String"

    declined = runner.invoke(app, ["alarm-map", "put", str(SAMPLE_MAP)], input="n\n")
    assert declined.exit_code == 1

    shown = runner.invoke(app, ["-o", "json", "alarm-map", "show"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["alarmMap"] == json.loads(SAMPLE_MAP.read_text())


def test_test_shows_the_selected_entry(runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]) -> None:
    stack.put_alarm_map(json.loads(SAMPLE_MAP.read_text()))
    exact = runner.invoke(app, ["-o", "json", "alarm-map", "test", "checkout-sms-error-rate"])
    assert exact.exit_code == 0, exact.output
    document = json.loads(exact.stdout)
    assert (document["entry"], document["match"]) == ("checkout-sms-error-rate", "exact")
    assert document["stops"] == [{"streamId": "st-1", "campaigns": ["cd-1", "cd-2"], "campaignType": "sms",
                                  "dryRun": False, "accountId": None, "hold": False}]

    prefix = runner.invoke(app, ["alarm-map", "test", "sms-delivery-failures"])
    assert prefix.exit_code == 0, prefix.output
    assert "sms-*" in prefix.stdout and "prefix match" in prefix.stdout and "all-active" in prefix.stdout

    unmapped = runner.invoke(app, ["alarm-map", "test", "voice-latency"])
    assert unmapped.exit_code == 1
    assert "no entry" in unmapped.stdout


def test_missing_parameter_setting_exits_2(runner: CliRunner, monkeypatch: Any) -> None:
    monkeypatch.delenv("ALARM_TARGETS_PARAMETER", raising=False)
    result = runner.invoke(app, ["alarm-map", "show"])
    assert result.exit_code == 2 and "ALARM_TARGETS_PARAMETER" in result.output


# ---- streams the credentials secret cannot serve (a warning: the map itself is valid) ----------------------


def _stream_map() -> dict[str, Any]:
    return {
        "checkout-errors": {"streamId": "st-1", "campaignId": "cd-1"},
        "voice-*": [{"streamId": "st-9", "campaigns": "all-active", "campaignType": "voice"}],
        "other-account": {"streamId": "st-1", "campaignId": "cd-2", "accountId": "acc-other"},
    }


def test_validate_warns_about_streams_without_credentials(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    stack.put_secret({"streams": {"st-1": {"clientId": "cs-1", "clientSecret": "s" * 32, "accountId": "acc-1"}}})
    path = _write(tmp_path, _stream_map())
    result = runner.invoke(app, ["-o", "json", "alarm-map", "validate", str(path)])

    assert result.exit_code == 0, result.output  # a warning, not a problem
    warnings = {w["key"]: w["message"] for w in json.loads(result.stdout)["warnings"]}
    assert set(warnings) == {"voice-*[0]", "other-account"}
    assert "for stream st-9" in warnings["voice-*[0]"] and "would be rejected" in warnings["voice-*[0]"]
    assert "account_mismatch" in warnings["other-account"]
    assert "s" * 32 not in result.output
    assert runner.invoke(app, ["alarm-map", "validate", "--strict", str(path)]).exit_code == 2

    written = runner.invoke(app, ["alarm-map", "put", str(path), "--yes"])
    assert written.exit_code == 0, written.output
    assert "st-9" in written.stdout and "Wrote" in written.stdout


def test_top_level_credentials_serve_every_stream(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    stack.put_secret({"clientId": "cs-1", "clientSecret": "s" * 32, "accountId": "acc-other"})
    path = _write(tmp_path, {"voice-*": {"streamId": "st-9", "campaigns": "all-active", "campaignType": "voice"}})
    result = runner.invoke(app, ["-o", "json", "alarm-map", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["warnings"] == []


def test_without_a_secret_id_streams_are_not_checked(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str], tmp_path: Path, monkeypatch: Any
) -> None:
    stack.put_secret({"streams": {}})
    path = _write(tmp_path, _stream_map())
    unchecked = runner.invoke(app, ["-o", "json", "alarm-map", "validate", str(path)],
                              env={"CREDENTIALS_SECRET_ID": ""})
    assert unchecked.exit_code == 0, unchecked.output
    assert json.loads(unchecked.stdout)["warnings"] == []

    monkeypatch.delenv("CREDENTIALS_SECRET_ID")
    flagged = runner.invoke(app, ["-o", "json", "alarm-map", "validate", str(path), "--secret-id", stack.secret_id])
    assert {w["key"] for w in json.loads(flagged.stdout)["warnings"]} == {"checkout-errors", "voice-*[0]",
                                                                          "other-account"}
    unreadable = runner.invoke(app, ["-o", "json", "alarm-map", "validate", str(path), "--secret-id", "no/such"])
    assert unreadable.exit_code == 0
    [warning] = json.loads(unreadable.stdout)["warnings"]
    assert "could not be read" in warning["message"] and "not checked" in warning["message"]
