"""Reads the alarm map (kill switches) from SSM Parameter Store, cached like the secret."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider

from stop_campaign.domain.models import RequestRejected, TransientStopError


class AlarmTargets:
    def __init__(self, parameter_name: str, max_age: int, provider: Callable[[], SSMProvider] = SSMProvider) -> None:
        """``provider`` gives the SSM provider, called at the first read (composition.AwsClients.ssm_parameters)."""
        self._parameter_name = parameter_name
        self._max_age = max_age
        self._provider = provider
        self._lock = threading.Lock()  # one read per cache period, not one per thread

    def alarm_map(self) -> dict[str, Any]:
        with self._lock:
            try:
                value = self._provider().get(self._parameter_name, max_age=self._max_age, transform="json")
            except Exception as error:  # the provider wraps every AWS error (and bad JSON) in its own types
                if "Transform" in type(error).__name__:
                    raise RequestRejected("invalid_alarm_map", "the alarm map parameter is not valid JSON") from None
                raise TransientStopError(
                    "alarm_map_unavailable", f"alarm map could not be read: {type(error).__name__}"
                ) from None
        if not isinstance(value, dict):
            raise RequestRejected("invalid_alarm_map", "the alarm map parameter is not a JSON object")
        return value
