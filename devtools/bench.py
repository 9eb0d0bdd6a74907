"""Benchmarks for the targets in the README, printed as figures (never asserted: machines are noisy).

    make bench            # or: .venv/bin/python -m devtools.bench [--skip-cold-start]

Everything runs on loopback: moto's server as AWS, the Kore.ai simulator as the API, the real handler
invoked in-process as Lambda would. Each figure says what it measures and the target it is held to.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devtools.event_source import sqs_event, sqs_record
from devtools.kore_simulator import KoreSimulator
from devtools.lambda_runtime import LocalLambdaContext
from devtools.local_stack import LocalStack, MotoServer, create_stack, function_environment

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID, ACCOUNT_ID, STREAM = "cs-bench", "acc-bench", "st-bench"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef0123"


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
    print(f"  {name:<44} {figure:<34} {target:<34} {mark}")


def time_to_stop(bench: Bench) -> None:
    """Invocation start → stop request on the wire, warm, next to one DynamoDB conditional write."""
    with bench.setup(campaigns=41) as (stack, kore, invoke):
        invoke(stop_event(stack, 40))  # warm-up: secret, clients, connections
        to_wire: list[float] = []
        for number in range(40):
            started = time.monotonic()
            invoke(stop_event(stack, number))
            to_wire.append((kore.stop_calls(campaign_id(number))[0].at - started) * 1000)
        dynamodb = stack.client("dynamodb")
        writes: list[float] = []
        for number in range(40):
            started = time.monotonic()
            dynamodb.put_item(
                TableName=stack.table_name, Item={"id": {"S": f"bench-{number}"}, "status": {"S": "INPROGRESS"}},
                ConditionExpression="attribute_not_exists(id)",
            )
            writes.append((time.monotonic() - started) * 1000)
    wire, write = statistics.median(to_wire), statistics.median(writes)
    report("time to stop (warm, median of 40)", f"{wire:.1f} ms to the wire", "1 idempotency write + few ms")
    report("  one DynamoDB conditional write (moto)", f"{write:.1f} ms", "")
    report("  everything else on the path", f"{wire - write:.1f} ms", "a few ms", wire - write < 10)


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


def stop_all_round_trips(bench: Bench, latency: float = 0.25) -> None:
    """Stop-all of 50 campaigns: list pages + stops, in API round trips."""
    with bench.setup(campaigns=50) as (stack, kore, invoke):
        invoke(sqs_event([sqs_record(json.dumps({"streamId": "st-warm", "campaigns": "all-active"}),
                                     stack.stop_queue_arn)]))
        kore.latency = latency
        kore.reset_log()
        started = time.monotonic()
        invoke(sqs_event([sqs_record(json.dumps({"streamId": STREAM, "campaigns": "all-active"}),
                                     stack.stop_queue_arn)]))
        elapsed = time.monotonic() - started
        calls = kore.requests
    span = max(c.at for c in calls) + latency - min(c.at for c in calls)
    stops = sum(1 for c in calls if c.kind == "stop_sms" and c.status == 200)
    report("stop-all of 50 campaigns", f"{span / latency:.1f} round trips ({stops} stopped)", "about 10",
           span / latency <= 11)
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


def rate_limited_bulk(bench: Bench, limit: int = 10, campaigns: int = 60) -> None:
    """Bulk stops against a rate limit (429 + Retry-After): time against the limit's floor, none failed."""
    with bench.setup(campaigns=campaigns) as (stack, kore, invoke):
        invoke(sqs_event([sqs_record(json.dumps({"streamId": "st-warm", "campaigns": "all-active"}),
                                     stack.stop_queue_arn)]))
        kore.reset_log()
        kore.set_rate_limit(max_requests=limit, window_seconds=1.0, retry_after=1)
        started = time.monotonic()
        response = invoke(sqs_event([sqs_record(json.dumps({"streamId": STREAM, "campaigns": "all-active"}),
                                                stack.stop_queue_arn)]))
        elapsed = time.monotonic() - started
        results = stack.drain_results()
        refused = sum(1 for c in kore.requests if c.status == 429)
        last_stop = max(c.at for c in kore.stop_calls() if c.status == 200) - started
    admitted = campaigns + 1  # the list call counts against the limit too
    floor = (admitted - 1) // limit  # seconds: the last window opens this long after the first request
    stopped = sum(1 for r in results if r["campaignId"] and r["outcome"] == "stopped")
    ratio = last_stop / floor
    report(f"{campaigns} stops at {limit}/s (Retry-After: 1)", f"last stop {last_stop:.2f} s = {ratio:.2f} x {floor} s",
           "≤ 1.15 x the limit's floor", ratio <= 1.15 and stopped == campaigns)
    report("  stopped / item failures / 429s answered", f"{stopped} / {len(response['batchItemFailures'])} / {refused}",
           "none failed", stopped == campaigns and not response["batchItemFailures"])
    report("  whole invocation, results published", f"{elapsed:.2f} s", "")


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
                    print("   ", item.receive_counts, item.failed_ids, item.error, json.dumps(item.response)[:300])
        elapsed = time.monotonic() - started
        results = stack.drain_results()
        dead_letters = stack.drain_dead_letters()
        calls = kore.stop_calls()
    per_request = {
        f"req-{n}": [r["outcome"] for r in results if r["requestId"] == f"req-{n}"] for n in range(campaigns)
    }
    lost = [request for request, outcomes in per_request.items() if not outcomes]
    doubled = [request for request, outcomes in per_request.items() if len(outcomes) > 1]
    confirmed: dict[str, float] = {}
    redundant = 0
    for call in sorted(calls, key=lambda c: c.at):
        campaign = call.path.rsplit("/", 1)[1]
        if campaign in confirmed:
            redundant += 1
        elif call.status == 200:
            confirmed[campaign] = call.at
    injected = sum(proxy.injected.values())
    report(f"faults: {campaigns} requests x2, {injected} AWS faults", f"{len(lost)} lost, {len(doubled)} doubled",
           "nothing lost, one result each", not lost and not doubled)
    report("  redundant stop calls", str(redundant), "0", redundant == 0)
    outcomes = Counter(outcome for values in per_request.values() for outcome in values)
    report("  outcomes / dead letters / time", f"{dict(outcomes)} / {len(dead_letters)} / {elapsed:.0f} s", "")
    for letter in dead_letters:
        reason = {k: v.get("StringValue") for k, v in letter.get("MessageAttributes", {}).items()}
        report("  dead letter", f"{letter['Body'][:60]}", json.dumps(reason)[:80])


def cold_start(runs: int = 7) -> None:
    """Importing the handler against a bare `import boto3`, in a venv holding only the Lambda bundle."""
    venv = ROOT / ".venv-bundle"
    python = venv / "bin" / "python"
    if not python.exists():
        print("  (creating .venv-bundle with functions/requirements.txt only, as `sam build` bundles it)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "functions/requirements.txt")],
                       check=True)

    def import_ms(statement: str, env: dict[str, str]) -> float:
        samples = []
        for _ in range(runs):
            output = subprocess.run(
                [str(python), "-X", "importtime", "-c", statement], cwd=ROOT / "functions", env={**os.environ, **env},
                capture_output=True, text=True, check=True,
            ).stderr.strip().splitlines()[-1]
            samples.append(int(output.split("|")[1]) / 1000)
        return statistics.median(samples)

    bare = import_ms("import boto3", {})
    for label, disabled in (("tracing off (default)", "true"), ("DetailedTracing on", "false")):
        handler = import_ms("import stop_campaign.app", {"POWERTOOLS_TRACE_DISABLED": disabled})
        ratio = handler / bare
        report(f"cold start import, {label}", f"{handler:.0f} ms = {ratio:.2f} x boto3 ({bare:.0f} ms)",
               "≤ 1.25 x import boto3", ratio <= 1.25)


def main() -> int:
    # What template.yaml gives the function; Powertools reads these when the handler module is imported.
    os.environ.update(POWERTOOLS_SERVICE_NAME="campaign-stop", POWERTOOLS_METRICS_NAMESPACE="CampaignStop",
                      POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-cold-start", action="store_true", help="skip the import-time measurement")
    args = parser.parse_args()
    print(f"  {'measure':<44} {'figure':<34} {'target':<34} verdict")
    with MotoServer(separate_process=True) as moto:
        bench = Bench(moto)
        time_to_stop(bench)
        batch_round_trips(bench)
        stop_all_round_trips(bench)
        warm_container(bench)
        rate_limited_bulk(bench)
        faults_everywhere(bench)
    if not args.skip_cold_start:
        cold_start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
