"""Holds in DynamoDB (HOLDS_TABLE): the item shapes are domain/holds.py's.

Written when an alarm request with ``hold: true`` is served (one UpdateItem: the first write sets what the hold
is, every write adds its campaigns), read by each hold check (one Scan of the active ones: the table holds a few
items, ended ones expire), ended by the check, by the alarm's own state change out of ALARM, and by
``release`` (``campaign-stop hold release``, and resume).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from stop_campaign.domain.holds import (
    ACTIVE,
    ENDED,
    ENDED_KEEP_DAYS,
    PARTITION_KEY,
    RELEASED,
    TTL_ATTRIBUTE,
    Hold,
    Scope,
    hold_from_item,
)
from stop_campaign.domain.models import utc_now

_deserializer = TypeDeserializer()


class HoldStore:
    def __init__(self, table_name: str, client: Callable[[], Any]) -> None:
        self._table = table_name
        self._dynamodb = client  # makes (or hands back) the boto3 DynamoDB client, at the first use

    @property
    def table_name(self) -> str:
        return self._table

    @property
    def _client(self) -> Any:
        return self._dynamodb()

    def record(self, hold_of: str, fields: dict[str, Any], scopes: list[Scope], campaigns: set[str]) -> None:
        """Begin the hold ``hold_of`` (``fields``: domain.holds.item_fields, kept from the first write) or add to it
        (its scopes and campaigns). Idempotent: a redelivery writes the same sets again. A hold released or ended
        meanwhile stays so: a late segment of its request does not bring it back."""
        names: dict[str, str] = {"#scopes": "scopes"}
        values: dict[str, Any] = {":scopes": {"SS": sorted({scope.encoded() for scope in scopes})}}
        sets = []
        for index, (name, value) in enumerate(sorted(fields.items())):
            names[f"#f{index}"] = name
            values[f":f{index}"] = {"S": str(value)}
            sets.append(f"#f{index} = if_not_exists(#f{index}, :f{index})")
        adds = ["#scopes :scopes"]
        if campaigns:
            names["#campaigns"] = "campaigns"
            values[":campaigns"] = {"SS": sorted(campaigns)}
            adds.append("#campaigns :campaigns")
        self._client.update_item(
            TableName=self._table, Key={PARTITION_KEY: {"S": hold_of}},
            UpdateExpression="SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values,
        )

    def active(self) -> list[Hold]:
        """Every active hold (one Scan, its pages followed)."""
        return [hold_from_item(item) for item in self.items(only_active=True)]

    def items(self, only_active: bool = True) -> list[dict[str, Any]]:
        """The holds' items, deserialized (plain values; string sets as Python sets)."""
        query: dict[str, Any] = {"TableName": self._table}
        if only_active:
            query |= {"FilterExpression": "#status = :active", "ExpressionAttributeNames": {"#status": "status"},
                      "ExpressionAttributeValues": {":active": {"S": ACTIVE}}}
        found: list[dict[str, Any]] = []
        while True:
            page = self._client.scan(**query)
            found.extend({name: _deserializer.deserialize(value) for name, value in item.items()}
                         for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def item(self, request_id: str) -> dict[str, Any] | None:
        """One hold's item (deserialized), active or not; None when there is none."""
        found = self._client.get_item(TableName=self._table, Key={PARTITION_KEY: {"S": request_id}},
                                      ConsistentRead=True).get("Item")
        return {name: _deserializer.deserialize(value) for name, value in found.items()} if found else None

    def release(self, request_id: str) -> bool:
        """End the hold of the alarm request ``request_id`` by an operator's (or a resume's) say. Idempotent: True
        when an active hold was released now; False when there is none (unknown, released or ended before)."""
        return self.end(request_id, "released", status=RELEASED)

    def end(self, request_id: str, reason: str, status: str = ENDED) -> bool:
        """End an active hold (``reason`` says why); False when it was not active (or does not exist)."""
        client = self._client
        try:
            client.update_item(
                TableName=self._table, Key={PARTITION_KEY: {"S": request_id}},
                UpdateExpression="SET #status = :status, endedAt = :at, endReason = :reason, #ttl = :expires",
                ConditionExpression="#status = :active",
                ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":status": {"S": status}, ":at": {"S": utc_now()}, ":reason": {"S": reason[:512]},
                    ":active": {"S": ACTIVE}, ":expires": {"N": str(int(time.time()) + ENDED_KEEP_DAYS * 86400)},
                },
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True
