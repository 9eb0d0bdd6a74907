"""Rate budget: the sliding log, its DynamoDB ledger shared by containers, the fast path and the 429 pause.

DynamoDB is moto's, in process. Timing runs on a fake clock whose sleep moves it on, except where real threads
must race each other.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from stop_campaign.rate_budget import (
    AccountBudgets,
    BudgetExhausted,
    BudgetStats,
    LedgerUnavailable,
    RateLedger,
    RateLimit,
)

TABLE = "idempotency-table"
ACCOUNT = "acc-1"
T0 = 1_700_000_000.0  # a realistic epoch: float rounding at this size is part of what is tested


class FakeClock:
    """time.time and time.sleep in one: sleeping moves the clock on, at once."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


class SerializedClient:
    """The DynamoDB client, one call at a time: moto's conditional write is not atomic across threads, real
    DynamoDB's is. Only for the tests that race real threads."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def get_item(self, **parameters: Any) -> Any:
        with self._lock:
            return self._client.get_item(**parameters)

    def put_item(self, **parameters: Any) -> Any:
        with self._lock:
            return self._client.put_item(**parameters)


@pytest.fixture(scope="module")
def mocked_dynamodb() -> Iterator[Any]:
    """One moto backend and client for the module (starting them is most of a test's cost)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        with mock_aws():
            yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def dynamodb(mocked_dynamodb: Any) -> Iterator[Any]:
    """A fresh, empty table for each test: partition key ``id``, as the idempotency table has."""
    mocked_dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield mocked_dynamodb
    if TABLE in mocked_dynamodb.list_tables()["TableNames"]:
        mocked_dynamodb.delete_table(TableName=TABLE)


def container(dynamodb: Any, limit: RateLimit, clock: FakeClock, **options: Any) -> AccountBudgets:
    """One Lambda container's budgets, on the shared ledger table."""
    ledger = RateLedger(TABLE, dynamodb, limit, clock=clock)
    return AccountBudgets(limit, ledger, clock=clock, sleep=clock.sleep, **options)


def busiest_window(times: Sequence[float], period: float, slack: float = 0.0) -> int:
    """Most entries within any window [t, t + period - slack)."""
    ordered = sorted(times)
    busiest = upper = 0
    for lower, start in enumerate(ordered):
        while upper < len(ordered) and ordered[upper] < start + period - slack - 1e-6:
            upper += 1
        busiest = max(busiest, upper - lower)
    return busiest


@contextmanager
def dynamodb_calls(client: Any) -> Iterator[list[str]]:
    """The DynamoDB operations this thread makes while inside (a background thread's do not count)."""
    caller = threading.get_ident()
    made: list[str] = []

    def count(**event: Any) -> None:
        if threading.get_ident() == caller:
            made.append(event["model"].name)

    client.meta.events.register("before-call.dynamodb", count)
    try:
        yield made
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)


def ledger_item(dynamodb: Any, account_id: str = ACCOUNT) -> dict[str, Any]:
    return dynamodb.get_item(TableName=TABLE, Key={"id": {"S": f"rate#{account_id}"}}, ConsistentRead=True)["Item"]


def slots_of(item: dict[str, Any]) -> list[float]:
    return [float(entry["N"]) for entry in item["slots"]["L"]]


# ---- RateLimit ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "calls", "period"),
    [("60/60", 60, 60.0), ("20/5", 20, 5.0), ("600/60.5", 600, 60.5), (" 1 / 3600 ", 1, 3600.0),
     ("10000/0.1", 10000, 0.1)],
)
def test_a_rate_limit_reads_as_requests_per_seconds(text: str, calls: int, period: float) -> None:
    assert RateLimit.parse(text) == RateLimit(calls, period)


@pytest.mark.parametrize("text", ["", "60", "60/", "/60", "60/60/1", "sixty/60", "-1/60", "60/-1", "1e3/60",
                                  "60/inf", "60/nan", "60.5/60", "60 60", "60/1_0"])
def test_a_malformed_rate_limit_says_what_it_should_look_like(text: str) -> None:
    with pytest.raises(ValueError, match=r"must look like <requests>/<seconds>, e\.g\. 60/60"):
        RateLimit.parse(text)


@pytest.mark.parametrize(("text", "says"), [("0/60", "1..10000"), ("10001/60", "1..10000"),
                                            ("60/0", "at most 3600"), ("60/3600.5", "at most 3600")])
def test_a_rate_limit_out_of_range_says_the_range(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        RateLimit.parse(text)


# ---- RateLedger --------------------------------------------------------------------------------------------


def test_the_ledger_grants_a_whole_burst_at_once_then_one_period_after_the_first(dynamodb: Any) -> None:
    clock = FakeClock()
    ledger = RateLedger(TABLE, dynamodb, RateLimit(20, 5.0), clock=clock)
    assert ledger.reserve(ACCOUNT, 20, math.inf) == [T0] * 20
    assert ledger.next_free(ACCOUNT) == T0 + 5
    assert ledger.reserve(ACCOUNT, 3, T0 + 4.9) == []  # none before not_after: nothing taken either
    assert ledger.reserve(ACCOUNT, 3, math.inf) == [T0 + 5] * 3


def test_the_ledger_item_holds_what_matters_and_leaves_other_items_alone(dynamodb: Any) -> None:
    idempotency_item = {"id": {"S": "stop#abc"}, "status": {"S": "COMPLETED"}, "expiration": {"N": "1"}}
    dynamodb.put_item(TableName=TABLE, Item=idempotency_item)
    clock = FakeClock()
    ledger = RateLedger(TABLE, dynamodb, RateLimit(2, 10.0), ttl_attribute="expiration", clock=clock)
    ledger.record(ACCOUNT, T0)
    clock.sleep(4)
    assert ledger.reserve(ACCOUNT, 3, math.inf) == [T0 + 4, T0 + 10, T0 + 14]
    ledger.pause(ACCOUNT, T0 + 30)
    ledger.pause(ACCOUNT, T0 + 20)  # an earlier pause does not shorten a later one

    item = ledger_item(dynamodb)
    assert slots_of(item) == [T0, T0 + 4, T0 + 10, T0 + 14]
    assert float(item["pausedUntil"]["N"]) == T0 + 30
    assert item["version"] == {"N": "3"}  # the second pause changed nothing, so wrote nothing
    assert int(item["expiration"]["N"]) == math.ceil(T0 + 30 + 2 * 10)  # latest thing in it + 2 periods
    assert dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "stop#abc"}})["Item"] == idempotency_item

    clock.sleep(30)  # everything aged out: the next write drops it
    ledger.record(ACCOUNT, clock())
    assert slots_of(ledger_item(dynamodb)) == [T0 + 34]


def test_released_grants_are_given_to_the_next_reservation(dynamodb: Any) -> None:
    clock = FakeClock()
    ledger = RateLedger(TABLE, dynamodb, RateLimit(20, 5.0), clock=clock)
    burst = ledger.reserve(ACCOUNT, 20, math.inf)
    ledger.release(ACCOUNT, burst[:5])
    assert ledger.reserve(ACCOUNT, 6, math.inf) == [T0] * 5 + [T0 + 5]


def test_a_released_gap_in_the_middle_of_the_log_is_filled(dynamodb: Any) -> None:
    clock = FakeClock()
    ledger = RateLedger(TABLE, dynamodb, RateLimit(2, 10.0), clock=clock)
    grants = ledger.reserve(ACCOUNT, 5, math.inf)
    assert grants == [T0, T0, T0 + 10, T0 + 10, T0 + 20]
    ledger.release(ACCOUNT, [T0 + 10])
    assert ledger.reserve(ACCOUNT, 1, math.inf) == [T0 + 10]  # not T0 + 20, after the last


def test_the_ledger_reports_a_missing_table_or_an_unreachable_endpoint_as_unavailable(dynamodb: Any) -> None:
    missing = RateLedger("no-such-table", dynamodb, RateLimit(20, 5.0))
    with pytest.raises(LedgerUnavailable, match="ResourceNotFoundException"):
        missing.reserve(ACCOUNT, 1, math.inf)

    class Unreachable:
        def get_item(self, **_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    with pytest.raises(LedgerUnavailable, match="EndpointConnectionError"):
        RateLedger(TABLE, Unreachable(), RateLimit(20, 5.0)).pause(ACCOUNT, time.time() + 1)


def test_two_ledger_writers_racing_lose_none_of_each_others_grants(dynamodb: Any) -> None:
    limit = RateLimit(1000, 60.0)
    serialized = SerializedClient(dynamodb)
    grants: list[float] = []
    grants_lock = threading.Lock()

    def reserve_some() -> None:
        ledger = RateLedger(TABLE, serialized, limit)  # one per "container"
        for _ in range(5):
            got = ledger.reserve(ACCOUNT, 2, math.inf)
            with grants_lock:
                grants.extend(got)

    threads = [threading.Thread(target=reserve_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(grants) == 40
    assert sorted(slots_of(ledger_item(dynamodb))) == sorted(grants)  # every reservation is in the log


# ---- AccountBudgets on one container -----------------------------------------------------------------------


def test_a_burst_of_the_whole_limit_goes_at_once_and_the_next_call_waits_one_period(dynamodb: Any) -> None:
    clock = FakeClock()
    pacer = container(dynamodb, RateLimit(20, 5.0), clock).for_account(ACCOUNT)
    assert [pacer.acquire(math.inf) for _ in range(20)] == [0.0] * 20
    assert clock() == T0
    assert pacer.acquire(math.inf) == 5.0  # exactly when the first of the burst leaves the window
    assert clock() == T0 + 5


def test_no_window_of_the_period_ever_holds_more_than_the_limit(dynamodb: Any) -> None:
    clock = FakeClock()
    budgets = container(dynamodb, RateLimit(20, 5.0), clock)
    pacer = budgets.for_account(ACCOUNT)
    sent = []
    for _ in range(250):
        pacer.acquire(math.inf)
        sent.append(clock())
    assert busiest_window(sent, 5.0) == 20
    assert sent[-1] == T0 + 60  # 12 full windows and 10 more: and no slot was left unused on the way
    assert budgets.drain_stats().waited_seconds == 60.0


def test_when_not_after_is_too_soon_the_caller_learns_when_to_come_back(dynamodb: Any) -> None:
    clock = FakeClock()
    pacer = container(dynamodb, RateLimit(20, 5.0), clock).for_account(ACCOUNT)
    for _ in range(20):
        pacer.acquire(math.inf)
    clock.sleep(1)
    with pytest.raises(BudgetExhausted) as exhausted:
        pacer.acquire(T0 + 4)
    assert exhausted.value.resume_at == T0 + 5
    assert exhausted.value.account_id == ACCOUNT
    assert clock() == T0 + 1  # it did not wait to find out
    with dynamodb_calls(dynamodb) as asked, pytest.raises(BudgetExhausted):
        pacer.acquire(T0 + 4)
    assert asked == []  # the next caller with the same deadline is told without asking DynamoDB again
    assert pacer.acquire(math.inf) == 4.0  # the failed attempt took no slot
    with pytest.raises(BudgetExhausted):
        pacer.acquire(clock() - 0.5)  # a deadline already past


def test_the_fast_path_makes_no_dynamodb_call_before_the_call_and_settle_records_it(dynamodb: Any) -> None:
    budgets = AccountBudgets(RateLimit(60, 60.0), RateLedger(TABLE, dynamodb, RateLimit(60, 60.0)))
    sent = time.time()
    with dynamodb_calls(dynamodb) as before_the_call:
        assert budgets.for_account(ACCOUNT).acquire(time.time() + 10) == 0.0
    assert before_the_call == []  # the call could go out with no round trip in front of it

    budgets.settle()  # written by now, in the background or by settle itself
    [recorded] = slots_of(ledger_item(dynamodb))
    assert sent <= recorded <= time.time()


def test_ten_stops_at_once_go_out_together_on_a_quiet_account(dynamodb: Any) -> None:
    budgets = AccountBudgets(RateLimit(60, 60.0), RateLedger(TABLE, dynamodb, RateLimit(60, 60.0)))
    pacer = budgets.for_account(ACCOUNT)
    with_threads: list[float] = []
    threads = [threading.Thread(target=lambda: with_threads.append(pacer.acquire(time.time() + 5)))
               for _ in range(10)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert with_threads == [0.0] * 10
    assert time.perf_counter() - started < 0.5
    budgets.settle()
    assert len(slots_of(ledger_item(dynamodb))) == 10


def test_a_fresh_container_goes_blind_for_at_most_half_the_budget_then_queues_through_the_ledger(
    dynamodb: Any,
) -> None:
    # The known price of the fast path: a container that has never read the ledger cannot know that
    # another one has just used the whole window.
    clock = FakeClock()
    limit = RateLimit(20, 5.0)
    busy = container(dynamodb, limit, clock).for_account(ACCOUNT)
    for _ in range(20):
        busy.acquire(math.inf)
    fresh = container(dynamodb, limit, clock).for_account(ACCOUNT)
    sent = []
    for _ in range(11):
        fresh.acquire(math.inf)
        sent.append(clock())
    blind = sent.count(T0)
    assert 1 <= blind <= 10  # 10 at most; fewer when its background write showed it the busy ledger first
    assert sent[-1] >= T0 + 5  # from then on it waits its turn like everybody else


def test_without_the_ledger_the_container_paces_on_its_own_and_warns_once(
    dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    limit = RateLimit(20, 5.0)
    for ledger in (RateLedger("no-such-table", dynamodb, limit, clock=clock), None):
        budgets = AccountBudgets(limit, ledger, clock=clock, sleep=clock.sleep)
        pacer = budgets.for_account(ACCOUNT)
        start = clock()
        sent = []
        with caplog.at_level(logging.WARNING):
            for _ in range(65):
                pacer.acquire(math.inf)
                sent.append(clock())
            budgets.settle()
        assert busiest_window(sent, 5.0) == 20
        assert sent[-1] == start + 15
    warnings = [record for record in caplog.records if "Rate ledger unavailable" in record.getMessage()]
    assert len(warnings) == 1  # once per container, not once per call


def test_a_ledger_lost_mid_invocation_still_paces(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(20, 5.0)
    budgets = container(dynamodb, limit, clock)
    pacer = budgets.for_account(ACCOUNT)
    sent = []
    for number in range(65):
        if number == 30:
            dynamodb.delete_table(TableName=TABLE)
        pacer.acquire(math.inf)
        sent.append(clock())
    assert busiest_window(sent, 5.0) == 20


# ---- 429 ---------------------------------------------------------------------------------------------------


def test_a_429_with_retry_after_pauses_every_caller_here_and_in_another_container(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(20, 5.0)
    here, there = container(dynamodb, limit, clock), container(dynamodb, limit, clock)
    for _ in range(11):  # the other container is busy: past its fast path, it goes through the ledger
        there.for_account(ACCOUNT).acquire(math.inf)
    clock.sleep(0.5)
    here.for_account(ACCOUNT).throttled(2.0)
    assert there.for_account(ACCOUNT).acquire(math.inf) == 2.0
    assert clock() == T0 + 2.5
    assert here.for_account(ACCOUNT).acquire(math.inf) == 0.0  # the pause is over for everyone
    assert here.drain_stats().throttled == 1
    assert here.drain_stats().throttled == 0  # drained


def test_a_429_without_retry_after_backs_off_exponentially_up_to_the_period_and_starts_over() -> None:
    clock = FakeClock()
    budgets = AccountBudgets(RateLimit(100, 5.0), None, clock=clock, sleep=clock.sleep)
    pacer = budgets.for_account(ACCOUNT)
    waits = []
    for _ in range(5):
        pacer.throttled(None)
        waits.append(pacer.acquire(math.inf))
    for wait, step in zip(waits, [1.0, 2.0, 4.0, 5.0, 5.0], strict=True):
        assert step <= wait <= step * 1.1  # plus up to 10 % jitter
    assert pacer.acquire(math.inf) == 0.0  # a second call after the pause: the first came back without a 429
    pacer.throttled(None)
    waits.append(pacer.acquire(math.inf))
    assert 1.0 <= waits[-1] <= 1.1
    assert budgets.drain_stats() == BudgetStats(throttled=6, waited_seconds=pytest.approx(sum(waits)))


def test_a_pause_that_ends_after_not_after_fails_at_once_with_the_pause_end() -> None:
    clock = FakeClock()
    pacer = AccountBudgets(RateLimit(20, 5.0), None, clock=clock, sleep=clock.sleep).for_account(ACCOUNT)
    pacer.throttled(3.0)
    with pytest.raises(BudgetExhausted) as exhausted:
        pacer.acquire(T0 + 2)
    assert exhausted.value.resume_at == T0 + 3
    assert clock() == T0
    pacer.throttled(0.0)  # Retry-After: 0 is allowed, and does not shorten the pause already running
    assert pacer.acquire(math.inf) == 3.0


# ---- real threads ------------------------------------------------------------------------------------------


def test_two_busy_containers_with_eight_threads_each_never_exceed_the_limit_together(dynamodb: Any) -> None:
    limit = RateLimit(20, 1.0)
    shared = SerializedClient(dynamodb)
    seeding = RateLedger(TABLE, shared, limit)
    now = time.time()
    for _ in range(10):  # the account is busy already: half its budget is used
        seeding.record(ACCOUNT, now)
    containers = [AccountBudgets(limit, RateLedger(TABLE, shared, limit)) for _ in range(2)]
    sent: list[float] = [now] * 10
    sent_lock = threading.Lock()
    for budgets in containers:  # each has been called before, so knows the account is busy
        budgets.for_account(ACCOUNT).acquire(now + 1)
        sent.append(time.time())
        budgets.settle()

    end = time.time() + 2.05

    def call_until_the_end(budgets: AccountBudgets) -> None:
        pacer = budgets.for_account(ACCOUNT)
        while True:
            try:
                pacer.acquire(end)
            except BudgetExhausted:
                return
            with sent_lock:
                sent.append(time.time())

    threads = [threading.Thread(target=call_until_the_end, args=(budgets,)) for budgets in containers for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for budgets in containers:
        budgets.settle()
    # The slack allows for threads waking (and noting the time) a little after their grant on a busy machine.
    assert busiest_window(sent, 1.0, slack=0.1) <= 20
    assert len(sent) >= 40  # and the budget was used: 10 + 2 + 8 + 20 + 20 fit before the end


def test_a_429_while_callers_wait_for_their_grants_sends_every_one_of_them_after_the_pause(dynamodb: Any) -> None:
    limit = RateLimit(20, 1.0)
    budgets = AccountBudgets(limit, RateLedger(TABLE, SerializedClient(dynamodb), limit), lease_size=10)
    pacer = budgets.for_account(ACCOUNT)
    now = time.time()
    for _ in range(20):  # the window is full: the next grants are one period away
        pacer.acquire(now + 1)
    sent: list[float] = []

    def call() -> None:
        pacer.acquire(now + 5)
        sent.append(time.time())

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.25)  # all of them hold (or wait for) a grant at now + 1
    pause_end = time.time() + 1.0
    pacer.throttled(1.0)
    for thread in threads:
        thread.join()
    assert len(sent) == 6
    assert min(sent) >= pause_end
    budgets.settle()
    slots = slots_of(ledger_item(dynamodb))
    assert not [at for at in slots if now + 0.5 < at < pause_end]  # the grants inside the pause went back
    assert len([at for at in slots if at >= pause_end]) == 6


def test_callers_sharing_a_pause_wait_for_it_together() -> None:
    budgets = AccountBudgets(RateLimit(100, 1.0), None)
    pacer = budgets.for_account(ACCOUNT)
    pause_end = time.time() + 0.3
    pacer.throttled(0.3)
    done: list[float] = []
    threads = [threading.Thread(target=lambda: (pacer.acquire(time.time() + 5), done.append(time.time())))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(done) == 5
    assert min(done) >= pause_end
    assert budgets.drain_stats().waited_seconds >= 5 * 0.25


def test_randomly_interleaved_busy_containers_never_exceed_the_limit_together(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(20, 5.0)
    seeding = RateLedger(TABLE, dynamodb, limit, clock=clock)
    for _ in range(10):
        seeding.record(ACCOUNT, T0)
    containers = [container(dynamodb, limit, clock) for _ in range(2)]
    sent = [T0] * 10
    for budgets in containers:
        budgets.for_account(ACCOUNT).acquire(math.inf)
        sent.append(clock())
        budgets.settle()
    pacers = [budgets.for_account(ACCOUNT) for budgets in containers]
    choose = random.Random(7).choice
    for _ in range(200):
        choose(pacers).acquire(math.inf)
        sent.append(clock())
    assert busiest_window(sent, 5.0) == 20
    assert sent[-1] == T0 + 50  # 212 calls: 10 full windows and 12 more
