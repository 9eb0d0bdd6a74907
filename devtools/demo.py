"""`make demo`: the whole stop pipeline on this machine, no AWS account, no Kore.ai tenant, no Docker.

    python -m devtools.demo                      # every scenario, a table of what happened; exit 1 on a surprise
    python -m devtools.demo --scenario duplicate --scenario alarm
    python -m devtools.demo --list
    python -m devtools.demo --keep-running       # then stay up for your own requests until Ctrl-C

moto's server plays AWS (stop queue + dead-letter queue, results topic + a subscriber queue, idempotency
table, credentials secret, alarm-map and producer-policy parameters, EventBridge bus, rule and events queue, all
configured from template.yaml), the Kore.ai simulator plays the campaign API on 127.0.0.1, and the real
``stop_campaign.app.lambda_handler`` runs in this process, driven by an emulated SQS event source mapping.
The scenarios live in devtools/scenarios.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from campaign_stop_cli.common import RESOURCES, STACK_VARIABLE
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import (
    FAKE_AWS_CREDENTIALS,
    REGION,
    LocalStack,
    MotoServer,
    create_stack,
    function_environment,
)
from devtools.poller import Handler, SqsEventSourceMapping
from devtools.scenarios import (
    STREAM_ID,
    ScenarioRun,
    World,
    all_scenarios,
    dead_letter_error_code,
    load_event,
    pair_stop_calls,
    run_scenario,
    stop_call_campaign,
)
from devtools.template_loader import REPO_ROOT, local_stack_settings

DEMO_APP = {
    "clientId": "cs-demo-app",
    "clientSecret": "demo-client-secret-for-the-local-simulator-only",
    "accountId": "acc-demo",
}
# The simulator's campaigns when the demo starts (scenarios seed more, and reset the ones they use).
BASE_CAMPAIGNS: tuple[tuple[str, str, str], ...] = (
    *((f"cd-{number}", "sms", "Active") for number in range(1, 6)),
    ("cd-voice-1", "voice", "Active"),
    ("cd-done", "sms", "Completed"),
)
QUIET_FUNCTION = {"POWERTOOLS_LOG_LEVEL": "CRITICAL", "POWERTOOLS_METRICS_DISABLED": "true"}

RESULT_COLUMNS = ("SCENARIO", "REQUEST ID", "CAMPAIGN", "OUTCOME", "PRODUCER", "ATTEMPTS", "TIME TO STOP",
                  "STOP CALLS (HTTP)")
DEAD_LETTER_COLUMNS = ("SCENARIO", "MESSAGE ID", "ERROR CODE", "REQUEST ID", "BODY")
SUMMARY_COLUMNS = ("SCENARIO", "REQUEST ID", "CAMPAIGNS", "OUTCOMES", "INVOCATIONS", "DURATION")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [scenario.name for scenario in all_scenarios()]
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", action="append", choices=names, metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(names)}")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the scenarios, keep the stack and simulator up and poll the queue until Ctrl-C")
    parser.add_argument("--retry-delay", type=int, default=1, metavar="SECONDS",
                        help="seconds before a failed message is visible again (default 1; Lambda: the queue's "
                             "visibility timeout)")
    parser.add_argument("--function-logs", action="store_true", help="show the function's logs and EMF metrics")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.list:
        for scenario in all_scenarios():
            print(f"{scenario.name:18} {scenario.title}")
        return 0
    if not args.function_logs:
        warnings.filterwarnings("ignore", message="No application metrics to publish")
    started = time.perf_counter()
    print("Starting moto server (AWS) and the Kore.ai simulator on 127.0.0.1 ...", flush=True)
    with MotoServer() as moto, KoreSimulator(enforce_jti=True) as sim:
        stack = create_stack(moto.endpoint_url)
        stack.put_secret(DEMO_APP)
        sim.add_app(DEMO_APP["clientId"], DEMO_APP["clientSecret"], DEMO_APP["accountId"])
        seed_base_campaigns(sim)
        overrides = {} if args.function_logs else QUIET_FUNCTION
        with function_environment(stack.function_environment(sim.base_url, **overrides)):
            from stop_campaign.app import lambda_handler  # after the environment: Powertools reads it at import

            handler = lambda_handler if args.function_logs else quiet(lambda_handler)
            World.cold_start()
            mapping = SqsEventSourceMapping(stack, handler=handler, retry_delay_seconds=args.retry_delay)
            world = World(stack, sim, mapping, handler)
            runs: list[ScenarioRun] = []
            for scenario in all_scenarios():
                if args.scenario and scenario.name not in args.scenario:
                    continue
                print(f"  {scenario.name:18} ", end="", flush=True)
                run = run_scenario(scenario, world)
                print(f"{'ok' if run.ok else 'UNEXPECTED'} ({run.seconds:.2f} s)", flush=True)
                runs.append(run)
            print_report(runs, time.perf_counter() - started)
            if args.keep_running:
                keep_running(world)
    return 0 if all(run.ok for run in runs) else 1


def quiet(handler: Handler) -> Handler:
    """The handler with its stdout swallowed: Powertools prints the ColdStart metric even when metrics are off."""

    def invoke(event: dict[str, Any], context: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return handler(event, context)

    return invoke


def seed_base_campaigns(sim: KoreSimulator) -> None:
    for campaign_id, campaign_type, status in BASE_CAMPAIGNS:
        sim.add_campaign(STREAM_ID, campaign_id, campaign_type, status)


# ---- the report -----------------------------------------------------------------------------------------


def print_report(runs: list[ScenarioRun], seconds: float) -> None:
    result_rows = [row for run in runs for row in result_rows_of(run)]
    print("\nRequests and their results (read back from the results topic's subscriber queue)\n")
    print(format_table(RESULT_COLUMNS, result_rows))
    summaries = [(run.scenario.name, event) for run in runs for event in run.observed.summaries]
    print(f"\nSummaries (one per request covering several campaigns): {len(summaries)}\n")
    if summaries:
        print(format_table(SUMMARY_COLUMNS, [summary_row(name, event) for name, event in summaries]))
    letters = [(run.scenario.name, message) for run in runs for message in run.observed.dead_letters]
    print(f"\nDead-letter queue: {len(letters)} message(s)\n")
    if letters:
        print(format_table(DEAD_LETTER_COLUMNS, [dead_letter_row(name, message) for name, message in letters]))
    print("\nScenarios\n")
    for run in runs:
        print(f"  {'PASS' if run.ok else 'FAIL'}  {run.scenario.name:18} {run.scenario.title}")
        print(f"        {summary(run)}")
        for note in run.observed.notes:
            print(f"        note: {note}")
        for problem in run.problems:
            print(f"        - {problem}")
    failed = [run.scenario.name for run in runs if not run.ok]
    if failed:
        print(f"\n{len(failed)} of {len(runs)} scenario(s) ended differently from what they expect: "
              f"{', '.join(failed)} ({seconds:.1f} s)")
    else:
        print(f"\nAll {len(runs)} scenario(s) ended as expected ({seconds:.1f} s).")


def result_rows_of(run: ScenarioRun) -> list[tuple[str, ...]]:
    ordered = sorted(
        run.observed.results,
        key=lambda r: (r.get("campaignId") is None, r.get("campaignId") or "", r.get("completedAt") or ""),
    )
    paired = run.stop_statuses_by_result()
    return [result_row(run.scenario.name, result, paired.get(str(result.get("resultId")), ())) for result in ordered]


def result_row(scenario: str, result: dict[str, Any], stop_statuses: Iterable[int] = ()) -> tuple[str, ...]:
    time_to_stop = result.get("timeToStopMs")
    error = (result.get("error") or {}).get("code")
    return (
        scenario,
        str(result.get("requestId") or "-"),
        str(result.get("campaignId") or "-"),
        str(result.get("outcome")) + (f" ({error})" if error else "") + _schedule_note(result)
        + (", again: held" if result.get("holdOf") else ""),
        producer_text(result.get("producer")),
        str(result.get("attempts", "-")),
        f"{time_to_stop} ms" if time_to_stop is not None else "-",
        " ".join(str(status) for status in stop_statuses) or "-",
    )


def _schedule_note(result: dict[str, Any]) -> str:
    schedule = result.get("schedule")
    if not isinstance(schedule, dict):
        return ""
    return ", schedule disabled" if schedule.get("disabled") else ", schedule NOT disabled"


def producer_text(producer: Any) -> str:
    """The policy's name for the producer; who it is as AWS reported it (kind:id, shortened) when it has none."""
    if not isinstance(producer, dict):
        return "-"
    who = f"{producer.get('kind')}:{producer.get('id')}"
    return str(producer["name"]) if producer.get("name") else (who if len(who) <= 28 else who[:25] + "...")


def summary_row(scenario: str, event: dict[str, Any]) -> tuple[str, ...]:
    outcomes = ", ".join(f"{outcome} {count}" for outcome, count in sorted(event.get("outcomes", {}).items()))
    return (
        scenario,
        str(event.get("requestId") or "-"),
        str(event.get("campaigns")),
        outcomes or "-",
        str(event.get("invocations")),
        f"{event.get('durationMs')} ms",
    )


def dead_letter_row(scenario: str, message: dict[str, Any]) -> tuple[str, ...]:
    request_id = message.get("MessageAttributes", {}).get("requestId", {}).get("StringValue")
    body = " ".join(str(message.get("Body", "")).split())
    return (
        scenario,
        str(message.get("MessageId")),
        dead_letter_error_code(message) or "(redrive policy)",
        request_id or "-",
        body if len(body) <= 60 else body[:57] + "...",
    )


def summary(run: ScenarioRun) -> str:
    observed = run.observed
    stop_calls = sum(1 for call in observed.calls if call.kind in ("stop_sms", "stop_voice"))
    parts = [
        f"{len(observed.message_ids)} message(s) sent" if observed.message_ids else "",
        f"{len(observed.event_ids)} event(s) put on the bus" if observed.event_ids else "",
        f"{len(observed.direct_responses)} direct invocation(s)" if observed.direct_responses else "",
        f"{len(observed.invocations)} queue-driven invocation(s)" if observed.invocations else "",
        f"{len(observed.calls)} API call(s), {stop_calls} of them stops",
        f"{len(observed.results)} result(s)",
        f"{len(observed.dead_letters)} dead letter(s)",
        f"{run.seconds:.2f} s",
    ]
    return ", ".join(part for part in parts if part)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(column), *(len(row[index]) for row in rows)) for index, column in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * width for width in widths]), *(line(row) for row in rows)])


# ---- --keep-running ------------------------------------------------------------------------------------


PEEK_ROUNDS = 5  # --keep-running looks at up to 5 x 10 dead letters when their number grows
DEMO_ALARM = "checkout-sms-error-rate"  # an alarm of events/alarm_map.json, for `alarm-map test`


def keep_running(world: World) -> None:
    stack, sim = world.stack, world.sim
    seed_base_campaigns(sim)  # the scenarios stopped them; give the user something to stop
    sim.reset_log()
    if _alarm_map_is_empty(stack):  # give `campaign-stop alarm-map test` something to find
        stack.put_alarm_map(load_event("alarm_map.json"))
    print_endpoints(stack, sim.base_url)
    letters = DeadLetterWatch(stack)
    calls = StopCallWatch(sim)
    try:
        mappings = [world.mapping, *([world.events_mapping] if world.events_mapping else [])]
        while True:
            for report in [mapping.poll_once(wait_seconds=1) for mapping in mappings]:
                if report is None:
                    continue
                print(f"\n{invocation_line(report)}", flush=True)
                results = stack.drain_results()
                if results:
                    paired = calls.pair(results)
                    print(format_table(RESULT_COLUMNS, [result_row("yours", result, paired.get(str(result.get(
                        "resultId")), ())) for result in results]), flush=True)
                    for note in outcome_notes(results):
                        print(note, flush=True)
            grew, arrived = letters.new_arrivals()
            if grew:
                print(f"dead-letter queue: {grew} new, {letters.count} waiting (kept for you: "
                      "campaign-stop dlq list / dlq redrive --request-id <id> --wait)")
                if arrived:
                    print(format_table(DEAD_LETTER_COLUMNS, [dead_letter_row("yours", m) for m in arrived]))
                if len(arrived) < grew:
                    print(f"({grew - len(arrived)} not shown here: campaign-stop dlq list)")
                sys.stdout.flush()
    except KeyboardInterrupt:
        print("\nStopping.", flush=True)


def invocation_line(report: Any) -> str:
    """One invocation in words: how many messages it took and how many it handed back to the queue for another
    try (a batch item failure: not a `failed` outcome, which is final and goes to the dead-letter queue)."""
    retried = len(report.failed_ids)
    line = (f"invocation: {len(report.message_ids)} message(s); "
            + (f"{retried} handed back to the queue to try again" if retried else "none handed back for a retry")
            + (f" ({report.error})" if report.error else ""))
    if report.final_attempt_ids:
        line += f"; {len(report.final_attempt_ids)} go to the dead-letter queue on their next receive"
    return line


def outcome_notes(results: list[dict[str, Any]]) -> list[str]:
    """What a final failed or rejected outcome means for the operator (the table's OUTCOME column says which)."""
    notes = []
    for result in results:
        if result.get("outcome") in ("failed", "rejected"):
            code = (result.get("error") or {}).get("code")
            notes.append(f"  {result.get('outcome')} ({code}): final for {result.get('requestId')}; its message is in "
                         "the dead-letter queue (campaign-stop dlq show " + str(result.get("requestId")) + ")")
    return notes


class StopCallWatch:
    """The simulator's stop calls not yet matched with a result, for --keep-running's STOP CALLS column."""

    def __init__(self, sim: KoreSimulator) -> None:
        self._sim = sim
        self._seen = 0
        self._pending: list[Any] = []

    def pair(self, results: list[dict[str, Any]]) -> dict[str, list[int]]:
        logged = self._sim.requests
        self._pending += logged[self._seen:]
        self._seen = len(logged)
        paired = pair_stop_calls(results, self._pending)
        done = {str(result.get("campaignId")) for result in results}
        self._pending = [call for call in self._pending if stop_call_campaign(call.path) not in done]
        return paired


def _alarm_map_is_empty(stack: LocalStack) -> bool:
    value = stack.client("ssm").get_parameter(Name=stack.alarm_parameter)["Parameter"]["Value"]
    try:
        return not json.loads(value)
    except ValueError:
        return False


class DeadLetterWatch:
    """What arrives in the dead-letter queue, shown and left there for `campaign-stop dlq list` and `dlq redrive`.

    It never hides a message from them (a `dlq redrive` running meanwhile would miss what this held): the
    queue's counts are read every cycle (GetQueueAttributes hides nothing), and only when they grew are the
    messages looked at, with ReceiveMessage's VisibilityTimeout 0: received, but never hidden, so there is nothing
    to make visible again either. A peek sees some of the visible messages (SQS samples, moto answers in queue
    order); new ones it does not reach are counted, not shown. The dead-letter queue has no redrive policy, so
    receiving from it moves nothing; the stop queue is never peeked at."""

    def __init__(self, stack: LocalStack) -> None:
        self._sqs = stack.client("sqs")
        self._url = stack.dead_letter_queue_url
        self._seen: set[str] = set()
        self.count = 0

    def _count(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def new_arrivals(self) -> tuple[int, list[dict[str, Any]]]:
        """(how many more dead letters there are than last time, those of the new ones a peek could see)."""
        count = self._count()
        grew, self.count = count - self.count, count
        if grew <= 0:
            return 0, []
        peeked: dict[str, dict[str, Any]] = {}
        for _ in range(PEEK_ROUNDS):
            batch = self._sqs.receive_message(
                QueueUrl=self._url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"], VisibilityTimeout=0, WaitTimeSeconds=0,
            ).get("Messages", [])
            fresh = {message["MessageId"]: message for message in batch if message["MessageId"] not in peeked}
            if not fresh:
                break
            peeked.update(fresh)
        arrived = [message for message_id, message in peeked.items() if message_id not in self._seen]
        self._seen.update(peeked)
        return grew, arrived[:grew]


def resource_arns(stack: LocalStack) -> dict[str, str]:
    """The ARNs the local stack's resources have (as the services report them)."""
    dlq_arn = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.dead_letter_queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    return {
        "stop_queue": stack.stop_queue_arn,
        "dead_letter_queue": dlq_arn,
        "results_topic": stack.results_topic_arn,
        "bus": stack.client("events").describe_event_bus(Name=stack.bus_name)["Arn"],
        "table": stack.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]["TableArn"],
        "parameter": stack.client("ssm").get_parameter(Name=stack.alarm_parameter)["Parameter"]["ARN"],
        "secret": stack.client("secretsmanager").describe_secret(SecretId=stack.secret_id)["ARN"],
    }


def cli_environment(stack: LocalStack, kore_base_url: str) -> dict[str, str]:
    """The campaign-stop CLI's variables (its resource table's names) and the SDK's, pointing at this demo."""
    values = {
        "stop_queue_url": stack.stop_queue_url,
        "bus_name": stack.bus_name,
        "results_topic_arn": stack.results_topic_arn,
        "dead_letter_queue_url": stack.dead_letter_queue_url,
        "alarm_parameter": stack.alarm_parameter,
        "producer_policy_parameter": stack.producer_policy_parameter,
        "credentials_secret_id": stack.secret_id,
        "kore_base_url": kore_base_url,
        "table_name": stack.table_name,
        "history_table": stack.history_table_name,
        "holds_table": stack.holds_table_name,
    }
    return {
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        **FAKE_AWS_CREDENTIALS,
        **{RESOURCES[name].variable: value for name, value in values.items()},
    }


def command_directory() -> Path:
    """Where `campaign-stop` is: beside the Python running the demo (`make install` puts both in .venv/bin)."""
    beside = Path(sys.executable).parent
    return beside if (beside / "campaign-stop").exists() else REPO_ROOT / ".venv" / "bin"


def print_endpoints(stack: LocalStack, kore_base_url: str) -> None:
    endpoint = stack.endpoint_url
    detail_type = local_stack_settings()["stop_request_detail_types"][0]
    body = json.dumps({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "my-first-stop"})
    entries = json.dumps([{
        "EventBusName": stack.bus_name, "Source": "my.tool", "DetailType": detail_type,
        "Detail": json.dumps({"streamId": STREAM_ID, "campaignId": "cd-2"}),
    }])
    campaigns = ", ".join(f"{campaign_id} ({kind}, {status})" for campaign_id, kind, status in BASE_CAMPAIGNS)
    arns = resource_arns(stack)
    bin_dir = command_directory()
    exports = "\n".join(f"  export {name}={shlex.quote(value)}"
                        for name, value in cli_environment(stack, kore_base_url).items())
    print(f"""
The stack and the simulator stay up; this process polls the stop queue and prints what happens. Ctrl-C stops.

  AWS endpoint (moto)     {endpoint}   region {REGION}
  stop queue              {stack.stop_queue_url}
                          {arns["stop_queue"]}
  dead-letter queue       {stack.dead_letter_queue_url}
                          {arns["dead_letter_queue"]}   (dead letters are shown here and kept)
  results topic           {stack.results_topic_arn}
  results subscriber      {stack.results_queue_url}   (read by this process: results are printed here)
  event bus               {stack.bus_name}   (rule: detail-type "{detail_type}" -> stop queue)
                          {arns["bus"]}
  idempotency table       {stack.table_name}
                          {arns["table"]}
  alarm map parameter     {stack.alarm_parameter}   (events/alarm_map.json unless a scenario left another)
                          {arns["parameter"]}
  credentials secret      {stack.secret_id}   (value not shown)
                          {arns["secret"]}
  Kore.ai simulator       {kore_base_url}
  campaigns on {STREAM_ID}         {campaigns}

In another shell, paste this (campaign-stop is installed in {shlex.quote(str(bin_dir))}; fake credentials, moto only):
  export PATH={shlex.quote(str(bin_dir))}:"$PATH"
  unset AWS_PROFILE {STACK_VARIABLE}
{exports}

Then: a stop and its result, a dead letter, and its redrive:
  campaign-stop stop --stream {STREAM_ID} --campaign cd-1 --request-id my-first-stop --wait
  campaign-stop results --request-id my-first-stop
  campaign-stop stop --stream {STREAM_ID} --campaign cd-unknown --request-id my-dead-letter --wait
  campaign-stop dlq list --request-id my-dead-letter
  campaign-stop dlq redrive --request-id my-dead-letter --yes --wait
(cd-unknown stays unknown to the simulator, so the redriven request fails again: a new result, a new dead letter.)
More: campaign-stop results --follow | dlq show <id> | alarm-map test {DEMO_ALARM} | doctor | status | --help

With the AWS CLI (--endpoint-url on every command: AWS CLI v1 ignores AWS_ENDPOINT_URL, v2 honours it):
  aws --endpoint-url {endpoint} sqs send-message --queue-url {stack.stop_queue_url} \\
      --message-body {shlex.quote(body)}
  aws --endpoint-url {endpoint} events put-events --entries {shlex.quote(entries)}
  aws --endpoint-url {endpoint} sqs get-queue-attributes --queue-url {stack.dead_letter_queue_url} \\
      --attribute-names ApproximateNumberOfMessages

With boto3:
  import boto3, json
  sqs = boto3.client("sqs", endpoint_url="{endpoint}", region_name="{REGION}",
                     aws_access_key_id="testing", aws_secret_access_key="testing")
  sqs.send_message(QueueUrl="{stack.stop_queue_url}",
                   MessageBody=json.dumps({{"streamId": "{STREAM_ID}", "campaignId": "cd-3"}}))
""", flush=True)


if __name__ == "__main__":
    sys.exit(main())
