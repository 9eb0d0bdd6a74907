"""`campaign-stop resume <requestId>` against the local stack: moto's server as AWS, the Kore.ai simulator, the real
handler behind the emulated event source mapping. A dry run through the function first, then a question; --yes skips
both; without a terminal and without --yes nothing is sent (exit 2); --wait shows the results."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer import testing
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack
from stop_campaign.adapters.history import RequestHistory

from .conftest import ACCOUNT_ID, STREAM_ID

STOPPED = ["cd-1", "cd-2"]


@pytest.fixture
def at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testing._NamedTextIOWrapper, "isatty", lambda self: self.name == "<stdin>")


@pytest.fixture
def incident(runner: CliRunner, kore: KoreSimulator, cli_env: dict[str, str],
             function_running: Callable[[], None]) -> str:
    """Request req-incident stopped cd-1 and cd-2; cd-done had ended already (already_stopped: not stopped by it)."""
    result = runner.invoke(app, ["stop", "--stream", STREAM_ID, "--campaign", "cd-1", "--campaign", "cd-2",
                                 "--campaign", "cd-done", "--request-id", "req-incident", "--wait", "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert "already_stopped" in result.stdout
    kore.reset_log()
    return "req-incident"


def _json(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{\n"):stdout.rindex("\n}") + 2])


def _statuses(kore: KoreSimulator) -> list[str]:
    return [kore.campaign_status(STREAM_ID, campaign_id) for campaign_id in STOPPED]


def test_resume_without_a_terminal_or_yes_is_refused_and_sends_nothing(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str]
) -> None:
    result = runner.invoke(app, ["resume", "req-incident"])

    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "needs a terminal" in message and "--yes" in message and "nothing was sent" in message
    depth = stack.client("sqs").get_queue_attributes(QueueUrl=stack.stop_queue_url,
                                                      AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "0" and kore.requests == []


def test_resume_shows_the_dry_run_then_starts_once_confirmed(
    runner: CliRunner, kore: KoreSimulator, incident: str, at_a_terminal: None,
) -> None:
    declined = runner.invoke(app, ["resume", incident, "--timeout", "30"], input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "Would start 2 campaign(s) that req-incident stopped" in declined.stdout
    assert all(f"{STREAM_ID}/{campaign}" in declined.stdout for campaign in STOPPED)
    assert "nothing was started" in declined.output
    assert kore.requests == [] and _statuses(kore) == ["Stopped", "Stopped"]  # the dry run calls nothing

    confirmed = runner.invoke(app, ["resume", incident, "--wait", "--timeout", "30"], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "Start these 2 campaign(s) again?" in confirmed.output
    assert _statuses(kore) == ["Active", "Active"]
    assert sorted(call.path.rsplit("/", 1)[1] for call in kore.start_calls()) == STOPPED
    assert "resumed" in confirmed.stdout and "Summary: 2 campaign(s): resumed 2" in confirmed.stdout


def test_yes_skips_the_dry_run_and_wait_reports_every_campaign_as_json(
    runner: CliRunner, kore: KoreSimulator, incident: str,
) -> None:
    kore.add_campaign(STREAM_ID, "cd-2", status="Active")  # started again by hand meanwhile

    result = runner.invoke(app, ["-o", "json", "resume", incident, "--yes", "--wait", "--timeout", "30",
                                 "--request-id", "req-undo"])

    assert result.exit_code == 0, result.output
    document = _json(result.stdout)
    assert "preview" not in document and document["request"]["resumeOf"] == incident
    assert {r["campaignId"]: r["outcome"] for r in document["results"]} == {"cd-1": "resumed", "cd-2": "ignored"}
    assert all(r["requestId"] == "req-undo" and r["schedule"] == {"reenabled": False} for r in document["results"])
    assert [call.path.rsplit("/", 1)[1] for call in kore.start_calls()] == ["cd-1"]


def test_resume_of_an_unknown_request_fails_with_its_reason(
    runner: CliRunner, kore: KoreSimulator, cli_env: dict[str, str], function_running: Callable[[], None],
) -> None:
    result = runner.invoke(app, ["-o", "json", "resume", "req-nobody-sent", "--yes", "--wait", "--timeout", "30"])

    assert result.exit_code == 1, result.output
    [rejected] = _json(result.stdout)["results"]
    assert (rejected["outcome"], rejected["error"]["code"]) == ("rejected", "unknown_request")
    assert kore.requests == []


def test_a_dry_run_resume_needs_no_confirmation(
    runner: CliRunner, stack: LocalStack, cli_env: dict[str, str]
) -> None:
    result = runner.invoke(app, ["resume", "req-incident", "--dry-run"])
    assert result.exit_code == 0, result.output
    [message] = stack.client("sqs").receive_message(QueueUrl=stack.stop_queue_url)["Messages"]
    body = json.loads(message["Body"])
    assert (body["action"], body["resumeOf"], body["dryRun"]) == ("resume", "req-incident", True)


def test_a_resume_naming_itself_is_a_usage_error(runner: CliRunner, cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["resume", "req-1", "--request-id", "req-1", "--yes"])
    assert result.exit_code == 2 and "this very request" in " ".join(result.output.split())


def test_a_resume_over_two_streams_waits_for_both_and_sums_them_up(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, cli_env: dict[str, str],
    function_running: Callable[[], None],
) -> None:
    # An alarm's request stopped campaigns of two streams: its resume is served as one request per stream, each
    # with its own summary. The history is seeded as the function writes it (the request's published results).
    kore.add_campaign(STREAM_ID, "cd-1", status="Stopped")
    kore.add_campaign("st-2", "cd-7", status="Stopped")
    history = RequestHistory(stack.history_table_name, lambda: stack.client("dynamodb"), days=1)
    for stream_id, campaign_id in [(STREAM_ID, "cd-1"), ("st-2", "cd-7")]:
        history.record_result({"requestId": "req-alarm", "streamId": stream_id, "campaignId": campaign_id,
                               "campaignType": "sms", "accountId": ACCOUNT_ID, "outcome": "stopped",
                               "source": "alarm", "completedAt": "2026-12-03T03:00:00Z"})

    result = runner.invoke(app, ["resume", "req-alarm", "--yes", "--wait", "--timeout", "30"],
                           env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "Summary: 2 campaign(s): resumed 2" in result.stdout  # both streams' summaries, counted together
    assert sorted(call.path.rsplit("/", 1)[1] for call in kore.start_calls()) == ["cd-1", "cd-7"]
