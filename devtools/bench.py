"""Benchmarks for the targets in the README, printed as figures (never asserted: machines are noisy).

    make bench            # or: .venv/bin/python -m devtools.bench [--skip-cold-start]

Everything runs on loopback: moto's server as AWS, the Kore.ai simulator as the API, the real handler
invoked in-process as Lambda would. Each figure says what it measures and the target it is held to.

The function's own output (EMF metrics, warnings) goes to ``--function-log`` (default: nowhere), so that
stdout holds only the table. ``--only NAME`` runs the named measurements (function names below), e.g.
``--only stop_all_at_scaled_limit``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from devtools import bench_load
from devtools.event_source import sqs_event, sqs_record
from devtools.kore_simulator import KoreSimulator
from devtools.kore_simulator.state import RecordedRequest
from devtools.lambda_runtime import LocalLambdaContext
from devtools.local_stack import LocalStack, MotoServer, create_stack, function_environment

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID, ACCOUNT_ID, STREAM = "cs-bench", "acc-bench", "st-bench"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef0123"
TABLE: TextIO = sys.stdout  # where the figures go; main() sends everything else printed elsewhere


class Bench:
    """A fresh container, stack and simulator per measurement, so figures never borrow each other's warmth."""

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto

    @contextmanager
    def setup(self, campaigns: int, **env: str) -> Iterator[tuple[LocalStack, KoreSimulator, Callable[..., Any]]]:
        from stop_campaign import app, settings

        self.moto.reset()
        stack = create_stack(self.moto.endpoint_url)
        stack.put_secret({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "accountId": ACCOUNT_ID})
        with KoreSimulator(enforce_jti=True) as kore:
            kore.add_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, account_id=ACCOUNT_ID)
            for number in range(campaigns):
                kore.add_campaign(STREAM, campaign_id(number), campaign_type="sms", status="Active")
            with function_environment(stack.function_environment(kore.base_url, **env)):
                app.container.cache_clear()
                settings.get_settings.cache_clear()

                def invoke(event: dict[str, Any]) -> Any:
                    return app.lambda_handler(event, LocalLambdaContext(timeout_seconds=900))

                yield stack, kore, invoke
                app.container.cache_clear()
                settings.get_settings.cache_clear()


def campaign_id(number: int) -> str:
    return f"cd-{number:04}"


def stop_event(stack: LocalStack, *campaign_numbers: int) -> dict[str, Any]:
    return sqs_event([
        sqs_record(json.dumps({"streamId": STREAM, "campaignId": campaign_id(n)}), stack.stop_queue_arn)
        for n in campaign_numbers
    ])


def report(name: str, figure: str, target: str, verdict: bool | None = None) -> None:
    mark = {True: "meets", False: "MISSES", None: "info"}[verdict]
    print(f"  {name:<44} {figure:<34} {target:<34} {mark}", file=TABLE, flush=True)


@contextmanager
def ledger_updates() -> Iterator[list[tuple[float, str]]]:
    """Every RateLedger.update (one conditional write, with a read first only when the container has not seen the
    item), as (time.monotonic(), thread name): "rate-budget…" threads ask for grants in parallel with the
    idempotency write."""
    from stop_campaign.pacing.rate_ledger import RateLedger

    original = RateLedger.update
    seen: list[tuple[float, str]] = []

    def update(self: RateLedger, *args: Any, **kwargs: Any) -> Any:
        seen.append((time.monotonic(), threading.current_thread().name))
        return original(self, *args, **kwargs)

    RateLedger.update = update  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        RateLedger.update = original  # type: ignore[method-assign]


def time_to_stop(bench: Bench, samples: int = 25) -> None:
    """Invocation start → stop request on the wire, warm, next to one DynamoDB conditional write.

    Every call is granted by the shared ledger; the lone stop's grant is asked for on a background thread while
    its idempotency record is written, so the caller's own thread makes no ledger round trip in front of it.
    """
    with bench.setup(campaigns=samples + 1) as (stack, kore, invoke), ledger_updates() as updates:
        invoke(stop_event(stack, samples))  # warm-up: secret, clients, connections
        to_wire: list[float] = []
        in_line = 0  # ledger round trips between the invocation's start and its call: the paced path
        for number in range(samples):
            started = time.monotonic()
            invoke(stop_event(stack, number))
            wire = kore.stop_calls(campaign_id(number))[0].at
            to_wire.append((wire - started) * 1000)
            in_line += sum(1 for at, thread in updates
                           if started <= at <= wire and not thread.startswith("rate-budget"))
        background = sum(1 for _, thread in updates if thread.startswith("rate-budget"))
        dynamodb = stack.client("dynamodb")
        writes: list[float] = []
        for number in range(40):
            started = time.monotonic()
            dynamodb.put_item(
                TableName=stack.table_name, Item={"id": {"S": f"bench-{number}"}, "status": {"S": "INPROGRESS"}},
                ConditionExpression="attribute_not_exists(id)",
            )
            writes.append((time.monotonic() - started) * 1000)
    wire_ms, write = statistics.median(to_wire), statistics.median(writes)
    report(f"time to stop (warm, median of {samples})", f"{wire_ms:.1f} ms to the wire", "1 idempotency write + few ms")
    report("  one DynamoDB conditional write (moto)", f"{write:.1f} ms", "")
    report("  everything else on the path", f"{wire_ms - write:.1f} ms", "a few ms", wire_ms - write < 10)
    report("  ledger round trips in line before the call", f"{in_line} ({background} in parallel)",
           "0: the grant comes with the idempotency write", in_line == 0)


def batch_round_trips(bench: Bench, latency: float = 0.25) -> None:
    """A batch of 10 stops: how many API round trips long is the stop phase?"""
    with bench.setup(campaigns=11) as (stack, kore, invoke):
        invoke(stop_event(stack, 10))
        kore.latency = latency
        kore.reset_log()
        invoke(stop_event(stack, *range(10)))
        calls = kore.stop_calls()
    span = max(c.at for c in calls) + latency - min(c.at for c in calls)
    trips = span / latency
    report("batch of 10 stops", f"{trips:.2f} round trips ({len(calls)} calls)", "≤ 1.3 round trips", trips <= 1.3)


def stop_all_round_trips(bench: Bench, latency: float = 0.1, page_size: int = 10) -> None:
    """Stop-all of 50 campaigns, the platform serving 10 a page: from the first list call to the last stop's
    answer, in API round trips. Page 1 tells how many pages there are: the others are read at once, and page
    1's campaigns stopped meanwhile (10 stops at a time, STOP_CONCURRENCY)."""
    with bench.setup(campaigns=50) as (stack, kore, invoke):
        invoke(sqs_event([sqs_record(json.dumps({"streamId": "st-warm", "campaigns": "all-active"}),
                                     stack.stop_queue_arn)]))
        kore.latency = latency
        kore.max_page_size = page_size
        kore.reset_log()
        started = time.monotonic()
        invoke(sqs_event([sqs_record(json.dumps({"streamId": STREAM, "campaigns": "all-active"}),
                                     stack.stop_queue_arn)]))
        elapsed = time.monotonic() - started
        calls = kore.requests
    first = min(c.at for c in calls)
    stops = [c.at for c in calls if c.kind == "stop_sms" and c.status == 200]
    trips = (max(stops) + latency - first) / latency
    lists = sum(1 for c in calls if c.kind == "list")
    report("stop-all of 50, 10 a page: last stop answered", f"{trips:.1f} round trips ({len(stops)} stopped)",
           "≤ 8 round trips", trips <= 8 and len(stops) == 50)
    report("  list calls (5 pages, then the sweep)", str(lists), "")
    report("  whole invocation", f"{elapsed:.2f} s", "")


def warm_container(bench: Bench) -> None:
    """Warm invocations: no secret read while cached, API connections reused."""
    with bench.setup(campaigns=21) as (stack, kore, invoke):
        invoke(stop_event(stack, 0))
        # With the secret gone, any read would fail the stop: every later success proves a cache hit.
        stack.client("secretsmanager").delete_secret(SecretId=stack.secret_id, ForceDeleteWithoutRecovery=True)
        outcomes = [invoke(stop_event(stack, n)) for n in range(1, 21)]
        results = stack.drain_results()
    stopped = sum(1 for r in results if r["outcome"] == "stopped")
    failures = sum(len(o["batchItemFailures"]) for o in outcomes)
    report("warm: secret reads in 20 invocations", "0" if stopped == 21 and not failures else "some",
           "0 while cached", stopped == 21 and not failures)
    report("warm: TCP connections for 21 stops", str(kore.connections_opened), "1 (reused)",
           kore.connections_opened == 1)


def budget_schedule(admitted: int, calls: int, period: float) -> float:
    """When the function's own budget lets the last of ``admitted`` calls go: it paces by a slightly longer
    period than the limit's (RateLimit.paced: room for a call's grant-to-arrival lag)."""
    from stop_campaign.pacing.rate_schedule import RateLimit

    return ((admitted - 1) // calls) * RateLimit(calls, period).paced().period_seconds


def rate_limited_bulk(bench: Bench, limit: int = 10, campaigns: int = 60) -> None:
    """Bulk stops against a rate limit (429 + Retry-After) in one long invocation: time against the limit's
    floor, none failed. The function's budget (KORE_RATE_LIMIT) is set to the simulator's limit, so this
    measures the budget's pacing; 429s are what slips through it (a call reaches the platform a little after
    its grant). The budget paces each period longer by that lag's allowance (RateLimit.paced: 1 %, at least
    0.25 s), which at a 1 s period is 25 %: hence its own floor too."""
    with bench.setup(campaigns=campaigns, KORE_RATE_LIMIT=f"{limit}/1") as (stack, kore, invoke):
        invoke(sqs_event([sqs_record(json.dumps({"streamId": "st-warm", "campaigns": "all-active"}),
                                     stack.stop_queue_arn)]))
        time.sleep(1.5)  # the warm-up's list call leaves the budget's window (1.25 s, paced)
        kore.reset_log()
        kore.set_rate_limit(max_requests=limit, window_seconds=1.0, retry_after=1)
        started = time.monotonic()
        response = invoke(sqs_event([sqs_record(json.dumps({"streamId": STREAM, "campaigns": "all-active"}),
                                                stack.stop_queue_arn)]))
        elapsed = time.monotonic() - started
        results = stack.drain_results()
        calls = kore.requests
        refused = sum(1 for c in calls if c.status == 429)
        first_call = min(c.at for c in calls)
        last_stop = max(c.at for c in kore.stop_calls() if c.status == 200) - first_call
    admitted = campaigns + 1  # the list call counts against the limit too
    floor = (admitted - 1) // limit  # seconds: the last window opens this long after the first request
    paced = budget_schedule(admitted, limit, 1.0)
    stopped = sum(1 for r in results if r["campaignId"] and r["outcome"] == "stopped")
    ratio = last_stop / floor
    report(f"{campaigns} stops at {limit}/s (Retry-After: 1)", f"last stop {last_stop:.2f} s = {ratio:.2f} x {floor} s",
           "≤ 1.15 x the limit's floor", ratio <= 1.15 and stopped == campaigns)
    report("  against the budget's own floor", f"{last_stop / paced:.2f} x {paced:g} s ({paced / floor:g} s periods)",
           "periods + lag allowance")
    report("  stopped / item failures", f"{stopped} / {len(response['batchItemFailures'])}", "none failed",
           stopped == campaigns and not response["batchItemFailures"])
    report("  calls answered 429", f"{refused} of {len(calls)} ({refused / len(calls):.0%})", "≤ 10 %",
           refused <= 0.1 * len(calls))
    report("  whole invocation, results published", f"{elapsed:.2f} s", "")


@dataclass
class PacedStopAll:
    """What one stop-all driven through the stop queue left behind, and the limit it ran against."""

    campaigns: int
    calls: int  # the limit: `calls` per `period` seconds, in the simulator and in KORE_RATE_LIMIT
    period: float
    requests: list[RecordedRequest]
    results: list[dict[str, Any]]
    summaries: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    reports: list[Any]  # devtools.poller.InvocationReport, one per invocation
    spans: list[tuple[float, float]]  # (start, end) of each invocation, time.monotonic()
    wall_seconds: float
    timed_out: str | None = None
    early_stops: int = 0  # poll_until_empty returned while a message was still delayed or in flight

    @property
    def first_call(self) -> float:
        return min(c.at for c in self.requests)

    @property
    def list_calls(self) -> int:
        return sum(1 for c in self.requests if c.kind == "list" and c.status == 200)

    @property
    def schedule(self) -> float:
        """When the limit itself lets the last of N admitted calls go, bursts allowed: ((N - 1) // C) * P."""
        admitted = self.list_calls + self.campaigns
        return ((admitted - 1) // self.calls) * self.period

    @property
    def budget_schedule(self) -> float:
        return budget_schedule(self.list_calls + self.campaigns, self.calls, self.period)

    @property
    def last_stop(self) -> float:
        stops = [c.at for c in self.requests if c.kind == "stop_sms" and c.status == 200]
        return max(stops) - self.first_call if stops else float("nan")

    @property
    def refused(self) -> int:
        return sum(1 for c in self.requests if c.status == 429)

    def outcomes(self) -> Counter[str]:
        return Counter(r["outcome"] for r in self.results if r.get("campaignId"))

    def handed_back(self) -> int:
        """Invocations that gave a message back to the queue (not as a continuation): each costs a retry delay."""
        return sum(1 for r in self.reports if r.failed_ids or r.error)


def drive_until_empty(mapping: Any, max_seconds: float, settle: float = 1.1) -> tuple[list[Any], int, float | None]:
    """``mapping.poll_until_empty`` with a stable end: (reports, early ends, when the queue went empty or None).

    poll_until_empty ends at the first read of the queue's three counts that sums to 0, and moto computes each
    count at its own instant: a message whose delay (or visibility timeout) ends between two of them is
    counted in neither, and the run would end with a continuation still in the queue. Here the queue must read
    empty for ``settle`` seconds (more than the 1 s granularity of DelaySeconds) while polling goes on; an
    empty read followed by a message is counted as an early end poll_until_empty would have made.
    """
    deadline = time.monotonic() + max_seconds
    reports: list[Any] = []
    early_ends = 0
    empty_since: float | None = None
    while time.monotonic() < deadline:
        report = mapping.poll_once()
        if report is not None:
            reports.append(report)
            empty_since = None
            continue
        now = time.monotonic()
        if mapping.messages_in_queue() == 0:
            empty_since = empty_since or now
            if now - empty_since >= settle:
                return reports, early_ends, empty_since
        elif empty_since is not None:
            early_ends += 1
            empty_since = None
        time.sleep(0.05)
    return reports, early_ends, None


def paced_stop_all(
    bench: Bench, *, campaigns: int, calls: int, period: float, function_timeout: float, retry_delay: int,
    retry_after: int, max_seconds: float,
) -> PacedStopAll:
    """One stop-all request sent to the stop queue and driven by the SQS event source mapping until the queue is
    empty, against the same limit in the simulator (429 + Retry-After) and in the function's budget."""
    from devtools.poller import SqsEventSourceMapping
    from stop_campaign import app

    env = {
        "KORE_RATE_LIMIT": f"{calls}/{period:g}",
        # A call must fit an invocation of a few seconds (the deadline keeps 3 s after the last call).
        "HTTP_READ_TIMEOUT_SECONDS": "2", "HTTP_CONNECT_TIMEOUT_SECONDS": "1",
    }
    with bench.setup(campaigns=campaigns, **env) as (stack, kore, _):
        kore.set_rate_limit(calls, period, retry_after=retry_after)
        spans: list[tuple[float, float]] = []

        def handler(event: dict[str, Any], context: Any) -> Any:
            started = time.monotonic()
            try:
                return app.lambda_handler(event, context)
            finally:
                spans.append((started, time.monotonic()))

        mapping = SqsEventSourceMapping(
            stack, handler=handler, visibility_timeout=retry_delay, retry_delay_seconds=retry_delay,
            function_timeout_seconds=function_timeout,
        )
        body = {"streamId": STREAM, "campaigns": "all-active", "requestId": f"bench-stop-all-{campaigns}"}
        stack.client("sqs").send_message(QueueUrl=stack.stop_queue_url, MessageBody=json.dumps(body))
        started = time.monotonic()
        reports, early_stops, empty_at = drive_until_empty(mapping, max_seconds)
        timed_out = None if empty_at is not None else f"queue not empty after {max_seconds:g} s"
        wall = (empty_at if empty_at is not None else time.monotonic()) - started
        run = PacedStopAll(
            campaigns=campaigns, calls=calls, period=period, requests=kore.requests, results=stack.drain_results(),
            summaries=stack.drain_summaries(), dead_letters=stack.drain_dead_letters(), reports=reports,
            spans=spans, wall_seconds=wall, timed_out=timed_out,
            early_stops=early_stops,
        )
    if os.getenv("BENCH_DEBUG"):
        print_invocations(run)
    return run


def print_invocations(run: PacedStopAll) -> None:
    """BENCH_DEBUG: each invocation's start (from the first API call), length, calls and how it ended."""
    origin = run.first_call
    for (start, end), item in zip(run.spans, run.reports, strict=False):
        inside = [c for c in run.requests if start <= c.at <= end]
        statuses = Counter(f"{c.kind}:{c.status}" for c in inside)
        ended = "handed back" if item.failed_ids or item.error else "done/continued"
        print(f"    invocation at {start - origin:7.2f} s, {end - start:5.2f} s long: {dict(statuses)} {ended}"
              f" {item.error or ''}", file=TABLE, flush=True)


def report_paced(run: PacedStopAll, name: str) -> None:
    """The figures both paced stop-alls print."""
    ratio = run.last_stop / run.schedule if run.schedule else float("nan")
    admitted = run.list_calls + run.campaigns
    report(name, f"last stop {run.last_stop:.1f} s = {ratio:.2f} x {run.schedule:g} s",
           "≤ 1.2 x the limit's schedule", ratio <= 1.2)
    report(f"  schedule: {admitted} calls ({run.list_calls} list) at {run.calls}/{run.period:g} s",
           f"(({admitted} - 1) // {run.calls}) x {run.period:g} s = {run.schedule:g} s", "")
    report("  against the budget's own schedule", f"{run.last_stop / run.budget_schedule:.2f} x "
           f"{run.budget_schedule:g} s", "periods + lag allowance")
    total = len(run.requests)
    report("  calls answered 429", f"{run.refused} of {total} ({run.refused / max(total, 1):.1%})", "≤ 10 %",
           run.refused <= 0.1 * total)
    outcomes = run.outcomes()
    stopped, failed = outcomes.get("stopped", 0), outcomes.get("failed", 0)
    report("  stopped / failed / dead letters", f"{stopped} / {failed} / {len(run.dead_letters)}",
           f"{run.campaigns} / 0 / 0", stopped == run.campaigns and not failed and not run.dead_letters)
    results = sum(outcomes.values())
    report("  results / summaries", f"{results} / {len(run.summaries)}", f"{run.campaigns} / 1",
           results == run.campaigns and len(run.summaries) == 1)
    summary = run.summaries[0] if run.summaries else {}
    report("  invocations (summary/poller), handed back",
           f"{summary.get('invocations', '-')} / {len(run.reports)} / {run.handed_back()}", "0 handed back",
           run.handed_back() == 0)
    busy = sum(end - start for start, end in run.spans)
    report("  queue empty after / inside invocations", f"{run.wall_seconds:.1f} s / {busy:.1f} s", "")
    if summary:
        report("  summary: durationMs", f"{summary.get('durationMs')} ms ({summary.get('outcomes')})", "")
    if run.early_stops:
        report("  poller saw an empty queue too early", f"{run.early_stops} x (a message was pending)", "0 (poller.py)")
    if run.timed_out:
        report("  POLLING TIMED OUT", run.timed_out[:34], "")


def stop_all_at_scaled_limit(bench: Bench, campaigns: int = 100, calls: int = 20, period: float = 5.0) -> None:
    """A stop-all of 100 campaigns against 20 calls per 5 s, in 8 s invocations: the budget's pacing across
    invocations (continuations delayed until the budget allows), against the limit's own schedule.

    The visibility timeout and retry delay are 6 x the function timeout (48 s), as deployed: a message handed
    back instead of continued would visibly cost 48 s. Retry-After is the window, rounded up (as the simulator's
    command line sets it): a 429 pauses every caller for a whole period.
    """
    function_timeout = 8
    run = paced_stop_all(
        bench, campaigns=campaigns, calls=calls, period=period, function_timeout=function_timeout,
        retry_delay=6 * function_timeout, retry_after=math.ceil(period), max_seconds=300,
    )
    report_paced(run, f"stop-all of {campaigns} at {calls}/{period:g} s, {function_timeout} s invocations")


def stop_all_thousand(bench: Bench, campaigns: int = 1000, compression: int = 10) -> None:
    """A stop-all of 1,000 campaigns at Kore.ai's 60 per minute, time-compressed 10 x: 60 calls per 6 s.

    What scales and what cannot:
    * the limit: 60 per 60 s becomes 60 per 6 s in the simulator (Retry-After 6 s) and in KORE_RATE_LIMIT;
    * the invocation: the deployed 30 s would be 3 s, but the function keeps a fixed 3 s after its last call
      and starts one only with 1 s before that, so 3 s could make no call. 8 s leaves 4 s for calls, less
      than a period, as the deployed 30 s leaves 26 s of a 60 s one: in both, an invocation sends one burst
      of the budget and hands the rest over (a continuation) rather than wait a period in-process. (7 s would
      mirror the deployed share more closely, but publishing 60 results through moto on a 2-core machine
      takes 2-4 s, and an invocation past its timeout is handed back: that would measure moto.)
    * the visibility timeout and retry delay: the deployed 180 s, compressed to 18 s;
    * SQS DelaySeconds is whole seconds, rounded up: each continuation waits up to 1 s past the budget's next
      slot, and receiving it and starting the invocation add a little more. That per-hop overhead is absolute
      time, not a share of a period: up to 1/6 of a compressed period, 1/60 of a real one. So the real-time
      figure is given twice: everything x 10, and the budget's own schedule at 60/60 plus the overhead
      measured here over the compressed one;
    * the simulator serves at most 100 campaigns a page, so listing takes 10 calls of the first burst.
    """
    period = 60 / compression
    function_timeout = 8
    run = paced_stop_all(
        bench, campaigns=campaigns, calls=60, period=period, function_timeout=function_timeout,
        retry_delay=180 // compression, retry_after=math.ceil(period), max_seconds=400,
    )
    report_paced(run, f"stop-all of {campaigns} at 60/{period:g} s (60/min / {compression})")
    # The time past the budget's own schedule is per-hop overhead (DelaySeconds rounded up, the receive, the
    # invocation's start): absolute seconds, which do not grow with the period.
    over = run.last_stop - run.budget_schedule
    real_schedule = budget_schedule(run.list_calls + run.campaigns, 60, 60.0)
    report(f"  as real time: everything x {compression}",
           f"{run.last_stop * compression / 60:.1f} min vs {run.schedule * compression / 60:g} min schedule",
           "about 17 min")
    report("  as real time: overhead not scaled", f"{(real_schedule + over) / 60:.1f} min ({over:+.1f} s of hops)",
           "about 17 min")


def faults_everywhere(bench: Bench, campaigns: int = 30, fault_rate: float = 0.2) -> None:
    """API faults, AWS faults (SNS, DynamoDB, SQS fail at `fault_rate` per call) and every message twice."""
    from devtools.aws_faults import FaultyAwsProxy
    from devtools.poller import SqsEventSourceMapping
    from stop_campaign import app

    with FaultyAwsProxy(bench.moto.endpoint_url, fault_rate) as proxy, bench.setup(
        campaigns=campaigns, AWS_ENDPOINT_URL=proxy.endpoint_url, HTTP_MAX_RETRIES="1"
    ) as (stack, kore, _):
        kore.inject(kind="stop_sms", status=503, times=8)
        kore.inject(kind="stop_sms", drop=True, times=3)
        kore.inject(kind="stop_sms", status=429, retry_after=1, times=4)
        sqs = stack.client("sqs")  # the producer talks to moto directly; only the function sees faults
        for number in range(campaigns):
            body = json.dumps({"streamId": STREAM, "campaignId": campaign_id(number), "requestId": f"req-{number}"})
            for _ in range(2):  # a duplicate delivery of every request
                sqs.send_message(QueueUrl=stack.stop_queue_url, MessageBody=body)
        # As deployed, a message comes back only after its invocation's time is up (visibility 6 x timeout),
        # so an in-progress idempotency record has always expired by then.
        mapping = SqsEventSourceMapping(
            stack, handler=app.lambda_handler, retry_delay_seconds=9, function_timeout_seconds=8
        )
        started = time.monotonic()
        reports = mapping.poll_until_empty(max_seconds=300)
        if os.getenv("BENCH_DEBUG"):
            for item in reports:
                if item.failed_ids or item.error:
                    print("   ", item.receive_counts, item.failed_ids, item.error, json.dumps(item.response)[:300],
                          file=TABLE)
        elapsed = time.monotonic() - started
        results = stack.drain_results()
        dead_letters = stack.drain_dead_letters()
        calls = kore.stop_calls()
    # SNS delivers at least once and a publish may be retried: copies of one result (same resultId) are allowed,
    # and subscribers drop them; two different results for one request are not.
    per_request = {
        f"req-{n}": {r["resultId"]: r["outcome"] for r in results if r["requestId"] == f"req-{n}"}
        for n in range(campaigns)
    }
    lost = [request for request, outcomes in per_request.items() if not outcomes]
    doubled = [request for request, outcomes in per_request.items() if len(outcomes) > 1]
    copies = len(results) - sum(len(outcomes) for outcomes in per_request.values())
    confirmed: dict[str, float] = {}
    redundant: list[float] = []  # ms after the call that confirmed the campaign stopped
    for call in sorted(calls, key=lambda c: c.at):
        campaign = call.path.rsplit("/", 1)[1]
        if campaign in confirmed:
            redundant.append((call.at - confirmed[campaign]) * 1000)
        elif call.status == 200:
            confirmed[campaign] = call.at
    injected = sum(proxy.injected.values())
    report(f"faults: {campaigns} requests x2, {injected} AWS faults", f"{len(lost)} lost, {len(doubled)} doubled",
           "nothing lost, one result each", not lost and not doubled)
    report("  copies of a result (same resultId)", str(copies), "allowed: subscribers drop them")
    # Both deliveries of a request in one batch write their idempotency record at the same moment; moto's
    # server evaluates a conditional write and stores it without a lock, so now and then both pass (DynamoDB
    # itself never lets them): the second stop then comes milliseconds after the first.
    after = f" ({', '.join(f'{ms:.0f}' for ms in redundant)} ms after its 200)" if redundant else ""
    report("  redundant stop calls", f"{len(redundant)}{after}", "0", not redundant)
    outcomes = Counter(outcome for values in per_request.values() for outcome in values.values())
    report("  outcomes / dead letters / time", f"{dict(outcomes)} / {len(dead_letters)} / {elapsed:.0f} s", "")
    for letter in dead_letters:
        reason = {k: v.get("StringValue") for k, v in letter.get("MessageAttributes", {}).items()}
        report("  dead letter", f"{letter['Body'][:60]}", json.dumps(reason)[:80])


BUNDLE_VENV = ROOT / ".venv-bundle"  # an interpreter with nothing installed; the code comes from TASK_ROOT
TASK_ROOT = BUNDLE_VENV / "task"  # what `sam build` ships (functions/Makefile), built for this machine's Python
NO_BYTECODE = BUNDLE_VENV / "no-bytecode"  # the same without any .pyc: what SAM's Python builder used to ship
BUNDLE_LOCK = ROOT / "functions" / "stop_campaign" / "requirements.txt"  # `make lock`; the build reads its copy
FUNCTION_MAKEFILE = ROOT / "functions" / "Makefile"
# Run in the bundle venv, in a fresh process: times the import, then (with BENCH_EVENTS) each invocation of the
# handler, and prints the figures as JSON on the real stdout (the function's own output goes nowhere).
COLD_START_PROBE = r"""
import json, os, sys, time, uuid
figures_out, sys.stdout = sys.stdout, open(os.devnull, "w")
started = time.perf_counter()
{statement}
figures = {{"import_ms": (time.perf_counter() - started) * 1000}}


class Context:  # what the Lambda runtime hands the handler, with the deployed 30 s timeout
    function_name, function_version, memory_limit_in_mb = "campaign-stop-bench", "$LATEST", 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:campaign-stop-bench"
    log_group_name, log_stream_name = "/aws/lambda/campaign-stop-bench", "bench"

    def __init__(self):
        self.aws_request_id, self.deadline = str(uuid.uuid4()), time.monotonic() + 30

    def get_remaining_time_in_millis(self):
        return max(0, int((self.deadline - time.monotonic()) * 1000))


for name, event in json.loads(os.environ.get("BENCH_EVENTS") or "[]"):
    started = time.perf_counter()
    figures[name] = {{"response": handler.lambda_handler(event, Context())}}
    figures[name]["ms"] = (time.perf_counter() - started) * 1000
print(json.dumps(figures), file=figures_out)
"""


def bundle_python() -> Path:
    """An interpreter with nothing installed, and TASK_ROOT: the function's build (functions/Makefile, the target
    `sam build` runs) for this machine's Python and platform, made again whenever the lock changes. The lock is
    resolved for Python 3.12 on arm64 and carries the hashes of every file of each pinned release, so the same
    pins install here, every hash checked. NO_BYTECODE is the same tree without any .pyc, as SAM's own Python
    builder laid the bundle out (it unpacks the wheels and compiles nothing). The package itself is copied
    afresh at each run (task_roots)."""
    python = BUNDLE_VENV / "bin" / "python"
    stamp = BUNDLE_VENV / "build.sha256"
    digest = hashlib.sha256(BUNDLE_LOCK.read_bytes() + FUNCTION_MAKEFILE.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"  (making {BUNDLE_VENV.name}: functions/Makefile's build of {BUNDLE_LOCK.relative_to(ROOT)}, hashes "
          "required)", file=TABLE)
    shutil.rmtree(BUNDLE_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(BUNDLE_VENV)], check=True)
    built = subprocess.run(
        [shutil.which("make") or "make", "--no-print-directory", "--makefile", str(FUNCTION_MAKEFILE),
         "build-StopCampaignFunction",
         f"ARTIFACTS_DIR={TASK_ROOT}", f"PYTHON={sys.executable}",  # this venv's pip, this machine's platform
         "PYTHON_VERSION={}.{}".format(*sys.version_info[:2]), "PLATFORM="],
        capture_output=True, text=True, check=False,
    )
    if built.returncode != 0:
        raise RuntimeError(f"functions/Makefile failed: {built.stderr.strip()[-2000:]}")
    shutil.copytree(TASK_ROOT, NO_BYTECODE, ignore=shutil.ignore_patterns("__pycache__"))
    stamp.write_text(digest)
    return python


def task_roots() -> tuple[Path, Path]:
    """TASK_ROOT and NO_BYTECODE with the package as it is now: copied and compiled as functions/Makefile does
    (unchecked-hash .pyc), and copied without bytecode (compiled at each import, as before the makefile build;
    PYTHONDONTWRITEBYTECODE in the probes keeps it so, as Lambda's read-only /var/task did)."""
    for root in (TASK_ROOT, NO_BYTECODE):
        shutil.rmtree(root / "stop_campaign", ignore_errors=True)
        shutil.copytree(ROOT / "functions" / "stop_campaign", root / "stop_campaign",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.*"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
                    str(TASK_ROOT / "stop_campaign")], check=True)
    return TASK_ROOT, NO_BYTECODE


def probe(python: Path, cwd: Path, statement: str, events: list[tuple[str, Any]] | None = None,
          env: dict[str, str] | None = None) -> dict[str, Any]:
    """COLD_START_PROBE in a fresh process of `python`, in `cwd` (first on its path), with nothing else on it."""
    variables = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONPYCACHEPREFIX")}
    variables.update(PYTHONDONTWRITEBYTECODE="1", BENCH_EVENTS=json.dumps(events or []), **(env or {}))
    completed = subprocess.run([str(python), "-c", COLD_START_PROBE.format(statement=statement)], cwd=cwd,
                               env=variables, capture_output=True, text=True, check=False, timeout=120)
    if completed.returncode != 0:
        raise RuntimeError(f"cold-start probe failed: {completed.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


NAIVE_HANDLER = "import boto3, jwt, urllib3"  # what a hand-rolled handler of the same job imports
COLD_START_TARGET = 1.3


def cold_start(bench: Bench, runs: int = 11) -> None:
    """A cold container: importing the handler against a naive handler's imports (boto3, PyJWT, urllib3), with the
    bundle as the function's build ships it (functions/Makefile: the lock, the package, unchecked-hash bytecode of
    both) and nothing else; then, in the same process, the first invocation (one stop, from an SQS batch) and a
    second one for comparison. The first builds the container (settings, boto3 clients and their service models,
    pools), reads the secret, signs a token and stops a campaign through the idempotency table, the rate budget and
    the results topic: moto's server and the simulator on loopback.

    Every figure is a fresh process, timed around the import statement alone (the interpreter's start-up left
    out on both sides) and around each invocation. The imports are timed apart from the invocations (which
    leave moto busy delivering for a moment), the naive imports and the handler alternating. Medians of `runs`, and the
    least-disturbed run (the minimum) beside them: on a shared machine, time taken away from the process
    counts as its own, even in CPU time.

    The same figures follow "without bytecode": the bundle as SAM's Python builder shipped it before the
    makefile build (wheels unpacked, nothing compiled; /var/task is read-only, so every module, boto3's
    included, was compiled at each cold start)."""
    python = bundle_python()
    handler = "from stop_campaign import app as handler"
    untraced = {"POWERTOOLS_TRACE_DISABLED": "true"}
    shipped, bare = task_roots()
    imports = {  # Outside Lambda, Powertools' Tracer traces nothing: with tracing on, only the import is timed.
        "naive": (NAIVE_HANDLER, shipped, {}),
        "handler": (handler, shipped, untraced),
        "traced": (handler, shipped, {"POWERTOOLS_TRACE_DISABLED": "false"}),
        "bare naive": (NAIVE_HANDLER, bare, {}),
        "bare handler": (handler, bare, untraced),
    }
    figures: dict[str, list[float]] = {}
    failures: list[str] = []
    with bench.setup(
        campaigns=4 * runs, KORE_RATE_LIMIT="6000/60",  # the budget out of the way: this measures the cold path
    ) as (stack, kore, _):
        for _ in range(runs):
            for name, (statement, root, env) in imports.items():
                figures.setdefault(name, []).append(probe(python, root, statement, env=env)["import_ms"])
        for run in range(runs):
            for offset, label in enumerate(("handler", "bare handler")):
                _, root, env = imports[label]
                numbers = (4 * run + 2 * offset, 4 * run + 2 * offset + 1)
                events = [(name, stop_event(stack, n)) for name, n in zip(("first", "warm"), numbers, strict=True)]
                measured = probe(python, root, handler, events, env)
                for name, number in zip(("first", "warm"), numbers, strict=True):
                    figures.setdefault(f"{label} {name}", []).append(measured[name]["ms"])
                    stopped = any(call.status == 200 for call in kore.stop_calls(campaign_id(number)))
                    if measured[name]["response"] != {"batchItemFailures": []} or not stopped:
                        failures.append(f"{label}, run {run}, {name}: {json.dumps(measured[name]['response'])}")
                time.sleep(0.3)  # moto delivers the results to their queue after the invocation has returned
    median = {name: statistics.median(values) for name, values in figures.items()}
    least = {name: min(values) for name, values in figures.items()}

    def against(name: str, base: str, figures: dict[str, float]) -> str:
        return f"{figures[name]:.0f} ms = {figures[name] / figures[base]:.2f} x naive ({figures[base]:.0f} ms)"

    def paired(name: str, base: str) -> float:
        """The median of each run's own ratio: a run's two imports, one after the other, share its load."""
        return statistics.median(a / b for a, b in zip(figures[name], figures[base], strict=True))

    ratio = paired("handler", "naive")
    report("cold start import, tracing off (default)", f"{ratio:.2f} x naive (median of {runs} pairs)",
           f"≤ {COLD_START_TARGET} x a naive handler", ratio <= COLD_START_TARGET)
    report("  medians", against("handler", "naive", median), "as built: bytecode shipped")
    report("  least-disturbed runs", against("handler", "naive", least), "")
    report("  first invocation after it (1 stop)", f"{median['handler first']:.0f} ms", "builds the container",
           False if failures else None)
    report("  the next invocation", f"{median['handler warm']:.0f} ms", "")
    report("  import + first invocation", f"{median['handler'] + median['handler first']:.0f} ms", "")
    report("cold start import, DetailedTracing on", f"{paired('traced', 'naive'):.2f} x naive (pairs)",
           "opt-in: the X-Ray SDK")
    report("  medians", against("traced", "naive", median), "")
    report("without bytecode (sam's Python builder)", f"{paired('bare handler', 'bare naive'):.2f} x naive (pairs)",
           "all compiled at each cold start")
    report("  medians", against("bare handler", "bare naive", median), "")
    report("  least-disturbed runs", against("bare handler", "bare naive", least), "")
    report("  first invocation after it (1 stop)", f"{median['bare handler first']:.0f} ms", "")
    report("  import + first invocation", f"{median['bare handler'] + median['bare handler first']:.0f} ms", "")
    for failure in failures:
        report("  FAILED", failure[:34], failure[34:68], False)
    report(f"  runs (medians), {sys.implementation.name} {sys.version.split()[0]}", str(runs), "")


def cold_start_instructions(bench: Bench) -> None:
    """The cold-start imports in instructions executed (valgrind's callgrind, the interpreter's start-up
    subtracted, hash seed fixed): the same count on every run, however busy the machine. Run it with
    `--only cold_start_instructions` (about two minutes; not part of a plain `make bench`)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        report("cold start in instructions", "valgrind is not installed", "")
        return
    python = bundle_python()

    def count(root: Path, statement: str) -> int:
        variables = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH",)}
        variables.update(PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1", POWERTOOLS_TRACE_DISABLED="true")
        completed = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", str(python), "-c", statement],
            cwd=root, env=variables, capture_output=True, text=True, check=True,
        )
        return int(re.findall(r"Collected : (\d+)", completed.stderr)[-1])

    shipped, bare = task_roots()
    for label, root in (("as built (bytecode)", shipped), ("without bytecode", bare)):
        start = count(root, "pass")
        naive = count(root, NAIVE_HANDLER) - start
        handler = count(root, "import stop_campaign.app") - start
        report(f"instructions: import, {label}", f"{handler / 1e6:.0f} M = {handler / naive:.2f} x naive "
               f"({naive / 1e6:.0f} M)", f"≤ {COLD_START_TARGET} x a naive handler",
               handler / naive <= COLD_START_TARGET)


def storm(bench: Bench) -> None:
    """Load, containers as processes (devtools/bench_load.py): 200 single-campaign stop messages at once, 5
    containers, 20 calls per 5 s (a storm of 200 at the real 60/60 is 200 s of budget)."""
    bench_load.storm(report, budget_schedule)


def cold_burst(bench: Bench) -> None:
    """Load: 10 cold containers released together by a barrier, 10 messages each, 20 calls per 5 s."""
    bench_load.cold_burst(report)


def kill_switch(bench: Bench) -> None:
    """Load: the storm, and 5 s in an alarm (EventBridge, into ALARM) mapped to 5 campaigns of the same account."""
    bench_load.kill_switch(report, budget_schedule)


MEASUREMENTS: tuple[Callable[[Bench], None], ...] = (
    time_to_stop, batch_round_trips, stop_all_round_trips, warm_container, rate_limited_bulk,
    stop_all_at_scaled_limit, stop_all_thousand, faults_everywhere, storm, cold_burst, kill_switch, cold_start,
)
OPTIONAL: tuple[Callable[[Bench], None], ...] = (cold_start_instructions,)


def main() -> int:
    # What template.yaml gives the function; Powertools reads these when the handler module is imported.
    os.environ.update(POWERTOOLS_SERVICE_NAME="campaign-stop", POWERTOOLS_METRICS_NAMESPACE="CampaignStop",
                      POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")
    names = [measure.__name__ for measure in MEASUREMENTS]
    optional = [measure.__name__ for measure in OPTIONAL]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-cold-start", action="store_true", help="skip the cold-start measurement")
    parser.add_argument("--only", action="append", choices=[*names, *optional], metavar="NAME",
                        help=f"run only these (repeatable): {', '.join(names)}; or, run only when named: "
                             f"{', '.join(optional)}")
    parser.add_argument("--function-log", default=os.devnull, metavar="PATH",
                        help="where the function's own output (EMF metrics, logs) goes; default: nowhere")
    args = parser.parse_args()
    selected = set(args.only or names)
    if args.skip_cold_start:
        selected.discard("cold_start")
    # The function prints EMF metrics and logs to stdout; the table alone goes there. Set before the handler
    # is imported, since its logger keeps the stream it finds.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with open(args.function_log, "w") as function_output:
        sys.stdout = function_output
        try:
            print(f"  {'measure':<44} {'figure':<34} {'target':<34} verdict", file=TABLE, flush=True)
            if selected:
                with MotoServer(separate_process=True) as moto:
                    bench = Bench(moto)
                    for measure in (*MEASUREMENTS, *OPTIONAL):
                        if measure.__name__ in selected:
                            measure(bench)
        finally:
            sys.stdout = TABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
