"""Kill switches: which campaigns an alarm stops, decided from the alarm map. Plain Python, no I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stop_campaign.domain.intake import AlarmStateChange, InvalidRequest, parse_stop_request
from stop_campaign.domain.models import Origin, RequestRejected, Source, StopRequest

ALARM_STATE = "ALARM"


class UnmappedAlarm(RequestRejected):
    def __init__(self, alarm_name: str) -> None:
        super().__init__("unmapped_alarm", f"alarm {alarm_name!r} has no entry in the alarm map")


def should_stop(change: AlarmStateChange) -> bool:
    """Only a change into ALARM stops anything; OK and INSUFFICIENT_DATA are ignored."""
    return change.state == ALARM_STATE


def map_entries_for(alarm_name: str, alarm_map: dict[str, Any]) -> list[dict[str, Any]]:
    """Exact names win over prefixes; among prefixes (``name*``) the longest wins."""
    entries = alarm_map.get(alarm_name)
    if entries is None:
        prefixes = [key for key in alarm_map if key.endswith("*") and alarm_name.startswith(key[:-1])]
        if prefixes:
            entries = alarm_map[max(prefixes, key=len)]
    if entries is None:
        raise UnmappedAlarm(alarm_name)
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise RequestRejected("invalid_alarm_map", f"alarm map entry for {alarm_name!r} is not a list of targets")
    return entries


def requests_for_alarm(change: AlarmStateChange, alarm_map: dict[str, Any]) -> list[StopRequest]:
    """The stop requests an alarm in ALARM maps to; each carries the alarm as its who and why."""
    origin = Origin(Source.ALARM, change.request_id, change.received_at, change.attempt)
    reason = f"CloudWatch alarm {change.alarm_name} entered ALARM"
    if change.reason:
        reason = f"{reason}: {change.reason}"
    requests = []
    for entry in map_entries_for(change.alarm_name, alarm_map):
        # The alarm, not the map, says who asked, why and when.
        targets = {key: value for key, value in entry.items() if key not in _ALARM_OWNED_FIELDS}
        try:
            request = parse_stop_request(targets, origin, change.request_id)
        except InvalidRequest as error:
            raise RequestRejected(
                "invalid_alarm_map", f"alarm map entry for {change.alarm_name!r}: {error.message}"
            ) from None
        requests.append(
            replace(
                request,
                reason=reason[:512],
                requested_by=f"cloudwatch-alarm:{change.alarm_name}"[:256],
                requested_at=change.changed_at,
                alarm_arn=change.alarm_arn,
                hold=entry.get("hold") is True,  # validated as a boolean by the request schema
            )
        )
    return requests


_ALARM_OWNED_FIELDS = frozenset({"requestId", "reason", "requestedBy", "requestedAt"})
