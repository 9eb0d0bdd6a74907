"""Hypothesis strategies for everything AWS (or anyone) could deliver to the handler: shared by the unit
property tests of intake and the integration property tests of the handler."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# Values that tempt the parser: the right keys with wrong, huge or odd values.
tempting = scalars | st.text(min_size=200, max_size=3000) | st.sampled_from(
    ["all-active", "sms", "voice", "ALARM", "OK", "Notification", "aws.cloudwatch", "aws:sns", "aws:sqs",
     "CloudWatch Alarm State Change", "st-1", "cd-1", "2026-11-28T10:05:00.000+0000"]
) | json_values
request_keys = ["streamId", "campaignId", "campaignIds", "campaigns", "campaignType", "requestId", "reason",
                "requestedBy", "requestedAt", "accountId", "dryRun"]
stop_requests = st.dictionaries(st.sampled_from(request_keys), tempting, max_size=8)
alarm_actions = st.fixed_dictionaries(
    {"source": st.just("aws.cloudwatch")},
    optional={"alarmArn": tempting, "time": tempting, "accountId": tempting, "alarmData": st.fixed_dictionaries(
        {}, optional={"alarmName": tempting, "state": st.dictionaries(
            st.sampled_from(["value", "reason", "timestamp", "reasonData"]), tempting, max_size=4),
            "configuration": json_values})},
)
eventbridge = st.fixed_dictionaries(
    {"detail-type": st.sampled_from(["Stop Campaign Request", "CloudWatch Alarm State Change", "x"])},
    optional={"id": tempting, "source": tempting, "detail": stop_requests | json_values, "resources": json_values},
)
alarm_notifications = st.fixed_dictionaries(
    {}, optional={"AlarmName": tempting, "NewStateValue": tempting, "StateChangeTime": tempting,
                  "AlarmArn": tempting, "NewStateReason": tempting},
)


def sns(message: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"Type": st.sampled_from(["Notification", "SubscriptionConfirmation"]),
         "Message": message.map(json.dumps) | st.text(max_size=50)},
        optional={"MessageId": tempting, "TopicArn": tempting},
    )


carried = stop_requests | alarm_actions | eventbridge | alarm_notifications | json_values
notifications = sns(carried)
sns_events = st.fixed_dictionaries({"Records": st.lists(st.fixed_dictionaries(
    {"EventSource": st.just("aws:sns")}, optional={"Sns": notifications | json_values}), max_size=2)})
continuations = st.fixed_dictionaries(
    {"continuation": st.dictionaries(st.sampled_from(
        ["version", "segment", "invocations", "campaigns", "tallies", "stalled", "allActive"]), tempting, max_size=7)},
    optional={"request": stop_requests | json_values},
)
anything = carried | notifications | sns_events | continuations | json_values
