"""Load benchmarks: several Lambda containers as separate OS processes on one stop queue, one rate budget.

    .venv/bin/python -m devtools.bench --only storm        # or cold_burst, kill_switch

Each container is a process of its own (multiprocessing, spawn: nothing inherited but the environment it is
given), which imports the handler fresh and then is one container of the SQS event source mapping
(``devtools.poller.SqsEventSourceMapping.poll_once``: up to 10 messages with every attribute, an 8 s context,
the succeeded deleted, the failed made visible again after ``RETRY_DELAY_SECONDS``), until the parent says stop.
The parent starts, once per scenario, moto's server (its own process, DynamoDB taken one request at a time so
that the containers' conditional writes on the shared rate ledger are atomic, as DynamoDB's are) and the Kore.ai
simulator (a thread of the parent) on 127.0.0.1. Everything goes through the handler, its environment and the
AWS / simulator resources: nothing here touches the rate budget's internals.

The limit is time-compressed: 20 calls per 5 s, in KORE_RATE_LIMIT and in the simulator, which counts every
request that arrives (answered 429 or not) by its arrival time. Figures come from the simulator's request log
(arrival times: stops per campaign, 429s, the most calls of one account in any 5 s window), the results topic
(through its subscriber queue) and the dead-letter queue. Printed, never asserted.
"""

from __future__ import annotations

import bisect
import copy
import json
import math
import multiprocessing
import os
import queue
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID, ACCOUNT_ID, STREAM = "cs-load", "acc-load", "st-load"
CLIENT_SECRET = "load-client-secret-0123456789abcdef01234"
# The compressed limit: 20 calls per 5 s (60 per 60 s is the real one). BENCH_LOAD_REAL=1 runs at the real limit
# with the deployed 30 s timeout instead (a storm of 200 then takes about 4 minutes). The container processes
# inherit the environment, so they read the same.
REAL_RATE = os.environ.get("BENCH_LOAD_REAL") == "1"
CALLS, PERIOD = (60, 60.0) if REAL_RATE else (20, 5.0)
# seconds: the deployed 30 s cannot shrink with the limit (the function keeps 3 s after its last call), so 8 s, as
# bench.py's compressed runs
FUNCTION_TIMEOUT = 30.0 if REAL_RATE else 8.0
RETRY_DELAY_SECONDS = 1  # a failed message is visible again after this, as devtools/poller.py does (deployed: 180 s)
ALARM_NAME = "bench-kill-switch"
ALARM_AFTER_SECONDS = 5.0  # the alarm arrives this long after the storm's containers start polling

Reporter = Callable[..., None]  # bench.report(name, figure, target, verdict=None)
Schedule = Callable[[int, int, float], float]  # bench.budget_schedule(admitted, calls, period)


def campaign_id(number: int) -> str:
    return f"cd-{number:04}"


# ---- the container processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerSpec:
    """What a container process is given: picklable, so that spawn can hand it over."""

    name: str
    env: dict[str, str]
    endpoint_url: str
    queue_url: str
    queue_arn: str
    max_receive_count: int
    function_log: str  # where the function's own output goes (bench's --function-log; default /dev/null)


def _enter_container(spec: ContainerSpec) -> Any:
    """The container's init phase: quiet output, the function's environment, the handler imported cold."""
    sys.stdout = sys.stderr = open(spec.function_log, "a", buffering=1)  # noqa: SIM115 (the process's lifetime)
    os.environ.update(spec.env)
    from stop_campaign.app import lambda_handler  # this process's first import of the function

    return lambda_handler


def container_main(spec: ContainerSpec, barrier: Any, stop: Any, reports: Any) -> None:
    """One Lambda container of the event source mapping, polling the stop queue until ``stop`` is set."""
    invocations: list[dict[str, Any]] = []
    error: str | None = None
    try:
        lambda_handler = _enter_container(spec)
        import boto3

        from devtools.local_stack import FAKE_AWS_CREDENTIALS, REGION
        from devtools.poller import SqsEventSourceMapping

        sqs = boto3.client(
            "sqs", endpoint_url=spec.endpoint_url, region_name=REGION,
            aws_access_key_id=FAKE_AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_AWS_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        spans: list[tuple[float, float]] = []

        def handler(event: dict[str, Any], context: Any) -> Any:
            started = time.monotonic()
            try:
                return lambda_handler(event, context)
            finally:
                spans.append((started, time.monotonic()))

        mapping = SqsEventSourceMapping(
            sqs, queue_url=spec.queue_url, queue_arn=spec.queue_arn, handler=handler, batch_size=10,
            max_receive_count=spec.max_receive_count, retry_delay_seconds=RETRY_DELAY_SECONDS,
            function_timeout_seconds=FUNCTION_TIMEOUT,
        )
        mapping.messages_in_queue()  # the SQS connection made before the start, as a warm poller's is
        barrier.wait()
        while not stop.is_set():
            report = mapping.poll_once(wait_seconds=1)  # a long poll: idle containers do not spin moto
            if report is None:
                continue
            started, ended = spans[-1]
            invocations.append({
                "container": spec.name, "start": started, "end": ended, "messages": len(report.message_ids),
                "failed": len(report.failed_ids), "error": report.error,
                "final_attempts": len(report.final_attempt_ids),
            })
    except Exception as raised:  # reported, not printed: the process's output goes to the function log
        error = f"{spec.name}: {type(raised).__name__}: {raised}"
    reports.put({"container": spec.name, "invocations": invocations, "error": error})


def alarm_main(spec: ContainerSpec, event: dict[str, Any], barrier: Any, fire: Any, reports: Any) -> None:
    """The EventBridge rule's target: a container (cold, as one the busy ones do not share) invoked directly with
    the alarm's "CloudWatch Alarm State Change" event when ``fire`` is set."""
    from devtools.lambda_runtime import LocalLambdaContext

    arrived = ended = None
    error: str | None = None
    response: Any = None
    try:
        lambda_handler = _enter_container(spec)
        barrier.wait()
        fire.wait()
        arrived = time.monotonic()
        response = lambda_handler(event, LocalLambdaContext(timeout_seconds=FUNCTION_TIMEOUT))
        ended = time.monotonic()
    except Exception as raised:
        error = f"{spec.name}: {type(raised).__name__}: {raised}"
    results = response.get("results", []) if isinstance(response, dict) else []
    outcomes = Counter(str(r.get("outcome")) for r in results if isinstance(r, dict))
    reports.put({"container": spec.name, "alarm": True, "arrived": arrived, "ended": ended, "error": error,
                 "outcomes": dict(outcomes), "response": json.dumps(response, default=str)[:2000],
                 "invocations": []})


# ---- one run ---------------------------------------------------------------------------------------------


@dataclass
class LoadRun:
    """What a load scenario left behind."""

    campaigns: list[str]  # the campaigns the messages asked to stop
    requests: list[Any]  # the simulator's log (RecordedRequest), by arrival
    results: list[dict[str, Any]]
    summaries: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    invocations: list[dict[str, Any]]
    started: float  # time.monotonic() when every container passed the start barrier
    wall_seconds: float
    timed_out: bool
    started_wall: float = 0.0  # time.time() at the same moment (results carry wall-clock times)
    errors: list[str] = field(default_factory=list)
    alarm: dict[str, Any] | None = None
    alarm_campaigns: list[str] = field(default_factory=list)

    def stop_calls(self, campaigns: list[str]) -> dict[str, list[Any]]:
        wanted = set(campaigns)
        calls: dict[str, list[Any]] = defaultdict(list)
        for call in self.requests:
            if call.kind == "stop_sms" and (target := call.path.rsplit("/", 1)[1]) in wanted:
                calls[target].append(call)
        return calls

    def outcomes(self, campaigns: list[str]) -> dict[str, Counter[str]]:
        """Per campaign, the outcomes its results carried (one, normally)."""
        wanted = set(campaigns)
        seen: dict[str, Counter[str]] = {campaign: Counter() for campaign in campaigns}
        for result in self.results:
            if result.get("campaignId") in wanted:
                seen[result["campaignId"]][result["outcome"]] += 1
        return seen

    @property
    def first_call(self) -> float:
        return min((c.at for c in self.requests), default=self.started)

    @property
    def refused(self) -> int:
        return sum(1 for c in self.requests if c.status == 429)


def max_in_window(times: list[float], window: float) -> tuple[int, float]:
    """The most arrivals in any window (t - window, t] sliding over ``times``, and where that window ends."""
    ordered = sorted(times)
    best, end = 0, ordered[0] if ordered else 0.0
    for index, at in enumerate(ordered):
        inside = index + 1 - bisect.bisect_right(ordered, at - window)
        if inside > best:
            best, end = inside, at
    return best, end


def busiest_window(run: LoadRun, window: float = PERIOD) -> tuple[int, str, float]:
    """(most calls of one account in any ``window``, that account, when the window ends after the first call)."""
    by_account: dict[str, list[float]] = defaultdict(list)
    for call in run.requests:
        by_account[call.headers.get("accountid", "")].append(call.at)
    best = (0, "-", 0.0)
    for account, times in by_account.items():
        count, end = max_in_window(times, window)
        if count > best[0]:
            best = (count, account, end - run.first_call)
    return best


def _collect_last_reports(
    processes: list[Any], reports: Any, collected: list[dict[str, Any]], alarm_report: dict[str, Any] | None,
) -> tuple[int, dict[str, Any] | None]:
    """After the stop: the reports of processes still running (into ``collected``), then every process ended.
    How many never reported, and the alarm's report."""
    waiting = len(processes) - len(collected)
    give_up = time.monotonic() + FUNCTION_TIMEOUT + 10
    while waiting > 0 and time.monotonic() < give_up:
        try:
            item = reports.get(timeout=0.5)
        except queue.Empty:
            continue
        collected.append(item)
        alarm_report = item if item.get("alarm") else alarm_report
        waiting -= 1
    for process in processes:
        process.join(timeout=2)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
    return waiting, alarm_report


def run_load(
    *, containers: int, campaigns: list[str], messages: list[dict[str, Any]], max_seconds: float,
    alarm: dict[str, Any] | None = None, alarm_campaigns: list[str] | None = None,
    function_log: str = os.devnull, settle: float = 1.5,
) -> LoadRun:
    """Start moto and the simulator, ``containers`` container processes (and an alarm process when ``alarm``),
    put ``messages`` on the stop queue, release everyone at once, and run until the queue has read empty for
    ``settle`` seconds (and the alarm invocation has returned), or ``max_seconds``."""
    from devtools.kore_simulator import KoreSimulator
    from devtools.local_stack import MotoServer, create_stack

    alarm_campaigns = alarm_campaigns or []
    context = multiprocessing.get_context("spawn")
    with MotoServer(separate_process=True, serialize_dynamodb=True) as moto, \
            KoreSimulator(enforce_jti=True) as kore:
        stack = create_stack(moto.endpoint_url)
        stack.put_secret({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "accountId": ACCOUNT_ID})
        if alarm is not None:
            stack.put_alarm_map({ALARM_NAME: [{"streamId": STREAM, "campaignIds": alarm_campaigns}]})
        kore.add_app(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, account_id=ACCOUNT_ID)
        for campaign in [*campaigns, *alarm_campaigns]:
            kore.add_campaign(STREAM, campaign, campaign_type="sms", status="Active")
        kore.set_rate_limit(CALLS, PERIOD, retry_after=math.ceil(PERIOD), count_refused=True)
        env = stack.function_environment(
            kore.base_url, KORE_RATE_LIMIT=f"{CALLS}/{PERIOD:g}",
            # A call must fit an invocation of a few seconds (the deadline keeps 3 s after the last call).
            HTTP_READ_TIMEOUT_SECONDS="2", HTTP_CONNECT_TIMEOUT_SECONDS="1",
            # BENCH_LOG_LEVEL=INFO: the containers' hand-overs and deferrals, in bench's --function-log
            POWERTOOLS_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        )

        def spec(name: str) -> ContainerSpec:
            return ContainerSpec(name, env, moto.endpoint_url, stack.stop_queue_url, stack.stop_queue_arn,
                                 stack.max_receive_count, function_log)

        parties = containers + (1 if alarm is not None else 0) + 1  # the parent too: it knows the start
        barrier, stop, fire, reports = context.Barrier(parties), context.Event(), context.Event(), context.Queue()
        processes = [
            context.Process(target=container_main, args=(spec(f"container-{n}"), barrier, stop, reports),
                            name=f"container-{n}", daemon=True)
            for n in range(containers)
        ]
        if alarm is not None:
            processes.append(context.Process(target=alarm_main, args=(spec("alarm"), alarm, barrier, fire, reports),
                                             name="alarm", daemon=True))
        for process in processes:
            process.start()
        sqs = stack.client("sqs")
        for start in range(0, len(messages), 10):
            sqs.send_message_batch(QueueUrl=stack.stop_queue_url, Entries=[
                {"Id": str(i), "MessageBody": json.dumps(body)} for i, body in enumerate(messages[start:start + 10])
            ])
        barrier.wait(timeout=180)  # every container has imported the handler (cold) and is about to poll
        started, started_wall = time.monotonic(), time.time()
        deadline = started + max_seconds
        collected: list[dict[str, Any]] = []
        alarm_report: dict[str, Any] | None = None
        empty_since: float | None = None
        timed_out = True
        while time.monotonic() < deadline:
            now = time.monotonic()
            if alarm is not None and not fire.is_set() and now - started >= ALARM_AFTER_SECONDS:
                fire.set()
            with_alarm_done = alarm is None or alarm_report is not None
            try:
                item = reports.get_nowait()
                collected.append(item)
                if item.get("alarm"):
                    alarm_report = item
                continue
            except queue.Empty:
                pass
            if _messages_in_queue(sqs, stack.stop_queue_url) == 0 and with_alarm_done:
                empty_since = empty_since or now
                if now - empty_since >= settle:
                    timed_out = False
                    break
            else:
                empty_since = None
            time.sleep(0.25)
        wall = (empty_since if not timed_out and empty_since else time.monotonic()) - started
        stop.set()
        fire.set()  # an alarm process still waiting (a timed-out run) must end too
        waiting, alarm_report = _collect_last_reports(processes, reports, collected, alarm_report)
        time.sleep(0.5)  # moto delivers what was published last to the subscriber queue
        errors = [item["error"] for item in collected if item.get("error")]
        if waiting:
            errors.append(f"{waiting} container(s) never reported")
        return LoadRun(
            campaigns=campaigns, requests=kore.requests, results=stack.drain_results(),
            summaries=stack.drain_summaries(), dead_letters=stack.drain_dead_letters(),
            invocations=sorted((i for item in collected for i in item["invocations"]), key=lambda i: i["start"]),
            started=started, started_wall=started_wall, wall_seconds=wall, timed_out=timed_out, errors=errors,
            alarm=alarm_report, alarm_campaigns=alarm_campaigns,
        )


def _messages_in_queue(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
    ])["Attributes"]
    return sum(int(value) for value in attributes.values())


def _function_log() -> str:
    """bench's --function-log: main() points sys.stdout at it while the measurements run."""
    name = getattr(sys.stdout, "name", None)
    return name if isinstance(name, str) and not name.startswith("<") else os.devnull


# ---- figures ---------------------------------------------------------------------------------------------


def dead_letters_for(run: LoadRun, campaigns: list[str], also: str | None = None) -> list[dict[str, Any]]:
    """The dead letters whose body names one of ``campaigns`` (or the text ``also``: an alarm's name)."""
    wanted = [f'"{campaign}"' for campaign in campaigns] + ([also] if also else [])
    return [letter for letter in run.dead_letters if any(text in letter["Body"] for text in wanted)]


def report_outcomes(run: LoadRun, report: Reporter, campaigns: list[str], label: str = "  ",
                    also: str | None = None) -> None:
    outcomes = run.outcomes(campaigns)
    letters = dead_letters_for(run, campaigns, also)
    stopped = sum(1 for seen in outcomes.values() if seen.keys() & {"stopped", "already_stopped"})
    failed = sum(1 for seen in outcomes.values() if "failed" in seen)
    missing = [campaign for campaign, seen in outcomes.items() if not seen]
    doubled = sum(1 for seen in outcomes.values() if sum(seen.values()) > 1)
    report(f"{label}stopped / failed / dead letters", f"{stopped} / {failed} / {len(letters)}",
           f"{len(campaigns)} / 0 / 0", stopped == len(campaigns) and not failed and not letters)
    every = Counter(outcome for seen in outcomes.values() for outcome in seen)
    report(f"{label}results: outcomes, none, >1", f"{dict(every)}, {len(missing)}, {doubled}"[:34], "one each",
           not missing and not doubled)
    calls = run.stop_calls(campaigns)
    if missing:  # nothing may end in silence: say what the platform and the dead-letter queue saw of them
        on_platform = sum(1 for c in missing if any(call.status == 200 for call in calls.get(c, [])))
        lettered = len(dead_letters_for(run, missing))
        report(f"{label}  without a result: stopped / DLQ", f"{on_platform} / {lettered} of {len(missing)}",
               ", ".join(missing)[:34], False)
    succeeded = sum(1 for target in campaigns if any(c.status == 200 for c in calls.get(target, [])))
    per_campaign = Counter(len(calls.get(target, [])) for target in campaigns)
    spread = ", ".join(f"{count}: {n}" for count, n in sorted(per_campaign.items()))
    report(f"{label}stop calls per campaign (calls: n)", spread, f"{succeeded} answered 200")
    codes = Counter(str(letter.get("MessageAttributes", {}).get("errorCode", {}).get("StringValue"))
                    for letter in letters)
    if codes:
        report(f"{label}dead letters by error code", str(dict(codes))[:34], "")
    failures = sorted(_completed_at(r) - run.started_wall for r in run.results
                      if r.get("campaignId") in set(campaigns) and r["outcome"] == "failed")
    if failures:
        report(f"{label}failed results published", f"{failures[0]:.1f} to {failures[-1]:.1f} s after the start",
               "")


def _completed_at(result: dict[str, Any]) -> float:
    """A result's completedAt as seconds after the epoch (its clock is the wall clock, not time.monotonic())."""
    from datetime import datetime

    return datetime.fromisoformat(str(result["completedAt"]).replace("Z", "+00:00")).timestamp()


def report_load(run: LoadRun, report: Reporter, containers: int) -> None:
    """The figures every load scenario prints: the window, 429s, invocations, errors."""
    most, account, at = busiest_window(run)
    report(f"  max calls in any {PERIOD:g} s window", f"{most} ({account}, ending at {at:.1f} s)",
           f"≤ {CALLS}", most <= CALLS)
    total = len(run.requests)
    kinds = Counter(c.kind for c in run.requests)
    report("  calls answered 429", f"{run.refused} of {total} ({run.refused / max(total, 1):.1%})", "≤ 5 %",
           run.refused <= 0.05 * total)
    report("  calls by kind", str(dict(kinds))[:34], "")
    handed_back = sum(1 for i in run.invocations if i["failed"] or i["error"])
    timeouts = sum(1 for i in run.invocations if i["error"] and "timed out" in i["error"])
    report(f"  invocations ({containers} containers), handed back", f"{len(run.invocations)}, {handed_back} "
           f"({timeouts} past {FUNCTION_TIMEOUT:g} s)", "")
    report("  queue empty after", f"{run.wall_seconds:.1f} s", "", False if run.timed_out else None)
    for error in run.errors:
        report("  ERROR", error[:34], error[34:68], False)


def storm(report: Reporter, schedule: Schedule, campaigns: int = 200, containers: int = 5) -> None:
    """200 separate stop messages (one campaign each, one account) on the stop queue at once, 5 containers."""
    targets = [campaign_id(n) for n in range(campaigns)]
    run = run_load(containers=containers, campaigns=targets, max_seconds=600 if REAL_RATE else 150,
                   function_log=_function_log(),
                   messages=[{"streamId": STREAM, "campaignId": c, "requestId": f"storm-{c}"} for c in targets])
    name = f"storm: {campaigns} messages, {containers} containers, {CALLS}/{PERIOD:g} s"
    report_storm(run, report, schedule, name, campaigns)
    report_load(run, report, containers)


def report_storm(run: LoadRun, report: Reporter, schedule: Schedule, name: str, campaigns: int) -> None:
    stops = [c.at for target in run.campaigns for c in run.stop_calls(run.campaigns).get(target, [])
             if c.status == 200]
    last = max(stops) - run.first_call if stops else float("nan")
    own, label = _budget_schedule(schedule, len(run.campaigns))
    limit = ((len(run.campaigns) - 1) // CALLS) * PERIOD
    ratio = last / own if own else float("nan")
    stopped = sum(1 for seen in run.outcomes(run.campaigns).values() if seen.keys() & {"stopped", "already_stopped"})
    # Early only counts with every campaign stopped: the last of fewer stops says little about the schedule.
    report(name, f"last stop {last:.1f} s = {ratio:.2f} x {own:.4g} s", f"≤ 1.2 x {label}",
           ratio <= 1.2 and stopped == len(run.campaigns))
    report(f"  the limit's own schedule ({len(run.campaigns)} calls)", f"{last / limit:.2f} x {limit:g} s", "")
    report_outcomes(run, report, run.campaigns)


def _budget_schedule(schedule: Schedule, admitted: int) -> tuple[float, str]:
    """bench.budget_schedule (the budget's paced period) while rate_budget offers it; else the limit's own."""
    try:
        return schedule(admitted, CALLS, PERIOD), "the budget's schedule"
    except (ImportError, AttributeError, TypeError):  # rate_budget rewritten: RateLimit.paced gone
        return ((admitted - 1) // CALLS) * PERIOD, "the limit's schedule"


def cold_burst(report: Reporter, containers: int = 10, per_container: int = 10) -> None:
    """10 cold containers released at the same moment (a barrier), 100 single-campaign messages waiting."""
    targets = [campaign_id(n) for n in range(containers * per_container)]
    run = run_load(containers=containers, campaigns=targets, max_seconds=90, function_log=_function_log(),
                   messages=[{"streamId": STREAM, "campaignId": c, "requestId": f"burst-{c}"} for c in targets])
    first = [i for i in run.invocations if i["start"] - run.started < 2.0]
    report(f"cold burst: {containers} containers x {per_container} messages",
           f"{len(first)} first invocations, {sum(i['messages'] for i in first)} msgs", f"at {CALLS}/{PERIOD:g} s")
    report_outcomes(run, report, targets)
    report_load(run, report, containers)


def alarm_event(campaigns: list[str]) -> dict[str, Any]:
    """events/eventbridge_alarm_state_change.json, renamed to the bench's alarm, into ALARM now."""
    event = copy.deepcopy(json.loads((ROOT / "events" / "eventbridge_alarm_state_change.json").read_text()))
    event["id"] = f"bench-alarm-{time.time_ns()}"
    event["detail"]["alarmName"] = ALARM_NAME
    event["resources"] = [f"arn:aws:cloudwatch:us-east-1:{event['account']}:alarm:{ALARM_NAME}"]
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    event["time"] = now + "Z"
    event["detail"]["state"]["timestamp"] = now + ".000+0000"
    return event


def kill_switch(report: Reporter, schedule: Schedule, campaigns: int = 200, containers: int = 5) -> None:
    """The storm again; ALARM_AFTER_SECONDS in, an alarm mapped to 5 campaigns of the same account arrives as the
    EventBridge rule delivers it (a direct invocation, in a container of its own)."""
    targets = [campaign_id(n) for n in range(campaigns)]
    mapped = [campaign_id(9000 + n) for n in range(5)]
    run = run_load(containers=containers, campaigns=targets, max_seconds=600 if REAL_RATE else 150,
                   function_log=_function_log(),
                   messages=[{"streamId": STREAM, "campaignId": c, "requestId": f"storm-{c}"} for c in targets],
                   alarm=alarm_event(mapped), alarm_campaigns=mapped)
    arrived = (run.alarm or {}).get("arrived")
    calls = run.stop_calls(mapped)
    stops = [min(c.at for c in calls[t] if c.status == 200) for t in mapped
             if any(c.status == 200 for c in calls.get(t, []))]
    if arrived is None or len(stops) < len(mapped):
        report("kill switch during the storm", f"{len(stops)} of {len(mapped)} stopped", "≤ 2 windows of 5 s", False)
    else:
        windows = (max(stops) - arrived) / PERIOD
        report("kill switch during the storm", f"last of 5 stops {max(stops) - arrived:.1f} s = {windows:.2f} "
               "windows", f"≤ 2 windows of {PERIOD:g} s", windows <= 2)
        report("  the alarm arrived, after the first call", f"{arrived - run.first_call:.1f} s", "")
        if run.alarm and run.alarm.get("ended"):
            report("  alarm invocation: length, outcomes",
                   f"{run.alarm['ended'] - arrived:.1f} s, {run.alarm['outcomes']}"[:34], "")
    if run.alarm and os.getenv("BENCH_DEBUG"):
        print(f"    alarm invocation's response: {run.alarm.get('response')}", file=sys.__stdout__, flush=True)
    if run.alarm and run.alarm.get("error"):
        report("  alarm invocation ERROR", run.alarm["error"][:34], run.alarm["error"][34:68], False)
    report_outcomes(run, report, mapped, label="  alarm: ", also=ALARM_NAME)
    report_storm(run, report, schedule, f"  the storm ({campaigns} messages)", campaigns)
    report_load(run, report, containers + 1)
