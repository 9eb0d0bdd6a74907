"""Real parts over loopback: moto's server as AWS, the Kore.ai simulator as the API, the real handler."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.event_source import sqs_event, sqs_record
from devtools.kore_simulator import KoreSimulator
from devtools.lambda_runtime import LocalLambdaContext
from devtools.local_stack import LocalStack
from stop_campaign import app, settings

CLIENT_ID = "cs-test-app"
CLIENT_SECRET = "kore-client-secret-5f1e9c-0123456789abcdef"  # the test scans logs and results for this value
ACCOUNT_ID = "acc-1"
STREAM_ID = "st-1"
CREDENTIALS = {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "accountId": ACCOUNT_ID}

Invoke = Callable[..., Any]


@pytest.fixture
def kore_credentials() -> dict[str, str]:
    """The credentials secret's value and the simulator's app (tests/conftest.py: stack, kore)."""
    return CREDENTIALS


@pytest.fixture
def kore_campaigns() -> list[tuple[str, str, str, str]]:
    """The simulator's campaigns (stream, id, type, status): five active SMS, an active voice, a completed one."""
    active = [(STREAM_ID, f"cd-{number}", "sms", "Active") for number in range(1, 6)]
    return [*active, (STREAM_ID, "cd-voice-1", "voice", "Active"), (STREAM_ID, "cd-done", "sms", "Completed")]


@pytest.fixture
def function_env(stack: LocalStack, kore: KoreSimulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = stack.function_environment(kore.base_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def cold_start(function_env: dict[str, str]) -> Iterator[Callable[[], None]]:
    """A new Lambda container: nothing cached from an earlier test (clients, secret, pools)."""

    def reset() -> None:
        app.container.cache_clear()
        settings.get_settings.cache_clear()

    reset()
    yield reset
    reset()


@pytest.fixture
def invoke(cold_start: Callable[[], None]) -> Invoke:
    def call(event: dict[str, Any], timeout_seconds: float = 30.0) -> Any:
        return app.lambda_handler(event, LocalLambdaContext(timeout_seconds=timeout_seconds))

    return call


@pytest.fixture
def sqs(stack: LocalStack) -> Callable[..., dict[str, Any]]:
    """Build an SQS event for the stop queue from request bodies (dicts are JSON-encoded). ``sender_id``: the
    SenderId SQS reports (the default is a sender the stack's default producer policy lets stop everything);
    ``queue_arn``: another queue's records (the stop bus's events queue)."""

    def build(*bodies: Any, receive_count: int = 1, message_ids: list[str] | None = None,
              sender_id: str | None = None, queue_arn: str | None = None) -> dict[str, Any]:
        records = []
        for index, body in enumerate(bodies):
            text = body if isinstance(body, str) else json.dumps(body)
            message_id = message_ids[index] if message_ids else None
            records.append(sqs_record(text, queue_arn or stack.stop_queue_arn, message_id=message_id,
                                      receive_count=receive_count,
                                      **({"sender_id": sender_id} if sender_id else {})))
        return sqs_event(records)

    return build
