"""Request history in DynamoDB (REQUEST_HISTORY_TABLE): the item shapes are domain/history.py's.

Written at the end of the report step (off the path of any stop), from the events as published; every write is
idempotent, so a redelivery may write again. Two writes per result: the campaign's item (its previous outcome
comes back, so a later result of the same campaign, e.g. after a redrive, moves the counts instead of adding to
them), then the request item's counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from stop_campaign.domain.history import (
    COUNT_PREFIX,
    PARTITION_KEY,
    REQUEST_ENTRY,
    RESULT_PREFIX,
    SORT_KEY,
    TTL_ATTRIBUTE,
    request_fields,
    result_entry,
)
from stop_campaign.domain.models import TransientStopError
from stop_campaign.domain.resume import HISTORY_UNAVAILABLE


class RequestHistory:
    def __init__(self, table_name: str, client: Callable[[], Any], days: int) -> None:
        self._table = table_name
        self._dynamodb = client  # makes (or hands back) the boto3 DynamoDB client, at the first write
        self._keep_seconds = days * 86400

    @property
    def _client(self) -> Any:
        return self._dynamodb()

    def record_result(self, message: dict[str, Any]) -> None:
        """Keep one published result (the event as published) and count it on its request."""
        outcome = str(message.get("outcome"))
        expires = self._expires()
        previous = self._client.put_item(
            TableName=self._table,
            Item={
                PARTITION_KEY: {"S": str(message["requestId"])},
                SORT_KEY: {"S": result_entry(message)},
                "outcome": {"S": outcome},
                "campaignId": {"S": str(message.get("campaignId") or "")},
                "completedAt": {"S": str(message.get("completedAt") or "")},
                "result": {"S": json.dumps(message, separators=(",", ":"), default=str)},
                TTL_ATTRIBUTE: {"N": str(expires)},
            },
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
        was = previous.get("outcome", {}).get("S")
        counts = {} if was == outcome else {outcome: 1} | ({was: -1} if was else {})
        self._update_request(message, expires, counts)

    def results(self, request_id: str) -> list[dict[str, Any]]:
        """A request's result events as published, one per campaign (what a resume reads): one Query on the request's
        partition, every page. Raises TransientStopError when the table cannot be read (the message is retried)."""
        found: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#request = :request AND begins_with(#entry, :results)",
            "ExpressionAttributeNames": {"#request": PARTITION_KEY, "#entry": SORT_KEY},
            "ExpressionAttributeValues": {":request": {"S": request_id}, ":results": {"S": RESULT_PREFIX}},
            "ProjectionExpression": "#result",
            "ConsistentRead": True,  # a resume right after its stop must see every result written
        }
        query["ExpressionAttributeNames"]["#result"] = "result"
        try:
            while True:
                page = self._client.query(**query)
                for item in page.get("Items", []):
                    text = item.get("result", {}).get("S")
                    message = json.loads(text) if isinstance(text, str) else None
                    if isinstance(message, dict):
                        found.append(message)
                if not page.get("LastEvaluatedKey"):
                    return found
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except Exception as error:  # whatever the table or the SDK raised (ClientError, timeouts): try again later
            raise TransientStopError(HISTORY_UNAVAILABLE, f"the request history could not be read: "
                                     f"{type(error).__name__}") from None

    def record_summary(self, message: dict[str, Any]) -> None:
        """Keep a multi-campaign request's summary event on its request item."""
        self._update_request(message, self._expires(), {}, summary=json.dumps(message, separators=(",", ":")))

    def _update_request(
        self, message: dict[str, Any], expires: int, counts: dict[str, int], summary: str | None = None,
    ) -> None:
        names: dict[str, str] = {"#expires": TTL_ATTRIBUTE, "#last": "lastAt"}
        values: dict[str, Any] = {":expires": {"N": str(expires)},
                                  ":last": {"S": str(message.get("completedAt") or "")}}
        sets = ["#expires = :expires", "#last = :last"]
        for index, (name, value) in enumerate(request_fields(message).items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = {"BOOL": value} if isinstance(value, bool) else {"S": str(value)}
            sets.append(f"#f{index} = if_not_exists(#f{index}, :f{index})")  # the first event's say
        if summary is not None:
            names["#summary"] = "summary"
            values[":summary"] = {"S": summary}
            sets.append("#summary = :summary")
        adds = []
        for index, (outcome, change) in enumerate(sorted(counts.items())):
            names[f"#c{index}"] = f"{COUNT_PREFIX}{outcome}"
            values[f":c{index}"] = {"N": str(change)}
            adds.append(f"#c{index} :c{index}")
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        self._client.update_item(
            TableName=self._table,
            Key={PARTITION_KEY: {"S": str(message["requestId"])}, SORT_KEY: {"S": REQUEST_ENTRY}},
            UpdateExpression=expression, ExpressionAttributeNames=names, ExpressionAttributeValues=values,
        )

    def _expires(self) -> int:
        return int(time.time()) + self._keep_seconds
