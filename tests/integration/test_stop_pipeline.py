"""The stop pipeline end to end: real handler, moto server as AWS, the Kore.ai simulator over loopback.

How we know every request ended: each test drains the results subscriber queue (what SNS delivered)
and the dead-letter queue, and asserts exactly what is in both.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, CREDENTIALS, STREAM_ID

from stop_campaign.service.processing import RetryLater
from stop_campaign.settings import ConfigurationError

EVENTS = Path(__file__).resolve().parents[2] / "events"
SMS_STOP_PATH = "/campaign/api/v2/public/st-1/campaign//trigger/{}"


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def by_campaign(results: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {result["campaignId"]: result for result in results}


# -- intake shapes ---------------------------------------------------------------------------------------


def test_sqs_stop_request_stops_the_campaign_and_publishes_one_result(invoke, stack, kore):
    assert invoke(event("sqs_stop_request.json")) == {"batchItemFailures": []}

    call = only(kore.stop_calls())
    assert call.path == SMS_STOP_PATH.format("cd-1")
    assert call.query == {"accountId": ACCOUNT_ID, "campaignType": "sms", "trigger": "stop"}
    assert (call.headers["iid"], call.headers["accountid"], call.headers["content-type"]) == (
        STREAM_ID, ACCOUNT_ID, "application/json"
    )
    assert call.body == {} and call.jwt_claims["appId"] == CLIENT_ID
    assert kore.campaign_status(STREAM_ID, "cd-1") == "Stopped"

    result = only(stack.drain_results())
    assert result["outcome"] == "stopped" and result["requestId"] == "req-2026-11-28-0001"
    assert result["api"] == {"httpStatus": 200, "status": "Stopped", "message": "Campaign Stopped",
                             "updatedAt": result["api"]["updatedAt"], "campaignExecutionType": "NORMAL"}
    assert (result["source"], result["reason"], result["requestedBy"], result["requestedAt"]) == (
        "sqs", "Complaint spike on short code 12345", "compliance-monitor", "2026-11-28T10:00:00Z"
    )
    assert result["timeToStopMs"] >= 0 and result["error"] is None
    assert stack.drain_dead_letters() == []


def test_result_message_attributes_let_subscribers_filter(invoke, stack):
    invoke(event("sqs_stop_request.json"))
    sqs = stack.client("sqs")
    # Read through a second, non-raw subscription to see the SNS envelope's attributes.
    queue_url = sqs.create_queue(QueueName="envelope-reader")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.client("sns").subscribe(TopicArn=stack.results_topic_arn, Protocol="sqs", Endpoint=arn)
    invoke(event("sqs_eventbridge_envelope.json"))
    envelope = json.loads(only(sqs.receive_message(QueueUrl=queue_url)["Messages"])["Body"])
    attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
    result = json.loads(envelope["Message"])
    assert attributes == {
        "eventType": "result", "outcome": "stopped", "campaignType": "sms", "streamId": STREAM_ID,
        "resultId": result["resultId"], "requestId": result["requestId"],  # a waiting client filters on these
    }


def test_a_repeated_result_has_the_same_result_id_and_another_outcome_another(invoke, stack, kore, sqs):
    """SNS delivers at least once: a subscriber drops a copy by resultId, and never drops a different result."""
    from stop_campaign.domain.models import Outcome, ResultEvent, Source

    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "req-id-1"}))
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "req-id-2"}))  # already stopped now
    first, second = stack.drain_results()
    assert (first["outcome"], second["outcome"]) == ("stopped", "already_stopped")
    assert first["resultId"] != second["resultId"]
    copy = ResultEvent(
        outcome=Outcome(first["outcome"]), request_id=first["requestId"], source=Source.SQS,
        received_at="another delivery", completed_at="later", stream_id=first["streamId"],
        campaign_id=first["campaignId"], campaign_type=first["campaignType"], account_id=first["accountId"],
        attempts=3,
    )
    assert copy.as_message()["resultId"] == first["resultId"]  # a republished copy keeps its id


@pytest.mark.parametrize(
    ("event_file", "campaign_id", "request_id", "source"),
    [
        ("sqs_eventbridge_envelope.json", "cd-3", "7bf73129-1428-4cd3-a780-95db273d1602", "eventbridge"),
        ("sqs_sns_notification.json", "cd-4", "95df01b4-ee98-5cb9-9903-4c221d41eb5e", "sqs"),
    ],
)
def test_envelopes_inside_sqs(invoke, stack, kore, event_file, campaign_id, request_id, source):
    assert invoke(event(event_file)) == {"batchItemFailures": []}
    assert only(kore.stop_calls()).path == SMS_STOP_PATH.format(campaign_id)
    result = only(stack.drain_results())
    assert (result["outcome"], result["requestId"], result["source"]) == ("stopped", request_id, source)


def test_eventbridge_event_invoked_directly(invoke, stack, kore):
    response = invoke(event("eventbridge_stop_request.json"))
    assert only(response["results"])["outcome"] == "stopped"
    result = only(stack.drain_results())
    assert (result["campaignId"], result["source"], result["requestId"]) == (
        "cd-5", "eventbridge", "8c084239-2539-4de4-b891-a6ec384e2703"
    )


def test_direct_invocation_returns_the_results(invoke, stack, kore):
    response = invoke(event("direct_stop_request.json"))
    assert sorted(r["campaignId"] for r in response["results"]) == ["cd-1", "cd-2"]
    assert {r["outcome"] for r in stack.drain_results()} == {"stopped"}
    assert len(kore.stop_calls()) == 2


def test_fifo_queue_events_are_processed_in_order(invoke, stack, kore, sqs):
    fifo = sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}, {"streamId": STREAM_ID, "campaignId": "cd-2"})
    for record in fifo["Records"]:
        record["eventSourceARN"] = stack.stop_queue_arn + ".fifo"
        record["attributes"]["MessageGroupId"] = "g1"
    assert invoke(fifo) == {"batchItemFailures": []}
    assert [call.path for call in kore.stop_calls()] == [SMS_STOP_PATH.format("cd-1"), SMS_STOP_PATH.format("cd-2")]


# -- outcomes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ok", "error"])
def test_already_stopped_campaign_in_both_api_variants(invoke, stack, kore, sqs, mode):
    kore.already_stopped_mode = mode
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-done", "requestId": "r-1"}))
    result = only(stack.drain_results())
    assert result["outcome"] == "already_stopped" and result["error"] is None
    if mode == "error":  # 4xx: the status call decided
        assert result["api"]["httpStatus"] == 400 and result["api"]["status"] == "Completed"
        assert [r.kind for r in kore.requests] == ["stop_sms", "status"]
    else:  # 2xx that says so
        assert result["api"]["httpStatus"] == 200
        assert [r.kind for r in kore.requests] == ["stop_sms"]
    assert stack.drain_dead_letters() == []


def test_stopping_twice_under_different_request_ids_is_already_stopped(invoke, stack, kore, sqs):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "first"}))
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "second"}))
    outcomes = [(r["requestId"], r["outcome"]) for r in stack.drain_results()]
    assert sorted(outcomes) == [("first", "stopped"), ("second", "already_stopped")]


def test_unknown_campaign_fails_and_goes_to_the_dead_letter_queue(invoke, stack, kore, sqs):
    body = {"streamId": STREAM_ID, "campaignId": "cd-missing", "requestId": "r-unknown"}
    request = sqs(body)
    assert invoke(request) == {"batchItemFailures": []}  # handled: not retried
    result = only(stack.drain_results())
    assert result["outcome"] == "failed"
    assert result["error"] == {"code": "stop_refused", "retryable": False,
                               "message": "Kore.ai API answered HTTP 404: Campaign not found"}
    dead = only(stack.drain_dead_letters())
    assert json.loads(dead["Body"]) == body
    assert {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()} == {
        "errorCode": "stop_refused", "errorMessage": "Kore.ai API answered HTTP 404: Campaign not found",
        "requestId": "r-unknown", "source": "sqs", "retryable": "false",
        # when it was first sent: a redrive judges its age from this (see test_request_expiry.py)
        "originalSentTimestamp": request["Records"][0]["attributes"]["SentTimestamp"],
    }


def test_a_server_error_goes_back_to_the_queue_without_a_result(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "2")
    kore.inject(kind="stop_sms", status=503, times=10)
    request = sqs({"streamId": STREAM_ID, "campaignId": "cd-1"})
    response = invoke(request)
    assert response == {"batchItemFailures": [{"itemIdentifier": request["Records"][0]["messageId"]}]}
    assert len(kore.stop_calls()) == 3  # first try + 2 retries
    assert stack.drain_results() == [] and stack.drain_dead_letters() == []


def test_the_final_attempt_publishes_failed_and_dead_letters_with_the_reason(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "1")
    kore.inject(kind="stop_sms", status=503, times=10)
    body = {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "r-final"}
    response = invoke(sqs(body, receive_count=stack.max_receive_count))
    assert response == {"batchItemFailures": []}  # ended here: not left to the redrive policy
    result = only(stack.drain_results())
    assert (result["outcome"], result["attempts"], result["error"]["retryable"]) == ("failed", 5, True)
    assert result["error"]["code"] == "api_unavailable"
    assert result["error"]["message"].endswith("(gave up after 5 attempts)")
    dead = only(stack.drain_dead_letters())
    assert json.loads(dead["Body"]) == body
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert (attributes["errorCode"], attributes["retryable"], attributes["requestId"]) == (
        "api_unavailable", "true", "r-final"
    )


def test_the_final_attempt_of_an_alarm_whose_map_cannot_be_read(invoke, stack, kore, sqs):
    stack.client("ssm").delete_parameter(Name=stack.alarm_parameter)
    alarm = json.loads((EVENTS / "sqs_sns_alarm_notification.json").read_text())
    alarm["Records"][0]["attributes"]["ApproximateReceiveCount"] = "1"
    assert len(invoke(alarm)["batchItemFailures"]) == 1  # may still be readable later
    alarm["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(stack.max_receive_count)
    assert invoke(alarm) == {"batchItemFailures": []}
    result = only(stack.drain_results())
    assert (result["outcome"], result["error"]["code"]) == ("failed", "alarm_map_unavailable")
    assert only(stack.drain_dead_letters())["MessageAttributes"]["errorCode"]["StringValue"] == "alarm_map_unavailable"
    assert kore.requests == []


def test_api_that_fails_twice_then_recovers(invoke, stack, kore, sqs):
    kore.inject(kind="stop_sms", status=502, times=2)
    assert invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-2"})) == {"batchItemFailures": []}
    assert [call.status for call in kore.stop_calls()] == [502, 502, 200]
    jtis = {call.jwt_claims["jti"] for call in kore.stop_calls() if call.jwt_claims}
    assert len(jtis) == 1  # the two 502s came from the gateway, before the token was read
    assert only(stack.drain_results())["outcome"] == "stopped"


def test_dropped_connections_and_timeouts_are_retried(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("HTTP_READ_TIMEOUT_SECONDS", "0.3")
    kore.inject(kind="stop_sms", drop=True, times=1)
    kore.inject(kind="stop_sms", delay=1.0, times=1)
    assert invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-3"})) == {"batchItemFailures": []}
    assert len(kore.stop_calls()) == 3
    assert kore.campaign_status(STREAM_ID, "cd-3") == "Stopped"
    # The slow attempt did stop it before we gave up on its answer, so the retry finds it stopped.
    assert only(stack.drain_results())["outcome"] == "already_stopped"


def test_rate_limit_answer_is_honoured_with_retry_after(invoke, stack, kore, sqs):
    kore.inject(kind="stop_sms", status=429, retry_after=1, times=1)
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))
    first, second = kore.stop_calls()
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0  # waited as long as the API asked
    assert only(stack.drain_results())["outcome"] == "stopped"


def test_retry_after_longer_than_the_time_left_continues_later_without_using_an_attempt(invoke, stack, kore, sqs):
    kore.inject(kind="stop_sms", status=429, retry_after=8, times=1)
    request = sqs({"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "req-429"})
    response = invoke(request, timeout_seconds=6)  # 8 s is past the last moment a call may start
    assert response["batchItemFailures"] == []  # not a failure: the message ends here, its rest continues
    assert len(kore.stop_calls()) == 1  # no waiting past the Lambda's own timeout
    assert stack.drain_results() == []  # nothing happened yet, so nothing is reported yet
    queue = stack.client("sqs")
    delayed = queue.get_queue_attributes(QueueUrl=stack.stop_queue_url,
                                         AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert delayed["ApproximateNumberOfMessagesDelayed"] == "1"  # back when the platform said it may be

    [message] = _receive_when_visible(stack)
    body = json.loads(message["Body"])
    assert body["request"]["campaignIds"] == ["cd-1"] and body["request"]["requestId"] == "req-429"
    assert body["continuation"]["segment"] == 2
    assert message["MessageAttributes"]["requestId"]["StringValue"] == "req-429"
    second = invoke(sqs(message["Body"]))
    assert second["batchItemFailures"] == []
    [result] = stack.drain_results()
    assert (result["outcome"], result["requestId"], result["attempts"]) == ("stopped", "req-429", 1)
    assert [call.status for call in kore.stop_calls()] == [429, 200]


def test_401_then_rotation_reads_the_secret_once_more_and_stops(invoke, stack, kore, sqs):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))  # warm: the old secret is cached
    rotated = "rotated-client-secret-0123456789abcdef0123"
    kore.add_app(client_id="cs-rotated", client_secret=rotated, account_id=ACCOUNT_ID)
    stack.put_secret({**CREDENTIALS, "clientId": "cs-rotated", "clientSecret": rotated})
    kore.inject(kind="stop_sms", status=401, times=1, body={"errors": [{"msg": "Invalid JWT token", "code": 4002}]})
    kore.reset_log()
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-2"}))
    assert [call.status for call in kore.stop_calls()] == [401, 200]
    assert kore.stop_calls()[1].jwt_claims["appId"] == "cs-rotated"
    assert [r["outcome"] for r in stack.drain_results()] == ["stopped", "stopped"]


def test_401_after_the_re_read_is_a_permanent_failure(invoke, stack, kore, sqs):
    stack.put_secret({**CREDENTIALS, "clientSecret": "wrong-secret-0123456789abcdef0123456"})
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))
    assert [call.status for call in kore.stop_calls()] == [401, 401]
    result = only(stack.drain_results())
    assert (result["outcome"], result["error"]["code"]) == ("failed", "unauthorized")
    assert only(stack.drain_dead_letters())["MessageAttributes"]["errorCode"]["StringValue"] == "unauthorized"


def test_a_stream_without_credentials_is_rejected_without_a_call(invoke, stack, kore, sqs):
    stack.put_secret({"streams": {"st-other": CREDENTIALS}})
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))
    result = only(stack.drain_results())
    assert (result["outcome"], result["error"]["code"], result["campaignId"]) == (
        "rejected", "missing_credentials", "cd-1"
    )
    assert kore.requests == []
    assert len(stack.drain_dead_letters()) == 1


def test_a_request_for_another_account_is_rejected(invoke, stack, kore, sqs):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1", "accountId": "acc-somebody-else"}))
    assert only(stack.drain_results())["error"]["code"] == "account_mismatch"
    assert kore.requests == []


# -- duplicates and idempotency --------------------------------------------------------------------------


def test_a_duplicate_delivery_makes_no_second_call_and_no_second_result(invoke, stack, kore, sqs):
    body = {"streamId": STREAM_ID, "campaignId": "cd-1"}
    invoke(sqs(body, message_ids=["same-message"]))
    invoke(sqs(body, message_ids=["same-message"], receive_count=2))
    assert len(kore.stop_calls()) == 1
    assert len(stack.drain_results()) == 1


def test_a_duplicate_in_a_new_container_is_still_caught_by_dynamodb(invoke, cold_start, stack, kore):
    invoke(event("sqs_stop_request.json"))
    cold_start()
    invoke(event("sqs_stop_request.json"))
    assert len(kore.stop_calls()) == 1 and len(stack.drain_results()) == 1


def test_a_result_that_could_not_be_published_is_retried_without_a_second_stop(invoke, stack, kore, sqs):
    sns = stack.client("sns")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=stack.results_topic_arn)["Subscriptions"]
    sns.delete_topic(TopicArn=stack.results_topic_arn)
    request = sqs({"streamId": STREAM_ID, "campaignId": "cd-1"})
    assert len(invoke(request)["batchItemFailures"]) == 1  # back to the queue: the result is not lost

    sns.create_topic(Name=stack.results_topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=stack.results_topic_arn, Protocol="sqs", Endpoint=subscriptions[0]["Endpoint"],
                  Attributes={"RawMessageDelivery": "true"})
    request["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    assert invoke(request) == {"batchItemFailures": []}
    assert len(kore.stop_calls()) == 1
    assert only(stack.drain_results())["outcome"] == "stopped"


def test_a_redriven_failure_is_tried_again_once_the_cause_is_fixed(invoke, stack, kore, sqs):
    body = {"streamId": STREAM_ID, "campaignId": "cd-late", "requestId": "r-redrive"}
    invoke(sqs(body))
    assert only(stack.drain_results())["outcome"] == "failed"
    kore.add_campaign(STREAM_ID, "cd-late", campaign_type="sms", status="Active")  # the cause, fixed
    dead = only(stack.drain_dead_letters())
    invoke(sqs(json.loads(dead["Body"])))
    assert only(stack.drain_results())["outcome"] == "stopped"


# -- bad input -------------------------------------------------------------------------------------------


def test_a_batch_mixing_good_and_bad_records(invoke, stack, kore):
    batch = event("sqs_batch_mixed.json")
    assert invoke(batch) == {"batchItemFailures": []}  # bad records are answered, not retried
    assert only(kore.stop_calls()).path == SMS_STOP_PATH.format("cd-2")
    results = {r["requestId"]: r for r in stack.drain_results()}
    good, not_json, bad_id = (record["messageId"] for record in batch["Records"])
    assert results[good]["outcome"] == "stopped"
    assert results[not_json]["error"]["message"] == "message body is not valid JSON"
    assert results[bad_id]["outcome"] == "rejected"
    assert "request.campaignId must match pattern" in results[bad_id]["error"]["message"]
    assert results[bad_id]["campaignId"] is None and results[bad_id]["streamId"] == STREAM_ID
    dead = {m["MessageAttributes"]["requestId"]["StringValue"]: m for m in stack.drain_dead_letters()}
    assert set(dead) == {not_json, bad_id}
    assert dead[not_json]["Body"] == "this is not JSON"  # the original, as it came


def test_a_duplicate_of_a_rejected_message_publishes_no_second_result(invoke, stack, sqs):
    request = sqs("not json at all", message_ids=["bad-1"])
    invoke(request)
    invoke(request)
    assert len(stack.drain_results()) == 1


def test_http_base_url_off_loopback_is_refused_before_any_call(invoke, kore, sqs, monkeypatch):
    monkeypatch.setenv("KORE_BASE_URL", "http://platform.kore.ai")
    with pytest.raises(ConfigurationError, match="https"):
        invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))
    assert kore.requests == []


# -- concurrency and warm containers ---------------------------------------------------------------------


def test_a_batch_of_ten_is_stopped_concurrently(invoke, stack, kore, sqs):
    for number in range(10):
        kore.add_campaign(STREAM_ID, f"cd-batch-{number}", campaign_type="sms", status="Active")
    kore.latency = 0.5
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))  # warm up: secret and connection
    kore.reset_log()
    invoke(sqs(*({"streamId": STREAM_ID, "campaignId": f"cd-batch-{n}"} for n in range(10))))
    arrivals = sorted(call.at for call in kore.stop_calls())
    assert len(arrivals) == 10
    assert arrivals[-1] - arrivals[0] < 0.5  # every call was on the wire before the first answer came back
    assert {r["outcome"] for r in stack.drain_results()} == {"stopped"}


def test_a_warm_container_reads_no_secret_and_reuses_its_connection(invoke, stack, kore, sqs):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))
    stack.client("secretsmanager").delete_secret(SecretId=stack.secret_id, ForceDeleteWithoutRecovery=True)
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-2"}))  # would fail if the secret were read
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-3"}))
    assert [r["outcome"] for r in stack.drain_results()] == ["stopped"] * 3
    assert kore.connections_opened == 1


# -- secrets never leak ----------------------------------------------------------------------------------


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """Every line the service logs, formatted exactly as Lambda would ship it to CloudWatch."""
    service_logger = logging.getLogger("campaign-stop")
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(service_logger.handlers[0].formatter)
    service_logger.addHandler(handler)
    level = service_logger.level
    service_logger.setLevel(logging.DEBUG)  # the most the service would ever say
    yield lines
    service_logger.setLevel(level)
    service_logger.removeHandler(handler)


def test_no_log_line_result_or_dead_letter_carries_the_secret_or_a_token(
    invoke, stack, kore, sqs, capsys, service_log
):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))
    kore.inject(kind="stop_sms", status=401, times=2)
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-2"}))  # 401, re-read, 401: failed
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-missing"}))
    invoke(event("sqs_batch_mixed.json"))
    output = capsys.readouterr()
    published = json.dumps(stack.drain_results()) + json.dumps(stack.drain_dead_letters())
    tokens = {call.headers["auth"] for call in kore.requests if "auth" in call.headers}
    assert tokens and published
    for text in (service_log.getvalue(), output.out, output.err, published):
        assert CLIENT_SECRET not in text
        for token in tokens:
            assert token not in text
            assert token.split(".")[2] not in text  # not even the signature
    assert '"level":"ERROR"' in service_log.getvalue()  # the scan did see the failure logs
    assert '"CampaignsStopped"' in output.out  # and the metrics


def test_tokens_sent_are_signed_with_the_secret_and_short_lived(invoke, kore, sqs):
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))
    token = only(kore.stop_calls()).headers["auth"]
    claims = jwt.decode(token, CLIENT_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] <= 3600 and claims["jti"]


def test_direct_eventbridge_transient_failure_raises_for_lambda_async_retry(invoke, stack, kore, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    kore.inject(kind="stop_sms", status=503, times=5)
    with pytest.raises(RetryLater, match="api_unavailable"):
        invoke(event("eventbridge_stop_request.json"))
    assert stack.drain_results() == []



# -- found in review -------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["1.5", "soon"])
def test_an_unusable_retry_after_falls_back_to_backoff(invoke, stack, kore, sqs, retry_after):
    kore.inject(kind="stop_sms", status=503, retry_after=retry_after, times=1)
    assert invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"})) == {"batchItemFailures": []}
    assert [call.status for call in kore.stop_calls()] == [503, 200]
    assert only(stack.drain_results())["outcome"] == "stopped"


@pytest.mark.parametrize("status", [408, 501, 520])
def test_every_server_error_is_worth_another_try(invoke, stack, kore, sqs, status):
    kore.inject(kind="stop_sms", status=status, times=1)
    invoke(sqs({"streamId": STREAM_ID, "campaignId": "cd-1"}))
    assert [call.status for call in kore.stop_calls()] == [status, 200]
    assert only(stack.drain_results())["outcome"] == "stopped"


def test_a_duplicate_still_in_flight_on_the_final_attempt_ends_quietly(invoke, stack, kore, sqs):
    kore.latency = 0.5
    body = {"streamId": STREAM_ID, "campaignId": "cd-1", "requestId": "r-twice"}
    response = invoke(sqs(body, body, receive_count=stack.max_receive_count))
    assert response == {"batchItemFailures": []}
    assert len(kore.stop_calls()) == 1
    assert [r["outcome"] for r in stack.drain_results()] == ["stopped"]
    assert stack.drain_dead_letters() == []  # the copy that held the stop reported it


def test_the_same_campaign_twice_in_one_message_is_one_stop(invoke, stack, kore):
    stack.put_alarm_map({"checkout-sms-error-rate": [
        {"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2"]}, {"streamId": STREAM_ID, "campaignId": "cd-1"},
    ]})
    response = invoke(json.loads((EVENTS / "eventbridge_alarm_state_change.json").read_text()))
    assert sorted(r["campaignId"] for r in response["results"]) == ["cd-1", "cd-2"]
    assert len(kore.stop_calls()) == 2


def test_a_stop_all_redelivered_publishes_nothing_new(invoke, stack, kore, sqs):
    request = sqs({"streamId": STREAM_ID, "campaigns": "all-active", "requestId": "all-1"}, message_ids=["m-1"])
    invoke(request)
    assert len(stack.drain_results()) == 5
    invoke(request)  # a duplicate delivery: the campaigns are no longer active, but this is the same request
    assert stack.drain_results() == []
    assert [call.kind for call in kore.requests].count("list") == 1


def test_a_stop_all_campaign_that_stopped_during_a_timeout_still_gets_its_result(invoke, stack, kore, sqs, monkeypatch):
    monkeypatch.setenv("HTTP_READ_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    kore.inject(kind="stop_sms", campaign_id="cd-3", delay=1.0, times=1)  # stops it, answers too late
    request = sqs({"streamId": STREAM_ID, "campaigns": "all-active", "requestId": "all-2"})
    assert len(invoke(request)["batchItemFailures"]) == 1
    assert kore.campaign_status(STREAM_ID, "cd-3") == "Stopped"
    request["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    assert invoke(request) == {"batchItemFailures": []}
    results = by_campaign(stack.drain_results())
    assert set(results) == {"cd-1", "cd-2", "cd-3", "cd-4", "cd-5"}
    assert results["cd-3"]["outcome"] == "already_stopped"


def test_an_alarm_that_gives_up_reports_as_the_alarm(invoke, stack, kore):
    stack.client("ssm").delete_parameter(Name=stack.alarm_parameter)
    alarm = json.loads((EVENTS / "sqs_sns_alarm_notification.json").read_text())
    alarm["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(stack.max_receive_count)
    invoke(alarm)
    result = only(stack.drain_results())
    assert (result["source"], result["requestId"]) == (
        "alarm", "alarm:sms-stop-keyword-storm:2026-11-28T10:06:00.000+0000"
    )
    assert result["alarmArn"].endswith(":alarm:sms-stop-keyword-storm")


def _receive_when_visible(stack, seconds: float = 15) -> list[dict]:
    queue = stack.client("sqs")
    deadline = time.time() + seconds
    while time.time() < deadline:
        messages = queue.receive_message(QueueUrl=stack.stop_queue_url, MaxNumberOfMessages=10,
                                         MessageAttributeNames=["All"], WaitTimeSeconds=1).get("Messages", [])
        if messages:
            return messages
    raise AssertionError("the continuation never became visible")


def test_a_campaign_never_gets_two_outcomes_when_its_neighbour_is_retried(invoke, stack, kore, sqs, monkeypatch):
    """A permanent failure is decided again with the rest of its message rather than reported while the message
    is still retried: its `failed` comes once, when final, and always with the dead letter."""
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    kore.inject(kind="stop_sms", campaign_id="cd-1", status=503, times=1)
    body = {"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-unknown"], "requestId": "req-mixed"}

    first = invoke(sqs(body, message_ids=["m-mixed"]))
    assert [item["itemIdentifier"] for item in first["batchItemFailures"]] == ["m-mixed"]
    assert stack.drain_results() == [] and stack.drain_dead_letters() == []  # nothing final yet

    second = invoke(sqs(body, message_ids=["m-mixed"], receive_count=2))
    assert second["batchItemFailures"] == []
    results = stack.drain_results()
    assert sorted((r["campaignId"], r["outcome"]) for r in results) == [("cd-1", "stopped"), ("cd-unknown", "failed")]
    [letter] = stack.drain_dead_letters()
    assert letter["MessageAttributes"]["errorCode"]["StringValue"] == "stop_refused"
    [summary] = stack.drain_summaries()
    assert summary["outcomes"] == {"stopped": 1, "failed": 1} and summary["invocations"] == 2
