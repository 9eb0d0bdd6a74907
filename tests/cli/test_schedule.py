"""`campaign-stop schedule` against moto's EventBridge Scheduler and SQS, with the real handler behind the event
source emulation. moto stores schedules but never fires them: `schedule fire` sends what Scheduler would."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack
from devtools.poller import SqsEventSourceMapping
from stop_campaign.domain.intake import Origin, parse_stop_request
from stop_campaign.domain.models import Source

from .conftest import SCHEDULE_GROUP, STREAM_ID

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # as EventBridge Scheduler documents it, not as the CLI spells it


def _future(zone: str, days: int = 3) -> str:
    """20:55 local time a few days ahead, as --at takes it."""
    local = datetime.now(ZoneInfo(zone)) + timedelta(days=days)
    return f"{local:%Y-%m-%d}T20:55"


def _schedule_names(stack: LocalStack) -> list[str]:
    schedules = stack.client("scheduler").list_schedules(GroupName=SCHEDULE_GROUP)["Schedules"]
    return sorted(schedule["Name"] for schedule in schedules)


def _stored(stack: LocalStack, name: str) -> dict[str, Any]:
    return dict(stack.client("scheduler").get_schedule(GroupName=SCHEDULE_GROUP, Name=name))


def _create(runner: CliRunner, name: str, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["--output", "json", "schedule", "create", name, "--stream", STREAM_ID, *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _json_document(stdout: str) -> dict[str, Any]:
    """The CLI's JSON document (the in-process handler may print a line of its own around it)."""
    start = stdout.index("{\n")
    return dict(json.loads(stdout[start:stdout.rindex("\n}") + 2]))


def test_create_once_and_daily_in_two_time_zones_then_list(
    runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _future("America/New_York")
    once = _create(runner, "ny-once", "--campaign", "cd-1", "--at", at, "--timezone", "America/New_York")
    daily = _create(runner, "phoenix-daily", "--all-active", "--type", "voice", "--cron", "55 20 * * ? *",
                    "--timezone", "America/Phoenix", "--reason", "quiet hours", "--yes")

    eastern_utc = datetime.fromisoformat(at).replace(tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)
    assert once["expression"] == f"at({at}:00)"
    assert once["nextRun"]["utc"] == f"{eastern_utc:%Y-%m-%dT%H:%M:%SZ}"
    assert daily["expression"] == "cron(55 20 * * ? *)"
    assert daily["nextRun"]["utc"].endswith("T03:55:00Z")  # Phoenix keeps UTC-7 all year: no daylight saving

    stored_once, stored_daily = _stored(stack, "ny-once"), _stored(stack, "phoenix-daily")
    assert (stored_once["ScheduleExpression"], stored_once["ScheduleExpressionTimezone"],
            stored_once["ActionAfterCompletion"]) == (f"at({at}:00)", "America/New_York", "DELETE")
    assert (stored_daily["ScheduleExpression"], stored_daily["ScheduleExpressionTimezone"],
            stored_daily["ActionAfterCompletion"]) == ("cron(55 20 * * ? *)", "America/Phoenix", "NONE")
    for stored in (stored_once, stored_daily):
        target = stored["Target"]
        assert stored["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert target["Arn"] == stack.stop_queue_arn
        assert target["RoleArn"] == scheduler_env["SCHEDULER_ROLE_ARN"]
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 3600
        assert "SqsParameters" not in target  # a standard queue takes no message group
        dead_letters = stack.client("sqs").get_queue_attributes(
            QueueUrl=stack.dead_letter_queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        assert target["DeadLetterConfig"] == {"Arn": dead_letters}  # a delivery given up on is kept to redrive

    listed = runner.invoke(app, ["--output", "json", "schedule", "list"])
    assert listed.exit_code == 0, listed.output
    by_name = {s["name"]: s for s in json.loads(listed.stdout)["schedules"]}
    assert set(by_name) == {"ny-once", "phoenix-daily"}
    assert (by_name["ny-once"]["expression"], by_name["ny-once"]["timezone"]) == (f"at({at}:00)", "America/New_York")
    assert by_name["ny-once"]["nextRun"]["utc"] == once["nextRun"]["utc"]
    assert by_name["ny-once"]["stops"] == {"streamId": STREAM_ID, "campaigns": ["cd-1"], "campaignType": "sms",
                                           "dryRun": False}
    assert (by_name["phoenix-daily"]["expression"], by_name["phoenix-daily"]["timezone"]) == (
        "cron(55 20 * * ? *)", "America/Phoenix")
    assert by_name["phoenix-daily"]["stops"]["campaigns"] == "all-active"
    assert by_name["phoenix-daily"]["stops"]["campaignType"] == "voice"

    monkeypatch.setenv("COLUMNS", "220")  # one line per schedule in the table
    table = runner.invoke(app, ["schedule", "list"])
    assert table.exit_code == 0, table.output
    rows = {line.split()[1]: line for line in table.stdout.splitlines() if "ny-once" in line or "phoenix" in line}
    assert "America/New_York" in rows["ny-once"] and "cd-1" in rows["ny-once"]
    assert "America/Phoenix" in rows["phoenix-daily"] and "MST" in rows["phoenix-daily"]
    assert "all-active" in rows["phoenix-daily"]


def test_the_stored_input_is_one_request_per_scheduled_time(
    runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str]
) -> None:
    _create(runner, "chicago-weeknights", "--campaign", "cd-1", "--campaign", "cd-2", "--cron",
            "0 21 ? * MON-FRI *", "--timezone", "America/Chicago", "--reason", "TCPA quiet hours")
    template = _stored(stack, "chicago-weeknights")["Target"]["Input"]
    assert SCHEDULED_TIME in template

    def delivered(scheduled_time: str, execution_id: str, attempt: int) -> dict[str, Any]:
        """Every context attribute filled in, as Scheduler does for each attempt."""
        payload = (template.replace(SCHEDULED_TIME, scheduled_time)
                   .replace("<aws.scheduler.execution-id>", execution_id)
                   .replace("<aws.scheduler.attempt-number>", str(attempt))
                   .replace("<aws.scheduler.schedule-arn>", "arn:aws:scheduler:us-east-1:123456789012:schedule/x/y"))
        return dict(json.loads(payload))

    first = delivered("2026-12-01T03:00:00Z", "d32c5kddcf5bb8c3", 1)
    retried = delivered("2026-12-01T03:00:00Z", "a81f0e2b9c4d7e65", 2)
    next_day = delivered("2026-12-02T03:00:00Z", "0b7e4f1a2c3d5e6f", 1)
    for payload in (first, next_day):
        request = parse_stop_request(payload, Origin(Source.SQS, "sqs-message-id", "2026-12-01T03:00:01Z"),
                                     "sqs-message-id")
        assert request.requested_by == f"schedule:{SCHEDULE_GROUP}/chicago-weeknights"
        assert request.campaign_ids == ("cd-1", "cd-2")
        assert (request.reason, request.dry_run) == ("TCPA quiet hours", False)
        assert request.request_id == payload["requestId"] != "sqs-message-id"
        assert request.requested_at == payload["requestedAt"]
    assert first["requestedAt"] == "2026-12-01T03:00:00Z"
    assert first["requestId"] == retried["requestId"]  # a retried delivery is the same request
    assert first["requestId"] != next_day["requestId"]  # the next firing is a new one


def test_fire_sends_it_and_the_handler_stops_the_campaign(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, scheduler_env: dict[str, str],
    function_running: Callable[[], None],
) -> None:
    _create(runner, "ny-nightly", "--campaign", "cd-3", "--cron", "55 20 * * ? *", "--timezone", "America/New_York")
    result = runner.invoke(app, ["schedule", "fire", "ny-nightly", "--at", "2025-12-01T20:55", "--wait",
                                 "--timeout", "30", "--output", "json"])
    assert result.exit_code == 0, result.output
    document = _json_document(result.stdout)
    expected_id = f"schedule:{SCHEDULE_GROUP}/ny-nightly:2025-12-02T01:55:00Z"  # 20:55 EST is 01:55 UTC
    assert (document["scheduledTime"], document["requestId"]) == ("2025-12-02T01:55:00Z", expected_id)
    (published,) = document["results"]
    assert (published["requestId"], published["campaignId"], published["outcome"]) == (expected_id, "cd-3", "stopped")
    assert published["requestedBy"] == f"schedule:{SCHEDULE_GROUP}/ny-nightly"
    assert kore.campaign_status(STREAM_ID, "cd-3") != "Active"


def test_firing_twice_for_one_scheduled_time_stops_once(
    runner: CliRunner, stack: LocalStack, kore: KoreSimulator, scheduler_env: dict[str, str]
) -> None:
    _create(runner, "la-daily", "--campaign", "cd-2", "--cron", "55 20 * * ? *", "--timezone", "America/Los_Angeles")
    template = _stored(stack, "la-daily")["Target"]["Input"]
    expected_id = f"schedule:{SCHEDULE_GROUP}/la-daily:2025-12-02T04:55:00Z"  # 20:55 PST is 04:55 UTC
    mapping, sqs = SqsEventSourceMapping(stack), stack.client("sqs")
    for _ in range(2):
        fired = runner.invoke(app, ["schedule", "fire", "la-daily", "--at", "2025-12-01T20:55"])
        assert fired.exit_code == 0, fired.output
        assert fired.stdout.strip() == expected_id
        (message,) = sqs.receive_message(QueueUrl=stack.stop_queue_url, VisibilityTimeout=0)["Messages"]
        assert json.loads(message["Body"]) == json.loads(template.replace(SCHEDULED_TIME, "2025-12-02T04:55:00Z"))
        mapping.poll_until_empty(max_seconds=20)
    assert [(r["requestId"], r["outcome"]) for r in stack.drain_results()] == [(expected_id, "stopped")]
    assert len(kore.stop_calls("cd-2")) == 1

    next_day = runner.invoke(app, ["schedule", "fire", "la-daily", "--at", "2025-12-03T04:55:00Z"])
    assert next_day.exit_code == 0, next_day.output
    mapping.poll_until_empty(max_seconds=20)
    (again,) = stack.drain_results()
    assert again["requestId"] == f"schedule:{SCHEDULE_GROUP}/la-daily:2025-12-03T04:55:00Z"
    assert again["outcome"] == "already_stopped"


def test_bad_input_exits_2_and_creates_nothing(
    runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str]
) -> None:
    future, daily = _future("America/Chicago"), "55 20 * * ? *"
    yesterday = f"{datetime.now(ZoneInfo('America/Chicago')) - timedelta(days=1):%Y-%m-%d}T20:55"
    spring_forward = _second_sunday_of_march(datetime.now(UTC).year + 1)
    cases = [
        (["--campaign", "cd-1", "--at", future, "--timezone", "America/New_Yrok"],
         "unknown time zone 'America/New_Yrok' (did you mean 'America/New_York'?)"),
        (["--campaign", "cd-1", "--at", future, "--timezone", "Eastern"], "unknown time zone 'Eastern'"),
        (["--campaign", "cd-1", "--at", yesterday, "--timezone", "America/Chicago"], "is in the past"),
        (["--campaign", "cd-1", "--at", f"{spring_forward}T02:30", "--timezone", "America/New_York"],
         "does not exist in America/New_York"),
        (["--campaign", "cd-1", "--at", f"{future}-05:00", "--timezone", "America/Chicago"], "has an offset"),
        (["--campaign", "cd-1", "--at", "tomorrow", "--timezone", "America/Chicago"], "is not a date and time"),
        (["--campaign", "cd-1", "--cron", "55 20 * * *", "--timezone", "America/Chicago"], "has 6 fields"),
        (["--campaign", "cd-1", "--cron", "55 20 * * * *", "--timezone", "America/Chicago"],
         "exactly one of day-of-month and day-of-week must be '?'"),
        (["--campaign", "cd-1", "--cron", "61 20 * * ? *", "--timezone", "America/Chicago"],
         "the minutes field: 61 is outside 0-59"),
        (["--campaign", "cd-1", "--cron", "0 0 31 2 ? *", "--timezone", "America/Chicago"], "never fires"),
        (["--campaign", "cd-1", "--all-active", "--cron", daily, "--timezone", "America/Chicago"],
         "either --campaign (one or more) or --all-active"),
        (["--cron", daily, "--timezone", "America/Chicago"], "either --campaign (one or more) or --all-active"),
        (["--campaign", "cd-1", "--timezone", "America/Chicago"], "either --at"),
        (["--campaign", "cd-1", "--at", future, "--cron", daily, "--timezone", "America/Chicago"], "either --at"),
        (["--campaign", "cd/../1", "--cron", daily, "--timezone", "America/Chicago"],
         "request.campaignId must match pattern"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["schedule", "create", "quiet", "--stream", STREAM_ID, *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
    bad_name = runner.invoke(app, ["schedule", "create", "quiet hours", "--stream", STREAM_ID, "--campaign", "cd-1",
                                   "--cron", daily, "--timezone", "America/Chicago"])
    assert bad_name.exit_code == 2 and "invalid schedule name" in bad_name.output
    as_json = runner.invoke(app, ["--output", "json", "schedule", "create", "quiet", "--stream", STREAM_ID,
                                  "--campaign", "cd-1", "--at", yesterday, "--timezone", "America/Chicago"])
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["exitCode"] == 2
    assert _schedule_names(stack) == []


def _second_sunday_of_march(year: int) -> str:
    first = datetime(year, 3, 1)
    return f"{first + timedelta(days=(6 - first.weekday()) % 7 + 7):%Y-%m-%d}"


def test_delete_asks_then_removes_it(runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str]) -> None:
    _create(runner, "temporary", "--campaign", "cd-1", "--cron", "0 21 * * ? *", "--timezone", "Pacific/Honolulu")
    declined = runner.invoke(app, ["schedule", "delete", "temporary"], input="n\n")
    assert declined.exit_code != 0 and _schedule_names(stack) == ["temporary"]
    deleted = runner.invoke(app, ["schedule", "delete", "temporary", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert _schedule_names(stack) == []
    listed = runner.invoke(app, ["--output", "json", "schedule", "list"])
    assert json.loads(listed.stdout)["schedules"] == []
    again = runner.invoke(app, ["schedule", "delete", "temporary", "--yes"])
    assert again.exit_code == 1 and "no schedule 'temporary'" in again.output


def test_a_fifo_stop_queue_gets_the_stream_as_message_group(
    runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str]
) -> None:
    sqs = stack.client("sqs")
    fifo = sqs.create_queue(QueueName="stop-requests.fifo",
                            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    no_dedup = sqs.create_queue(QueueName="stop-requests-nodedup.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    refused = runner.invoke(app, ["schedule", "create", "fifo-nodedup", "--stream", STREAM_ID, "--campaign", "cd-1",
                                  "--cron", "55 20 * * ? *", "--timezone", "America/Denver", "--queue-url", no_dedup])
    assert refused.exit_code == 2 and "content-based deduplication" in " ".join(refused.output.split())
    _create(runner, "fifo", "--campaign", "cd-1", "--cron", "55 20 * * ? *", "--timezone", "America/Denver",
            "--queue-url", fifo)
    target = _stored(stack, "fifo")["Target"]
    assert target["Arn"].endswith(":stop-requests.fifo")
    assert target["SqsParameters"] == {"MessageGroupId": STREAM_ID}
    assert _schedule_names(stack) == ["fifo"]
    for _ in range(2):  # the same scheduled time twice: one message (content-based deduplication)
        fired = runner.invoke(app, ["schedule", "fire", "fifo", "--at", "2025-12-01T20:55"])
        assert fired.exit_code == 0, fired.output
    messages = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Attributes"]["MessageGroupId"] for m in messages] == [STREAM_ID]
    assert json.loads(messages[0]["Body"])["requestId"] == f"schedule:{SCHEDULE_GROUP}/fifo:2025-12-02T03:55:00Z"


def test_missing_settings_exit_2(
    runner: CliRunner, scheduler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    create = ["schedule", "create", "quiet", "--stream", STREAM_ID, "--campaign", "cd-1", "--cron", "55 20 * * ? *",
              "--timezone", "America/Chicago"]
    monkeypatch.delenv("SCHEDULER_ROLE_ARN")
    no_role = runner.invoke(app, create)
    assert no_role.exit_code == 2 and "SCHEDULER_ROLE_ARN" in no_role.output
    monkeypatch.delenv("SCHEDULE_GROUP_NAME")
    for args in (create, ["schedule", "list"], ["schedule", "fire", "quiet"], ["schedule", "delete", "quiet"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "SCHEDULE_GROUP_NAME" in result.output, (args, result.output)


def test_a_fifo_dead_letter_queue_is_left_out_with_a_warning_and_no_dlq_says_so(
    runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str]
) -> None:
    """EventBridge Scheduler takes no FIFO queue as a schedule's dead-letter queue (and a dead-letter queue needs
    no content-based deduplication: Scheduler's dead-letter events are not deduplicated)."""
    sqs = stack.client("sqs")
    fifo_dlq = sqs.create_queue(QueueName="dead-letters.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    daily = ["--campaign", "cd-1", "--cron", "55 20 * * ? *", "--timezone", "America/Chicago"]
    result = runner.invoke(app, ["--output", "json", "schedule", "create", "fifo-dlq", "--stream", STREAM_ID, *daily,
                                 "--dlq-url", fifo_dlq])
    assert result.exit_code == 0, result.output
    assert "FIFO, which EventBridge Scheduler does not support" in " ".join(result.output.split())
    assert "DeadLetterConfig" not in _stored(stack, "fifo-dlq")["Target"]
    assert "DeadLetterConfig" not in json.loads(result.stdout)["target"]

    none = runner.invoke(app, ["schedule", "create", "no-dlq", "--stream", STREAM_ID, *daily, "--no-dlq"])
    assert none.exit_code == 0, none.output
    assert "warning" not in none.output  # DEAD_LETTER_QUEUE_URL is set, and --no-dlq says to leave it out
    assert "DeadLetterConfig" not in _stored(stack, "no-dlq")["Target"]

    both = runner.invoke(app, ["schedule", "create", "both", "--stream", STREAM_ID, *daily, "--no-dlq",
                               "--dlq-url", stack.dead_letter_queue_url])
    assert both.exit_code == 2 and "not both" in both.output
    assert _schedule_names(stack) == ["fifo-dlq", "no-dlq"]


def test_fire_refuses_a_future_scheduled_time_unless_forced(
    runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str]
) -> None:
    """A firing ahead of time would carry the real firing's request id: the function would then take the real
    one (within its day of remembering ids) for a duplicate and stop nothing."""
    _create(runner, "tomorrow", "--campaign", "cd-1", "--cron", "55 20 * * ? *", "--timezone", "America/New_York")
    ahead = _future("America/New_York", days=1)
    refused = runner.invoke(app, ["schedule", "fire", "tomorrow", "--at", ahead])
    assert refused.exit_code == 2
    message = " ".join(refused.output.split())
    assert "later than now" in message and "--force" in message and "duplicate" in message
    as_json = runner.invoke(app, ["-o", "json", "schedule", "fire", "tomorrow", "--at", "2099-01-01T00:00:00Z"])
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["exitCode"] == 2
    sqs = stack.client("sqs")
    assert sqs.receive_message(QueueUrl=stack.stop_queue_url).get("Messages", []) == []  # nothing sent

    forced = runner.invoke(app, ["schedule", "fire", "tomorrow", "--at", ahead, "--force"])
    assert forced.exit_code == 0, forced.output
    (message_sent,) = sqs.receive_message(QueueUrl=stack.stop_queue_url)["Messages"]
    assert json.loads(message_sent["Body"])["requestId"] == forced.stdout.strip()
    now = runner.invoke(app, ["schedule", "fire", "tomorrow", "--yes"])  # no --at: now, never refused
    assert now.exit_code == 0, now.output
    assert "--force" in " ".join(runner.invoke(app, ["schedule", "fire", "--help"], env={"COLUMNS": "200"}).output
                                 .split())


def test_delete_asks_on_stderr_so_json_output_stays_json(
    runner: CliRunner, stack: LocalStack, scheduler_env: dict[str, str]
) -> None:
    _create(runner, "asked", "--campaign", "cd-1", "--cron", "0 21 * * ? *", "--timezone", "Pacific/Honolulu")
    result = runner.invoke(app, ["-o", "json", "schedule", "delete", "asked"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "Delete schedule" in result.stderr and "Delete schedule" not in result.stdout
    # On stdout: the one space click writes before reading the answer (a readline workaround; JSON allows it), the
    # answer as CliRunner echoes it (a terminal echoes it to the terminal, not to stdout), then the one document.
    assert result.stdout.startswith(" y\n")
    assert json.loads(result.stdout.removeprefix(" y\n")) == {"deleted": "asked", "group": SCHEDULE_GROUP}
