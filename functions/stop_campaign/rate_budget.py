"""Per-account pacing of Kore.ai API calls: one hard budget shared by every thread of every container.

Every call is granted by the account's ledger, one DynamoDB item per account in the idempotency table, changed
only by a write conditional on the version read (optimistic locking). No container ever calls on a guess: a cold
container, a warm one with an old view, and a contended ledger all wait for a grant, so no window of the limit's
length ever holds more calls than the limit (the schedule itself is ``rate_schedule.Schedule``).

What keeps the lone stop fast: its grant is asked for while its idempotency record is being written
(``AccountPacer.prepare``, on a background thread), and a warm container writes the ledger from the item it last
saw, so a grant costs one conditional write when nobody else wrote in between (two when somebody did: the failed
write returns the current item).

What keeps a busy account fair: one caller at a time goes to the ledger for all the callers of its container
(``lanes``: kill switches, ticket holders and the rest), and requests that must wait are booked places in the
ledger's queue (``AccountBudgets.book``), served in order when they come back.

A 429 pauses every caller of the account, in every container, until ``Retry-After`` (or a backoff).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from stop_campaign.models import StopDeferred
from stop_campaign.rate_schedule import NORMAL, Applied, Change, RateLimit, Schedule

logger = Logger(child=True)

LEDGER_KEY_PREFIX = "rate#"
_BACKOFF_JITTER = 0.1  # up to 10 % on top of a backoff step, so paused callers do not all come back at once
_MAX_BACKOFF_STEP = 30  # 2**30 s is beyond any period; keeps 2.0**step finite
_CONTENDED_SECONDS = 5.0  # how long a write without a deadline of its own keeps trying against other writers
_BUSY_RETRY_SECONDS = 1.0  # a caller whose deadline came during write conflicts tries again this much later
_SETTLE_SECONDS = 1.0  # giving slots back at the end of an invocation: worth a try, not the invocation's timeout


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


# ---- The container's part: threads ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetStats:
    throttled: int  # 429 answers reported through AccountPacer.throttled
    waited_seconds: float  # seconds callers slept for the budget or a pause


@dataclass(eq=False)
class _Lane:
    """The callers of one account that ask the same way (URGENT, NORMAL, or one ticket)."""

    waiting: int = 0  # callers in acquire()
    expected: int = 0  # calls announced by prepare() whose callers have not come yet
    deadlines: list[float] = field(default_factory=list)  # not_after of each caller in acquire()
    expected_by: float = 0.0  # the latest not_after of the calls announced by prepare()
    lease: list[float] = field(default_factory=list)  # granted, not yet handed to a caller
    answered: int = 0  # the last sync that asked for this lane
    exhausted: bool = False  # that sync got fewer grants than asked
    next_free: float = 0.0  # when that sync said a further grant could be
    failed: Exception | None = None  # that sync's ledger error


@dataclass(eq=False)
class _Account:
    """One account's pacing state in this container. Every field is guarded by ``changed``."""

    account_id: str
    changed: threading.Condition = field(default_factory=threading.Condition)
    lanes: dict[str, _Lane] = field(default_factory=dict)
    syncing: bool = False  # one caller is at the ledger for every lane
    syncs: int = 0  # syncs started
    unreleased: list[float] = field(default_factory=list)  # granted slots that will not be used
    bookings: dict[str, int] = field(default_factory=dict)  # places to book with the next sync, per ticket
    booked: dict[str, tuple[int, float | None, Exception | None]] = field(default_factory=dict)  # sync, first, error
    paused_until: float = 0.0
    backoff_step: int = 0  # 429s without Retry-After in a row
    grants_since_pause: int = 0

    def lane(self, name: str) -> _Lane:
        found = self.lanes.get(name)
        if found is None:
            found = self.lanes[name] = _Lane()
        return found


_Demand = dict[str, tuple[int, float]]  # lane -> calls wanted, and the latest they are of use
_SyncWork = tuple[int, _Demand, tuple[float, ...], dict[str, int]]  # sync, demand, released, bookings


class AccountBudgets:
    """One per container, thread-safe. Hands out per-account pacers."""

    def __init__(
        self,
        limit: RateLimit,
        ledger: RateLedger,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        normal_horizon: float = math.inf,
    ) -> None:
        self._limit = limit
        self._ledger = ledger
        # Routine calls take grants at most this far ahead and wait as booked places beyond it: the future is then
        # queue, which a kill switch can overtake, not grants already handed to other containers' callers.
        self._normal_horizon = normal_horizon
        self._clock = clock
        self._sleep = sleep
        # A granted slot this late is still used; older ones go back (a caller sending on a long-gone grant
        # would put two calls closer than the log allows). Well inside the send-lag allowance of RateLimit.paced.
        self._late_grace = min(0.1, limit.period_seconds / limit.calls)
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()  # guards _accounts, the stats and the background pool
        self._throttled_count = 0
        self._waited_seconds = 0.0
        self._background: ThreadPoolExecutor | None = None

    def for_account(self, account_id: str, lane: str = NORMAL) -> AccountPacer:
        return AccountPacer(self, self._account(account_id), lane)

    def _account(self, account_id: str) -> _Account:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                account = self._accounts[account_id] = _Account(account_id)
            return account

    def book(self, account_id: str, ticket: str, places: int, not_after: float = math.inf) -> float | None:
        """Make ``ticket`` hold ``places`` places in the account's queue; when its first one is due (None: none
        held, the queue being full). Raises LedgerUnavailable, or LedgerBusy when not done by ``not_after``."""
        account = self._account(account_id)
        with account.changed:
            account.bookings[ticket] = places
            since = account.syncs
        # Bookings of one container ride along with its next trip to the ledger: one write for many hand-overs.
        while True:
            work = None
            with account.changed:
                answer = account.booked.get(ticket)
                if answer is not None and answer[0] > since:
                    del account.booked[ticket]
                    if answer[2] is not None:
                        raise answer[2]
                    return answer[1]
                if self._clock() >= not_after:
                    account.bookings.pop(ticket, None)
                    raise LedgerBusy(f"no places booked in time for account {account_id}")
                if account.syncing:
                    account.changed.wait(timeout=max(0.0, not_after - self._clock()))
                    continue
                work = self._start_sync(account)
            self._sync(account, *work, not_after)

    def settle(self) -> None:
        """End of an invocation: give back every granted slot no caller took. Never raises."""
        for account in self._all_accounts():
            try:
                with account.changed:
                    while account.syncing:
                        account.changed.wait()
                    for lane in account.lanes.values():
                        account.unreleased.extend(lane.lease)
                        lane.lease.clear()
                        lane.expected = 0
                    released, account.unreleased = account.unreleased, []
                if released:
                    self._ledger.update(account.account_id, Change(released=tuple(released),
                                                                   not_after=self._clock() + _SETTLE_SECONDS))
            except Exception:  # the invocation's results matter more than its bookkeeping
                logger.exception("Rate budget not settled", extra={"account_id": account.account_id})

    def drain_stats(self) -> BudgetStats:
        """Throttled calls and seconds waited since the last drain, all accounts together."""
        with self._lock:
            stats = BudgetStats(self._throttled_count, self._waited_seconds)
            self._throttled_count, self._waited_seconds = 0, 0.0
        return stats

    # -- prepare and acquire

    def _prepare(self, account: _Account, lane_name: str, calls: int, not_after: float) -> None:
        with account.changed:
            lane = account.lane(lane_name)
            lane.expected_by = not_after if lane.expected == 0 else max(lane.expected_by, not_after)
            lane.expected += calls
            if account.syncing:
                return  # the next sync asks for these too
            work = self._start_sync(account)
        self._pool().submit(self._sync, account, *work, not_after)

    def _acquire(self, account: _Account, lane_name: str, not_after: float) -> float:
        with account.changed:
            lane = account.lane(lane_name)
            lane.waiting += 1
            lane.deadlines.append(not_after)
            lane.expected = max(0, lane.expected - 1)
            since = account.syncs
        try:
            return self._wait_for_grant(account, lane, not_after, since)
        finally:
            with account.changed:
                lane.waiting -= 1
                lane.deadlines.remove(not_after)

    def _wait_for_grant(self, account: _Account, lane: _Lane, not_after: float, since: int) -> float:
        waited = 0.0
        while True:
            work: _SyncWork | None = None
            grant: float | None = None
            with account.changed:
                now = self._clock()
                self._forget_stale(account, now)
                if account.paused_until > now:
                    if account.paused_until > not_after:
                        raise StopDeferred(account.paused_until, "the account is paused after a 429", budget=True)
                    target = account.paused_until
                elif lane.lease and lane.lease[0] <= not_after:
                    grant = target = lane.lease.pop(0)
                elif lane.lease:
                    raise StopDeferred(lane.lease[0], "the account's rate budget is spent for now", budget=True)
                elif lane.answered > since and lane.failed is not None:
                    raise lane.failed
                elif lane.answered > since and lane.exhausted:
                    raise StopDeferred(lane.next_free, "the account's rate budget is spent for now", budget=True)
                elif account.syncing:
                    account.changed.wait()  # somebody is at the ledger for everyone: wait for what they bring
                    continue
                else:
                    work = self._start_sync(account)
            if work is not None:
                self._sync(account, *work, not_after)
                continue
            if target > now:
                waited += self._sleep_until(target, now)
            if grant is None:
                continue  # the pause is over: look again
            with account.changed:
                if account.paused_until > grant:  # a 429 came while we slept: give the grant back, wait the pause
                    account.unreleased.append(grant)
                    continue
                account.grants_since_pause += 1
                if account.grants_since_pause >= 2:  # the call after the pause came back without a 429
                    account.backoff_step = 0
            return waited

    def _start_sync(self, account: _Account) -> _SyncWork:
        """Caller holds ``account.changed``: what one trip to the ledger asks for, for every lane."""
        account.syncing = True
        account.syncs += 1
        demand = {
            name: (wanted, max([*lane.deadlines, *([lane.expected_by] if lane.expected else [])]))
            for name, lane in account.lanes.items()
            if (wanted := lane.waiting + lane.expected - len(lane.lease)) > 0
        }
        released, account.unreleased = tuple(account.unreleased), []
        bookings, account.bookings = account.bookings, {}
        return account.syncs, demand, released, bookings

    def _sync(
        self, account: _Account, sync: int, demand: _Demand, released: tuple[float, ...],
        bookings: dict[str, int], not_after: float,
    ) -> None:
        applied: Applied | None = None
        error: Exception | None = None
        busy: LedgerBusy | None = None
        try:
            applied = self._ledger.update(
                account.account_id, Change(
                    released=released, reserve={name: wanted for name, (wanted, _) in demand.items()},
                    reserve_by={name: by for name, (_, by) in demand.items()}, book=bookings, not_after=not_after,
                    normal_horizon=self._normal_horizon,
                ),
            )
        except LedgerBusy as contended:
            busy = contended
        except LedgerUnavailable as unavailable:
            error = unavailable
            logger.warning("Rate ledger unavailable: no call without it", extra={"error": str(unavailable)})
        except Exception as unexpected:  # never leave the callers waiting for this sync
            error = unexpected
        finally:
            with account.changed:
                account.syncing = False
                if applied is None:
                    account.unreleased.extend(released)  # not written: give them back next time
                else:
                    self._learn_pause(account, applied.paused_until)
                for ticket in bookings:
                    first = applied.first_place.get(ticket) if applied is not None else None
                    account.booked[ticket] = (sync, first, error or busy)
                for name, (wanted, _) in demand.items():
                    lane = account.lane(name)
                    lane.answered, lane.failed = sync, error
                    if applied is not None:
                        grants = applied.grants.get(name, [])
                        lane.lease = sorted(lane.lease + grants)
                        lane.exhausted = len(grants) < wanted
                        lane.next_free = applied.next_free.get(name, self._clock())
                    elif error is None:  # contended until the deadline: nothing granted, try again soon
                        lane.exhausted, lane.next_free = True, self._clock() + _BUSY_RETRY_SECONDS
                self._drop_paused_lease(account)
                account.changed.notify_all()

    def _sleep_until(self, target: float, now: float) -> float:
        self._sleep(target - now)  # outside every lock
        slept = max(0.0, self._clock() - now)
        with self._lock:
            self._waited_seconds += slept
        return slept

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._background is None:
                self._background = ThreadPoolExecutor(2, thread_name_prefix="rate-budget")
            return self._background

    # -- 429

    def _throttled(self, account: _Account, retry_after: float | None) -> None:
        with self._lock:
            self._throttled_count += 1
        with account.changed:
            now = self._clock()
            if retry_after is not None:
                until = now + max(0.0, retry_after)
            elif now < account.paused_until:
                until = account.paused_until  # an answer to a call sent before this pause: no new step
            else:
                step = min(2.0 ** min(account.backoff_step, _MAX_BACKOFF_STEP), self._limit.period_seconds)
                account.backoff_step += 1
                until = now + step + random.uniform(0.0, _BACKOFF_JITTER * step)  # noqa: S311 -- jitter
            extended = until > account.paused_until
            if extended:
                self._learn_pause(account, until)
            account.changed.notify_all()
        if extended:
            try:
                applied = self._ledger.update(account.account_id, Change(pause_until=until))
            except (LedgerUnavailable, LedgerBusy) as error:  # this container still keeps the pause
                logger.warning("Rate ledger not told of a 429", extra={"error": str(error)})
                return
            with account.changed:
                self._learn_pause(account, applied.paused_until)

    # -- bookkeeping

    def _learn_pause(self, account: _Account, paused_until: float) -> None:
        """Caller holds ``account.changed``: a later pause (ours, or another container's 429) holds every lane."""
        if paused_until > account.paused_until:
            account.paused_until = paused_until
            account.grants_since_pause = 0
            self._drop_paused_lease(account)
            account.changed.notify_all()

    def _drop_paused_lease(self, account: _Account) -> None:
        # Granted slots inside a pause go back; the callers ask for new ones after it.
        for lane in account.lanes.values():
            inside = [at for at in lane.lease if at < account.paused_until]
            if inside:
                account.unreleased.extend(inside)
                lane.lease = lane.lease[len(inside):]

    def _forget_stale(self, account: _Account, now: float) -> None:
        for lane in account.lanes.values():
            stale = [at for at in lane.lease if at < now - self._late_grace]
            if stale:
                account.unreleased.extend(stale)
                lane.lease = lane.lease[len(stale):]

    def _all_accounts(self) -> list[_Account]:
        with self._lock:
            return list(self._accounts.values())


class AccountPacer:
    """What the HTTP client uses, bound to one account and one lane."""

    __slots__ = ("_account", "_budgets", "_lane")

    def __init__(self, budgets: AccountBudgets, account: _Account, lane: str) -> None:
        self._budgets = budgets
        self._account = account
        self._lane = lane

    @property
    def account_id(self) -> str:
        return self._account.account_id

    def prepare(self, calls: int, not_after: float) -> None:
        """Ask the ledger now, on a background thread, for ``calls`` calls that callers will soon acquire: the
        grant is then ready when the stop has written its idempotency record."""
        self._budgets._prepare(self._account, self._lane, calls, not_after)

    def acquire(self, not_after: float) -> float:
        """Block until this caller may send one call; return the seconds waited. Raises StopDeferred when no
        slot (or the end of a pause) comes before ``not_after``, LedgerUnavailable when the ledger is down."""
        return self._budgets._acquire(self._account, self._lane, not_after)

    def throttled(self, retry_after: float | None) -> None:
        """The API answered 429: pause every caller of this account, here and in other containers."""
        self._budgets._throttled(self._account, retry_after)
