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
}


def test_defaults():
    settings = load_settings(dict(BASE))
    assert (settings.max_receive_count, settings.stop_concurrency, settings.jwt_ttl_seconds) == (5, 10, 300)


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
    ("name", "value"), [("MAX_RECEIVE_COUNT", "five"), ("STOP_CONCURRENCY", "0"), ("JWT_TTL_SECONDS", "7200")]
)
def test_numbers_out_of_range(name, value):
    with pytest.raises(ConfigurationError, match=name):
        load_settings({**BASE, name: value})
