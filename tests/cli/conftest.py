"""The CLI against the local stack: moto's server as AWS, the Kore.ai simulator, the real handler behind the
emulated SQS event source mapping (run in a thread while the CLI waits)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from campaign_stop_cli.common import RESOURCES, STACK_VARIABLE
from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import FAKE_AWS_CREDENTIALS, LocalStack
from devtools.poller import SqsEventSourceMapping
from stop_campaign import app, settings

CLIENT_ID = "cs-test-app"
CLIENT_SECRET = "kore-client-secret-cli-0123456789abcdef"
ACCOUNT_ID = "acc-1"
STREAM_ID = "st-1"
CREDENTIALS = {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "accountId": ACCOUNT_ID}
QUIET_FUNCTION = {"POWERTOOLS_LOG_LEVEL": "CRITICAL", "POWERTOOLS_METRICS_DISABLED": "true"}


@pytest.fixture(autouse=True)
def isolated_from_the_developers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the shell it runs in: no stack (CAMPAIGN_STOP_STACK=prod pytest tests/cli must pass), none of
    the CLI's resource variables, no AWS profile, and only fake credentials, so nothing can reach a real account.
    Autouse fixtures run first: cli_env and scheduler_env set what a test needs on top of this."""
    for name in (STACK_VARIABLE, *(item.variable for item in RESOURCES.values()), "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/campaign-stop-tests/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/campaign-stop-tests/credentials")
    # Typer adds and deletes this variable while it parses a command line; a test's publisher thread copying
    # os.environ at that moment (botocore does) raised KeyError. Set beforehand, Typer only ever rewrites it.
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "1")


@pytest.fixture
def kore_credentials() -> dict[str, str]:
    """The credentials secret's value and the simulator's app (tests/conftest.py: stack, kore)."""
    return CREDENTIALS


@pytest.fixture
def kore_campaigns() -> list[tuple[str, str, str, str]]:
    """The simulator's campaigns (stream, id, type, status): three active SMS campaigns and a completed one."""
    active = [(STREAM_ID, f"cd-{number}", "sms", "Active") for number in range(1, 4)]
    return [*active, (STREAM_ID, "cd-done", "sms", "Completed")]


@pytest.fixture
def cli_env(stack: LocalStack, kore: KoreSimulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The function's variables (the handler runs in this process) plus the CLI's: one environment serves both,
    as `make demo --keep-running`'s exports do."""
    env = {**stack.function_environment(kore.base_url, **QUIET_FUNCTION), "STOP_BUS_NAME": stack.bus_name}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    app.container.cache_clear()
    settings.get_settings.cache_clear()
    yield env
    app.container.cache_clear()
    settings.get_settings.cache_clear()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def function_running(stack: LocalStack, cli_env: dict[str, str]) -> Iterator[Callable[[], None]]:
    """The event source mappings of the stop queue and of the stop bus's events queue, polled in turn by one thread
    (one invocation at a time, as one container would) until the test ends."""
    stop = threading.Event()
    mappings = [SqsEventSourceMapping(stack),
                SqsEventSourceMapping(stack, queue_url=stack.events_queue_url, queue_arn=stack.events_queue_arn,
                                      max_receive_count=stack.max_receive_count)]

    def run() -> None:
        while not stop.is_set():
            for mapping in mappings:
                mapping.poll_once(wait_seconds=1)

    thread = threading.Thread(target=run, name="event-source-mapping", daemon=True)
    thread.start()
    yield stop.set
    stop.set()
    thread.join(timeout=10)


SCHEDULE_GROUP = "campaign-stop-quiet-hours"
SCHEDULER_ROLE = "campaign-stop-scheduler"


@pytest.fixture
def scheduler_env(stack: LocalStack, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What template.yaml adds for `schedule` and the local stack lacks: a schedule group and the role Scheduler
    assumes to send to the stop queue, created on moto's server; their names in the CLI's environment."""
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole",
    }]}
    iam = stack.client("iam")
    role_arn = iam.create_role(RoleName=SCHEDULER_ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=SCHEDULER_ROLE, PolicyName="send-stop-requests", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": stack.stop_queue_arn}],
    }))
    stack.client("scheduler").create_schedule_group(Name=SCHEDULE_GROUP)
    env = {"SCHEDULE_GROUP_NAME": SCHEDULE_GROUP, "SCHEDULER_ROLE_ARN": role_arn}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**cli_env, **env}


@pytest.fixture
def would_have_died() -> Iterator[list[int]]:
    """SIGTERM and SIGHUP end a process by default: the test process stands in for the CLI's and must survive, so
    these record the signal instead. A command that handles them itself replaces these while it runs; whatever
    this list holds afterwards would have killed the command on the spot (leaving what it had not cleaned up)."""
    received: list[int] = []
    previous = {number: signal.signal(number, lambda signum, _frame: received.append(signum))
                for number in (signal.SIGTERM, signal.SIGHUP)}
    yield received
    for number, handler in previous.items():
        signal.signal(number, handler)
