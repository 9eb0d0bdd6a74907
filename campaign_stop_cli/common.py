"""What every command shares: exit codes, output mode, resource discovery, AWS clients."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn

import boto3
import typer
from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1  # some request or campaign failed
EXIT_USAGE = 2  # usage or configuration error
EXIT_TIMEOUT = 3

@dataclass(frozen=True)
class Resource:
    """One thing the CLI talks to, and where it is looked up (in this order): a flag, the stack's output, the
    environment variable (the function's own name for it where it has one)."""

    flag: str
    stack_output: str
    variable: str


RESOURCES = {
    "stop_queue_url": Resource("--queue-url", "StopQueueUrl", "STOP_QUEUE_URL"),
    "bus_name": Resource("--bus-name", "StopBusName", "STOP_BUS_NAME"),
    "results_topic_arn": Resource("--results-topic-arn", "ResultsTopicArn", "RESULTS_TOPIC_ARN"),
    "dead_letter_queue_url": Resource("--dlq-url", "DeadLetterQueueUrl", "DEAD_LETTER_QUEUE_URL"),
    "alarm_parameter": Resource("--parameter", "AlarmTargetsParameterName", "ALARM_TARGETS_PARAMETER"),
    "credentials_secret_id": Resource("--secret-id", "CredentialsSecretArn", "CREDENTIALS_SECRET_ID"),
    "kore_base_url": Resource("--kore-base-url", "KoreBaseUrl", "KORE_BASE_URL"),
    "table_name": Resource("--table-name", "IdempotencyTableName", "IDEMPOTENCY_TABLE_NAME"),
    "function_name": Resource("--function-name", "StopCampaignFunctionName", "STOP_FUNCTION_NAME"),
    "dashboard_url": Resource("--dashboard-url", "DashboardUrl", "DASHBOARD_URL"),
    "schedule_group": Resource("--schedule-group", "ScheduleGroupName", "SCHEDULE_GROUP_NAME"),
    "scheduler_role_arn": Resource("--scheduler-role-arn", "SchedulerRoleArn", "SCHEDULER_ROLE_ARN"),
}
# Kept for callers that only need the variable or flag names.
RESOURCE_VARIABLES = {name: item.variable for name, item in RESOURCES.items()}
RESOURCE_FLAGS = {name: item.flag for name, item in RESOURCES.items()}


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


OUTPUT_HELP = "table (Rich, for people) or json (for scripts); overrides the global --output."


def output_format(ctx: typer.Context, per_command: OutputFormat | None) -> OutputFormat:
    if per_command is not None:
        return per_command
    root = ctx.find_root()
    chosen = (root.obj or {}).get("output") if isinstance(root.obj, dict) else None
    return chosen or OutputFormat.TABLE


def console() -> Console:
    # Made per call: the streams may be replaced (tests, redirection) after import.
    return Console(file=sys.stdout, soft_wrap=True)


def error_console() -> Console:
    return Console(file=sys.stderr, soft_wrap=True)


def print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def fail(message: str, code: int = EXIT_USAGE, mode: OutputFormat = OutputFormat.TABLE) -> NoReturn:
    """Say what is wrong (on stderr; in json mode also as a JSON document on stdout) and exit."""
    if mode is OutputFormat.JSON:
        print_json({"error": message, "exitCode": code})
    error_console().print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def resource(name: str, flag_value: str | None, mode: OutputFormat) -> str:
    """A resource setting: the flag, else the environment variable; missing → exit 2 naming both."""
    if flag_value:
        return flag_value
    value = os.environ.get(RESOURCE_VARIABLES[name], "").strip()
    if value:
        return value
    what = name.replace("_", " ")
    fail(f"no {what}: pass {RESOURCE_FLAGS[name]} or set {RESOURCE_VARIABLES[name]}", EXIT_USAGE, mode)


def client(service: str) -> Any:
    """A client from boto3's default session: region, profile and AWS_ENDPOINT_URL as the SDK reads them."""
    return boto3.session.Session().client(service)
