"""The only place that speaks HTTP: Kore.ai campaign API calls over one reused urllib3 pool."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import urllib3
from urllib3.exceptions import HTTPError, InvalidHeader, MaxRetryError
from urllib3.util import Retry, Timeout

from stop_campaign.domain.models import RETRYABLE_STATUSES, ApiResponse, CampaignType, StopDeferred
from stop_campaign.domain.readonly import readonly_dataclass

# Path templates exactly as Kore.ai documents them (the double slash in the SMS stop path included).
STOP_PATHS: dict[CampaignType, str] = {
    CampaignType.SMS: "/campaign/api/v2/public/{stream_id}/campaign//trigger/{campaign_id}",
    CampaignType.VOICE: "/api/v2/public/{stream_id}/campaign/trigger/{campaign_id}",
}
STATUS_PATH = "/campaign/api/v2/public/{stream_id}/campaign/{campaign_id}/status"
LIST_PATH = "/campaign/api/v2/public/{stream_id}/campaign/getAllCampaignDetails"
# "Disable a Scheduled Voice or SMS Campaign": by the campaign's name (a query parameter), not its id.
SCHEDULE_PATH = "/campaign/api/v2/public/{stream_id}/campaign/schedule"

# Never start an attempt that cannot finish before Lambda's own timeout, leaving room for what follows the
# last call: the idempotency update, the result and, on a final attempt, the dead letter.
DEADLINE_MARGIN_SECONDS = 3.0
# A call starts only with at least this long left before the margin; its timeouts are cut to what is left.
MIN_CALL_SECONDS = 1.0
MAX_PAUSE_SECONDS = 300.0  # the longest 429 pause honoured for a whole account

HeadersFactory = Callable[[], Mapping[str, str]]


class ApiUnavailable(Exception):
    """No HTTP answer (connection refused or dropped, timeout) after every retry the time allowed."""


class Pacer(Protocol):
    """The rate budget of the account a call is made for (stop_campaign.pacing.account_budgets.AccountPacer)."""

    def acquire(self, not_after: float) -> float:
        """Block until one call may be sent; raise StopDeferred when that is after ``not_after``."""
        ...

    def throttled(self, retry_after: float | None) -> None:
        """The platform answered 429: every caller of the account waits."""
        ...


class Deadline:
    """The time this invocation has left, from the Lambda context (or unlimited outside Lambda)."""

    def __init__(self, remaining_ms: Callable[[], int] | None = None) -> None:
        self._remaining_ms = remaining_ms
        self._at_start = self.seconds_left()

    def waitable_seconds(self) -> float:
        """How long an invocation like this one can wait for a slot at its start and still make the call:
        what a continuation may arrive ahead of its place."""
        return max(0.0, self._at_start - DEADLINE_MARGIN_SECONDS - MIN_CALL_SECONDS)

    def seconds_left(self) -> float:
        return float("inf") if self._remaining_ms is None else self._remaining_ms() / 1000.0

    def allows(self, wait_seconds: float, then_at_least: float) -> bool:
        """Whether waiting ``wait_seconds`` still leaves ``then_at_least`` seconds for the next attempt."""
        return self.seconds_left() - wait_seconds - then_at_least > DEADLINE_MARGIN_SECONDS

    def latest_start(self, call_seconds: float) -> float:
        """The last moment (epoch seconds) a call taking up to ``call_seconds`` may start and still end
        before the margin kept for what follows it."""
        return time.time() + self.seconds_left() - DEADLINE_MARGIN_SECONDS - call_seconds


@readonly_dataclass
class ClientSettings:
    base_url: str
    connect_timeout: float
    read_timeout: float
    max_retries: int
    pool_size: int


class KoreClient:
    """Kore.ai campaign API v2. One instance per container, so warm invocations reuse connections."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=settings.pool_size,
            cert_reqs="CERT_REQUIRED",  # TLS verified, always
            retries=False,
        )

    def stop_campaign(
        self, stream_id: str, campaign_id: str, campaign_type: CampaignType, account_id: str,
        headers: HeadersFactory, deadline: Deadline, pacer: Pacer | None = None,
    ) -> ApiResponse:
        path = STOP_PATHS[campaign_type].format(stream_id=_segment(stream_id), campaign_id=_segment(campaign_id))
        query = {"accountId": account_id, "campaignType": campaign_type.value, "trigger": "stop"}
        return self._post(path, query, {}, headers, deadline, pacer)

    def campaign_status(
        self, stream_id: str, campaign_id: str, account_id: str, headers: HeadersFactory, deadline: Deadline,
        pacer: Pacer | None = None,
    ) -> ApiResponse:
        path = STATUS_PATH.format(stream_id=_segment(stream_id), campaign_id=_segment(campaign_id))
        return self._post(path, {"accountId": account_id, "view": "status"}, {}, headers, deadline, pacer)

    def list_campaigns(
        self, stream_id: str, account_id: str, body: dict[str, Any], headers: HeadersFactory, deadline: Deadline,
        pacer: Pacer | None = None,
    ) -> ApiResponse:
        path = LIST_PATH.format(stream_id=_segment(stream_id))
        return self._post(path, {"accountId": account_id}, body, headers, deadline, pacer)

    def disable_schedule(
        self, stream_id: str, campaign_name: str, headers: HeadersFactory, deadline: Deadline,
        pacer: Pacer | None = None,
    ) -> ApiResponse:
        path = SCHEDULE_PATH.format(stream_id=_segment(stream_id))
        # urlencode quotes the name: no name can add a parameter or change the path
        return self._post(path, {"enableSchedule": "false", "campaignName": campaign_name}, {}, headers, deadline,
                          pacer)

    def _post(
        self, path: str, query: dict[str, str], body: dict[str, Any], headers: HeadersFactory,
        deadline: Deadline, pacer: Pacer | None,
    ) -> ApiResponse:
        """POST with urllib3's Retry deciding backoff and Retry-After.

        The loop is ours (not ``urlopen(retries=...)``) because every attempt needs a freshly minted
        token: apps that enforce JTI reject a resent token as a replay. Every attempt first takes a slot of
        the account's rate budget; a 429 pauses every caller of the account and does not count as a retry,
        since the platform refused the call: it is bounded by the deadline (StopDeferred) instead.
        """
        url = f"{self._settings.base_url}{path}?{urlencode(query)}"
        payload = json.dumps(body).encode()
        retry = Retry(
            total=self._settings.max_retries,
            backoff_factor=0.2,
            backoff_max=5.0,
            backoff_jitter=0.2,
            status_forcelist=RETRYABLE_STATUSES,
            allowed_methods=frozenset({"POST"}),  # stopping twice is harmless; losing a stop is not
            respect_retry_after_header=True,
            raise_on_status=False,
            redirect=False,
        )
        started = time.perf_counter()
        attempts = 0
        sent_unrefused = False  # an attempt may have reached the platform without being refused
        while True:
            attempts += 1
            try:
                self._take_slot(pacer, deadline)
            except StopDeferred as not_sent:
                if sent_unrefused:  # an earlier attempt may have reached the platform: not a clean "not sent"
                    raise ApiUnavailable(f"{not_sent.why} after {attempts - 1} attempt(s) without an answer") from None
                raise
            try:
                response = self._pool.request(
                    "POST",
                    url,
                    body=payload,
                    headers={**headers(), "Content-Type": "application/json"},
                    timeout=self._timeout(deadline),
                    retries=False,
                    redirect=False,
                )
            except HTTPError as error:
                sent_unrefused = True
                try:
                    retry = retry.increment("POST", url, error=error)
                except (MaxRetryError, HTTPError):
                    raise ApiUnavailable(_describe_error(error, attempts)) from None
                if not deadline.allows(retry.get_backoff_time(), self._settings.connect_timeout):
                    raise ApiUnavailable(_describe_error(error, attempts)) from None
                retry.sleep()
                continue
            if response.status == 429 and pacer is not None:
                pacer.throttled(_bounded_pause(_retry_after(retry, response)))
                continue  # the next attempt waits for the pause, or ends in StopDeferred
            sent_unrefused = True
            has_retry_after = bool(response.headers.get("Retry-After"))
            if retry.is_retry("POST", response.status, has_retry_after):
                try:
                    retry = retry.increment("POST", url, response=response)
                except MaxRetryError:
                    return _api_response(response, started)
                retry_after = _retry_after(retry, response)
                wait = retry_after if retry_after is not None else retry.get_backoff_time()
                if not deadline.allows(wait, self._settings.connect_timeout):
                    return _api_response(response, started)
                if retry_after is not None:
                    retry.sleep(response)
                else:
                    retry.sleep()  # no usable Retry-After: exponential backoff with jitter
                continue
            return _api_response(response, started)

    def _take_slot(self, pacer: Pacer | None, deadline: Deadline) -> None:
        """Start no call that could not finish before the deadline's margin; wait for the budget if needed."""
        latest = deadline.latest_start(MIN_CALL_SECONDS)
        if time.time() > latest:
            raise StopDeferred(time.time(), "no time left in this invocation for another call")
        if pacer is not None:
            pacer.acquire(latest)  # raises StopDeferred when the budget has no slot in time

    def _timeout(self, deadline: Deadline) -> Timeout:
        left = deadline.seconds_left() - DEADLINE_MARGIN_SECONDS
        read = max(0.1, min(self._settings.read_timeout, left))
        return Timeout(connect=min(self._settings.connect_timeout, read), read=read)


def _segment(value: str) -> str:
    # Ids are validated before we get here; encoding anyway means no id can ever change the path.
    return quote(value, safe="")


def _bounded_pause(retry_after: float | None) -> float | None:
    """A pause every caller of the account keeps: none (backoff instead) for 0, at most MAX_PAUSE_SECONDS, so
    one odd header cannot stop an account's calls for hours."""
    if retry_after is None or retry_after <= 0:
        return None
    return min(retry_after, MAX_PAUSE_SECONDS)


def _retry_after(retry: Retry, response: urllib3.BaseHTTPResponse) -> float | None:
    """Seconds the API asked us to wait; None when it did not say, or said it in a form urllib3 rejects."""
    try:
        return retry.get_retry_after(response)
    except InvalidHeader:  # e.g. "Retry-After: 1.5"
        return None


def _api_response(response: urllib3.BaseHTTPResponse, started: float) -> ApiResponse:
    try:
        decoded = json.loads(response.data) if response.data else None
    except ValueError:
        decoded = None
    return ApiResponse(
        status=response.status,
        body=decoded if isinstance(decoded, dict) else None,
        latency_ms=(time.perf_counter() - started) * 1000.0,
    )


def _describe_error(error: Exception, attempts: int) -> str:
    # The class name says what went wrong (ReadTimeoutError, NewConnectionError, ProtocolError);
    # the message would repeat the URL, which is configuration, not news.
    return f"no answer from the Kore.ai API after {attempts} attempt(s): {type(error).__name__}"
