"""What every command shares: exit codes, output mode, resource discovery, AWS clients."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import Any, NoReturn

import boto3
import typer
from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1  # some request or campaign failed
EXIT_USAGE = 2  # usage or configuration error
EXIT_TIMEOUT = 3

# Where each resource is read from when no flag names it (the function's own variable names).
RESOURCE_VARIABLES = {
    "stop_queue_url": "STOP_QUEUE_URL",
    "bus_name": "STOP_BUS_NAME",
    "results_topic_arn": "RESULTS_TOPIC_ARN",
    "dead_letter_queue_url": "DEAD_LETTER_QUEUE_URL",
    "alarm_parameter": "ALARM_TARGETS_PARAMETER",
    "credentials_secret_id": "CREDENTIALS_SECRET_ID",
}

RESOURCE_FLAGS = {
    "stop_queue_url": "--queue-url",
    "bus_name": "--bus-name",
    "results_topic_arn": "--results-topic-arn",
    "dead_letter_queue_url": "--dlq-url",
    "alarm_parameter": "--parameter",
    "credentials_secret_id": "--secret-id",
}


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
