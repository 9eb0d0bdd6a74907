"""Configuration: a wrong environment is a clear error before any call."""

from __future__ import annotations

import pytest

from stop_campaign.settings import REQUIRED_ENV_VARS, ConfigurationError, load_settings

BASE = {
    "KORE_BASE_URL": "https://platform.kore.ai",
    "CREDENTIALS_SECRET_ID": "campaign-stop/kore",
    "RESULTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:results",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "MAX_RECEIVE_COUNT": "5",
    "ALARM_TARGETS_PARAMETER": "/campaign-stop/alarm-targets",
    "STOP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/stop",
}


def test_defaults():
    settings = load_settings(dict(BASE))
    assert (settings.max_receive_count, settings.stop_concurrency, settings.jwt_ttl_seconds) == (5, 10, 300)
    # Kore.ai's documented budget, and AWS calls bounded well inside the deadline's margin
    assert (settings.kore_rate_limit.calls, settings.kore_rate_limit.period_seconds) == (60, 60.0)
    assert settings.aws_connect_timeout_seconds + settings.aws_read_timeout_seconds <= 3


@pytest.mark.parametrize(("text", "calls", "period"), [("20/5", 20, 5.0), ("600/60", 600, 60.0)])
def test_rate_limit(text, calls, period):
    limit = load_settings({**BASE, "KORE_RATE_LIMIT": text}).kore_rate_limit
    assert (limit.calls, limit.period_seconds) == (calls, period)


@pytest.mark.parametrize("text", ["60", "60/0", "0/60", "sixty/60", "60/60/60", "-1/60"])
def test_rate_limit_mistakes_are_named(text):
    with pytest.raises(ConfigurationError, match="KORE_RATE_LIMIT"):
        load_settings({**BASE, "KORE_RATE_LIMIT": text})


@pytest.mark.parametrize(
    "url",
    ["https://platform.kore.ai", "https://de-platform.kore.ai/", "http://127.0.0.1:8787", "http://localhost:1",
     "http://[::1]:8080", "http://127.10.0.3"],
)
def test_accepted_base_urls(url):
    assert load_settings({**BASE, "KORE_BASE_URL": url}).kore_base_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    ["http://platform.kore.ai", "http://10.0.0.1", "ftp://platform.kore.ai", "platform.kore.ai", "https://",
     "https://user:pw@platform.kore.ai", "https://platform.kore.ai/?x=1", "http://localhost.evil.example"],
)
def test_rejected_base_urls(url):
    with pytest.raises(ConfigurationError, match="KORE_BASE_URL"):
        load_settings({**BASE, "KORE_BASE_URL": url})


@pytest.mark.parametrize("name", REQUIRED_ENV_VARS)
def test_each_required_variable_is_named_when_missing(name):
    with pytest.raises(ConfigurationError, match=name):
        load_settings({key: value for key, value in BASE.items() if key != name})


@pytest.mark.parametrize(
    ("name", "value"), [("MAX_RECEIVE_COUNT", "five"), ("STOP_CONCURRENCY", "0"), ("JWT_TTL_SECONDS", "7200"),
     ("AWS_READ_TIMEOUT_SECONDS", "120"), ("AWS_MAX_ATTEMPTS", "0")]
)
def test_numbers_out_of_range(name, value):
    with pytest.raises(ConfigurationError, match=name):
        load_settings({**BASE, name: value})


def test_a_request_may_wait_for_the_budget_six_hours_by_default_never_longer_than_its_records_live():
    assert load_settings(dict(BASE)).max_wait_seconds == 21600
    with pytest.raises(ConfigurationError, match=r"MAX_WAIT_SECONDS .* must not exceed IDEMPOTENCY_TTL_SECONDS"):
        load_settings({**BASE, "MAX_WAIT_SECONDS": "7200", "IDEMPOTENCY_TTL_SECONDS": "3600"})
