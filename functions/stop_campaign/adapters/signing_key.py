"""The key continuations are signed with: random, made on first use, kept in the idempotency table.

Why there: only the function's role (and the account's administrators) can read that table, the function
already may, and it needs no setup, no KMS key and no rotation of its own; a key from the credentials secret
would change (and void every continuation in flight) whenever the Kore.ai credentials rotate.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from stop_campaign.domain.models import TransientStopError

KEY_ITEM_ID = "campaign-stop#continuation-signing-key"  # no idempotency record or ledger item is named like it
KEY_BYTES = 32


class ContinuationKey:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table_name = table_name
        self._dynamodb = dynamodb
        self._lock = threading.Lock()
        self._key: bytes | None = None

    def get(self) -> bytes:
        """The key, read once per container (made by the first container that needs it)."""
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._read_or_make()
        return self._key

    def _read_or_make(self) -> bytes:
        item_key = {"id": {"S": KEY_ITEM_ID}}
        try:
            found = self._dynamodb.get_item(TableName=self._table_name, Key=item_key, ConsistentRead=True)
            if "Item" in found:
                return bytes(found["Item"]["key"]["B"])
            made = secrets.token_bytes(KEY_BYTES)
            try:
                self._dynamodb.put_item(
                    TableName=self._table_name, Item={**item_key, "key": {"B": made}},
                    ConditionExpression="attribute_not_exists(id)",  # two first containers agree on one key
                )
                return made
            except self._dynamodb.exceptions.ConditionalCheckFailedException:
                found = self._dynamodb.get_item(TableName=self._table_name, Key=item_key, ConsistentRead=True)
                return bytes(found["Item"]["key"]["B"])
        except Exception as error:  # botocore's errors: the message is retried, nothing is lost
            if isinstance(error, TransientStopError):
                raise
            raise TransientStopError("signing_key_unavailable",
                                     f"the continuation key could not be read: {type(error).__name__}") from None
