"""Rate budget: the DynamoDB ledger shared by containers, lanes, prepared grants, booked places and the 429 pause.

DynamoDB is moto's, in process. Timing runs on a fake clock whose sleep moves it on, except where real threads
must race each other.
"""

from __future__ import annotations

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

from stop_campaign.domain.models import StopDeferred
from stop_campaign.pacing.account_budgets import AccountBudgets, BudgetStats
from stop_campaign.pacing.rate_ledger import LedgerBusy, LedgerUnavailable, RateLedger
from stop_campaign.pacing.rate_schedule import NORMAL, URGENT, Change, RateLimit, busiest_window

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


def busiest(times: Sequence[float], period: float, slack: float = 0.0) -> int:
    """Most entries within any window of ``period - slack`` (slack: threads wake a little after their grant)."""
    return busiest_window(times, period - slack)


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
    return [float(text) for text in item["slots"]["S"].split()]


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


def reserve(ledger: RateLedger, count: int, lane: str = NORMAL, not_after: float = math.inf) -> list[float]:
    return ledger.update(ACCOUNT, Change(reserve={lane: count}, not_after=not_after)).grants[lane]


def test_the_ledger_grants_a_whole_burst_at_once_then_one_period_after_the_first(dynamodb: Any) -> None:
    clock = FakeClock()
    ledger = RateLedger(TABLE, dynamodb, RateLimit(20, 5.0), clock=clock)
    assert reserve(ledger, 20) == [T0] * 20
    assert reserve(ledger, 2) == [T0 + 5.0] * 2


def test_the_ledger_item_holds_what_matters_and_leaves_other_items_alone(dynamodb: Any) -> None:
    clock = FakeClock()
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "stop#other"}, "status": {"S": "COMPLETED"}})
    ledger = RateLedger(TABLE, dynamodb, RateLimit(2, 10.0), ttl_attribute="expiration", clock=clock)
    reserve(ledger, 2)
    ledger.update(ACCOUNT, Change(book={"0123456789abcdef": 2}))
    item = ledger_item(dynamodb)
    assert slots_of(item) == [T0, T0]
    assert [float(at) for at in item["places"]["S"].split()] == [T0 + 10.0, T0 + 10.0]
    assert item["tickets"]["S"].split() == ["0123456789abcdef"] * 2
    assert int(item["expiration"]["N"]) == math.ceil(T0 + 10.0 + 20.0)  # gone by itself when nothing matters
    assert dynamodb.get_item(TableName=TABLE, Key={"id": {"S": "stop#other"}})["Item"]["status"]["S"] == "COMPLETED"


def test_released_grants_are_given_to_the_next_reservation(dynamodb: Any) -> None:
    clock = FakeClock()
    ledger = RateLedger(TABLE, dynamodb, RateLimit(2, 10.0), clock=clock)
    granted = reserve(ledger, 2)
    ledger.update(ACCOUNT, Change(released=(granted[1],)))
    assert reserve(ledger, 1) == [T0]


def test_the_ledger_reports_a_missing_table_or_an_unreachable_endpoint_as_unavailable(dynamodb: Any) -> None:
    missing = RateLedger("no-such-table", dynamodb, RateLimit(20, 5.0))
    with pytest.raises(LedgerUnavailable, match="ResourceNotFoundException"):
        reserve(missing, 1)

    class Unreachable:
        def get_item(self, **_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="https://dynamodb.invalid")

    with pytest.raises(LedgerUnavailable, match="EndpointConnectionError"):
        reserve(RateLedger(TABLE, Unreachable(), RateLimit(20, 5.0)), 1)


def test_a_warm_ledger_grants_with_one_write_and_a_conflict_costs_one_more(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(20, 5.0)
    ours, theirs = RateLedger(TABLE, dynamodb, limit, clock=clock), RateLedger(TABLE, dynamodb, limit, clock=clock)
    with dynamodb_calls(dynamodb) as cold:
        reserve(ours, 1)
    assert cold == ["GetItem", "PutItem"]
    with dynamodb_calls(dynamodb) as warm:
        reserve(ours, 1)
    assert warm == ["PutItem"]  # no read in front of the grant
    reserve(theirs, 1)  # another container writes in between
    with dynamodb_calls(dynamodb) as contended:
        assert reserve(ours, 1) == [T0]
    assert contended == ["PutItem", "PutItem"]  # the failed write brought the item back with it
    assert len(slots_of(ledger_item(dynamodb))) == 4  # nobody's grant was lost


def test_a_ledger_contended_past_the_callers_deadline_is_busy_not_a_guess(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(20, 5.0)

    class AlwaysSomebodyElse:
        """Another container writes between every read and write of ours."""

        def get_item(self, **parameters: Any) -> Any:
            return dynamodb.get_item(**parameters)

        def put_item(self, **parameters: Any) -> Any:
            item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": f"rate#{ACCOUNT}"}}).get("Item")
            if item is not None:
                version = int(item["version"]["N"]) + 1
                dynamodb.put_item(TableName=TABLE, Item={**item, "version": {"N": str(version)}})
            clock.sleep(0.5)
            return dynamodb.put_item(**parameters)

    reserve(RateLedger(TABLE, dynamodb, limit, clock=clock), 1)
    ledger = RateLedger(TABLE, AlwaysSomebodyElse(), limit, clock=clock, sleep=clock.sleep)
    with pytest.raises(LedgerBusy):
        reserve(ledger, 1, not_after=T0 + 2)


def test_two_ledger_writers_racing_lose_none_of_each_others_grants(dynamodb: Any) -> None:
    limit = RateLimit(1000, 60.0)
    serialized = SerializedClient(dynamodb)
    granted: list[float] = []

    def writer() -> None:
        ledger = RateLedger(TABLE, serialized, limit)  # one per "container"
        for _ in range(15):
            granted.extend(reserve(ledger, 2))

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 60
    assert len(slots_of(ledger_item(dynamodb))) == 60


def test_booked_places_are_served_in_booking_order_and_a_kill_switch_goes_first(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(2, 10.0)
    ledger = RateLedger(TABLE, dynamodb, limit, clock=clock)
    reserve(ledger, 2)  # the window is full
    first = ledger.update(ACCOUNT, Change(book={"a" * 16: 2})).first_place["a" * 16]
    second = ledger.update(ACCOUNT, Change(book={"b" * 16: 2})).first_place["b" * 16]
    assert (first, second) == (T0 + 10, T0 + 20)
    assert reserve(ledger, 1, not_after=T0 + 60) == [T0 + 30]  # a newcomer queues behind both
    assert reserve(ledger, 1, URGENT, not_after=T0 + 60) == [T0 + 10]  # a kill switch takes the first place
    item = ledger_item(dynamodb)
    assert item["tickets"]["S"].split() == ["a" * 16] * 2 + ["b" * 16] * 2  # the queue kept its order
    clock.sleep(10)
    applied = ledger.update(ACCOUNT, Change(reserve={"a" * 16: 2}, not_after=T0 + 20))
    assert applied.grants["a" * 16] == [T0 + 10, T0 + 20]  # its places moved back by one, in order


# ---- AccountBudgets on one container -----------------------------------------------------------------------


def test_ten_stops_at_once_go_out_together_on_a_quiet_account_after_one_ledger_write(dynamodb: Any) -> None:
    limit = RateLimit(60, 60.0)
    budgets = AccountBudgets(limit, RateLedger(TABLE, SerializedClient(dynamodb), limit))
    pacer = budgets.for_account(ACCOUNT)
    pacer.prepare(10, time.time() + 5)
    sent: list[float] = []
    threads = [threading.Thread(target=lambda: (pacer.acquire(time.time() + 5), sent.append(time.time())))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 10 and max(sent) - min(sent) < 1.0
    assert len(slots_of(ledger_item(dynamodb))) == 10


def test_a_prepared_grant_is_ready_before_its_caller_asks(dynamodb: Any) -> None:
    limit = RateLimit(60, 60.0)
    budgets = AccountBudgets(limit, RateLedger(TABLE, dynamodb, limit))
    pacer = budgets.for_account(ACCOUNT)
    pacer.prepare(1, time.time() + 5)
    time.sleep(0.02)  # what the idempotency write takes
    with dynamodb_calls(dynamodb) as asked:
        assert pacer.acquire(time.time() + 5) == 0.0
    assert asked == []  # the caller itself went to DynamoDB for nothing
    budgets.settle()


def test_when_not_after_is_too_soon_the_caller_learns_when_to_come_back(dynamodb: Any) -> None:
    clock = FakeClock()
    budgets = container(dynamodb, RateLimit(2, 10.0), clock)
    pacer = budgets.for_account(ACCOUNT)
    pacer.acquire(T0 + 1)
    pacer.acquire(T0 + 1)
    with pytest.raises(StopDeferred) as deferred:
        pacer.acquire(T0 + 1)
    assert deferred.value.resume_at == T0 + 10
    assert deferred.value.budget is True


def test_no_call_is_made_without_the_ledger(dynamodb: Any) -> None:
    limit = RateLimit(20, 5.0)
    budgets = AccountBudgets(limit, RateLedger("no-such-table", dynamodb, limit))
    with pytest.raises(LedgerUnavailable):
        budgets.for_account(ACCOUNT).acquire(time.time() + 1)


def test_unused_prepared_grants_go_back_at_settle(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(5, 10.0)
    budgets = container(dynamodb, limit, clock)
    budgets.for_account(ACCOUNT).prepare(5, T0 + 5)
    budgets.settle()
    assert slots_of(ledger_item(dynamodb)) == []
    assert reserve(RateLedger(TABLE, dynamodb, limit, clock=clock), 5) == [T0] * 5


def test_a_429_with_retry_after_pauses_every_caller_here_and_in_another_container(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(20, 5.0)
    here, there = container(dynamodb, limit, clock), container(dynamodb, limit, clock)
    here.for_account(ACCOUNT).throttled(3.0)
    pacer = there.for_account(ACCOUNT)
    pacer.acquire(math.inf)
    assert clock() >= T0 + 3.0
    assert here.drain_stats().throttled == 1


def test_a_pause_moves_every_booked_place_after_it(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(2, 10.0)
    budgets = container(dynamodb, limit, clock)
    assert budgets.book(ACCOUNT, "c" * 16, 2) == T0
    budgets.for_account(ACCOUNT).throttled(30.0)
    places = [float(at) for at in ledger_item(dynamodb)["places"]["S"].split()]
    assert places == [T0 + 30, T0 + 30]


def test_a_429_without_retry_after_backs_off_exponentially_up_to_the_period_and_starts_over(dynamodb: Any) -> None:
    clock = FakeClock()
    budgets = container(dynamodb, RateLimit(100, 5.0), clock)
    pacer = budgets.for_account(ACCOUNT)
    waits = []
    for _ in range(5):
        before = clock()
        pacer.throttled(None)
        pacer.acquire(math.inf)
        waits.append(clock() - before)
    assert [round(wait) for wait in waits] == [1, 2, 4, 5, 5]  # capped at the period (jitter under 10 %)
    pacer.acquire(math.inf)  # a second call after the pause: the streak is over
    before = clock()
    pacer.throttled(None)
    pacer.acquire(math.inf)
    assert round(clock() - before) == 1


def test_a_pause_that_ends_after_not_after_fails_at_once_with_the_pause_end(dynamodb: Any) -> None:
    clock = FakeClock()
    pacer = container(dynamodb, RateLimit(20, 5.0), clock).for_account(ACCOUNT)
    pacer.throttled(30.0)
    with pytest.raises(StopDeferred) as deferred:
        pacer.acquire(T0 + 10)
    assert deferred.value.resume_at == T0 + 30
    assert clock() == T0  # no time was spent finding out


def test_a_kill_switch_lane_is_served_before_a_queue_of_booked_places(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(10, 5.0)
    budgets = container(dynamodb, limit, clock)
    for _ in range(10):
        budgets.for_account(ACCOUNT).acquire(math.inf)
    budgets.book(ACCOUNT, "d" * 16, 50)  # five windows of waiting requests
    urgent = budgets.for_account(ACCOUNT, URGENT)
    for _ in range(5):
        urgent.acquire(T0 + 6)
    assert clock() == T0 + 5  # in the next window, not after the queue
    assert budgets.drain_stats() == BudgetStats(0, 5.0)


# ---- real threads ------------------------------------------------------------------------------------------


def test_ten_cold_containers_at_once_never_exceed_the_limit_together(dynamodb: Any) -> None:
    limit = RateLimit(20, 1.0)
    shared = SerializedClient(dynamodb)
    start = threading.Barrier(10)
    sent: list[float] = []
    sent_lock = threading.Lock()
    end = time.time() + 2.5

    def container_calls() -> None:
        budgets = AccountBudgets(limit, RateLedger(TABLE, shared, limit))  # cold: has seen nothing
        pacer = budgets.for_account(ACCOUNT)
        start.wait()
        pacer.prepare(10, end)
        callers = [threading.Thread(target=call, args=(pacer,)) for _ in range(10)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        budgets.settle()

    def call(pacer: Any) -> None:
        try:
            pacer.acquire(end)
        except StopDeferred:
            return
        with sent_lock:
            sent.append(time.time())

    threads = [threading.Thread(target=container_calls) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert busiest(sent, 1.0, slack=0.1) <= 20
    assert len(sent) >= 40  # and the budget was used: 20 at once, 20 a period later, more before the end


def test_a_429_while_callers_wait_for_their_grants_sends_every_one_of_them_after_the_pause(dynamodb: Any) -> None:
    limit = RateLimit(20, 1.0)
    budgets = AccountBudgets(limit, RateLedger(TABLE, SerializedClient(dynamodb), limit))
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


def test_randomly_interleaved_containers_and_lanes_never_exceed_the_limit_together(dynamodb: Any) -> None:
    clock = FakeClock()
    limit = RateLimit(20, 5.0)
    containers = [container(dynamodb, limit, clock) for _ in range(3)]
    containers[0].book(ACCOUNT, "e" * 16, 30)
    pacers = [budgets.for_account(ACCOUNT, lane) for budgets in containers for lane in (NORMAL, URGENT, "e" * 16)]
    choose = random.Random(7).choice
    sent: list[float] = []
    for _ in range(200):
        choose(pacers).acquire(math.inf)
        sent.append(clock())
    assert busiest(sent, 5.0) == 20
    assert sent[-1] <= T0 + 55  # the budget was used: 200 calls in 10 full windows (30 places booked ahead)
