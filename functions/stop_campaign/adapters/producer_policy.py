"""Reads the producer policy (who may stop what) from SSM Parameter Store, cached like the alarm map."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from aws_lambda_powertools.utilities.parameters import SSMProvider

from stop_campaign.domain.models import RequestRejected, TransientStopError
from stop_campaign.domain.policy import PolicyInvalid, ProducerPolicy, parse_policy


class ProducerPolicySource:
    def __init__(self, parameter_name: str, max_age: int, provider: Callable[[], SSMProvider] = SSMProvider) -> None:
        """``parameter_name`` "": no policy, every producer may stop everything (as before the policy existed).
        ``provider`` gives the SSM provider, called at the first read (composition.AwsClients.ssm_parameters)."""
        self._parameter_name = parameter_name
        self._max_age = max_age
        self._provider = provider
        self._lock = threading.Lock()  # one read per cache period, not one per thread
        self._parsed: tuple[str, ProducerPolicy] | None = None  # the last text read, and its policy

    @property
    def configured(self) -> bool:
        return bool(self._parameter_name)

    def current(self) -> ProducerPolicy | None:
        """The policy in force; None without one. An unreadable parameter is transient (the message is retried);
        an invalid one rejects what it would have judged, until it is fixed (`campaign-stop producers put`)."""
        if not self._parameter_name:
            return None
        with self._lock:
            try:
                text = self._provider().get(self._parameter_name, max_age=self._max_age)
            except Exception as error:  # the provider wraps every AWS error in its own types
                raise TransientStopError(
                    "producer_policy_unavailable", f"producer policy could not be read: {type(error).__name__}"
                ) from None
            if self._parsed is not None and self._parsed[0] == text:
                return self._parsed[1]
            try:
                policy = parse_policy(json.loads(str(text)))
            except (ValueError, RecursionError) as error:  # PolicyInvalid is a ValueError too
                why = "; ".join(error.problems[:3]) if isinstance(error, PolicyInvalid) else "not valid JSON"
                raise RequestRejected("invalid_producer_policy", f"the producer policy is not valid: {why}"[:1000]) \
                    from None
            self._parsed = (str(text), policy)
            return policy
