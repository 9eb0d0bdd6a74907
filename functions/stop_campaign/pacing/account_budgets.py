"""Per-account pacing of Kore.ai API calls: one hard budget shared by every thread of every container.

Every call is granted by the account's ledger, one DynamoDB item per account in the idempotency table, changed
only by a write conditional on the version read (optimistic locking). No container ever calls on a guess: a cold
container, a warm one with an old view, and a contended ledger all wait for a grant, so no window of the limit's
length ever holds more calls than the limit (the schedule itself is ``rate_schedule.Schedule``, the ledger
``rate_ledger.RateLedger``; this module is the container's part: its threads and how they take turns).

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

from aws_lambda_powertools import Logger

from stop_campaign.domain.models import StopDeferred
from stop_campaign.domain.readonly import readonly_dataclass
from stop_campaign.pacing.rate_ledger import LedgerBusy, LedgerUnavailable, RateLedger
from stop_campaign.pacing.rate_schedule import NORMAL, Applied, Change, RateLimit

logger = Logger(child=True)

_BACKOFF_JITTER = 0.1  # up to 10 % on top of a backoff step, so paused callers do not all come back at once
_MAX_BACKOFF_STEP = 30  # 2**30 s is beyond any period; keeps 2.0**step finite
_BUSY_RETRY_SECONDS = 1.0  # a caller whose deadline came during write conflicts tries again this much later
_SETTLE_SECONDS = 1.0  # giving slots back at the end of an invocation: worth a try, not the invocation's timeout

# ---- The container's part: threads ------------------------------------------------------------------------


@readonly_dataclass
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
