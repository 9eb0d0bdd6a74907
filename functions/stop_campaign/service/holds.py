"""The hold check (``{"action": "hold-check"}``, from the template's schedule every HOLD_CHECK_SECONDS): every
active hold whose alarm has left ALARM ends; for the others, each stream the hold covers is listed (Get All
Campaigns v2: one call per stream and page, never a status call per campaign) and every held campaign found
running again is stopped again, through the processor like any request: paced by the account's budget, one result
per campaign (outcome ``stopped``, ``holdOf``), a summary, the request history.

Each check's re-stops have their own request id, ``hold:<holdOf>:<check time>``: the check time is the schedule's
(``at`` in the payload) or now down to the check interval, so a repeated check invocation shares the ids, the list
pages and the stops' idempotency records of the first, and calls nothing twice. A re-stop that cannot be made ends
``failed`` and in the dead-letter queue as a plain stop request (redriven, it stops those campaigns); the next check
tries again anyway.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from stop_campaign.adapters.alarm_states import AlarmStates
from stop_campaign.adapters.holds import HoldStore
from stop_campaign.adapters.kore_client import Deadline
from stop_campaign.domain.alarms import ALARM_STATE
from stop_campaign.domain.holds import Hold, Scope, check_request_id, check_time, to_restop
from stop_campaign.domain.models import (
    CampaignType,
    Origin,
    Outcome,
    ResultEvent,
    Source,
    StopDeferred,
    StopError,
    StopRequest,
    utc_now,
)
from stop_campaign.domain.planning import PlannedRequest
from stop_campaign.domain.readonly import readonly_dataclass
from stop_campaign.service.processing import InboundMessage, MessageProcessor, RetryLater, Telemetry
from stop_campaign.service.stopper import CampaignStopper

logger = Logger(child=True)


@readonly_dataclass
class CheckReport:
    """What one check did: per hold, ``held`` (with its re-stops) or ``ended`` (and why); the results published."""

    holds: list[dict[str, Any]]
    results: list[ResultEvent]


class HoldChecker:
    def __init__(
        self, *, store: HoldStore, alarm_states: AlarmStates, processor: MessageProcessor, stopper: CampaignStopper,
        telemetry: Telemetry, interval_seconds: int,
    ) -> None:
        self._store = store
        self._alarm_states = alarm_states
        self._processor = processor
        self._stopper = stopper
        self._telemetry = telemetry
        self._interval = interval_seconds

    def check(self, payload: dict[str, Any], deadline: Deadline, started: float, own_account: str | None,
              ) -> CheckReport:
        at = check_time(payload.get("at"), datetime.now(UTC), self._interval)
        holds = self._store.active()
        self._telemetry.count("HoldsActive", len(holds))  # a gauge in effect: one point per check
        states = self._alarm_states.states([hold.alarm_name for hold in holds]) if holds else {}
        report: list[dict[str, Any]] = []
        results: list[ResultEvent] = []
        for hold in holds:
            state = states.get(hold.alarm_name)
            row: dict[str, Any] = {"holdOf": hold.hold_of, "alarmName": hold.alarm_name}
            if state != ALARM_STATE and not self._unseen_elsewhere(hold, state, own_account):
                why = f"alarm {hold.alarm_name} is {state}" if state else f"alarm {hold.alarm_name} no longer exists"
                if self._store.end(hold.hold_of, why):
                    self._telemetry.count("HoldsEnded")
                    logger.info("Hold ended: its alarm left ALARM", extra={"hold_of": hold.hold_of, "why": why})
                report.append(row | {"state": "ended", "reason": why})
                continue
            restopped = self._keep(hold, at, deadline, started)
            results.extend(restopped)
            report.append(row | {"state": "held", "requestId": check_request_id(hold.hold_of, at),
                                 "restopped": sorted(str(result.campaign_id) for result in restopped
                                                     if result.outcome is Outcome.STOPPED)})
        return CheckReport(report, results)

    def count_failure(self) -> None:
        self._telemetry.count("HoldCheckFailures")

    @staticmethod
    def _unseen_elsewhere(hold: Hold, state: str | None, own_account: str | None) -> bool:
        """An alarm DescribeAlarms does not find because it is another account's (AlarmAccountIds): the hold stays
        until that alarm's own state change out of ALARM arrives, or ``hold release``."""
        if state is not None or not hold.alarm_arn or not own_account:
            return False
        parts = hold.alarm_arn.split(":")
        return len(parts) > 4 and parts[4] != own_account

    def _keep(self, hold: Hold, at: str, deadline: Deadline, started: float) -> list[ResultEvent]:
        results: list[ResultEvent] = []
        for scope in hold.scopes:
            held = hold.held_in(scope)
            if not held:
                continue
            request = _check_request(hold, scope, at)
            try:
                account_id = self._stopper.credentials_for(request).account_id
                running = to_restop(held, self._processor.list_running(request, account_id, deadline))
                if not running:
                    continue
                restop = replace(request, campaign_ids=tuple(running))
                message = InboundMessage(body=json.dumps(_as_stop_request(restop)),
                                         origin=Origin(Source.ALARM, restop.request_id, restop.received_at),
                                         final_attempt=True)  # the next check is its retry: each ends here
                logger.info("Held campaigns found running again: stopping them again", extra={
                    "hold_of": hold.hold_of, "stream_id": scope.stream_id, "campaign_ids": running})
                results.extend(self._processor.serve_planned(message, [PlannedRequest(restop)], deadline, started))
            except (StopDeferred, StopError, RetryLater, IdempotencyAlreadyInProgressError) as error:
                # Not listed this time (budget, time, the platform, a concurrent check): the next check lists again.
                logger.warning("Hold check of a stream not done", extra={
                    "hold_of": hold.hold_of, "stream_id": scope.stream_id, "error": f"{type(error).__name__}: "
                    f"{error}"[:300]})
                self._telemetry.count("HoldCheckFailures")
        return results


def _check_request(hold: Hold, scope: Scope, at: str) -> StopRequest:
    """The request a check makes of one stream of a hold: the alarm's, told apart by its own id and ``holdOf``."""
    return StopRequest(
        stream_id=scope.stream_id, campaign_type=CampaignType(scope.campaign_type),
        request_id=check_request_id(hold.hold_of, at), source=Source.ALARM, received_at=utc_now(),
        reason=f"hold of {hold.hold_of}: alarm {hold.alarm_name} is still in ALARM"[:512],
        requested_by=f"hold-check:{hold.alarm_name}"[:256], requested_at=at, account_id=scope.account_id or None,
        alarm_arn=hold.alarm_arn, producer=hold.producer, hold_of=hold.hold_of,
    )


def _as_stop_request(request: StopRequest) -> dict[str, Any]:
    """A re-stop as a plain stop request: what its dead letter keeps (redriven, it stops those campaigns)."""
    body = {"streamId": request.stream_id, "campaignIds": list(request.campaign_ids),
            "campaignType": request.campaign_type.value, "requestId": request.request_id, "reason": request.reason,
            "requestedBy": request.requested_by, "accountId": request.account_id}
    return {name: value for name, value in body.items() if value is not None}
