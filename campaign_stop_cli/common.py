"""What every command shares: exit codes, output mode, resource discovery, AWS clients."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Annotated, Any, NoReturn

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.text import Text

# The output modes, consoles and the exit-code rule live in output.py; re-exported here for every command.
from campaign_stop_cli.output import (  # noqa: F401
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    OUTPUT_HELP,
    OutputFormat,
    aws_error_exit_code,
    console,
    error_console,
    print_json,
    print_json_line,
    use_mode,
)


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
    "producer_policy_parameter": Resource("--parameter", "ProducerPolicyParameterName", "PRODUCER_POLICY_PARAMETER"),
    "credentials_secret_id": Resource("--secret-id", "CredentialsSecretArn", "CREDENTIALS_SECRET_ID"),
    "kore_base_url": Resource("--kore-base-url", "KoreBaseUrl", "KORE_BASE_URL"),
    "table_name": Resource("--table-name", "IdempotencyTableName", "IDEMPOTENCY_TABLE_NAME"),
    "history_table": Resource("--history-table", "RequestHistoryTableName", "REQUEST_HISTORY_TABLE"),
    "holds_table": Resource("--holds-table", "HoldsTableName", "HOLDS_TABLE"),
    "function_name": Resource("--function-name", "StopCampaignFunctionName", "STOP_FUNCTION_NAME"),
    "dashboard_url": Resource("--dashboard-url", "DashboardUrl", "DASHBOARD_URL"),
    "schedule_group": Resource("--schedule-group", "ScheduleGroupName", "SCHEDULE_GROUP_NAME"),
    "scheduler_role_arn": Resource("--scheduler-role-arn", "SchedulerRoleArn", "SCHEDULER_ROLE_ARN"),
    # Not a resource, a setting of the function the CLI judges dead letters by (`dlq redrive`): the template's
    # parameter, else the function's own variable.
    "max_request_age": Resource("--max-request-age", "MaxRequestAgeSeconds", "MAX_REQUEST_AGE_SECONDS"),
}


# Options several commands declare alike (Typer reads an Annotated alias as it reads the declaration inline).
OutputOption = Annotated[OutputFormat | None, typer.Option("--output", "-o", help=OUTPUT_HELP)]
QueueUrlOption = Annotated[str | None, typer.Option("--queue-url", help="Stop queue URL (env STOP_QUEUE_URL).",
                                                    metavar="URL")]
DlqUrlOption = Annotated[str | None, typer.Option(
    "--dlq-url", help="Dead-letter queue URL (env DEAD_LETTER_QUEUE_URL).", metavar="URL")]
ResultsTopicOption = Annotated[str | None, typer.Option(
    "--results-topic-arn", help="Results topic ARN (env RESULTS_TOPIC_ARN).", metavar="ARN")]
# Kept for callers that only need the variable or flag names.
RESOURCE_VARIABLES = {name: item.variable for name, item in RESOURCES.items()}
RESOURCE_FLAGS = {name: item.flag for name, item in RESOURCES.items()}


def output_format(ctx: typer.Context, per_command: OutputFormat | None) -> OutputFormat:
    """The command's --output, else the global one, else table; noted for print_json."""
    if per_command is not None:
        return use_mode(per_command)
    root = ctx.find_root()
    chosen = (root.obj or {}).get("output") if isinstance(root.obj, dict) else None
    return use_mode(chosen or OutputFormat.TABLE)


def fail(message: str, code: int = EXIT_USAGE, mode: OutputFormat = OutputFormat.TABLE) -> NoReturn:
    """Say what is wrong (on stderr; in json mode also as a JSON document on stdout) and exit."""
    if mode.machine:
        print_json({"error": message, "exitCode": code}, mode=mode)
    # The message often quotes AWS, the API or the user: printed as text, never read as Rich markup.
    error_console().print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """A warning on stderr; ``message`` is printed as text (it may quote AWS or the API), never as markup."""
    error_console().print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)


STACK_VARIABLE = "CAMPAIGN_STOP_STACK"

_stack_lock = threading.Lock()  # one describe_stacks per stack, however many threads ask at once
_stack_values: dict[tuple[str, ...], dict[str, str]] = {}


def stack_name() -> str | None:
    """The global --stack (kept on the root context's obj by the main callback), else CAMPAIGN_STOP_STACK; a
    blank one counts as none.

    click's context is thread-local: called from a worker thread, only the environment variable is seen, so
    resolve resources in the command's thread when --stack matters."""
    context = _current_context()
    if context is not None:
        obj = context.find_root().obj
        if isinstance(obj, dict) and str(obj.get("stack") or "").strip():
            return str(obj["stack"]).strip()
    return os.environ.get(STACK_VARIABLE, "").strip() or None


def _current_context() -> Any:
    """The running command's context. Typer 0.2x runs on its own copy of click (typer._click, whose context stack
    click.get_current_context() would not see) and no longer needs click itself."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # an older Typer, built on click
        from click import get_current_context  # type: ignore[no-redef]
    return get_current_context(silent=True)


def stack_values(stack: str, mode: OutputFormat) -> dict[str, str]:
    """The stack's outputs (and, under them, its parameters of the same name: KoreBaseUrl, CredentialsSecretArn,
    AlarmTargetsParameterName are parameters of the template), read once per process and region.
    A stack that cannot be read exits 2."""
    session = boto3.session.Session()
    key = (stack, session.region_name or "", session.profile_name or "", os.environ.get("AWS_ENDPOINT_URL", ""),
           os.environ.get("AWS_ENDPOINT_URL_CLOUDFORMATION", ""))
    with _stack_lock:
        if key not in _stack_values:
            _stack_values[key] = _describe_stack(session, stack, mode)
        return _stack_values[key]


def _describe_stack(session: boto3.session.Session, stack: str, mode: OutputFormat) -> dict[str, str]:
    where = f" in {session.region_name}" if session.region_name else ""
    try:
        found = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        if "does not exist" in message:
            fail(f"stack {stack} does not exist{where}: check --stack / {STACK_VARIABLE}, the region and the "
                 "profile, or leave the stack out and pass the resources as flags or variables", EXIT_USAGE, mode)
        fail(f"cannot read stack {stack}{where}: {message}", EXIT_USAGE, mode)
    except BotoCoreError as error:
        fail(f"cannot read stack {stack}{where}: {error}", EXIT_USAGE, mode)
    if not found:
        fail(f"stack {stack} does not exist{where}", EXIT_USAGE, mode)
    values = {
        str(item["ParameterKey"]): str(item["ParameterValue"])
        for item in found[0].get("Parameters", [])
        if item.get("ParameterValue") and item.get("ParameterValue") != "****"  # NoEcho parameters are masked
    }
    values.update({str(item["OutputKey"]): str(item["OutputValue"]) for item in found[0].get("Outputs", [])})
    return values


def find_resource(name: str, flag_value: str | None, mode: OutputFormat) -> str | None:
    """A resource setting, in this order: the flag, the stack's output (with --stack or CAMPAIGN_STOP_STACK), the
    environment variable; None when none has it. Only a stack that cannot be read exits (2)."""
    if flag_value:
        return flag_value
    item = RESOURCES[name]
    stack = stack_name()
    if stack:
        value = stack_values(stack, mode).get(item.stack_output, "").strip()
        if value:
            return value
    return os.environ.get(item.variable, "").strip() or None


def missing_resource_message(name: str) -> str:
    """What to pass for a resource that was not found (the flag, the variable, and the stack's output)."""
    item = RESOURCES[name]
    what = name.replace("_", " ")
    stack = stack_name()
    if stack:
        return f"no {what}: stack {stack} has no output {item.stack_output}; pass {item.flag} or set {item.variable}"
    return f"no {what}: pass {item.flag} or set {item.variable} (or --stack NAME, output {item.stack_output})"


def resource(name: str, flag_value: str | None, mode: OutputFormat) -> str:
    """A resource setting: the flag, else the stack's output, else the environment variable; missing → exit 2
    naming what to pass."""
    value = find_resource(name, flag_value, mode)
    if value:
        return value
    fail(missing_resource_message(name), EXIT_USAGE, mode)


_sessions = threading.local()  # boto3 sessions are not thread-safe: one per thread


def client(service: str) -> Any:
    """A client from boto3's default session: region, profile and AWS_ENDPOINT_URL as the SDK reads them.

    The session is reused while the AWS_* environment stays the same (per thread), so the SDK parses its service
    models once per run instead of once per client (about a quarter of a second each)."""
    key = tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_")))
    cached = getattr(_sessions, "current", None)
    if cached is None or cached[0] != key:
        cached = (key, boto3.session.Session())
        _sessions.current = cached
    return cached[1].client(service)


def read_parameter(name: str, mode: OutputFormat) -> dict[str, Any]:
    """An SSM parameter as GetParameter returns it; exit 2 when it does not exist, 1 when it cannot be read."""
    try:
        return client("ssm").get_parameter(Name=name)["Parameter"]  # type: ignore[no-any-return]
    except client("ssm").exceptions.ParameterNotFound:
        fail(f"SSM parameter {name} does not exist", EXIT_USAGE, mode)
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot read SSM parameter {name}: {error}", EXIT_FAILED, mode)


# -- signals ---------------------------------------------------------------------------------------------

# What ends a command from outside: Ctrl-C, `kill` (SIGTERM, e.g. a CI job cancelled) and a closed terminal (SIGHUP).
INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def terminate_as_ctrl_c() -> Iterator[None]:
    """Inside the block SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, so that what the command
    cleans up on Ctrl-C (a temporary queue and its subscription, dead letters held back) is cleaned up on those
    too instead of the process dying on the spot. The previous handlers come back afterwards. Signal handlers can
    only be set from the main thread: elsewhere this does nothing."""
    if not _in_main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in INTERRUPT_SIGNALS
                if number != signal.SIGINT}
    try:
        yield
    finally:
        _restore(previous)


@contextmanager
def interrupts_deferred(note: str | None = None) -> Iterator[list[int]]:
    """Inside the block SIGINT, SIGTERM and SIGHUP are noted (and ``note`` printed), not acted on: for work that
    must not be cut in half. Yields the signals noted, for the caller to act on after the block. Main thread
    only (elsewhere nothing is deferred)."""
    noted: list[int] = []
    if not _in_main_thread():
        yield noted
        return

    def remember(signum: int, _frame: FrameType | None) -> None:
        noted.append(signum)
        if note:
            error_console().print(f"[yellow]{note}[/]")

    previous = {number: signal.signal(number, remember) for number in INTERRUPT_SIGNALS}
    try:
        yield noted
    finally:
        _restore(previous)


def _restore(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        # None: the handler was not installed from Python; the default is the closest there is.
        signal.signal(number, handler if handler is not None else signal.SIG_DFL)
