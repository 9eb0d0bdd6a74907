"""The rate ledger: one DynamoDB item per account holding that account's schedule of granted calls (shared by every
container), changed only by a write conditional on the version read (optimistic locking). The schedule itself is
``rate_schedule.Schedule``; the container's threads ask the ledger through ``account_budgets.AccountBudgets``.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stop_campaign.pacing.rate_schedule import Applied, Change, RateLimit, Schedule

LEDGER_KEY_PREFIX = "rate#"
_CONTENDED_SECONDS = 5.0  # how long a write without a deadline of its own keeps trying against other writers


class LedgerUnavailable(Exception):
    """DynamoDB could not be read or written after retries: no call is made without the ledger."""


class LedgerBusy(Exception):
    """Other writers kept winning until the caller's deadline (the ledger is fine: try again later)."""


# ---- The shared part: DynamoDB ----------------------------------------------------------------------------


class RateLedger:
    """One item per account, id "rate#<accountId>", in the idempotency table (partition key ``id``; the TTL
    attribute is ``ttl_attribute``; the table's other items belong to Powertools idempotency)."""

    def __init__(
        self,
        table_name: str,
        dynamodb_client: Any,
        limit: RateLimit,
        *,
        ttl_attribute: str = "expiration",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table_name = table_name
        self._client = dynamodb_client  # the low-level client: boto3.resource costs cold-start time
        self._limit = limit
        self._ttl_attribute = ttl_attribute
        self._clock = clock
        self._sleep = sleep
        self._seen: dict[str, tuple[Schedule, int | None]] = {}  # the item as this container last saw it
        self._seen_lock = threading.Lock()
        # One writer per account in this container: its threads would only make each other's writes fail.
        self._writers: dict[str, threading.Lock] = {}

    def update(self, account_id: str, change: Change) -> Applied:
        """Apply ``change`` in one conditional write (a read first only when this container has not seen the item,
        or saw it without writing). Raises LedgerUnavailable, or LedgerBusy past ``change.not_after``."""
        # A caller with a deadline keeps trying until it; one without (bookkeeping) gives up sooner.
        give_up = change.not_after if math.isfinite(change.not_after) else self._clock() + _CONTENDED_SECONDS
        with self._seen_lock:
            writer = self._writers.setdefault(account_id, threading.Lock())
        if not writer.acquire(timeout=max(0.0, give_up - self._clock())):
            raise LedgerBusy(f"rate ledger of account {account_id}: this container's other writers took the time")
        try:
            return self._update(account_id, change, give_up)
        finally:
            writer.release()

    def _update(self, account_id: str, change: Change, give_up: float) -> Applied:
        key = {"id": {"S": f"{LEDGER_KEY_PREFIX}{account_id}"}}
        fresh = False
        attempt = 0
        while True:
            with self._seen_lock:
                seen = self._seen.get(account_id)
            if seen is None:
                seen, fresh = _decode(self._read(key), account_id), True
            schedule, version = _copy(seen[0]), seen[1]
            applied = schedule.apply(change, self._clock(), self._limit)
            if not applied.changed:
                if fresh:
                    return applied
                self._forget(account_id)  # an answer of "nothing to do" must come from the item as it is now
                continue
            current = self._put(key, schedule, version)
            if current is None:
                self._remember(account_id, (schedule, (version or 0) + 1))
                return applied
            self._remember(account_id, current)  # the item another writer left: try again on it at once
            fresh = True
            attempt += 1
            if self._clock() >= give_up:
                raise LedgerBusy(f"rate ledger of account {account_id}: {attempt} write conflicts in a row")
            if attempt > 2:  # many writers at once: spread them out a little
                self._sleep(random.uniform(0.0, 0.005 * attempt))  # noqa: S311 -- jitter, not security

    def _remember(self, account_id: str, seen: tuple[Schedule, int | None]) -> None:
        with self._seen_lock:
            self._seen[account_id] = seen

    def _forget(self, account_id: str) -> None:
        with self._seen_lock:
            self._seen.pop(account_id, None)

    def _put(self, key: dict[str, Any], schedule: Schedule, version: int | None) -> tuple[Schedule, int | None] | None:
        """Write the item unless another writer got there first; then the item that writer left."""
        latest = max([self._clock(), schedule.paused_until, *schedule.slots[-1:], *schedule.places[-1:]])
        item = {
            **key,
            "slots": {"S": _times(schedule.slots)},
            "places": {"S": _times(schedule.places)},
            "tickets": {"S": " ".join(schedule.tickets)},
            "pausedUntil": {"N": repr(schedule.paused_until)},
            "version": {"N": str((version or 0) + 1)},
            # Gone by itself once nothing in it can matter; a later write pushes this out again.
            self._ttl_attribute: {"N": str(math.ceil(latest + 2 * self._limit.period_seconds))},
        }
        if version is None:
            condition: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#id)",
                "ExpressionAttributeNames": {"#id": "id"},
            }
        else:
            condition = {
                "ConditionExpression": "#version = :version",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": {":version": {"N": str(version)}},
            }
        try:
            self._client.put_item(
                TableName=self._table_name, Item=item, ReturnValuesOnConditionCheckFailure="ALL_OLD", **condition,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                account_id = key["id"]["S"].removeprefix(LEDGER_KEY_PREFIX)
                return _decode(error.response.get("Item"), account_id)
            raise LedgerUnavailable(f"rate ledger not written: {_error_code(error)}") from None
        except BotoCoreError as error:
            raise LedgerUnavailable(f"rate ledger not written: {type(error).__name__}") from None
        return None

    def _read(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table_name, Key=key, ConsistentRead=True)
        except ClientError as error:
            raise LedgerUnavailable(f"rate ledger not read: {_error_code(error)}") from None
        except BotoCoreError as error:
            raise LedgerUnavailable(f"rate ledger not read: {type(error).__name__}") from None
        item: dict[str, Any] | None = response.get("Item")
        return item


def _times(values: list[float]) -> str:
    return " ".join(repr(value) for value in values)  # repr: the exact float comes back


def _copy(schedule: Schedule) -> Schedule:
    return Schedule(list(schedule.slots), list(schedule.places), list(schedule.tickets), schedule.paused_until)


def _decode(item: dict[str, Any] | None, account_id: str) -> tuple[Schedule, int | None]:
    """The schedule in an item, and its version (None: no item yet)."""
    if item is None:
        return Schedule(), None
    try:
        slots = sorted(float(text) for text in item.get("slots", {}).get("S", "").split())
        places = [float(text) for text in item.get("places", {}).get("S", "").split()]
        tickets = item.get("tickets", {}).get("S", "").split()
        paused_until = float(item.get("pausedUntil", {}).get("N", "0"))
        version = int(item.get("version", {}).get("N", "0"))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise LedgerUnavailable(f"rate ledger item of account {account_id} is malformed") from None
    if len(places) != len(tickets) or places != sorted(places):
        raise LedgerUnavailable(f"rate ledger item of account {account_id} is malformed")
    return Schedule(slots, places, tickets, paused_until), version


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "ClientError")
