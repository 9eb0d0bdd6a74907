"""Plan: from a parsed message to the stop requests and campaigns it asks for. Plain Python, no I/O.

What needs the outside world (the alarm map, credentials, the all-active list) is fetched by the processor
and handed in; everything decided from it lives here, so it is unit-tested without AWS or sockets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from stop_campaign.domain.alarms import requests_for_alarm, should_stop
from stop_campaign.domain.intake import AlarmStateChange
from stop_campaign.domain.models import (
    Continuation,
    Origin,
    Outcome,
    Progress,
    ResultEvent,
    Source,
    StopRequest,
    StopTarget,
    utc_now,
)


@dataclass(slots=True)
class PlannedRequest:
    """A request to serve in this invocation, with what earlier invocations of it did (if any)."""

    request: StopRequest
    progress: Progress = field(default_factory=Progress)
    refused: int = 0  # campaigns of it its producer may not stop (ended before any call: processing._authorize)

    @property
    def reports_summary(self) -> bool:
        """Requests that cover several campaigns end in a summary event besides their results."""
        request = self.request
        return (
            request.all_active or len(request.campaign_ids) + self.refused > 1 or request.source is Source.ALARM
            or self.progress.segment > 1 or request.resume_of is not None
        )


def planned_requests(
    parsed: StopRequest | AlarmStateChange | Continuation, alarm_map: dict | None = None
) -> list[PlannedRequest]:
    """The requests a message asks for. An alarm needs ``alarm_map`` (and must be one that stops)."""
    if isinstance(parsed, StopRequest):
        return [PlannedRequest(parsed)]
    if isinstance(parsed, Continuation):
        return [PlannedRequest(parsed.request, parsed.progress)]
    if alarm_map is None:
        raise ValueError("an alarm is planned with the alarm map")
    return [PlannedRequest(request) for request in merged(requests_for_alarm(parsed, alarm_map))]


def merged(requests: list[StopRequest]) -> list[StopRequest]:
    """Alarm map entries naming campaigns of the same stream (and type, account, dry run, disableSchedule, hold) are
    one request: one list of campaigns, one summary. (A schedule is never disabled, a campaign never held, for an
    entry that did not ask.)"""
    by_scope: dict[tuple[object, ...], StopRequest] = {}
    kept: list[StopRequest] = []
    for request in requests:
        scope = (request.stream_id, request.campaign_type, request.account_id, request.dry_run,
                 request.disable_schedule, request.hold)
        earlier = by_scope.get(scope)
        if request.all_active or earlier is None:
            kept.append(request)
            if not request.all_active:
                by_scope[scope] = request
            continue
        ids = tuple(dict.fromkeys((*earlier.campaign_ids, *request.campaign_ids)))
        union = replace(earlier, campaign_ids=ids)
        kept[kept.index(earlier)] = union
        by_scope[scope] = union
    return kept


def needs_alarm_map(parsed: StopRequest | AlarmStateChange | Continuation) -> bool:
    return isinstance(parsed, AlarmStateChange) and should_stop(parsed)


def ignored_alarm(alarm: AlarmStateChange, origin: Origin) -> ResultEvent:
    """An alarm leaving ALARM asks for no stop: one ``ignored`` result says it was seen."""
    return ResultEvent(
        outcome=Outcome.IGNORED, request_id=alarm.request_id, source=Source.ALARM,
        received_at=alarm.received_at, completed_at=utc_now(), attempts=origin.attempt,
        reason=f"CloudWatch alarm {alarm.alarm_name} changed to {alarm.state}",
        requested_by=alarm_requester(alarm), requested_at=alarm.changed_at, alarm_arn=alarm.alarm_arn,
    )


def alarm_requester(alarm: AlarmStateChange) -> str:
    return f"cloudwatch-alarm:{alarm.alarm_name}"[:256]


def unique_targets(targets: list[StopTarget]) -> list[StopTarget]:
    """The same campaign twice in one message (overlapping alarm map entries) is one stop, not two that would
    block each other on one idempotency record; a dry run and a real stop of it stay two."""
    unique: dict[str, StopTarget] = {}
    for target in targets:
        kept = unique.setdefault(target_key(target), target)
        if target.request.disable_schedule and not kept.request.disable_schedule:
            unique[target_key(target)] = target  # one entry asked for its schedule to be disabled: that one is kept
    return list(unique.values())


def target_key(target: StopTarget) -> str:
    """One stop of one campaign: the same for a repeat of it in one message."""
    return json.dumps({**target.idempotency_key(), "dryRun": target.request.dry_run}, sort_keys=True)
