"""`campaign-stop status`: how the pipeline is doing, from queue attributes and CloudWatch only.

Never receives from the stop queue: every receive counts towards the redrive policy's maxReceiveCount and the
function's final-attempt logic (a message received once too often is dead-lettered). GetQueueAttributes and
GetMetricData are the only calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table
from rich.text import Text

from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    RESOURCES,
    DlqUrlOption,
    OutputFormat,
    OutputOption,
    QueueUrlOption,
    client,
    console,
    fail,
    find_resource,
    output_format,
    print_json,
    resource,
    warn,
)

# The function's own metrics: Powertools EMF in template.yaml's POWERTOOLS_METRICS_NAMESPACE, with the default
# dimension service = POWERTOOLS_SERVICE_NAME (tests compare both with template.yaml). Metric names: the outcome
# counters of stop_campaign.service.processing.OUTCOME_METRICS and its TimeToStop (milliseconds).
NAMESPACE = "CampaignStop"
SERVICE = "campaign-stop"
OUTCOME_METRICS = {
    "stopped": "CampaignsStopped",
    "already_stopped": "CampaignsAlreadyStopped",
    "dry_run": "DryRuns",
    "ignored": "TriggersIgnored",
    "rejected": "RequestsRejected",
    "failed": "StopFailures",
    "resumed": "CampaignsResumed",
}
TIME_TO_STOP = "TimeToStop"
LAMBDA_METRICS = ("Invocations", "Errors", "Throttles")
NO_DATA = "no data"


@dataclass
class Queues:
    stop_queue_url: str
    visible: int
    in_flight: int
    delayed: int
    dead_letter_queue_url: str
    dead_letters: int
    dead_letters_in_flight: int


def status(
    ctx: typer.Context,
    window: Annotated[
        int, typer.Option("--window", min=1, max=24 * 60, help="Minutes of CloudWatch history to sum up.",
                          metavar="MINUTES")
    ] = 60,
    queue_url: QueueUrlOption = None,
    dlq_url: DlqUrlOption = None,
    function_name: Annotated[
        str | None,
        typer.Option("--function-name", help="The stop function, for CloudWatch figures (env STOP_FUNCTION_NAME; "
                                             "stack output StopCampaignFunctionName).", metavar="NAME"),
    ] = None,
    dashboard_url: Annotated[
        str | None, typer.Option("--dashboard-url", help="CloudWatch dashboard URL (env DASHBOARD_URL).", metavar="URL")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Stop-queue depth, dead letters waiting and, for a deployed stack, recent figures from CloudWatch.

    Outcome counts, time to stop and the oldest request's age need the function's name (or --stack).

    Reads only: never receives from the stop queue (receives count towards the redrive policy)."""
    mode = output_format(ctx, output)
    stop_queue = resource("stop_queue_url", queue_url, mode)
    dead_letter_queue = resource("dead_letter_queue_url", dlq_url, mode)
    function = find_resource("function_name", function_name, mode)
    dashboard = find_resource("dashboard_url", dashboard_url, mode)

    queues = _queues(stop_queue, dead_letter_queue, mode)
    metrics: dict[str, Any] | None = None
    why_none = ""
    if function is None:
        item = RESOURCES["function_name"]
        why_none = (f"CloudWatch's figures need the function's name: {item.flag}, {item.variable} or --stack "
                    f"(output {item.stack_output})")
    else:
        try:
            metrics = _metrics(function, _queue_name(stop_queue), window)
        except (BotoCoreError, ClientError) as error:
            why_none = f"CloudWatch could not be read: {error}"
            warn(why_none)

    if mode.machine:
        print_json({
            "stopQueue": {"url": queues.stop_queue_url, "visible": queues.visible, "inFlight": queues.in_flight,
                          "delayed": queues.delayed},
            "deadLetterQueue": {"url": queues.dead_letter_queue_url, "waiting": queues.dead_letters,
                                "inFlight": queues.dead_letters_in_flight},
            "cloudWatch": metrics,
            **({"cloudWatchNote": why_none} if metrics is None else {}),
            "functionName": function,
            "dashboardUrl": dashboard,
        })
    else:
        _print(queues, metrics, why_none, window, dashboard)
    raise typer.Exit(EXIT_OK)


def _queues(stop_queue: str, dead_letter_queue: str, mode: OutputFormat) -> Queues:
    stop = _attributes(stop_queue, "stop queue", mode)
    dead = _attributes(dead_letter_queue, "dead-letter queue", mode)
    return Queues(
        stop_queue_url=stop_queue,
        visible=int(stop.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(stop.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(stop.get("ApproximateNumberOfMessagesDelayed", 0)),
        dead_letter_queue_url=dead_letter_queue,
        dead_letters=int(dead.get("ApproximateNumberOfMessages", 0)),
        dead_letters_in_flight=int(dead.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def _attributes(url: str, what: str, mode: OutputFormat) -> dict[str, str]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]
    try:
        return client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=names)[  # type: ignore[no-any-return]
            "Attributes"]
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
            fail(f"the {what} {url} does not exist", EXIT_USAGE, mode)
        fail(f"cannot read the {what}: {error}", EXIT_FAILED, mode)
    except BotoCoreError as error:
        fail(f"cannot read the {what}: {error}", EXIT_FAILED, mode)


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _metric(query_id: str, namespace: str, name: str, dimensions: dict[str, str], period: int, stat: str,
            ) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name,
                       "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions.items()]},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def _metrics(function: str, stop_queue_name: str, window_minutes: int) -> dict[str, Any]:
    """GetMetricData for the last window: sums, TimeToStop's mean and maximum, the oldest request's latest age.
    A figure without datapoints is None ("no data")."""
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=window_minutes)
    period = window_minutes * 60
    service = {"service": SERVICE}
    queries = [
        *(_metric(f"outcome{index}", NAMESPACE, name, service, period, "Sum")
          for index, name in enumerate(OUTCOME_METRICS.values())),
        _metric("ttsSum", NAMESPACE, TIME_TO_STOP, service, period, "Sum"),
        _metric("ttsCount", NAMESPACE, TIME_TO_STOP, service, period, "SampleCount"),
        _metric("ttsMax", NAMESPACE, TIME_TO_STOP, service, period, "Maximum"),
        *(_metric(f"lambda{name}", "AWS/Lambda", name, {"FunctionName": function}, period, "Sum")
          for name in LAMBDA_METRICS),
        _metric("oldest", "AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": stop_queue_name}, 60,
                "Maximum"),
    ]
    values: dict[str, list[tuple[datetime, float]]] = {}
    token: str | None = None
    cloudwatch = client("cloudwatch")
    while True:
        response = cloudwatch.get_metric_data(
            MetricDataQueries=queries, StartTime=start, EndTime=end, **({"NextToken": token} if token else {})
        )
        for result in response.get("MetricDataResults", []):
            values.setdefault(result["Id"], []).extend(zip(result.get("Timestamps", []), result.get("Values", []),
                                                           strict=False))
        token = response.get("NextToken")
        if not token:
            break

    def total(query_id: str) -> float | None:
        points = values.get(query_id) or []
        return sum(value for _, value in points) if points else None

    outcomes = {outcome: _whole(total(f"outcome{index}")) for index, outcome in enumerate(OUTCOME_METRICS)}
    count, summed = total("ttsCount"), total("ttsSum")
    maxima = [value for _, value in values.get("ttsMax") or []]
    oldest = max(values.get("oldest") or [], default=None, key=lambda point: point[0])
    return {
        "windowMinutes": window_minutes,
        "oldestMessageAgeSeconds": _whole(oldest[1]) if oldest else None,
        "outcomes": outcomes,
        "timeToStopMs": {
            "count": _whole(count),
            "average": round(summed / count) if count and summed is not None else None,
            "maximum": _whole(max(maxima)) if maxima else None,
        },
        "invocations": _whole(total("lambdaInvocations")),
        "errors": _whole(total("lambdaErrors")),
        "throttles": _whole(total("lambdaThrottles")),
    }


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def _shown(value: Any, unit: str = "") -> str:
    return NO_DATA if value is None else f"{value}{unit}"


def _print(queues: Queues, metrics: dict[str, Any] | None, why_none: str, window: int, dashboard: str | None) -> None:
    out = console()
    table = Table("", "", title="campaign-stop status", show_header=False)
    table.add_row(Text("stop queue", style="bold"), Text(_queue_name(queues.stop_queue_url)))
    table.add_row("  visible (waiting)", str(queues.visible))
    table.add_row("  in flight (being processed)", str(queues.in_flight))
    table.add_row("  delayed", str(queues.delayed))
    table.add_row(Text("dead-letter queue", style="bold"), Text(_queue_name(queues.dead_letter_queue_url)))
    waiting = Text(str(queues.dead_letters), style="bold red" if queues.dead_letters else "")
    if queues.dead_letters:
        waiting.append("  (campaign-stop dlq list)", style="dim")
    table.add_row("  dead letters waiting", waiting)
    if queues.dead_letters_in_flight:
        table.add_row("  being read by someone", str(queues.dead_letters_in_flight))
    if metrics is None:
        table.add_row(Text("CloudWatch", style="bold"), Text(f"{NO_DATA} ({why_none})"))
    else:
        table.add_row(Text(f"CloudWatch, last {window} min", style="bold"), "")
        table.add_row("  oldest stop request (latest)", _shown(metrics["oldestMessageAgeSeconds"], " s"))
        counted = [f"{outcome} {count}" for outcome, count in metrics["outcomes"].items() if count is not None]
        table.add_row("  outcomes", ", ".join(counted) or NO_DATA)
        time_to_stop = metrics["timeToStopMs"]
        if time_to_stop["count"]:
            table.add_row("  time to stop", f"mean {time_to_stop['average']} ms, max {time_to_stop['maximum']} ms "
                                            f"({time_to_stop['count']} stop(s))")
        else:
            table.add_row("  time to stop", NO_DATA)
        table.add_row("  invocations / errors / throttles",
                      " / ".join(_shown(metrics[name]) for name in ("invocations", "errors", "throttles")))
    out.print(table)
    if dashboard:
        out.print(Text(f"Dashboard: {dashboard}"))
