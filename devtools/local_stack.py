"""AWS on loopback: moto's ThreadedMotoServer with the resources template.yaml declares, for tests and the demo."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import boto3
import fastjsonschema
import urllib3

from devtools.template_loader import load_template, local_stack_settings, substitute
from stop_campaign.settings import NO_AGE_LIMIT_SECONDS

REGION = "us-east-1"
# The function's role id on the local stack (the template sets FUNCTION_ROLE_ID from its role's RoleId): the SQS
# SenderId that marks a message the function (or Lambda on its behalf) sent. moto reports one SenderId for every
# message, so tests that need it build their records with it.
LOCAL_FUNCTION_ROLE_ID = "AROALOCALSTOPFUNCTION00"
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # devtools/ importable from a -c child
FAKE_AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def _serialized_dynamodb_server(port: int = 0) -> Any:
    """moto's threaded server, with DynamoDB requests taken one at a time. moto's DynamoDB backend holds no lock:
    two simultaneous conditional writes can both succeed, or one can be answered with the other's item, which
    real DynamoDB never does (its conditional writes are atomic). Other services stay concurrent (SQS long polls
    must not block the rest)."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # dev-only dependency
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    dynamodb = threading.Lock()
    dispatcher = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            with dynamodb:
                return list(dispatcher(environ, start_response))
        return dispatcher(environ, start_response)

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:  # moto's own, with the app wrapped
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return Server(ip_address="127.0.0.1", port=port, verbose=False)


def serve_serialized(port: int) -> None:
    """Run the serialized-DynamoDB server on 127.0.0.1:``port`` until killed (MotoServer's separate process)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = _serialized_dynamodb_server(port)
    server.start()
    threading.Event().wait()


class MotoServer:
    """moto's server on 127.0.0.1 and a free port; ``reset()`` empties every service between tests.

    In-process (a thread) by default. ``separate_process=True`` runs it as its own process, as AWS is:
    benchmarks use that, so moto's own CPU work does not compete with the handler for the GIL. In-process, DynamoDB
    requests are taken one at a time (conditional writes atomic, as DynamoDB's are); a separate process runs
    moto's plain server unless ``serialize_dynamodb=True`` (what several containers as processes need: their
    conditional writes on one item really do meet).
    """

    def __init__(self, separate_process: bool = False, *, serialize_dynamodb: bool = False) -> None:
        self._separate_process = separate_process
        self._serialize_dynamodb = serialize_dynamodb
        self._server: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""

    def start(self) -> MotoServer:
        if self._separate_process:
            port = _free_port()
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
            if self._serialize_dynamodb:
                command = [sys.executable, "-c", f"from devtools.local_stack import serve_serialized; "
                           f"serve_serialized({port})"]
            self._process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=_REPO_ROOT,
            )
            self.endpoint_url = f"http://127.0.0.1:{port}"
            _wait_until_up(self.endpoint_url)
            return self
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call otherwise
        self._server = _serialized_dynamodb_server()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        elif self._server is not None:
            self._server.stop()

    def reset(self) -> None:
        urllib3.request("POST", f"{self.endpoint_url}/moto-api/reset")

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(endpoint_url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib3.request("GET", f"{endpoint_url}/moto-api/", retries=False, timeout=1.0)
            return
        except urllib3.exceptions.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not start at {endpoint_url}")


@dataclass
class LocalStack:
    endpoint_url: str
    stop_queue_url: str
    stop_queue_arn: str
    dead_letter_queue_url: str
    results_topic_arn: str
    results_queue_url: str  # subscribed to the results topic (raw delivery), so results can be read back
    table_name: str
    history_table_name: str
    secret_id: str
    alarm_parameter: str
    bus_name: str
    max_receive_count: int
    visibility_timeout: int
    events_queue_url: str = ""  # the stop bus's own queue (only its rule sends to it)
    events_queue_arn: str = ""
    producer_policy_parameter: str = ""
    holds_table_name: str = ""
    account_id: str = "123456789012"
    _results: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _summaries: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION, **_boto_credentials())

    def function_environment(self, kore_base_url: str, **overrides: str) -> dict[str, str]:
        """The variables template.yaml sets on the function, pointing at this stack."""
        return {
            **FAKE_AWS_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "KORE_BASE_URL": kore_base_url,
            "CREDENTIALS_SECRET_ID": self.secret_id,
            "RESULTS_TOPIC_ARN": self.results_topic_arn,
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
            "IDEMPOTENCY_TABLE_NAME": self.table_name,
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "ALARM_TARGETS_PARAMETER": self.alarm_parameter,
            "STOP_QUEUE_URL": self.stop_queue_url,
            "REQUEST_HISTORY_TABLE": self.history_table_name,
            "HOLDS_TABLE": self.holds_table_name,
            "PRODUCER_POLICY_PARAMETER": self.producer_policy_parameter,
            "STOP_EVENTS_QUEUE_ARN": self.events_queue_arn,
            "FUNCTION_ROLE_ID": LOCAL_FUNCTION_ROLE_ID,
            "POWERTOOLS_SERVICE_NAME": "campaign-stop",
            "POWERTOOLS_METRICS_NAMESPACE": "CampaignStop",
            "POWERTOOLS_TRACE_DISABLED": "true",
            # The sample events (events/) carry fixed times: served however old they get. Expiry's tests set theirs.
            "MAX_REQUEST_AGE_SECONDS": str(NO_AGE_LIMIT_SECONDS),
            **overrides,
        }

    def put_secret(self, credentials: dict[str, Any]) -> None:
        self.client("secretsmanager").put_secret_value(SecretId=self.secret_id, SecretString=json.dumps(credentials))

    def put_alarm_map(self, alarm_map: dict[str, Any]) -> None:
        self.client("ssm").put_parameter(
            Name=self.alarm_parameter, Value=json.dumps(alarm_map), Type="String", Overwrite=True
        )

    def put_producer_policy(self, policy: dict[str, Any]) -> None:
        self.client("ssm").put_parameter(
            Name=self.producer_policy_parameter, Value=json.dumps(policy), Type="String", Overwrite=True
        )

    def drain_results(self) -> list[dict[str, Any]]:
        """Every result published so far (read and deleted from the subscriber queue); summary events read on
        the way are kept for ``drain_summaries``."""
        self._read_events()
        results, self._results = self._results, []
        return results

    def drain_summaries(self) -> list[dict[str, Any]]:
        """Every summary event published so far (one per multi-campaign request)."""
        self._read_events()
        summaries, self._summaries = self._summaries, []
        return summaries

    def _read_events(self) -> None:
        """Every event read back is checked against its published schema: a test or the demo that reads a
        result that breaks the contract fails right there."""
        for message in self._drain(self.results_queue_url):
            event = json.loads(message["Body"])
            is_summary = event.get("eventType") == "summary"
            _event_validator("summary_event_v1.json" if is_summary else "result_event_v1.json")(event)
            (self._summaries if is_summary else self._results).append(event)

    def drain_dead_letters(self) -> list[dict[str, Any]]:
        return self._drain(self.dead_letter_queue_url)

    def _drain(self, queue_url: str) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                AttributeNames=["All"], WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )


@cache
def _event_validator(schema_file: str) -> Callable[[dict[str, Any]], Any]:
    schema = files("stop_campaign").joinpath("schemas", schema_file).read_text()
    return fastjsonschema.compile(json.loads(schema))  # type: ignore[no-any-return]


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": FAKE_AWS_CREDENTIALS["AWS_SESSION_TOKEN"],
    }


def create_stack(endpoint_url: str, prefix: str = "campaign-stop") -> LocalStack:
    """Create the template's resources on moto with the template's settings; names are `<prefix>-<LogicalId>`,
    as CloudFormation would name them (without its random suffix)."""
    settings = local_stack_settings(load_template())
    session = {"endpoint_url": endpoint_url, "region_name": REGION, **_boto_credentials()}
    sqs = boto3.client("sqs", **session)
    sns = boto3.client("sns", **session)

    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}-{settings['dead_letter_queue_logical_id']}",
        Attributes={"MessageRetentionPeriod": str(settings["dead_letter_queue_retention_seconds"])},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    max_receive_count = int(settings["max_receive_count"])
    visibility_timeout = int(settings["stop_queue_visibility_timeout_seconds"])
    stop_queue_url = sqs.create_queue(
        QueueName=f"{prefix}-{settings['stop_queue_logical_id']}",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
        },
    )["QueueUrl"]
    stop_queue_arn = sqs.get_queue_attributes(QueueUrl=stop_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events_queue_url = sqs.create_queue(
        QueueName=f"{prefix}-{settings['events_queue_logical_id']}",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
        },
    )["QueueUrl"]
    events_queue_arn = sqs.get_queue_attributes(QueueUrl=events_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    account_id = stop_queue_arn.split(":")[4]

    topic_arn = sns.create_topic(Name=f"{prefix}-{settings['results_topic_logical_id']}")["TopicArn"]
    results_queue_url = sqs.create_queue(QueueName=f"{prefix}-results-subscriber")["QueueUrl"]
    results_queue_arn = sqs.get_queue_attributes(QueueUrl=results_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=results_queue_arn, Attributes={"RawMessageDelivery": "true"}
    )

    table_name = f"{prefix}-{settings['idempotency_table_logical_id']}"
    partition_key = settings["idempotency_partition_key"]
    dynamodb = boto3.client("dynamodb", **session)
    dynamodb.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": partition_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": partition_key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": settings["ttl_attribute"]},
    )

    history_table_name = _create_history_table(dynamodb, prefix, settings)
    holds_table_name = _create_table(dynamodb, prefix, settings, "holds")

    secret_id = f"{prefix}/kore-credentials"
    boto3.client("secretsmanager", **session).create_secret(Name=secret_id, SecretString="{}")
    alarm_parameter = settings["environment"]["ALARM_TARGETS_PARAMETER"] or f"/{prefix}/alarm-targets"
    boto3.client("ssm", **session).put_parameter(Name=alarm_parameter, Value="{}", Type="String")
    policy_parameter = settings["producer_policy_parameter"] or f"/{prefix}/producer-policy"
    policy_value = substitute(settings["producer_policy_value"],
                              {"AWS::AccountId": account_id, "AWS::Region": REGION, "AWS::Partition": "aws"})
    boto3.client("ssm", **session).put_parameter(Name=policy_parameter, Value=policy_value, Type="String")

    bus_name = f"{prefix}-{settings['stop_bus_logical_id']}"
    events = boto3.client("events", **session)
    events.create_event_bus(Name=bus_name)
    events.put_rule(
        Name=f"{prefix}-StopRequestsToQueue", EventBusName=bus_name,
        EventPattern=json.dumps({"detail-type": settings["stop_request_detail_types"]}),
    )
    queue_arns = {settings["stop_queue_logical_id"]: stop_queue_arn,
                  settings["events_queue_logical_id"]: events_queue_arn}
    events.put_targets(
        Rule=f"{prefix}-StopRequestsToQueue", EventBusName=bus_name,
        Targets=[{"Id": target, "Arn": queue_arns[target]} for target in settings["stop_rule_target_logical_ids"]],
    )
    return LocalStack(
        endpoint_url=endpoint_url, stop_queue_url=stop_queue_url, stop_queue_arn=stop_queue_arn,
        dead_letter_queue_url=dlq_url, results_topic_arn=topic_arn, results_queue_url=results_queue_url,
        table_name=table_name, history_table_name=history_table_name,
        secret_id=secret_id, alarm_parameter=alarm_parameter, bus_name=bus_name,
        max_receive_count=max_receive_count, visibility_timeout=visibility_timeout,
        events_queue_url=events_queue_url, events_queue_arn=events_queue_arn,
        producer_policy_parameter=policy_parameter, account_id=account_id, holds_table_name=holds_table_name,
    )


def _create_history_table(dynamodb: Any, prefix: str, settings: dict[str, Any]) -> str:
    """The request history table as template.yaml declares it (keys, the "recent" index, TTL); "" without one."""
    return _create_table(dynamodb, prefix, settings, "history")


def _create_table(dynamodb: Any, prefix: str, settings: dict[str, Any], kind: str) -> str:
    """The ``kind`` table (history, holds) as template.yaml declares it (keys, indexes, TTL); "" without one."""
    properties = settings[f"{kind}_table_properties"]
    if not properties:
        return ""
    name = f"{prefix}-{settings[f'{kind}_table_logical_id']}"
    indexes = [
        {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        for index in properties.get("GlobalSecondaryIndexes", [])
    ]
    dynamodb.create_table(
        TableName=name, KeySchema=properties["KeySchema"], AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST", **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]})
    return name


@contextmanager
def function_environment(env: dict[str, str]) -> Iterator[None]:
    """Set the function's variables for an in-process invocation, then put the old ones back."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
