"""Faults everywhere at once: the API, SNS, DynamoDB and SQS fail now and then, and every message comes twice.

How we know nothing is lost: every request id has exactly one result on the results topic, and the
simulator's log shows exactly one stop call per campaign after its first confirmed stop (none).
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from conftest import STREAM_ID

from devtools.aws_faults import FaultyAwsProxy
from devtools.lambda_runtime import LocalLambdaContext
from devtools.poller import SqsEventSourceMapping
from stop_campaign import app


@pytest.fixture
def faulty_aws(moto_server, function_env, monkeypatch):
    with FaultyAwsProxy(moto_server.endpoint_url, fault_rate=0.2, seed=11) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)  # the function's view of AWS only
        yield proxy


def test_nothing_is_lost_and_nothing_is_stopped_twice(faulty_aws, cold_start, stack, kore, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "1")
    campaigns = [f"cd-fault-{n}" for n in range(10)]
    for campaign_id in campaigns:
        kore.add_campaign(STREAM_ID, campaign_id, campaign_type="sms", status="Active")
    kore.inject(kind="stop_sms", status=503, times=4)
    kore.inject(kind="stop_sms", drop=True, times=2)
    kore.inject(kind="stop_sms", status=429, retry_after=1, times=2)
    sqs = stack.client("sqs")  # producers reach AWS without faults
    for number, campaign_id in enumerate(campaigns):
        body = json.dumps({"streamId": STREAM_ID, "campaignId": campaign_id, "requestId": f"req-{number}"})
        sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody=body)
        sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody=body)  # a duplicate delivery

    # Retried only after the invocation's time is up, as with the deployed visibility timeout.
    # 6 s: room for calls after the 3 s the function keeps for what follows its last API call.
    mapping = SqsEventSourceMapping(stack, handler=app.lambda_handler, retry_delay_seconds=7,
                                    function_timeout_seconds=6)
    mapping.poll_until_empty(max_seconds=120)

    assert sum(faulty_aws.injected.values()) > 0  # the faults did happen
    results = stack.drain_results()
    assert Counter(r["requestId"] for r in results) == {f"req-{n}": 1 for n in range(10)}
    assert {r["outcome"] for r in results} == {"stopped"}
    first_confirmed: dict[str, float] = {}
    for call in sorted(kore.stop_calls(), key=lambda c: c.at):
        campaign_id = call.path.rsplit("/", 1)[1]
        assert campaign_id not in first_confirmed, f"{campaign_id} was stopped again"
        if call.status == 200:
            first_confirmed[campaign_id] = call.at
    assert set(first_confirmed) == set(campaigns)
    assert stack.drain_dead_letters() == []


def test_a_stop_whose_record_could_not_be_completed_has_one_outcome(
    moto_server, function_env, cold_start, stack, kore, sqs, monkeypatch
):
    # The stop is made, then the write that records its end fails past botocore's retries (one retry here; in
    # production also an exhausted retry quota, which retries nothing). Both copies of the request must agree.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries.max_attempts: retries after the first
    request = {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "unrecorded-1"}
    first, duplicate = sqs(request), sqs(request)  # two copies of one request: two SQS messages
    with FaultyAwsProxy(moto_server.endpoint_url, fault_rate=1.0, operations=frozenset({"UpdateItem"}),
                        body_contains=b'"S": "stop#', times=2) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        # 10 s: on a busy machine a cold start with 5 s could already hand the stop over (nothing to inject then)
        started = time.monotonic()
        answer = app.lambda_handler(first, LocalLambdaContext(timeout_seconds=10))
        assert proxy.injected == {"UpdateItem": 2}  # the stop's completion, and nothing else
        # the copy comes after the first invocation's in-progress record has expired (its time left at the start)
        time.sleep(max(0.0, started + 10.2 - time.monotonic()))
        again = app.lambda_handler(duplicate, LocalLambdaContext(timeout_seconds=30))
    assert answer["batchItemFailures"] == [] and again["batchItemFailures"] == []
    results = stack.drain_results()
    assert [(result["requestId"], result["outcome"]) for result in results] == [("unrecorded-1", "stopped")]
    assert stack.drain_dead_letters() == []
