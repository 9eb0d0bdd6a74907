"""Stops one campaign: credentials, token, the stop call, the 401 rotation and the already-stopped check."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from stop_campaign.credentials import CredentialStore, SecretUnreadable, StreamCredentials, auth_headers
from stop_campaign.kore_client import ApiResponse, ApiUnavailable, Deadline, KoreClient
from stop_campaign.models import (
    ID_PATTERN,
    STOPPABLE_STATUSES,
    ApiConfirmation,
    PermanentStopError,
    StopOutcome,
    StopRequest,
    StopTarget,
    TransientStopError,
)
from stop_campaign.outcomes import StopVerdict, confirmation, describe_refusal, finished_status, judge_stop

logger = Logger(child=True)

LIST_PAGE_SIZE = 100
MAX_LIST_PAGES = 100  # 10,000 campaigns: far beyond any stream; stops a looping "hasMore"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CampaignStopper:
    def __init__(self, client: KoreClient, credentials: CredentialStore, jwt_ttl_seconds: int) -> None:
        self._client = client
        self._credentials = credentials
        self._jwt_ttl = jwt_ttl_seconds

    def credentials_for(self, request: StopRequest) -> StreamCredentials:
        try:
            return self._credentials.for_stream(request.stream_id, request.account_id)
        except SecretUnreadable as error:
            raise TransientStopError("secret_unavailable", str(error)) from None

    def stop(self, target: StopTarget, deadline: Deadline, started: float) -> StopOutcome:
        """Stop one campaign; returns on stopped or already stopped, raises otherwise."""
        request = target.request

        def stop_call(headers: Callable[[], dict[str, str]]) -> ApiResponse:
            return self._client.stop_campaign(
                request.stream_id, target.campaign_id, request.campaign_type, target.account_id, headers, deadline
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

        def status_call(headers: Callable[[], dict[str, str]]) -> ApiResponse:
            return self._client.campaign_status(
                request.stream_id, target.campaign_id, target.account_id, headers, deadline
            )

        status = self._call(request, status_call)
        finished = finished_status(status)
        refused = confirmation(refusal)
        if finished is not None:
            api = ApiConfirmation(http_status=refusal.status, status=finished, message=refused.message)
            return StopOutcome(
                outcome=StopVerdict.ALREADY_STOPPED.value, api=api.as_result_field(), completed_at=utc_now()
            )
        if status.retryable:
            raise TransientStopError("api_unavailable", describe_refusal(status), refused.as_result_field())
        raise PermanentStopError("stop_refused", describe_refusal(refusal), refused.as_result_field())

    def stoppable_campaigns(self, request: StopRequest, account_id: str, deadline: Deadline) -> list[str]:
        """Every campaign of the stream that a stop can act on, across all pages of Get All Campaigns."""
        campaign_ids: list[str] = []
        for page in range(1, MAX_LIST_PAGES + 1):
            body = {
                "type": request.campaign_type.value,
                "limit": LIST_PAGE_SIZE,
                "page": page,
                "skip": (page - 1) * LIST_PAGE_SIZE,
                "filters": {"status": list(STOPPABLE_STATUSES)},
            }

            def list_call(headers: Callable[[], dict[str, str]], body: dict = body) -> ApiResponse:
                return self._client.list_campaigns(request.stream_id, account_id, body, headers, deadline)

            response = self._call(request, list_call)
            if not response.ok:
                error_type = TransientStopError if response.retryable else PermanentStopError
                raise error_type("list_failed", describe_refusal(response), confirmation(response).as_result_field())
            data = (response.body or {}).get("data")
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(data, dict) or not isinstance(results, list):
                raise PermanentStopError("list_failed", "Get All Campaigns answered without data.results")
            for campaign in results:
                campaign_id = campaign.get("id") if isinstance(campaign, dict) else None
                if not isinstance(campaign_id, str) or not ID_PATTERN.match(campaign_id):
                    logger.warning("Skipping a listed campaign with no usable id", extra={"item": repr(campaign)[:200]})
                    continue
                if campaign.get("status") in STOPPABLE_STATUSES and campaign_id not in campaign_ids:
                    campaign_ids.append(campaign_id)
            if not results or not data.get("hasMore"):
                break
        return campaign_ids

    def _call(self, request: StopRequest, call: Callable[[Callable[[], dict[str, str]]], ApiResponse]) -> ApiResponse:
        """Make a call with fresh tokens; after a 401, re-read the secret once (rotation) and try again."""
        credentials = self.credentials_for(request)
        try:
            response = call(lambda: auth_headers(credentials, self._jwt_ttl))
            if response.status != 401:
                return response
            logger.info("Kore.ai answered 401: re-reading the credentials secret once")
            self._credentials.refresh(credentials)
            fresh = self.credentials_for(request)
            return call(lambda: auth_headers(fresh, self._jwt_ttl))
        except ApiUnavailable as error:
            raise TransientStopError("api_unavailable", str(error)) from None
        except SecretUnreadable as error:
            raise TransientStopError("secret_unavailable", str(error)) from None
