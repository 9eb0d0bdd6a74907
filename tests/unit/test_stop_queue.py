"""Continuations on a FIFO stop queue (moto in-process, no sockets): one per request and segment, whatever
else shares the request id."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from stop_campaign.adapters.stop_queue import StopQueue
from stop_campaign.domain.models import CampaignType, Continuation, Progress, Source, StopRequest


@pytest.fixture
def fifo_queue(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="stop.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        yield sqs, url


def rest_of(stream_id: str) -> Continuation:
    request = StopRequest(stream_id=stream_id, campaign_type=CampaignType.SMS, request_id="alarm:a:t",
                          source=Source.ALARM, received_at="2026-11-28T10:00:00.000Z", campaign_ids=("cd-1",))
    return Continuation(request, Progress(segment=2))


def test_an_alarm_over_two_streams_continues_both_on_a_fifo_queue(fifo_queue):
    sqs, url = fifo_queue
    queue = StopQueue(url, lambda: sqs)
    queue.continue_later(rest_of("st-a"), 5)
    queue.continue_later(rest_of("st-b"), 5)
    queue.continue_later(rest_of("st-a"), 5)  # a repeat of the first is one message
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 2
