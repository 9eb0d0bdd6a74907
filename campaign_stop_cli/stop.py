"""`campaign-stop stop`: build a stop request v1, check it with the function's own parser, send it, and
optionally wait for its results on a temporary queue subscribed to the results topic."""

from __future__ import annotations

import hashlib
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    OutputFormat,
    OutputOption,
    QueueUrlOption,
    ResultsTopicOption,
    aws_error_exit_code,
    client,
    console,
    error_console,
    fail,
    find_resource,
    output_format,
    print_json,
    resource,
    warn,
)
from campaign_stop_cli.history import HistoryUnreadable, past_events
from campaign_stop_cli.subscription import ResultsQueue, results_subscription
from stop_campaign.domain.intake import InvalidRequest, Origin, parse_stop_request
from stop_campaign.domain.models import CampaignType, Source

DETAIL_TYPE = "Stop Campaign Request"  # what the bus rule StopRequestsToQueue routes to the stop queue
EVENT_SOURCE = "campaign-stop.cli"
FALLBACK_REQUESTED_BY = "campaign-stop-cli"
SUCCESSFUL_OUTCOMES = frozenset({"stopped", "already_stopped", "dry_run"})
YES_HELP = ("Go ahead without the dry run and without typing the stream id (needed when stdin is not a terminal: "
            "a script, a pipe, CI).")


class Via(StrEnum):
    QUEUE = "queue"
    BUS = "bus"


def stop(
    ctx: typer.Context,
    stream: Annotated[str, typer.Option("--stream", help="Stream id (st-…) whose campaigns to stop.",
                                        metavar="STREAM_ID")],
    campaign: Annotated[
        list[str] | None, typer.Option("--campaign", help="Campaign id (cd-…); repeat for several.",
                                       metavar="CAMPAIGN_ID")
    ] = None,
    all_active: Annotated[bool, typer.Option("--all-active", help="Every active campaign of the stream.")] = False,
    campaign_type: Annotated[CampaignType, typer.Option("--type", help="Campaign type.")] = CampaignType.SMS,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in every result).", metavar="TEXT")] = None,
    requested_by: Annotated[
        str | None, typer.Option("--requested-by", help="Who asks; default: your AWS identity (STS caller ARN).",
                                 metavar="WHO")
    ] = None,
    request_id: Annotated[str | None, typer.Option("--request-id", help="Request id; default: a new UUID.",
                                                   metavar="REQUEST_ID")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Resolve and report what would stop; stop nothing.")
    ] = False,
    via: Annotated[
        Via, typer.Option("--via", help="Send to the stop queue or put an event on the stop bus.")
    ] = Via.QUEUE,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for every campaign's result, then show them.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds --wait (and the dry run before --all-active) waits "
                                                     "before exit code 3.", metavar="SECONDS")
    ] = 120.0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --all-active: " + YES_HELP)] = False,
    queue_url: QueueUrlOption = None,
    bus_name: Annotated[str | None, typer.Option("--bus-name", help="Stop bus name (env STOP_BUS_NAME).",
                                                 metavar="NAME")] = None,
    results_topic_arn: ResultsTopicOption = None,
    output: OutputOption = None,
) -> None:
    """Send a stop request (validated locally first); with --wait, show each campaign's outcome.

    --all-active (unless --dry-run or --yes) first sends a dry run of it, shows what it would stop and asks for the
    stream id to be typed; without a terminal that is an error (exit 2), not a silent stop.

    Exit codes with --wait: 0 every campaign stopped (or was stopped already, or a dry run), 1 some did not, 3
    --timeout passed first, 130 interrupted (Ctrl-C): the request id and the results so far are printed."""
    mode = output_format(ctx, output)
    campaigns = list(dict.fromkeys(campaign or []))  # repeated ids once, in order
    if bool(campaigns) == all_active:
        fail("give either --campaign (one or more) or --all-active", EXIT_USAGE, mode)
    guarded = all_active and not dry_run and not yes
    if guarded:
        require_terminal("stop --all-active", mode)
    target = resource("stop_queue_url", queue_url, mode) if via is Via.QUEUE else resource("bus_name", bus_name, mode)
    topic = resource("results_topic_arn", results_topic_arn, mode) if wait or guarded else None

    request: dict[str, Any] = {"streamId": stream}
    if all_active:
        request["campaigns"] = "all-active"
    elif len(campaigns) == 1:
        request["campaignId"] = campaigns[0]
    else:
        request["campaignIds"] = campaigns
    request["campaignType"] = campaign_type.value
    request["requestId"] = request_id or str(uuid.uuid4())
    if reason is not None:
        request["reason"] = reason
    request["requestedBy"] = requested_by if requested_by is not None else caller_identity()
    request["requestedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    request["dryRun"] = dry_run
    _validate(request, mode)
    earlier = earlier_results(request_id, mode) if request_id else []
    if earlier and wait:
        _report_duplicate(request, earlier, mode)
    if earlier:
        warn(f"request id {request['requestId']} was served before: the function stops nothing again for it (it "
             "publishes the earlier results once more). Leave --request-id out, or pass a new one, to stop again.")
    preview: list[str] | None = None
    if guarded:
        assert topic is not None
        looked = preview_all_active(request, lambda body: _send(body, via, target, mode), topic, timeout, mode)
        preview = confirm_stream(stream, looked, mode, f"stop every active {campaign_type.value} campaign of it")

    if not wait:
        sent = _send(request, via, target, mode)
        _report_sent(request, via, sent, mode, preview)
        raise typer.Exit(EXIT_OK)

    assert topic is not None
    expected = None if all_active else len(campaigns)
    waited = send_and_wait(topic, request["requestId"], lambda: _send(request, via, target, mode), expected, timeout,
                           mode, f"Sent request [bold]{escape(request['requestId'])}[/] via {via.value}; waiting for "
                           "results…")
    collected = waited.collected
    code = collected.exit_code()
    if mode.machine:
        print_json({
            "requestId": request["requestId"], "via": via.value, **(waited.sent or {}), "request": request,
            "duplicate": collected.earlier(request["requestedAt"]) > 0,
            "results": collected.results, "summary": collected.summary, "timedOut": collected.timed_out,
            "interrupted": collected.interrupted, "sent": waited.sent_state, "exitCode": code,
            **({"preview": preview} if preview is not None else {}),
        })
    else:
        print_results(collected)
        _explain_earlier(collected, request)
        print_interrupted(waited, request["requestId"])
    raise typer.Exit(code)


def earlier_results(request_id: str, mode: OutputFormat) -> list[dict[str, Any]]:
    """The results a request id already has in the request history (none when there is no history table or it
    cannot be read: then only the republished results, seen while waiting, tell a duplicate)."""
    table = find_resource("history_table", None, mode)
    if not table:
        return []
    try:
        return past_events(table, request_id)
    except HistoryUnreadable as error:
        warn(f"{error}; cannot tell whether request id {request_id} was served before")
        return []


def _report_duplicate(request: dict[str, Any], earlier: list[dict[str, Any]], mode: OutputFormat) -> NoReturn:
    """stop --wait with a request id that was served: said at once, with the earlier results, and nothing sent (the
    function would stop nothing again and only publish those results once more)."""
    collected = Collected()
    for event in earlier:
        collected.add(event, None)
    code = collected.exit_code()
    request_id = request["requestId"]
    first = min((str(event.get("receivedAt") or "") for event in earlier), default="") or "?"
    message = (f"request id {request_id} was already served (first received {first}): a duplicate, so nothing "
               "was sent and nothing is stopped again. Its earlier results follow; to stop again, leave "
               "--request-id out or pass a new one.")
    if mode.machine:
        print_json({"requestId": request_id, "duplicate": True, "sent": False, "message": message,
                    "request": request, "results": collected.results, "summary": collected.summary,
                    "exitCode": code})
    else:
        console().print(Text.assemble(("Duplicate: ", "bold yellow"), message), highlight=False)
        print_results(collected)
    raise typer.Exit(code)


def _explain_earlier(collected: Collected, request: dict[str, Any]) -> None:
    """Results republished for a request id used before carry that request's requestedAt, not this one's."""
    count = collected.earlier(request["requestedAt"])
    if count:
        console().print(Text(f"{count} of these result(s) are from an earlier request with id "
                             f"{request['requestId']} (republished by the function): a duplicate, nothing was stopped "
                             "again. To stop again, pass a new --request-id.", style="yellow"), highlight=False)


def caller_identity() -> str:
    try:
        return str(client("sts").get_caller_identity()["Arn"])[:256]
    except (BotoCoreError, ClientError, KeyError):
        return FALLBACK_REQUESTED_BY


def _validate(request: dict[str, Any], mode: OutputFormat) -> None:
    """The function's own parser and schema (stop_campaign.domain.intake): what passes here passes there."""
    origin = Origin(Source.SQS, request["requestId"], request["requestedAt"])
    try:
        parse_stop_request(request, origin, request["requestId"])
    except InvalidRequest as error:
        fail(f"invalid stop request: {error.message}", EXIT_USAGE, mode)


def _send(request: dict[str, Any], via: Via, target: str, mode: OutputFormat) -> dict[str, str]:
    body = json.dumps(request, separators=(",", ":"))
    try:
        if via is Via.QUEUE:
            extra: dict[str, str] = {}
            if target.endswith(".fifo"):
                # One group per stream keeps a stream's requests in order; the request id deduplicates resends.
                extra = {
                    "MessageGroupId": request["streamId"],
                    "MessageDeduplicationId": hashlib.sha256(request["requestId"].encode()).hexdigest(),
                }
            response = client("sqs").send_message(QueueUrl=target, MessageBody=body, **extra)
            return {"queueUrl": target, "messageId": response["MessageId"]}
        response = client("events").put_events(Entries=[{
            "EventBusName": target, "Source": EVENT_SOURCE, "DetailType": DETAIL_TYPE, "Detail": body,
        }])
        entry = response["Entries"][0]
        if response.get("FailedEntryCount") or "EventId" not in entry:
            fail(f"the bus refused the event: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}", EXIT_FAILED, mode)
        return {"busName": target, "eventId": entry["EventId"]}
    except (BotoCoreError, ClientError) as error:
        # A queue or bus that does not exist is the setup's fault (2); another failed call is 1.
        fail(f"could not send the request: {error}", aws_error_exit_code(error), mode)


def _report_sent(request: dict[str, Any], via: Via, sent: dict[str, str], mode: OutputFormat,
                 preview: list[str] | None = None) -> None:
    if mode.machine:
        print_json({"requestId": request["requestId"], "via": via.value, **sent, "request": request,
                    **({"preview": preview} if preview is not None else {})})
    else:
        console().print(request["requestId"], highlight=False)


# -- guard rails: what an all-active would stop, then the stream id typed -------------------------------------


def require_terminal(command: str, mode: OutputFormat) -> None:
    """A guarded command asks at the terminal; without one (a script, a pipe) it fails rather than stop unseen."""
    if not sys.stdin.isatty():
        fail(f"{command} shows what it would stop and asks for the stream id to be typed, which needs a terminal "
             "(stdin is not one): nothing was sent. Pass --yes to go ahead without asking.", EXIT_USAGE, mode)


def preview_all_active(request: dict[str, Any], send: Callable[[dict[str, Any]], dict[str, str]], topic: str,
                       timeout: float, mode: OutputFormat) -> Collected:
    """A dry run of ``request`` (an all-active, or a schedule's) through the function itself, sent the same way and
    waited for like `stop --wait`: the function lists the stream with its own credentials and filter, so this
    shows what it would stop now (the real request lists again when it runs). Exits, nothing stopped, when the
    dry run does not answer in time, is interrupted, or fails (the real one would fail the same way)."""
    dry = {**request, "requestId": f"preview-{uuid.uuid4()}", "dryRun": True,
           "reason": f"dry run before: {request.get('reason') or 'a stop of all active campaigns'}"[:512]}
    _validate(dry, mode)
    waited = send_and_wait(topic, dry["requestId"], lambda: send(dry), None, timeout, mode,
                           f"Dry run {escape(dry['requestId'])} sent: listing what would stop…")
    collected = waited.collected
    if collected.interrupted:
        fail("interrupted during the dry run: nothing was stopped", EXIT_INTERRUPTED, mode)
    if collected.timed_out:
        fail(f"no answer to the dry run within {timeout:g} s (is the function running?): nothing was stopped. "
             "Pass --yes to stop without a dry run.", EXIT_TIMEOUT, mode)
    if any(result.get("outcome") not in SUCCESSFUL_OUTCOMES for result in collected.results):
        print_results(collected, error_console() if mode.machine else None)
        fail("the dry run did not succeed, and the stop would not either: nothing was stopped", EXIT_FAILED, mode)
    return collected


def confirm_stream(stream: str, collected: Collected, mode: OutputFormat, action: str,
                   note: str = " now (a dry run; the stop lists the stream again when it runs)") -> list[str]:
    """Show what the dry run would stop; go on only once the stream id is typed. Returns the campaign ids."""
    campaigns = sorted(str(r["campaignId"]) for r in collected.results
                       if r.get("outcome") == "dry_run" and isinstance(r.get("campaignId"), str))
    out = error_console() if mode.machine else console()  # stdout stays the JSON document
    out.print(Text(f"Would stop {len(campaigns)} campaign(s) of {stream}{note}:", style="bold"))
    if campaigns:
        table = Table("campaign")
        for campaign_id in campaigns:
            table.add_row(Text(campaign_id))
        out.print(table)
    typed = typer.prompt(f"Type the stream id ({stream}) to {action}", default="", show_default=False, err=True)
    if typed.strip() != stream:
        fail(f"{typed.strip()!r} is not {stream!r}: nothing was stopped", EXIT_FAILED, mode)
    return campaigns


@dataclass
class Collected:
    results: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None  # the last summary (a stop has one; a resume one per stream and type)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False
    interrupted: bool = False  # Ctrl-C (or SIGTERM, SIGHUP) while waiting
    _seen: set[str] = field(default_factory=set)

    def add(self, event: dict[str, Any], event_type: str | None) -> bool:
        """Keep one copy of each result (SNS delivers at least once); True when it was new."""
        result_id = str(event.get("resultId") or "")
        if result_id and result_id in self._seen:
            return False
        self._seen.add(result_id)
        if (event_type or event.get("eventType")) == "summary":
            self.summary = event
            self.summaries.append(event)
        else:
            self.results.append(event)
        return True

    def earlier(self, requested_at: str) -> int:
        """How many results belong to an earlier request with this id (the function republished them)."""
        return sum(1 for result in self.results
                   if result.get("requestedAt") and result.get("requestedAt") != requested_at)

    def complete(self, expected: int | None) -> bool:
        if any(not r.get("campaignId") and (r.get("outcome") == "rejected" or r.get("resumeOf"))
               for r in self.results):
            return True  # the request itself was rejected (or a resume found nothing to resume): nothing follows
        if expected == 1:
            return len(self.results) >= 1
        if not self.summaries or (expected is not None and len(self.results) < expected):
            return False
        # A request served as several (a resume: one per stream and campaign type) sums each up on its own: done
        # when every part that has results has its summary, and each has all the results its summary counts.
        totals: Counter[tuple[str, str]] = Counter()
        for summary in self.summaries:
            totals[_part(summary)] += sum(summary.get("outcomes", {}).values())
        arrived = Counter(_part(result) for result in self.results if result.get("streamId"))
        return all(part in totals for part in arrived) and all(arrived[part] >= n for part, n in totals.items())

    def total(self, expected: int | None) -> int | None:
        if self.summaries:
            return sum(sum(summary.get("outcomes", {}).values()) for summary in self.summaries)
        return expected

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.timed_out:
            return EXIT_TIMEOUT
        if all(result.get("outcome") in SUCCESSFUL_OUTCOMES for result in self.results):
            return EXIT_OK
        return EXIT_FAILED


def _part(event: dict[str, Any]) -> tuple[str, str]:
    """The part of a request a result or summary belongs to: its stream and campaign type."""
    return str(event.get("streamId") or ""), str(event.get("campaignType") or "sms")


@dataclass
class Waited:
    collected: Collected
    sent: dict[str, str] | None  # what the send returned (queue and message id, or bus and event id)
    sending: bool  # the send was started (interrupted during it: it may or may not have gone out)

    @property
    def sent_state(self) -> bool | None:
        """True: sent; False: not sent; None: interrupted while sending, so not known."""
        if self.sent is not None:
            return True
        return None if self.sending else False


def send_and_wait(topic: str, request_id: str, send: Callable[[], dict[str, str]], expected: int | None,
                  timeout: float, mode: OutputFormat, announce: str) -> Waited:
    """Subscribe to the request's results, send it, and collect its results until each campaign has one, the
    timeout passes, or Ctrl-C (SIGTERM, SIGHUP) interrupts: then what arrived so far is kept and ``interrupted``
    set. The temporary subscription is removed in every case."""
    waited = Waited(Collected(), None, False)
    try:
        with results_subscription(topic, {"requestId": [request_id]}, mode) as queue:
            waited.sending = True
            waited.sent = send()
            if mode is OutputFormat.TABLE:
                console().print(announce, highlight=False)
            _wait_for_results(queue, expected, timeout, mode, waited.collected)
    except KeyboardInterrupt:
        waited.collected.interrupted = True
    return waited


def print_interrupted(waited: Waited, request_id: str) -> None:
    """After Ctrl-C: which request it was and where it stands (table mode; json mode says it in its document)."""
    if not waited.collected.interrupted:
        return
    out = console()
    request_id = escape(request_id)  # printed as text, never as Rich markup
    follow = f"campaign-stop results --request-id {request_id} --follow"
    if waited.sent_state is False:
        out.print(f"[bold yellow]Interrupted[/] before request {request_id} was sent: nothing was sent.",
                  highlight=False)
    elif waited.sent_state is None:
        out.print(f"[bold yellow]Interrupted[/] while sending request {request_id}: it may have been sent. Results "
                  f"still to come: {follow}", highlight=False)
    else:
        out.print(f"[bold yellow]Interrupted[/]: request {request_id} was sent; {len(waited.collected.results)} "
                  f"result(s) arrived so far. Results still to come: {follow}", highlight=False)


def _wait_for_results(queue: ResultsQueue, expected: int | None, timeout: float, mode: OutputFormat,
                      collected: Collected | None = None) -> Collected:
    collected = collected if collected is not None else Collected()
    deadline = time.monotonic() + timeout
    progress = Progress(
        SpinnerColumn(), TextColumn("results"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console(), transient=True, disable=mode.machine,
    )
    with progress:
        task = progress.add_task("results", total=expected)
        while not collected.complete(expected):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                collected.timed_out = True
                break
            messages = queue.sqs.receive_message(
                QueueUrl=queue.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                WaitTimeSeconds=max(0, min(int(remaining), 2)),
            ).get("Messages", [])
            for message in messages:
                try:
                    event = json.loads(message["Body"])
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    attribute = message.get("MessageAttributes", {}).get("eventType", {}).get("StringValue")
                    collected.add(event, attribute)
                queue.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
            progress.update(task, completed=len(collected.results), total=collected.total(expected))
    return collected


def print_results(collected: Collected, out: Console | None = None) -> None:
    out = out or console()
    if collected.interrupted and not collected.results and collected.summary is None:
        out.print("No result arrived before the interruption.", highlight=False)
        return
    # Every cell from a result (an API's message above all) is a Text: shown as it is, never read as Rich markup.
    table = Table("campaign", "outcome", "error code", "error message", "time to stop")
    for result in sorted(collected.results, key=lambda r: str(r.get("campaignId") or "")):
        error: dict[str, Any] = result["error"] if isinstance(result.get("error"), dict) else {}
        outcome = str(result.get("outcome"))
        style = "green" if outcome in SUCCESSFUL_OUTCOMES else "red"
        ms = result.get("timeToStopMs")
        table.add_row(
            Text(str(result.get("campaignId") or "(none found)")), Text(outcome, style=style),
            Text(str(error.get("code", ""))),
            Text(str(error.get("message", ""))), Text(f"{ms} ms" if ms is not None else "-"),
        )
    out.print(table)
    for result in collected.results:
        if not result.get("campaignId") and result.get("outcome") in SUCCESSFUL_OUTCOMES:
            api = result["api"] if isinstance(result.get("api"), dict) else {}
            what = "a dry run: nothing would stop" if result.get("outcome") == "dry_run" else "nothing to stop"
            out.print(Text(f"No campaign found to stop on {result.get('streamId')} ({what}): "
                           f"{api.get('message') or 'the stream lists no stoppable campaign'}. Check the stream id "
                           "and --type if you expected some."), highlight=False)
    if collected.summary is not None:
        outcomes = collected.summary.get("outcomes")
        counts = ", ".join(f"{name} {count}" for name, count in sorted((outcomes or {}).items()))
        out.print(Text(f"Summary: {collected.summary.get('campaigns')} campaign(s): {counts or 'none'}"))
    if collected.timed_out:
        out.print("[bold yellow]Timed out[/] before every result arrived.")
