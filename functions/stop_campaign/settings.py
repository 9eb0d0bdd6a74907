"""Configuration, read from the environment once per container and validated before any call."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from urllib.parse import urlsplit

from stop_campaign.domain.readonly import readonly_dataclass
from stop_campaign.pacing.rate_schedule import RateLimit

# Names the deployed template must set; tests compare them with template.yaml.
REQUIRED_ENV_VARS: tuple[str, ...] = (
    "KORE_BASE_URL",
    "CREDENTIALS_SECRET_ID",
    "RESULTS_TOPIC_ARN",
    "DEAD_LETTER_QUEUE_URL",
    "IDEMPOTENCY_TABLE_NAME",
    "MAX_RECEIVE_COUNT",
    "ALARM_TARGETS_PARAMETER",
    "STOP_QUEUE_URL",
)
# Tuning knobs with safe defaults (name -> default as the environment would spell it).
OPTIONAL_ENV_VARS: dict[str, str] = {
    "STOP_CONCURRENCY": "10",
    "HTTP_CONNECT_TIMEOUT_SECONDS": "3",
    "HTTP_READ_TIMEOUT_SECONDS": "10",
    "HTTP_MAX_RETRIES": "6",
    "CREDENTIALS_CACHE_SECONDS": "300",
    "ALARM_TARGETS_CACHE_SECONDS": "60",
    "IDEMPOTENCY_TTL_SECONDS": "86400",
    "JWT_TTL_SECONDS": "300",
    "KORE_RATE_LIMIT": "60/60",  # per account, as Kore.ai documents it
    # A request still waiting for its account's budget this long after it arrived ends `failed` (waited_too_long);
    # at most the idempotency TTL, so a stop is never called twice because its record expired while it waited.
    "MAX_WAIT_SECONDS": "21600",
    # A request older than this when first served (from requestedAt, else when its message was first sent) is
    # rejected as expired: a message that waited days in a queue stops nothing started since.
    "MAX_REQUEST_AGE_SECONDS": "86400",
    # AWS calls (DynamoDB, SNS, SQS, Secrets Manager, SSM) must fit the deadline's margin (a few seconds), not
    # botocore's 60 s defaults: a slow call must not run the invocation into Lambda's timeout.
    "AWS_CONNECT_TIMEOUT_SECONDS": "1",
    "AWS_READ_TIMEOUT_SECONDS": "2",
    "AWS_MAX_ATTEMPTS": "4",
    # The request history table (DynamoDB; the template declares it): every request's per-campaign results, for
    # `campaign-stop results --request-id` and `campaign-stop history`. Empty: no history is kept.
    "REQUEST_HISTORY_TABLE": "",
    "REQUEST_HISTORY_DAYS": "90",  # how long the history keeps a request (the table's TTL)
    # The holds table (DynamoDB; the template declares it): alarm-map entries with hold: true keep their campaigns
    # stopped while the alarm stays in ALARM. Empty: no hold is kept (such an entry stops once).
    "HOLDS_TABLE": "",
    # How often the template's schedule sends {"action": "hold-check"}; names each check's time slot (a repeated
    # check in the same slot makes no second call). At least 60: schedules are minute-granular.
    "HOLD_CHECK_SECONDS": "60",
    # Who may stop what (domain/policy.py): the SSM parameter holding the producer policy; "" = no policy, every
    # producer may stop everything (the template always sets one).
    "PRODUCER_POLICY_PARAMETER": "",
    "PRODUCER_POLICY_CACHE_SECONDS": "60",
    # The stop bus's own queue: its records are from `events:<account>/<source>` (only the bus's rule may send).
    "STOP_EVENTS_QUEUE_ARN": "",
    # The function's role id (AROA...): SQS messages it sent (Lambda's on-failure records) keep their producer.
    "FUNCTION_ROLE_ID": "",
}
NO_AGE_LIMIT_SECONDS = 100 * 365 * 86400  # MAX_REQUEST_AGE_SECONDS's highest value: in effect, no limit
# The idempotency table's TTL attribute (Powertools' default name); the template must match it.
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"


class ConfigurationError(RuntimeError):
    """The function's environment is wrong; no request can be served until it is fixed."""


@readonly_dataclass
class Settings:
    kore_base_url: str
    credentials_secret_id: str
    results_topic_arn: str
    dead_letter_queue_url: str
    idempotency_table_name: str
    max_receive_count: int
    alarm_targets_parameter: str
    stop_queue_url: str
    kore_rate_limit: RateLimit
    stop_concurrency: int
    http_connect_timeout_seconds: float
    http_read_timeout_seconds: float
    http_max_retries: int
    credentials_cache_seconds: int
    alarm_targets_cache_seconds: int
    idempotency_ttl_seconds: int
    jwt_ttl_seconds: int
    aws_connect_timeout_seconds: float
    aws_read_timeout_seconds: float
    aws_max_attempts: int
    max_wait_seconds: int
    producer_policy_parameter: str = ""
    producer_policy_cache_seconds: int = 60
    stop_events_queue_arn: str = ""
    function_role_id: str = ""
    max_request_age_seconds: int = 86400
    request_history_table: str = ""
    request_history_days: int = 90
    holds_table: str = ""
    hold_check_seconds: int = 60


def _number(env: dict[str, str], name: str, kind: type[int] | type[float], low: float, high: float) -> float:
    raw = env.get(name) or OPTIONAL_ENV_VARS.get(name, "")
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def validate_base_url(url: str) -> str:
    """https only; plain http is allowed for loopback hosts (local simulator)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError("KORE_BASE_URL must be an absolute https:// URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError("KORE_BASE_URL must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigurationError("KORE_BASE_URL must use https:// (plain http is allowed only on loopback)")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    missing = [name for name in REQUIRED_ENV_VARS if not env.get(name)]
    if missing:
        raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
    return Settings(
        kore_base_url=validate_base_url(env["KORE_BASE_URL"]),
        credentials_secret_id=env["CREDENTIALS_SECRET_ID"],
        results_topic_arn=env["RESULTS_TOPIC_ARN"],
        dead_letter_queue_url=env["DEAD_LETTER_QUEUE_URL"],
        idempotency_table_name=env["IDEMPOTENCY_TABLE_NAME"],
        max_receive_count=int(_number(env, "MAX_RECEIVE_COUNT", int, 1, 1000)),
        alarm_targets_parameter=env["ALARM_TARGETS_PARAMETER"],
        stop_queue_url=env["STOP_QUEUE_URL"],
        kore_rate_limit=_rate_limit(env.get("KORE_RATE_LIMIT") or OPTIONAL_ENV_VARS["KORE_RATE_LIMIT"]),
        stop_concurrency=int(_number(env, "STOP_CONCURRENCY", int, 1, 50)),
        http_connect_timeout_seconds=_number(env, "HTTP_CONNECT_TIMEOUT_SECONDS", float, 0.1, 30),
        http_read_timeout_seconds=_number(env, "HTTP_READ_TIMEOUT_SECONDS", float, 0.1, 60),
        http_max_retries=int(_number(env, "HTTP_MAX_RETRIES", int, 0, 20)),
        credentials_cache_seconds=int(_number(env, "CREDENTIALS_CACHE_SECONDS", int, 0, 86400)),
        alarm_targets_cache_seconds=int(_number(env, "ALARM_TARGETS_CACHE_SECONDS", int, 0, 86400)),
        idempotency_ttl_seconds=int(_number(env, "IDEMPOTENCY_TTL_SECONDS", int, 60, 30 * 86400)),
        jwt_ttl_seconds=int(_number(env, "JWT_TTL_SECONDS", int, 10, 3600)),
        aws_connect_timeout_seconds=_number(env, "AWS_CONNECT_TIMEOUT_SECONDS", float, 0.1, 10),
        aws_read_timeout_seconds=_number(env, "AWS_READ_TIMEOUT_SECONDS", float, 0.1, 30),
        aws_max_attempts=int(_number(env, "AWS_MAX_ATTEMPTS", int, 1, 10)),
        max_wait_seconds=_max_wait(env),
        producer_policy_parameter=env.get("PRODUCER_POLICY_PARAMETER", "").strip(),
        producer_policy_cache_seconds=int(_number(env, "PRODUCER_POLICY_CACHE_SECONDS", int, 0, 86400)),
        stop_events_queue_arn=env.get("STOP_EVENTS_QUEUE_ARN", "").strip(),
        function_role_id=env.get("FUNCTION_ROLE_ID", "").strip(),
        max_request_age_seconds=int(_number(env, "MAX_REQUEST_AGE_SECONDS", int, 60, NO_AGE_LIMIT_SECONDS)),
        request_history_table=env.get("REQUEST_HISTORY_TABLE", "").strip(),
        request_history_days=int(_number(env, "REQUEST_HISTORY_DAYS", int, 1, 3650)),
        holds_table=env.get("HOLDS_TABLE", "").strip(),
        hold_check_seconds=int(_number(env, "HOLD_CHECK_SECONDS", int, 60, 86400)),
    )


def _max_wait(env: dict[str, str]) -> int:
    ttl = int(_number(env, "IDEMPOTENCY_TTL_SECONDS", int, 60, 30 * 86400))
    wait = int(_number(env, "MAX_WAIT_SECONDS", int, 60, 30 * 86400))
    if wait > ttl:
        raise ConfigurationError(f"MAX_WAIT_SECONDS ({wait}) must not exceed IDEMPOTENCY_TTL_SECONDS ({ttl})")
    return wait


def _rate_limit(text: str) -> RateLimit:
    try:
        return RateLimit.parse(text)
    except ValueError as error:
        raise ConfigurationError(f"KORE_RATE_LIMIT {error}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The container's settings, read at first use so tests can set the environment first."""
    return load_settings()
