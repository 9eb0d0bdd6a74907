"""Per-account pacing of Kore.ai API calls, shared by every thread of a container and by every container.

Kore.ai documents 60 requests per 60 s per account, but not whether its window is fixed or rolling, nor how
big a burst it takes. A sliding log is safe for both kinds of window and still allows a burst of the whole
allowance at once: never more than ``calls`` grants within any ``period_seconds``.

The log is kept in DynamoDB (one item per account, in the idempotency table) so that concurrent invocations
share it, and a 429 pauses every caller of the account, in every container. Hand-written because no
well-kept library does a distributed sliding log over DynamoDB with a shared 429 pause: the token-bucket
libraries are per process, and the distributed ones need Redis.

Two paths:

- Fast: a lone caller of a quiet account is let through at once, with no DynamoDB round trip in front of
  its call; the ledger hears of the call afterwards (a background thread, or ``AccountBudgets.settle()``).
  Until it does, other containers cannot see the call, so a container allows itself fewer than half the
  budget this way, and none while the ledger says the account is busy (``RateLedger.update``).
- Paced: everybody else takes grants reserved in the ledger, one caller reserving for all who wait.
"""

from __future__ import annotations

import bisect
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from stop_campaign.records import Record

logger = Logger(child=True)

MAX_CALLS = 10_000
MAX_PERIOD_SECONDS = 3600.0
LEDGER_KEY_PREFIX = "rate#"
SEND_LAG_SECONDS = 0.25  # the least allowance for a call's grant-to-arrival lag (see RateLimit.paced)

_LIMIT_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*")
# Epoch seconds as floats are about 2e-7 apart today: "one period later" must not fail on rounding.
_TIME_TOLERANCE = 1e-6
_CONFLICT_ATTEMPTS = 8
_BACKOFF_JITTER = 0.1  # up to 10 % on top of a backoff step, so paused callers do not all come back at once
_MAX_BACKOFF_STEP = 30  # 2**30 s is beyond any period; keeps 2.0**step finite
_PAUSE_CHECK_SECONDS = 1.0  # how stale a paced container's view of another container's 429 may get


class RateLimit(Record):
    calls: int
    period_seconds: float

    def __post_init__(self) -> None:
        if not 1 <= self.calls <= MAX_CALLS:
            raise ValueError(f"rate limit requests must be 1..{MAX_CALLS}, not {self.calls}")
        if not 0 < self.period_seconds <= MAX_PERIOD_SECONDS:
            raise ValueError(
                f"rate limit seconds must be more than 0 and at most {MAX_PERIOD_SECONDS:g}, not {self.period_seconds}"
            )

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"60/60"``: 60 requests per 60 seconds."""
        match = _LIMIT_PATTERN.fullmatch(text)
        if match is None:
            raise ValueError(f"rate limit {text!r} must look like <requests>/<seconds>, e.g. 60/60")
        return cls(int(match[1]), float(match[2]))

    def paced(self) -> RateLimit:
        """The limit to pace by: the platform counts calls when they arrive, and a call arrives a little after
        its grant (threads waking, a token minted, the request on the wire). Two grants one period apart can
        arrive closer than that, so pacing keeps each period this much longer: 1 % of it, at least 0.25 s."""
        return RateLimit(self.calls, self.period_seconds + max(SEND_LAG_SECONDS, self.period_seconds / 100))


class BudgetExhausted(Exception):
    """No slot can be had before `not_after`; `resume_at` (epoch seconds) is when one may be."""

    def __init__(self, account_id: str, resume_at: float) -> None:
        super().__init__(f"no call slot for account {account_id} in time; the next is at {resume_at:.3f}")
        self.account_id = account_id
        self.resume_at = resume_at


class LedgerUnavailable(Exception):
    """DynamoDB could not be read or written after retries."""


class LedgerView(Record):
    """What one read of an account's ledger item showed."""

    slots: tuple[float, ...]  # sorted: calls made in the last period and grants reserved for later
    paused_until: float
    busy_until: float  # until then nobody calls without the ledger (see RateLedger.update)
    read_at: float

    @property
    def busy(self) -> bool:
        return self.busy_until > self.read_at


class LedgerUpdate(Record):
    grants: tuple[float, ...]  # reserved by this update, ascending
    view: LedgerView  # the item as this update left it
    next_free: float  # earliest time one more slot could be granted after this update


# ---- The sliding log, as pure functions on a sorted list of times --------------------------------------


def _fits(log: Sequence[float], at: float, limit: RateLimit) -> bool:
    """Whether one more entry at ``at`` keeps every entry ``period`` after the one ``calls`` places before it."""
    index = bisect.bisect_right(log, at)

    def entry(position: int) -> float:  # the log with ``at`` inserted at ``index``
        if position < index:
            return log[position]
        return at if position == index else log[position - 1]

    # Only the pairs that span the new entry change; every other pair is as it was.
    for upper in range(max(index, limit.calls), min(len(log), index + limit.calls) + 1):
        if entry(upper) - entry(upper - limit.calls) < limit.period_seconds - _TIME_TOLERANCE:
            return False
    return True


def _earliest_slot(log: Sequence[float], start: float, limit: RateLimit) -> float:
    """Earliest time >= ``start`` at which one more entry fits the sliding log.

    A full window frees up only when one of its entries ages out, so the candidates are ``start`` and
    every ``entry + period`` after it. Gaps left by released grants are found too, not only the end.
    """
    if _fits(log, start, limit):
        return start
    for position in range(bisect.bisect_right(log, start - limit.period_seconds), len(log)):
        candidate = log[position] + limit.period_seconds
        if candidate > start and _fits(log, candidate, limit):
            return candidate
    return max(start, log[-1] + limit.period_seconds)  # not reached: after the last entry's period all fit


def _grant(log: list[float], count: int, start: float, not_after: float, limit: RateLimit) -> list[float]:
    """Up to ``count`` earliest grants no later than ``not_after``, inserted into ``log``."""
    grants: list[float] = []
    for _ in range(count):
        at = _earliest_slot(log, start, limit)
        if at > not_after:
            break
        bisect.insort(log, at)
        grants.append(at)
        start = at  # each entry only adds constraints: the next grant is never earlier
    return grants


def _trim(log: list[float], now: float, limit: RateLimit) -> list[float]:
    """What can still constrain a grant at ``now`` or later: the last ``calls`` entries of the past period,
    and every future grant."""
    first_future = bisect.bisect_right(log, now)
    first_kept = max(bisect.bisect_right(log, now - limit.period_seconds), first_future - limit.calls)
    return log[first_kept:]


def _remove(log: list[float], at: float) -> None:
    position = bisect.bisect_left(log, at)
    if position < len(log) and log[position] == at:
        del log[position]


def _distinct_count(first: Sequence[float], second: Sequence[float]) -> int:
    """Entries in both lists together, an entry present in both counted once."""
    shared = Counter(first) & Counter(second)
    return len(first) + len(second) - sum(shared.values())


# ---- The shared part: DynamoDB ----------------------------------------------------------------------------


class RateLedger:
    """The shared part, in DynamoDB: one item per account, id "rate#<accountId>" in the given table
    (the table has partition key `id` (S) and TTL attribute given by ttl_attribute; other items in it belong
    to Powertools idempotency, do not touch them).

    Every change is a consistent read and a write conditional on the ``version`` read (optimistic locking),
    so concurrent containers never lose each other's entries.
    """

    def __init__(
        self,
        table_name: str,
        dynamodb_client: Any,
        limit: RateLimit,
        *,
        ttl_attribute: str = "expiration",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table_name = table_name
        self._client = dynamodb_client  # the low-level client: boto3.resource costs cold-start time
        self._limit = limit
        self._ttl_attribute = ttl_attribute
        self._clock = clock

    def reserve(self, account_id: str, count: int, not_after: float) -> list[float]:
        """Up to ``count`` grant times (ascending), each as early as the log and any pause allow, none after
        ``not_after`` (may be empty); they are in the log when this returns."""
        return list(self.update(account_id, reserve=count, not_after=not_after).grants)

    def next_free(self, account_id: str) -> float:
        """Earliest time a slot could be granted now."""
        return self.update(account_id).next_free

    def record(self, account_id: str, at: float) -> None:
        """A call already made without a reservation."""
        self.update(account_id, made=(at,))

    def pause(self, account_id: str, until: float) -> None:
        """A 429: no grant before ``until`` (an existing later pause stays)."""
        self.update(account_id, pause_until=until)

    def release(self, account_id: str, grants: list[float]) -> None:
        """Reserved grants that will not be used: they no longer count against the budget."""
        self.update(account_id, released=grants)

    def update(
        self,
        account_id: str,
        *,
        made: Iterable[float] = (),
        released: Iterable[float] = (),
        pause_until: float | None = None,
        reserve: int = 0,
        not_after: float = math.inf,
    ) -> LedgerUpdate:
        """Any mix of the operations above in one read and (when something changes) one write.

        It also keeps ``busyUntil``: one period past the latest entry while half the budget or more is in
        use, and one period past a 429's pause. Until then no container takes its fast path (calls the
        ledger hears of only afterwards), so every call goes through the ledger while the account is busy.
        """
        made, released = tuple(made), tuple(released)
        key = {"id": {"S": f"{LEDGER_KEY_PREFIX}{account_id}"}}
        period = self._limit.period_seconds
        for attempt in range(_CONFLICT_ATTEMPTS):
            item = self._read(key)
            now = self._clock()
            log, paused_until, busy_until, version = _decode(item, account_id)
            log = _trim(log, now, self._limit)
            changed = False
            for grant in released:
                before = len(log)
                _remove(log, grant)
                changed = changed or len(log) < before
            for at in made:
                if at > now - period:  # older calls no longer count
                    bisect.insort(log, at)
                    changed = True
            if pause_until is not None and pause_until > paused_until:
                paused_until = pause_until
                busy_until = max(busy_until, paused_until + period)
                changed = True
            start = max(now, paused_until)
            grants = _grant(log, reserve, start, not_after, self._limit)
            log = _trim(log, now, self._limit)
            in_use = len(log) - bisect.bisect_right(log, now - period)
            if log and in_use >= max(1, self._limit.calls // 2):
                busy_until = max(busy_until, log[-1] + period)
            view = LedgerView(tuple(log), paused_until, busy_until, now)
            update = LedgerUpdate(tuple(grants), view, _earliest_slot(log, start, self._limit))
            if not (changed or grants):
                return update
            if self._put(key, view, version):
                return update
            time.sleep(random.uniform(0.002, 0.01 * (attempt + 1)))  # noqa: S311 -- jitter, not security
        raise LedgerUnavailable(f"rate ledger of account {account_id}: {_CONFLICT_ATTEMPTS} write conflicts in a row")

    def _put(self, key: dict[str, Any], view: LedgerView, version: int | None) -> bool:
        """Write the item unless another writer got there first (then False: read again)."""
        period = self._limit.period_seconds
        latest = max([view.read_at, view.paused_until, *view.slots[-1:]])
        item = {
            **key,
            "slots": {"L": [{"N": repr(at)} for at in view.slots]},  # repr: the exact float comes back
            "pausedUntil": {"N": repr(view.paused_until)},
            "busyUntil": {"N": repr(view.busy_until)},
            "version": {"N": str((version or 0) + 1)},
            # Gone by itself once nothing in it can matter; a later write pushes this out again.
            self._ttl_attribute: {"N": str(math.ceil(latest + 2 * period))},
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
            self._client.put_item(TableName=self._table_name, Item=item, **condition)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise LedgerUnavailable(f"rate ledger not written: {_error_code(error)}") from None
        except BotoCoreError as error:
            raise LedgerUnavailable(f"rate ledger not written: {type(error).__name__}") from None
        return True

    def _read(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table_name, Key=key, ConsistentRead=True)
        except ClientError as error:
            raise LedgerUnavailable(f"rate ledger not read: {_error_code(error)}") from None
        except BotoCoreError as error:
            raise LedgerUnavailable(f"rate ledger not read: {type(error).__name__}") from None
        item: dict[str, Any] | None = response.get("Item")
        return item


def _decode(item: dict[str, Any] | None, account_id: str) -> tuple[list[float], float, float, int | None]:
    """Slots, pausedUntil, busyUntil and version of an item (version None: no item yet)."""
    if item is None:
        return [], 0.0, 0.0, None
    try:
        log = sorted(float(entry["N"]) for entry in item.get("slots", {}).get("L", []))
        paused_until = float(item.get("pausedUntil", {}).get("N", "0"))
        busy_until = float(item.get("busyUntil", {}).get("N", "0"))
        version = int(item.get("version", {}).get("N", "0"))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise LedgerUnavailable(f"rate ledger item of account {account_id} is malformed") from None
    return log, paused_until, busy_until, version


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "ClientError")


# ---- The container's part: threads ------------------------------------------------------------------------


class BudgetStats(Record):
    throttled: int  # 429 answers reported through AccountPacer.throttled
    waited_seconds: float  # seconds callers slept for the budget or a pause


@dataclass(eq=False)
class _Account:
    """One account's pacing state in this container. Every field is guarded by ``changed``."""

    account_id: str
    changed: threading.Condition = field(default_factory=threading.Condition)
    own_calls: list[float] = field(default_factory=list)  # this container's grants: sent or being slept towards
    lease: list[float] = field(default_factory=list)  # reserved in the ledger, not yet handed out
    waiting: int = 0  # callers on the paced path
    syncing: bool = False  # one paced caller is at the ledger for all of them
    flushing: bool = False  # queued records are being written
    view: LedgerView | None = None
    unrecorded: list[float] = field(default_factory=list)  # fast-path calls the ledger does not know yet
    unreleased: list[float] = field(default_factory=list)  # leased grants that will not be used
    paused_until: float = 0.0
    backoff_step: int = 0  # 429s without Retry-After in a row
    grants_since_pause: int = 0
    no_slot_before: float = 0.0  # what the last reservation that found nothing said (see _paced)
    no_slot_seen_at: float = -math.inf


class AccountBudgets:
    """One per container, thread-safe. Hands out per-account pacers."""

    def __init__(
        self,
        limit: RateLimit,
        ledger: RateLedger | None,
        *,
        lease_size: int = 10,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if lease_size < 1:
            raise ValueError("lease_size must be at least 1")
        self._limit = limit
        self._ledger = ledger
        self._lease_size = lease_size
        self._clock = clock
        self._sleep = sleep
        # A leased grant this late is still used; older ones go back (a caller sending on a long-gone grant
        # would put two calls closer than the log allows).
        self._late_grace = min(0.25, limit.period_seconds / limit.calls)
        self._pause_check_seconds = min(_PAUSE_CHECK_SECONDS, limit.period_seconds / 2)
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()  # guards _accounts, the stats and the ledger's health
        self._throttled_count = 0
        self._waited_seconds = 0.0
        self._ledger_retry_at = -math.inf  # after a failure, pace locally until then
        self._warned = False
        self._flusher: threading.Thread | None = None
        self._flush_wanted = threading.Event()
        self._flush_lock = threading.Lock()  # one writer of queued records at a time; settle() waits for it

    def for_account(self, account_id: str) -> AccountPacer:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                account = self._accounts[account_id] = _Account(account_id)
        return AccountPacer(self, account)

    def settle(self) -> None:
        """End of an invocation: write pending fast-path records, release unused leased grants. Never raises."""
        try:
            with self._flush_lock:
                self._flush_wanted.clear()
                for account in self._all_accounts():
                    with account.changed:
                        while account.syncing or account.flushing:
                            account.changed.wait()
                        account.unreleased.extend(account.lease)
                        account.lease.clear()
                    self._flush_account(account)
        except Exception:  # the invocation's results matter more than its bookkeeping
            logger.exception("Rate budget not settled")

    def drain_stats(self) -> BudgetStats:
        """Throttled calls and seconds waited since the last drain, all accounts together."""
        with self._lock:
            stats = BudgetStats(self._throttled_count, self._waited_seconds)
            self._throttled_count, self._waited_seconds = 0, 0.0
        return stats

    # -- acquire

    def _acquire(self, account: _Account, not_after: float) -> float:
        with account.changed:
            now = self._clock()
            if now > not_after:
                raise BudgetExhausted(account.account_id, now)
            self._forget_old(account, now)
            fast = self._fast_path_allows(account, now)
            if fast:
                bisect.insort(account.own_calls, now)
                self._count_grant_after_pause(account)
                queued = self._ledger is not None
                if queued:
                    account.unrecorded.append(now)
            else:
                account.waiting += 1
        if fast:
            if queued:
                self._request_flush()
            return 0.0
        try:
            return self._paced(account, not_after)
        finally:
            with account.changed:
                account.waiting -= 1
                account.changed.notify_all()

    def _fast_path_allows(self, account: _Account, now: float) -> bool:
        """A lone caller of a quiet account goes at once; everyone else queues for the ledger's grants."""
        if account.waiting or account.lease or now < account.paused_until:
            return False  # others queue (or a pause holds): going first would jump the queue
        half = self._limit.calls // 2
        window_start = now - self._limit.period_seconds
        own = [at for at in account.own_calls if at > window_start]
        view = account.view
        if view is None:  # nothing read yet (a fresh container): only our own calls are known
            return len(own) < half
        if view.busy:
            # Others may be pacing through the ledger: a call it hears of only later could overfill their
            # window. Stay on the ledger until a read shows the account quiet again.
            return False
        seen = [at for at in view.slots if at > window_start]  # an old view's entries have aged out by now
        return _distinct_count(own, seen) < half

    def _paced(self, account: _Account, not_after: float) -> float:
        waited = 0.0
        while True:
            reserve: int | None = None  # set when this caller goes to the ledger for everyone (0: only look)
            made: list[float] = []
            released: list[float] = []
            grant: float | None = None  # None: waiting for a pause to end
            leased = False
            with account.changed:
                now = self._clock()
                target = now
                self._forget_old(account, now)
                if account.paused_until > now:
                    if account.paused_until > not_after:
                        raise BudgetExhausted(account.account_id, account.paused_until)
                    target = account.paused_until
                elif not self._ledger_usable(now):
                    grant = target = self._grant_locally(account, now, not_after)
                elif account.lease and (account.syncing or account.flushing or not self._pause_check_due(account, now)):
                    if account.lease[0] > not_after:
                        raise BudgetExhausted(account.account_id, account.lease[0])
                    grant = target = account.lease.pop(0)
                    leased = True
                    bisect.insort(account.own_calls, grant)
                elif (not account.lease and not_after < account.no_slot_before
                      and now - account.no_slot_seen_at < self._pause_check_seconds):
                    # The ledger just said there is nothing before then: no need for each waiter to ask again.
                    raise BudgetExhausted(account.account_id, account.no_slot_before)
                elif account.syncing or account.flushing:
                    # Somebody is at the ledger already: wait for what they bring back (no herd on DynamoDB).
                    account.changed.wait()
                    continue
                else:
                    account.syncing = True
                    reserve = 0 if account.lease else min(self._lease_size, account.waiting)
                    made, released = account.unrecorded, account.unreleased
                    account.unrecorded, account.unreleased = [], []
            if reserve is not None:
                self._sync(account, reserve, not_after, made, released)
                continue
            if target > now:
                waited += self._sleep_until(target, now)
            if grant is None:
                continue  # the pause is over: look again
            with account.changed:
                if account.paused_until > grant:
                    # A 429 came while we slept: this grant is inside the pause. Give it back, wait the pause.
                    _remove(account.own_calls, grant)
                    if leased:
                        account.unreleased.append(grant)
                    continue
                self._count_grant_after_pause(account)
            return waited

    def _count_grant_after_pause(self, account: _Account) -> None:
        account.grants_since_pause += 1
        if account.grants_since_pause >= 2:
            # A second call after the pause: the first came back without a 429, so the 429 streak is over.
            account.backoff_step = 0

    def _grant_locally(self, account: _Account, now: float, not_after: float) -> float:
        """The ledger is down or absent: the same sliding log over this container's own calls."""
        known = sorted(account.own_calls + account.lease)
        at = _earliest_slot(known, max(now, account.paused_until), self._limit)
        if at > not_after:
            raise BudgetExhausted(account.account_id, at)
        bisect.insort(account.own_calls, at)
        return at

    def _sync(self, account: _Account, reserve: int, not_after: float, made: list[float],
              released: list[float]) -> None:
        """Reserve grants for every waiting caller (or just read the pause), queued records riding along."""
        assert self._ledger is not None
        update: LedgerUpdate | None = None
        try:
            update = self._ledger.update(account.account_id, made=made, released=released, reserve=reserve,
                                         not_after=not_after)
        except LedgerUnavailable as error:
            self._ledger_failed(error)  # the records are dropped: by the next try they have aged out
        finally:  # whatever happened, the callers waiting for this sync must not wait forever
            with account.changed:
                account.syncing = False
                if update is not None:
                    account.lease = sorted(account.lease + list(update.grants))
                    self._learn(account, update.view)
                    if reserve and not update.grants:
                        account.no_slot_before, account.no_slot_seen_at = update.next_free, update.view.read_at
                account.changed.notify_all()
                more_to_write = bool(account.unrecorded or account.unreleased)
        if more_to_write:
            self._request_flush()
        if update is not None and reserve and not update.grants:
            raise BudgetExhausted(account.account_id, update.next_free)

    def _sleep_until(self, target: float, now: float) -> float:
        self._sleep(target - now)  # outside every lock
        slept = max(0.0, self._clock() - now)
        with self._lock:
            self._waited_seconds += slept
        return slept

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
                account.paused_until = until
                account.grants_since_pause = 0
                self._drop_paused_lease(account)
            account.changed.notify_all()
        if extended and self._ledger is not None and self._ledger_usable(now):
            try:
                update = self._ledger.update(account.account_id, pause_until=until)
            except LedgerUnavailable as error:
                self._ledger_failed(error)
                return
            with account.changed:
                self._learn(account, update.view)

    # -- ledger bookkeeping

    def _learn(self, account: _Account, view: LedgerView) -> None:
        """Take in what the ledger showed: its entries (for the fast path) and any later pause."""
        if account.view is None or view.read_at >= account.view.read_at:
            account.view = view
        if view.paused_until > account.paused_until:  # another caller, maybe in another container, got a 429
            account.paused_until = view.paused_until
            account.grants_since_pause = 0
            self._drop_paused_lease(account)
            account.changed.notify_all()

    def _drop_paused_lease(self, account: _Account) -> None:
        # Leased grants inside a pause go back; the callers reserve new ones after it.
        inside = bisect.bisect_left(account.lease, account.paused_until)
        account.unreleased.extend(account.lease[:inside])
        del account.lease[:inside]

    def _forget_old(self, account: _Account, now: float) -> None:
        del account.own_calls[: bisect.bisect_right(account.own_calls, now - self._limit.period_seconds)]
        stale = bisect.bisect_left(account.lease, now - self._late_grace)
        if stale:
            account.unreleased.extend(account.lease[:stale])
            del account.lease[:stale]

    def _pause_check_due(self, account: _Account, now: float) -> bool:
        return account.view is None or now - account.view.read_at >= self._pause_check_seconds

    def _ledger_usable(self, now: float) -> bool:
        return self._ledger is not None and now >= self._ledger_retry_at

    def _ledger_failed(self, error: LedgerUnavailable) -> None:
        with self._lock:
            self._ledger_retry_at = self._clock() + self._limit.period_seconds
            warn, self._warned = not self._warned, True
        if warn:
            logger.warning("Rate ledger unavailable: pacing within this container only", extra={"error": str(error)})

    def _all_accounts(self) -> list[_Account]:
        with self._lock:
            return list(self._accounts.values())

    # -- writing queued records off the hot path

    def _request_flush(self) -> None:
        if self._flusher is None:
            with self._lock:
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_forever, name="rate-budget", daemon=True)
                    self._flusher.start()
        self._flush_wanted.set()

    def _flush_forever(self) -> None:
        while True:
            self._flush_wanted.wait()
            self._flush_wanted.clear()
            try:
                with self._flush_lock:
                    for account in self._all_accounts():
                        self._flush_account(account)
            except Exception:  # this thread must outlive any one failure
                logger.exception("Rate budget records not written")

    def _flush_account(self, account: _Account) -> None:
        """Write the account's queued records and releases (caller holds _flush_lock)."""
        with account.changed:
            if account.syncing or account.flushing or not (account.unrecorded or account.unreleased):
                return  # a syncing caller takes the queue along
            account.flushing = True
            made, released = account.unrecorded, account.unreleased
            account.unrecorded, account.unreleased = [], []
        update: LedgerUpdate | None = None
        try:
            if self._ledger is not None and self._ledger_usable(self._clock()):
                update = self._ledger.update(account.account_id, made=made, released=released)
        except LedgerUnavailable as error:
            self._ledger_failed(error)
        finally:
            with account.changed:
                account.flushing = False
                if update is not None:
                    self._learn(account, update.view)
                account.changed.notify_all()


class AccountPacer:
    """What the HTTP client uses, bound to one account."""

    __slots__ = ("_account", "_budgets")

    def __init__(self, budgets: AccountBudgets, account: _Account) -> None:
        self._budgets = budgets
        self._account = account

    @property
    def account_id(self) -> str:
        return self._account.account_id

    def acquire(self, not_after: float) -> float:
        """Block until this caller may send one call; return the seconds waited. Raises BudgetExhausted
        when no slot (or the end of a pause) comes before ``not_after``."""
        return self._budgets._acquire(self._account, not_after)

    def throttled(self, retry_after: float | None) -> None:
        """The API answered 429: pause every caller of this account, here and in other containers."""
        self._budgets._throttled(self._account, retry_after)
