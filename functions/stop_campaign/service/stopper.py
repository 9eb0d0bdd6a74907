"""Stops one campaign: credentials, token, the stop call, the 401 rotation and the already-stopped check."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from stop_campaign.adapters.credentials import CredentialStore, SecretUnreadable, StreamCredentials, auth_headers
from stop_campaign.adapters.kore_client import (
    MIN_CALL_SECONDS,
    ApiUnavailable,
    Deadline,
    HeadersFactory,
    KoreClient,
    Pacer,
)
from stop_campaign.domain.listing import PageRead, read_page, unusable_items
from stop_campaign.domain.models import (
    STOPPABLE_STATUSES,
    ApiConfirmation,
    ApiResponse,
    Outcome,
    PermanentStopError,
    Source,
    StopOutcome,
    StopRequest,
    StopTarget,
    TransientStopError,
    utc_now,
)
from stop_campaign.domain.outcomes import StopVerdict, confirmation, describe_refusal, finished_status, judge_stop
from stop_campaign.domain.resume import RESUMABLE_STATUS, current_status, not_resumed_message, started
from stop_campaign.pacing.account_budgets import AccountBudgets
from stop_campaign.pacing.rate_ledger import LedgerUnavailable
from stop_campaign.pacing.rate_schedule import NORMAL, URGENT

logger = Logger(child=True)

LIST_PAGE_SIZE = 100  # asked for; the platform may serve fewer per page (Kore.ai documents no maximum)


class CampaignStopper:
    def __init__(
        self, client: KoreClient, credentials: CredentialStore, jwt_ttl_seconds: int, budgets: AccountBudgets | None
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._jwt_ttl = jwt_ttl_seconds
        self._budgets = budgets  # None: unpaced (tests of the client alone)
        self._pairing: dict[str, threading.Lock] = {}  # per account: a resume's two slots are taken together
        self._pairing_guard = threading.Lock()

    def _pairing_lock(self, account_id: str) -> threading.Lock:
        with self._pairing_guard:
            return self._pairing.setdefault(account_id, threading.Lock())

    def credentials_for(self, request: StopRequest) -> StreamCredentials:
        try:
            return self._credentials.for_stream(request.stream_id, request.account_id)
        except SecretUnreadable as error:
            raise TransientStopError("secret_unavailable", str(error)) from None

    def expect_calls(self, targets: list[StopTarget], deadline: Deadline) -> None:
        """The stop calls these targets are about to make: their grants are asked for now, in the background,
        while each stop writes its idempotency record."""
        if self._budgets is None:
            return
        wanted: dict[tuple[str, str], int] = {}
        for target in targets:
            if not target.request.dry_run and target.account_id:
                key = (target.account_id, lane(target.request))
                # a resume's campaign: a status call, then (when it is still stopped) its start
                wanted[key] = wanted.get(key, 0) + (2 if target.request.resume_of is not None else 1)
        not_after = deadline.latest_start(MIN_CALL_SECONDS)
        for (account_id, lane_name), calls in wanted.items():
            self._budgets.for_account(account_id, lane_name).prepare(calls, not_after)

    def stop(self, target: StopTarget, deadline: Deadline, started: float) -> StopOutcome:
        """Stop one campaign; returns on stopped or already stopped, raises otherwise."""
        request = target.request

        def stop_call(headers: HeadersFactory, pacer: Pacer | None) -> ApiResponse:
            return self._client.stop_campaign(
                request.stream_id, target.campaign_id, request.campaign_type, target.account_id, headers, deadline,
                pacer,
            )

        response = self._call(request, stop_call)
        verdict = judge_stop(response)
        if verdict in (StopVerdict.STOPPED, StopVerdict.ALREADY_STOPPED):
            return StopOutcome(
                outcome=verdict.value,
                api=confirmation(response).as_result_field(),
                completed_at=utc_now(),
                time_to_stop_ms=round((time.perf_counter() - started) * 1000),
                api_latency_ms=round(response.latency_ms, 1),
            )
        api = confirmation(response).as_result_field()
        if verdict is StopVerdict.TRANSIENT:
            raise TransientStopError("api_unavailable", describe_refusal(response), api)
        if verdict is StopVerdict.UNAUTHORIZED:
            raise PermanentStopError("unauthorized", describe_refusal(response), api)
        return self._already_stopped_or_fail(target, response, deadline)

    def _already_stopped_or_fail(self, target: StopTarget, refusal: ApiResponse, deadline: Deadline) -> StopOutcome:
        """A refused stop may mean "already stopped" (undocumented): the campaign's status decides."""
        request = target.request

        def status_call(headers: HeadersFactory, pacer: Pacer | None) -> ApiResponse:
            return self._client.campaign_status(
                request.stream_id, target.campaign_id, target.account_id, headers, deadline, pacer
            )

        status = self._call(request, status_call)
        finished = finished_status(status)
        refused = confirmation(refusal)
        if finished is not None:
            api = ApiConfirmation(http_status=refusal.status, status=finished, message=refused.message)
            return StopOutcome(
                outcome=StopVerdict.ALREADY_STOPPED.value, api=api.as_result_field(), completed_at=utc_now(),
                campaign_name=campaign_name(status),  # what disableSchedule needs, from an answer already paid for
            )
        if status.retryable:
            raise TransientStopError("api_unavailable", describe_refusal(status), refused.as_result_field())
        raise PermanentStopError("stop_refused", describe_refusal(refusal), refused.as_result_field())

    def start(self, target: StopTarget, deadline: Deadline) -> StopOutcome:
        """A resume's call for one campaign: Get Campaign Status, then Start Campaign v2 only if it is ``Stopped``
        (``resumed``); any other status is left alone (``ignored``, one call). The status call rather than a list
        page: one call per campaign whatever the stream holds (a list filtered to ``Stopped`` grows with every
        campaign ever stopped), made right before the start, so a campaign restarted meanwhile is seen. Raises like
        ``stop`` when it did not succeed."""
        request = target.request
        pair = PairedSlots(self._pairing_lock(target.account_id))

        def status_call(headers: HeadersFactory, pacer: Pacer | None) -> ApiResponse:
            return self._client.campaign_status(
                request.stream_id, target.campaign_id, target.account_id, headers, deadline, pacer
            )

        status = self._call(request, status_call, paced=pair.first)
        current = current_status(status)
        if current is None:
            api = confirmation(status).as_result_field()
            if status.retryable:
                raise TransientStopError("api_unavailable", describe_refusal(status), api)
            code = "unauthorized" if status.status == 401 else "status_unreadable"
            raise PermanentStopError(code, "Get Campaign Status did not say the campaign's status: "
                                     + describe_refusal(status), api)
        if current != RESUMABLE_STATUS:
            seen = ApiConfirmation(http_status=status.status, status=current, message=not_resumed_message(current))
            return StopOutcome(outcome=Outcome.IGNORED.value, api=seen.as_result_field(), completed_at=utc_now())

        def start_call(headers: HeadersFactory, pacer: Pacer | None) -> ApiResponse:
            return self._client.start_campaign(
                request.stream_id, target.campaign_id, request.campaign_type, target.account_id, headers, deadline,
                pacer,
            )

        response = self._call(request, start_call, paced=pair.second)
        api = confirmation(response).as_result_field()
        if started(response):
            return StopOutcome(outcome=Outcome.RESUMED.value, api=api, completed_at=utc_now(),
                               api_latency_ms=round(response.latency_ms, 1))
        if response.retryable:
            raise TransientStopError("api_unavailable", describe_refusal(response), api)
        code = "unauthorized" if response.status == 401 else "start_refused"
        raise PermanentStopError(code, describe_refusal(response), api)

    def disable_schedule(self, target: StopTarget, deadline: Deadline) -> dict[str, Any]:
        """Disable the recurring schedule of a campaign just stopped (or found stopped), by its name: the list row's
        or the stop's own status check's when known, else one Get Campaign Status call (the one documented answer
        that names a single campaign for one call; a list page costs the same call and may not hold it). Paced like
        every call. Returns the result's ``schedule`` field for a success or a refusal; raises TransientStopError
        (or StopDeferred) when another attempt may succeed, so that no record keeps a failure worth retrying."""
        request = target.request
        name = target.campaign_name
        if not name:

            def status_call(headers: HeadersFactory, pacer: Pacer | None) -> ApiResponse:
                return self._client.campaign_status(
                    request.stream_id, target.campaign_id, target.account_id, headers, deadline, pacer
                )

            status = self._call(request, status_call)
            name = campaign_name(status)
            if name is None:
                if status.retryable:
                    raise TransientStopError("api_unavailable", describe_refusal(status))
                return schedule_not_disabled("name_unknown", "Get Campaign Status did not say the campaign's name: "
                                             + describe_refusal(status))
        known: str = name

        def schedule_call(headers: HeadersFactory, pacer: Pacer | None) -> ApiResponse:
            return self._client.disable_schedule(request.stream_id, known, headers, deadline, pacer)

        response = self._call(request, schedule_call)
        if response.ok and (response.body or {}).get("status") != "failure":
            return {"disabled": True, "campaignName": known}
        if response.retryable:
            raise TransientStopError("api_unavailable", describe_refusal(response))
        return schedule_not_disabled("schedule_refused", describe_refusal(response)) | {"campaignName": known}

    def list_page(
        self, request: StopRequest, account_id: str, paging: dict[str, int], deadline: Deadline,
        granted: Callable[[], None] | None = None,
    ) -> PageRead:
        """One page of Get All Campaigns (``paging``: its limit, skip and page), filtered to the statuses a stop
        can act on. Paced, 401-rotated and bounded by the deadline like every other call; ``granted`` is called
        once the budget let the call go (the page's place in the account's budget is then taken)."""
        body = {"type": request.campaign_type.value, "filters": {"status": list(STOPPABLE_STATUSES)}, **paging}

        def list_call(headers: HeadersFactory, pacer: Pacer | None) -> ApiResponse:
            return self._client.list_campaigns(request.stream_id, account_id, body, headers, deadline, pacer)

        response = self._call(request, list_call, granted)
        if not response.ok:
            error_type = TransientStopError if response.retryable else PermanentStopError
            raise error_type("list_failed", describe_refusal(response), confirmation(response).as_result_field())
        data = (response.body or {}).get("data")
        page = read_page(data)
        for item in unusable_items(data):
            logger.warning("Skipping a listed campaign with no usable id", extra={"item": item})
        return page

    def _call(
        self, request: StopRequest, call: Callable[[HeadersFactory, Pacer | None], ApiResponse],
        granted: Callable[[], None] | None = None, paced: Callable[[Pacer], Pacer] | None = None,
    ) -> ApiResponse:
        """Make a call with fresh tokens; after a 401, re-read the secret once (rotation) and try again."""
        credentials = self.credentials_for(request)
        pacer: Pacer | None = None
        if self._budgets is not None:
            pacer = self._budgets.for_account(credentials.account_id, lane(request))
        if granted is not None:
            pacer = _Announcing(pacer, granted)
        if paced is not None and pacer is not None:
            pacer = paced(pacer)
        try:
            response = call(lambda: auth_headers(credentials, self._jwt_ttl), pacer)
            if response.status != 401:
                return response
            logger.info("Kore.ai answered 401: re-reading the credentials secret once")
            self._credentials.refresh(credentials)
            fresh = self.credentials_for(request)
            return call(lambda: auth_headers(fresh, self._jwt_ttl), pacer)
        except LedgerUnavailable as error:
            raise TransientStopError("rate_ledger_unavailable", str(error)) from None
        except ApiUnavailable as error:
            raise TransientStopError("api_unavailable", str(error)) from None
        except SecretUnreadable as error:
            raise TransientStopError("secret_unavailable", str(error)) from None


class _Announcing:
    """A pacer that says when its call may go (``granted``), after the account's budget (if any) let it."""

    __slots__ = ("_granted", "_pacer")

    def __init__(self, pacer: Pacer | None, granted: Callable[[], None]) -> None:
        self._pacer = pacer
        self._granted = granted

    def acquire(self, not_after: float) -> float:
        waited = self._pacer.acquire(not_after) if self._pacer is not None else 0.0
        self._granted()
        return waited

    def throttled(self, retry_after: float | None) -> None:
        if self._pacer is not None:
            self._pacer.throttled(retry_after)


class PairedSlots:
    """A resume's two calls take their slots of the account's budget together: the status call's first attempt takes
    the start's slot too, which the start's first attempt then uses. Otherwise, under a spent budget, every campaign
    of a resume could get its status call and none its start, invocation after invocation."""

    def __init__(self, together: threading.Lock) -> None:
        self._held = 0
        self._together = together  # the account's: no other resume takes a slot between this one's two

    def first(self, pacer: Pacer) -> Pacer:
        return _Pairing(pacer, self, take_two=True)

    def second(self, pacer: Pacer) -> Pacer:
        return _Pairing(pacer, self, take_two=False)

    def acquire(self, pacer: Pacer, not_after: float, take_two: bool) -> float:
        if take_two and self._held == 0:
            with self._together:
                waited = pacer.acquire(not_after)  # the status call's slot: StopDeferred when none in time
                waited += pacer.acquire(not_after)  # the start's: none in time, no status call either
            self._held = 1
            return waited
        if take_two:  # a retry of the status call: its own slot only
            return pacer.acquire(not_after)
        if self._held:
            self._held = 0
            return 0.0
        return pacer.acquire(not_after)


class _Pairing:
    __slots__ = ("_pacer", "_slots", "_take_two")

    def __init__(self, pacer: Pacer, slots: PairedSlots, *, take_two: bool) -> None:
        self._pacer = pacer
        self._slots = slots
        self._take_two = take_two

    def acquire(self, not_after: float) -> float:
        return self._slots.acquire(self._pacer, not_after, self._take_two)

    def throttled(self, retry_after: float | None) -> None:
        self._pacer.throttled(retry_after)


def campaign_name(status: ApiResponse) -> str | None:
    """The campaign's name in a Get Campaign Status answer (``data.name``), if it has a usable one."""
    data = (status.body or {}).get("data") if status.ok else None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.strip() and len(name) <= 512 else None


def schedule_not_disabled(code: str, message: str, retryable: bool = False) -> dict[str, Any]:
    """The result's ``schedule`` field for a schedule left as it was (the stop stands either way)."""
    return {"disabled": False, "error": {"code": code, "message": message[:1024], "retryable": retryable}}


def lane(request: StopRequest) -> str:
    """How a request's calls queue for the account's budget: kill switches ahead of everything, a continuation
    on the places it booked, everything else in arrival order."""
    if request.source is Source.ALARM:
        return URGENT
    return request.ticket or NORMAL
