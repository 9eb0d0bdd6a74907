"""CloudWatch DescribeAlarms, by name: which state each held alarm is in now (the hold check's first question)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_NAMES_PER_CALL = 100  # DescribeAlarms' AlarmNames limit


class AlarmStates:
    def __init__(self, client: Callable[[], Any]) -> None:
        self._cloudwatch = client  # makes (or hands back) the boto3 CloudWatch client, at the first use

    def states(self, alarm_names: list[str]) -> dict[str, str]:
        """The state value (ALARM, OK, INSUFFICIENT_DATA) of each alarm found, metric and composite alike; a name
        that is absent from the answer is no alarm of this account and Region (any more)."""
        names = sorted(set(alarm_names))
        found: dict[str, str] = {}
        client = self._cloudwatch()
        for start in range(0, len(names), MAX_NAMES_PER_CALL):
            query: dict[str, Any] = {"AlarmNames": names[start:start + MAX_NAMES_PER_CALL],
                                     "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
            while True:
                page = client.describe_alarms(**query)
                for alarm in (*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])):
                    found[str(alarm["AlarmName"])] = str(alarm.get("StateValue"))
                if not page.get("NextToken"):
                    break
                query["NextToken"] = page["NextToken"]
        return found
