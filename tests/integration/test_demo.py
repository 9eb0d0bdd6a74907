"""`make demo` end to end: its scenarios on moto server and the Kore.ai simulator over real loopback
connections, the emulated SQS event source mapping, and `python -m devtools.demo` itself."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.client
import pytest
from typer.testing import CliRunner

from campaign_stop_cli.main import app as cli
from devtools.demo import DeadLetterWatch
from devtools.kore_simulator import KoreSimulator, RecordedRequest
from devtools.local_stack import LocalStack
from devtools.poller import SqsEventSourceMapping
from devtools.scenarios import (
    STREAM_ID,
    Observed,
    World,
    all_scenarios,
    check,
    dead_letter_error_code,
    run_scenario,
    scenario_named,
    sqs_body,
)
from devtools.template_loader import REPO_ROOT, local_stack_settings
from stop_campaign import app

# Powertools notes invocations that emitted no metric (a replayed duplicate); not a problem here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

MAX_RECEIVE_COUNT = int(local_stack_settings()["max_receive_count"])


@pytest.fixture
def world(stack: LocalStack, kore: KoreSimulator, cold_start: Callable[[], None]) -> World:
    # retry_delay_seconds=0: a failed message is visible again at once, so redelivery costs no wall time.
    mapping = SqsEventSourceMapping(stack, handler=app.lambda_handler, retry_delay_seconds=0)
    return World(stack, kore, mapping, app.lambda_handler, poll_seconds=20)


# ---- every scenario ends as it declares ------------------------------------------------------------


@pytest.mark.parametrize("name", [scenario.name for scenario in all_scenarios()])
def test_scenario_ends_as_declared(world: World, name: str) -> None:
    """Outcomes and results on SNS, the exact simulator calls, the dead-letter queue, an empty stop queue."""
    run = run_scenario(scenario_named(name), world)

    assert run.problems == []
    assert len(run.observed.results) == len(run.scenario.results)
    assert len(run.observed.dead_letters) == len(run.scenario.dead_letters)


# ---- the same facts, spelled out -----------------------------------------------------------------------


def test_normal_stop_calls_the_documented_path_once(world: World, kore: KoreSimulator) -> None:
    run = run_scenario(scenario_named("normal"), world)

    assert [(call.method, call.path, call.status) for call in kore.requests] == [
        ("POST", "/campaign/api/v2/public/st-1/campaign//trigger/cd-1", 200)
    ]
    call = kore.requests[0]
    assert call.query["campaignType"] == "sms" and call.query["trigger"] == "stop"
    assert kore.campaign_status(STREAM_ID, "cd-1") == "Stopped"
    [result] = run.observed.results
    assert result["outcome"] == "stopped"
    assert result["requestId"] == "req-2026-11-28-0001"
    assert result["source"] == "sqs" and result["attempts"] == 1
    assert result["api"]["httpStatus"] == 200 and result["api"]["status"] == "Stopped"
    assert isinstance(result["timeToStopMs"], int)
    assert run.observed.dead_letters == []


def test_results_on_sns_carry_the_filter_attributes(world: World, stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody=sqs_body("sqs_stop_request.json"))
    world.mapping.poll_until_empty(10)

    [message] = sqs.receive_message(QueueUrl=stack.results_queue_url, MessageAttributeNames=["All"])["Messages"]
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    result = json.loads(message["Body"])
    assert attributes == {"eventType": "result", "outcome": "stopped", "campaignType": "sms", "streamId": STREAM_ID,
                          "resultId": result["resultId"], "requestId": result["requestId"]}
    assert json.loads(message["Body"])["schemaVersion"] == "1"


def test_duplicate_delivery_makes_no_second_stop_call_and_no_second_result(
    world: World, kore: KoreSimulator
) -> None:
    run = run_scenario(scenario_named("duplicate"), world)

    assert len(run.observed.message_ids) == 2
    assert [call.path for call in kore.stop_calls()] == ["/campaign/api/v2/public/st-1/campaign//trigger/cd-2"]
    assert [(r["campaignId"], r["outcome"]) for r in run.observed.results] == [("cd-2", "stopped")]
    assert run.observed.left_in_queue == 0


def test_unknown_campaign_ends_failed_and_in_the_dead_letter_queue(world: World, kore: KoreSimulator) -> None:
    scenario = scenario_named("unknown-campaign")
    run = run_scenario(scenario, world)

    [result] = run.observed.results
    assert (result["outcome"], result["campaignId"]) == ("failed", "cd-unknown")
    assert result["error"]["code"] == "stop_refused" and result["error"]["retryable"] is False
    [letter] = run.observed.dead_letters
    assert letter["Body"] == scenario.steps[0].bodies[0]  # type: ignore[union-attr]  # the original, unchanged
    attributes = {name: value["StringValue"] for name, value in letter["MessageAttributes"].items()}
    assert attributes["errorCode"] == "stop_refused"
    assert attributes["requestId"] == "req-2026-11-28-0006"
    assert attributes["source"] == "sqs" and attributes["retryable"] == "false"
    assert [(call.kind, call.status) for call in kore.requests] == [("stop_sms", 404), ("status", 404)]


def test_api_failing_twice_is_retried_within_one_invocation(world: World, kore: KoreSimulator) -> None:
    run = run_scenario(scenario_named("api-recovers"), world)

    assert [call.status for call in kore.stop_calls("cd-3")] == [503, 503, 200]
    assert len({call.headers["auth"] for call in kore.stop_calls("cd-3")}) == 3  # a fresh token per attempt
    assert len(run.observed.invocations) == 1
    assert [(r["outcome"], r["attempts"]) for r in run.observed.results] == [("stopped", 1)]


def test_api_down_is_redelivered_then_dead_lettered_with_the_reason(world: World, kore: KoreSimulator) -> None:
    run = run_scenario(scenario_named("api-down"), world)

    # Lambda's view: one delivery per receive, the last one on the final attempt.
    assert [report.receive_counts for report in run.observed.invocations] == [
        {report.message_ids[0]: count} for report, count in zip(
            run.observed.invocations, range(1, MAX_RECEIVE_COUNT + 1), strict=True
        )
    ]
    assert run.observed.invocations[-1].failed_ids == ()  # the final attempt ends the message itself
    assert len(kore.stop_calls("cd-voice-1")) == MAX_RECEIVE_COUNT
    [result] = run.observed.results
    assert (result["outcome"], result["attempts"], result["error"]["code"]) == (
        "failed", MAX_RECEIVE_COUNT, "api_unavailable"
    )
    # the final attempt sends it with the reason attached (the redrive policy is the fallback)
    [letter] = run.observed.dead_letters
    assert dead_letter_error_code(letter) == "api_unavailable"
    assert letter["MessageAttributes"]["retryable"]["StringValue"] == "true"


def test_eventbridge_delivers_through_the_rule_to_the_queue(world: World) -> None:
    run = run_scenario(scenario_named("eventbridge"), world)

    assert run.observed.notes == []  # moto routed it: no fallback was needed
    [result] = run.observed.results
    assert result["requestId"] == run.observed.event_ids[0]
    assert (result["source"], result["campaignId"], result["outcome"]) == ("eventbridge", "cd-5", "stopped")


def test_repeated_alarm_stops_nothing_twice(world: World, kore: KoreSimulator) -> None:
    run = run_scenario(scenario_named("alarm"), world)

    assert sorted(call.path for call in kore.stop_calls()) == [
        "/campaign/api/v2/public/st-1/campaign//trigger/cd-1",
        "/campaign/api/v2/public/st-1/campaign//trigger/cd-2",
    ]
    assert sorted(r["outcome"] for r in run.observed.results) == ["ignored", "stopped", "stopped"]
    assert len(run.observed.direct_responses) == 3


def test_bulk_stops_every_campaign_once(world: World, kore: KoreSimulator) -> None:
    run_scenario(scenario_named("bulk"), world)

    stopped = sorted(call.path.rsplit("/", 1)[-1] for call in kore.stop_calls())
    assert stopped == [f"cd-bulk-{number:02d}" for number in range(1, 21)]
    assert all(kore.campaign_status(STREAM_ID, campaign_id) == "Stopped" for campaign_id in stopped)


def test_a_second_stop_call_or_a_missing_result_is_reported() -> None:
    """The checker itself: what makes the demo exit non-zero."""
    scenario = scenario_named("duplicate")
    stop = scenario.calls[0]
    call = RecordedRequest(
        method="POST", path=stop.path, query={}, headers={}, body={}, kind=stop.kind, status=stop.status,
        jwt_claims=None, at=0.0, connection_id=1,
    )
    problems = check(scenario, Observed(calls=[call, call]))

    assert "missing result: stopped cd-2 requestId=req-2026-11-28-0002 source=sqs" in problems
    assert f"unexpected call: 1 x stop_sms {stop.path} -> 200" in problems
    assert len(problems) == 2


# ---- the event source mapping on its own (fake handlers) ------------------------------------------------


def _send(stack: LocalStack, *bodies: str) -> list[str]:
    sqs = stack.client("sqs")
    return [sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody=body)["MessageId"] for body in bodies]


def test_poller_honours_a_partial_batch_response(stack: LocalStack) -> None:
    seen: list[list[tuple[str, str]]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event["Records"]
        seen.append([(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in records])
        assert context.get_remaining_time_in_millis() > 0
        first_b = [r for r in records if r["body"] == "b" and r["attributes"]["ApproximateReceiveCount"] == "1"]
        failed = [r["messageId"] for r in first_b]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    ids = _send(stack, "a", "b", "c")
    mapping = SqsEventSourceMapping(stack, handler=handler, retry_delay_seconds=0)
    reports = mapping.poll_until_empty(10)

    assert sorted(seen[0]) == [("a", "1"), ("b", "1"), ("c", "1")]
    assert seen[1:] == [[("b", "2")]]
    assert reports[0].failed_ids == (ids[1],) and set(reports[0].succeeded_ids) == {ids[0], ids[2]}
    assert reports[0].error is None and reports[1].failed_ids == ()
    assert mapping.messages_in_queue() == 0 and stack.drain_dead_letters() == []


@pytest.mark.parametrize(
    "outcome",
    [RuntimeError("boom"), {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}],
    ids=["handler-raises", "invalid-item-identifier"],
)
def test_poller_fails_the_whole_batch_like_lambda(stack: LocalStack, outcome: Any) -> None:
    calls = 0

    def handler(event: dict[str, Any], context: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return {"batchItemFailures": []}

    ids = _send(stack, "a", "b")
    reports = SqsEventSourceMapping(stack, handler=handler, retry_delay_seconds=0).poll_until_empty(10)

    assert set(reports[0].failed_ids) == set(ids) and reports[0].error
    assert set(reports[1].succeeded_ids) == set(ids)


def test_queue_redrives_after_max_receive_count(stack: LocalStack) -> None:
    """moto moves the message to the DLQ on the receive after maxReceiveCount, as SQS does: no emulation."""
    [message_id] = _send(stack, "never succeeds")
    mapping = SqsEventSourceMapping(
        stack, handler=lambda event, context: {"batchItemFailures": [{"itemIdentifier": message_id}]},
        retry_delay_seconds=0,
    )
    reports = mapping.poll_until_empty(10)

    assert [report.receive_counts[message_id] for report in reports] == list(range(1, MAX_RECEIVE_COUNT + 1))
    assert [bool(report.final_attempt_ids) for report in reports] == [False] * (MAX_RECEIVE_COUNT - 1) + [True]
    [letter] = stack.drain_dead_letters()
    assert (letter["MessageId"], letter["Body"]) == (message_id, "never succeeds")


def test_poller_batches_up_to_batch_size_across_receives(stack: LocalStack) -> None:
    sizes: list[int] = []
    _send(stack, *(f"m{number}" for number in range(25)))
    mapping = SqsEventSourceMapping(stack, handler=lambda event, context: sizes.append(len(event["Records"])),
                                    batch_size=20)
    mapping.poll_until_empty(10)

    assert sizes == [20, 5]


def test_poller_waits_for_a_retry_no_longer_than_needed(stack: LocalStack) -> None:
    [message_id] = _send(stack, "retry once")
    mapping = SqsEventSourceMapping(
        stack,
        handler=lambda event, context: {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"]
                if r["attributes"]["ApproximateReceiveCount"] == "1"
            ]
        },
    )  # default retry delay: 1 s
    started = time.monotonic()
    reports = mapping.poll_until_empty(10)
    elapsed = time.monotonic() - started

    assert [report.receive_counts[message_id] for report in reports] == [1, 2]
    assert 1.0 <= elapsed < 2.5


# ---- python -m devtools.demo ---------------------------------------------------------------------------


def test_demo_runs_every_scenario_and_prints_the_table() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "devtools.demo"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=90,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "Requests and their results" in out
    assert re.search(r"SCENARIO\s+REQUEST ID\s+CAMPAIGN\s+OUTCOME\s+PRODUCER\s+ATTEMPTS\s+TIME TO STOP", out)
    assert re.search(r"normal\s+req-2026-11-28-0001\s+cd-1\s+stopped\s+this-account\s+1\s+\d+ ms\s+200", out)
    assert re.search(r"refused-producer\s+\S+\s+cd-1\s+rejected \(not_authorized\)\s+alarm:999999999999", out)
    assert re.search(r"unknown-campaign\s+\S+\s+stop_refused\s+req-2026-11-28-0006", out)  # the DLQ table
    # Each row's own stop calls: the first request's 200, the already-stopped one's 400 (not "200 400" for both)
    assert re.search(r"req-2026-11-28-0003\s+cd-1\s+stopped\s+this-account\s+1\s+\d+ ms\s+200$", out, re.MULTILINE)
    assert re.search(r"req-2026-11-28-0004\s+cd-1\s+already_stopped\s+this-account\s+1\s+-\s+400$", out,
                     re.MULTILINE)
    assert re.search(r"api-recovers\s+\S+\s+cd-3\s+stopped\s+this-account\s+1\s+\d+ ms\s+503 503 200$", out,
                     re.MULTILINE)
    assert f"All {len(all_scenarios())} scenario(s) ended as expected" in out
    assert "FAIL" not in out
    assert '"_aws"' not in out  # no EMF noise between the lines


def test_the_keep_running_dead_letter_watch_never_hides_a_dead_letter(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`campaign-stop dlq redrive` may run while the demo watches the dead-letter queue: whatever the watch reads
    must stay visible to it, at every moment, and the watch reads only when the count grew."""
    sqs = stack.client("sqs")
    make_api_call = botocore.client.BaseClient._make_api_call
    calls: list[str] = []
    hidden: list[int] = []  # messages not visible right after each of the watch's receives

    def observed(self: Any, operation: str, params: dict[str, Any]) -> Any:
        response = make_api_call(self, operation, params)
        if params.get("QueueUrl") == stack.dead_letter_queue_url:
            calls.append(operation)
            if operation == "ReceiveMessage":
                attributes = make_api_call(self, "GetQueueAttributes", {
                    "QueueUrl": stack.dead_letter_queue_url,
                    "AttributeNames": ["ApproximateNumberOfMessagesNotVisible"],
                })
                hidden.append(int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"]))
        return response

    first = {sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=f"dead {n}")["MessageId"]
             for n in range(2)}
    watch = DeadLetterWatch(stack)
    with monkeypatch.context() as patch:  # not monkeypatch.undo(): that would undo the isolated environment too
        patch.setattr(botocore.client.BaseClient, "_make_api_call", observed)
        grew, arrived = watch.new_arrivals()
        assert (grew, {m["MessageId"] for m in arrived}) == (2, first)
        assert "ReceiveMessage" in calls and hidden and set(hidden) == {0}
        assert not {"ChangeMessageVisibility", "ChangeMessageVisibilityBatch", "DeleteMessage"} & set(calls)

        calls.clear()
        assert watch.new_arrivals() == (0, [])
        assert calls == ["GetQueueAttributes"]  # nothing new: counts only
        later = sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody="dead 2")["MessageId"]
        grew, arrived = watch.new_arrivals()
        assert (grew, [m["MessageId"] for m in arrived]) == (1, [later])
        assert set(hidden) == {0}
    counts = sqs.get_queue_attributes(QueueUrl=stack.dead_letter_queue_url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("3", "0")


def test_demo_keep_running_serves_requests_sent_with_boto3() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.demo", "--scenario", "normal", "--keep-running"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stdout or []:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def read_until(pattern: str, timeout: float = 30.0) -> tuple[re.Match[str], str]:
        seen = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen += line
            match = re.search(pattern, seen)
            if match:
                return match, seen
        raise AssertionError(f"{pattern!r} not printed within {timeout}s:\n{seen}")

    try:
        endpoint, _ = read_until(r"AWS endpoint \(moto\)\s+(\S+)")
        queue_url, _ = read_until(r"stop queue\s+(\S+)")
        _, printed = read_until(r"Ctrl-C stops|boto3\.client")
        sqs = boto3.client(
            "sqs", endpoint_url=endpoint[1], region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )
        sqs.send_message(QueueUrl=queue_url[1], MessageBody=json.dumps({"streamId": "st-1", "campaignId": "cd-4"}))
        read_until(r"yours\s+\S+\s+cd-4\s+stopped")
        exports = dict(re.findall(r"^  export (\w+)=(\S+)$", printed, flags=re.MULTILINE))

        # a dead letter is shown, and kept for the user (visible: a `dlq redrive` meanwhile would find it)
        sqs.send_message(QueueUrl=queue_url[1], MessageBody=json.dumps({"streamId": "st-1", "campaignId": "cd-x"}))
        read_until(r"dead-letter queue: 1 new, 1 waiting")
        read_until(r"yours\s+\S+\s+stop_refused")
        dlq = sqs.get_queue_attributes(QueueUrl=exports["DEAD_LETTER_QUEUE_URL"], AttributeNames=["All"])
        assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "1"
        assert dlq["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"

        # the printed exports are all the CLI needs
        assert {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "STOP_QUEUE_URL", "STOP_BUS_NAME",
                "RESULTS_TOPIC_ARN", "DEAD_LETTER_QUEUE_URL", "ALARM_TARGETS_PARAMETER", "CREDENTIALS_SECRET_ID",
                "KORE_BASE_URL", "IDEMPOTENCY_TABLE_NAME"} <= set(exports)
        assert exports["STOP_QUEUE_URL"] == queue_url[1] and exports["AWS_ENDPOINT_URL"] == endpoint[1]
        assert "--endpoint-url" in printed and "AWS CLI v1 ignores AWS_ENDPOINT_URL" in printed
        path = re.search(r"^  export PATH=(\S+):\"\$PATH\"$", printed, flags=re.MULTILINE)
        assert path and os.access(os.path.join(shlex.split(path[1])[0], "campaign-stop"), os.X_OK)
        cli_env = {**{name: shlex.split(value)[0] for name, value in exports.items() if name != "PATH"},
                   "AWS_PROFILE": None, "CAMPAIGN_STOP_STACK": None, "COLUMNS": None}
        # The quick start, pasted as printed: a stop and its result, a dead letter, found and redriven.
        quick_start = printed[printed.index("Then: a stop"):printed.index("(cd-unknown stays unknown")]
        commands = [shlex.split(line)[1:] for line in quick_start.splitlines() if line.startswith("  campaign-stop ")]
        assert len(commands) == 5
        outputs = []
        for command, expected in zip(commands, (0, 0, 1, 0, 1), strict=True):  # cd-unknown fails, and again
            ran = CliRunner().invoke(cli, command, env=cli_env)
            assert ran.exit_code == expected, (command, ran.output)
            outputs.append(ran.stdout)
        assert "stopped" in outputs[0] and "my-first-stop" in outputs[1]
        assert "stop_refused" in outputs[2] and "my-dead-letter" in outputs[3]
        assert "Moved 1 dead letter(s)" in outputs[4] and "Request my-dead-letter:" in outputs[4]
        status = CliRunner().invoke(cli, ["-o", "json", "status"], env=cli_env)
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["deadLetterQueue"]["waiting"] == 2  # cd-x's, and the redriven one's again
        doctor = CliRunner().invoke(cli, ["doctor", "--stream", "st-1", "--campaign", "cd-2"], env=cli_env)
        assert doctor.exit_code == 0, doctor.output
        tested = CliRunner().invoke(cli, ["alarm-map", "test", "checkout-sms-error-rate"], env=cli_env)
        assert tested.exit_code == 0, tested.output

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        read_until(r"Stopping\.")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
