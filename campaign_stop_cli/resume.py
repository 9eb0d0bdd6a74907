"""`campaign-stop resume <requestId>`: start again exactly the campaigns that request stopped, through the function.

A dry run of the resume goes first (through the function, which reads the request history: `stop --all-active`'s
guard rail, stop.send_and_wait), shows what would be started and asks before anything is; `--yes` skips both, and
without a terminal and without `--yes` nothing is sent (exit 2). `--wait` waits for the results like `stop --wait`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
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
    client,
    console,
    error_console,
    fail,
    output_format,
    print_json,
    resource,
)
from campaign_stop_cli.output import outcomes_exit_code
from campaign_stop_cli.stop import Collected, caller_identity, print_interrupted, send_and_wait
from stop_campaign.domain.intake import InvalidRequest, Origin, parse_resume_request
from stop_campaign.domain.models import Source

# What a resume may end in without anything having gone wrong: ``ignored`` is a campaign no longer stopped, left alone.
RESUME_OK_OUTCOMES = frozenset({"resumed", "ignored", "dry_run"})


def resume(
    ctx: typer.Context,
    resume_of: Annotated[str, typer.Argument(metavar="REQUEST_ID", help="The request whose stops to undo.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in every result).", metavar="TEXT")] = None,
    requested_by: Annotated[
        str | None, typer.Option("--requested-by", help="Who asks; default: your AWS identity (STS caller ARN).",
                                 metavar="WHO")
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="This resume's own request id; default: a new UUID.",
                                 metavar="REQUEST_ID")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be started; start nothing.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for every campaign's result, then show them.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds --wait (and the dry run before) waits before exit "
                                                     "code 3.", metavar="SECONDS")
    ] = 120.0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Go ahead without the dry run and without asking (needed "
                                                          "when stdin is not a terminal).")] = False,
    queue_url: QueueUrlOption = None,
    results_topic_arn: ResultsTopicOption = None,
    output: OutputOption = None,
) -> None:
    """Start again the campaigns REQUEST_ID stopped (outcome stopped, not already_stopped) that are still Stopped.

    First a dry run through the function shows what would be started, and you are asked to confirm (unless --yes or
    --dry-run); without a terminal that is an error (exit 2), nothing is sent. A request's hold is released first; a
    schedule the stop disabled stays disabled.

    Exit codes with --wait: 0 every campaign resumed (or was no longer stopped: ignored, or a dry run), 1 some did
    not (or the request is unknown), 3 --timeout passed first, 130 interrupted (Ctrl-C)."""
    mode = output_format(ctx, output)
    guarded = not dry_run and not yes
    if guarded and not sys.stdin.isatty():
        fail("resume shows what it would start and asks before starting it, which needs a terminal (stdin is not "
             "one): nothing was sent. Pass --yes to go ahead without asking.", EXIT_USAGE, mode)
    queue = resource("stop_queue_url", queue_url, mode)
    topic = resource("results_topic_arn", results_topic_arn, mode) if wait or guarded else None
    request: dict[str, Any] = {"action": "resume", "resumeOf": resume_of, "requestId": request_id or str(uuid.uuid4())}
    if reason is not None:
        request["reason"] = reason
    request["requestedBy"] = requested_by if requested_by is not None else caller_identity()
    request["requestedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    request["dryRun"] = dry_run
    _validate(request, mode)
    preview: list[str] | None = None
    if guarded:
        assert topic is not None
        preview = _preview(request, queue, topic, timeout, mode)

    if not wait:
        sent = _send(request, queue, mode)
        if mode is OutputFormat.JSON:
            print_json({"requestId": request["requestId"], **sent, "request": request,
                        **({"preview": preview} if preview is not None else {})})
        else:
            console().print(request["requestId"], highlight=False)
        raise typer.Exit(EXIT_OK)

    assert topic is not None
    # one result per campaign the dry run named (one alone: its summary, which a resume always sends, ends the wait)
    expected = len(preview) if preview and len(preview) > 1 else None
    waited = send_and_wait(topic, request["requestId"], lambda: _send(request, queue, mode), expected, timeout, mode,
                           f"Sent resume [bold]{escape(request['requestId'])}[/] of {escape(resume_of)}; waiting "
                           "for results…")
    collected = waited.collected
    code = outcomes_exit_code((r.get("outcome") for r in collected.results), collected.timed_out,
                              collected.interrupted)
    if mode is OutputFormat.JSON:
        print_json({
            "requestId": request["requestId"], **(waited.sent or {}), "request": request,
            "results": collected.results, "summary": collected.summary, "summaries": collected.summaries,
            "timedOut": collected.timed_out,
            "interrupted": collected.interrupted, "sent": waited.sent_state, "exitCode": code,
            **({"preview": preview} if preview is not None else {}),
        })
    else:
        print_results(collected)
        print_interrupted(waited, request["requestId"])
    raise typer.Exit(code)


def _validate(request: dict[str, Any], mode: OutputFormat) -> None:
    """The function's own parser and schema: what passes here passes there."""
    try:
        parse_resume_request(request, Origin(Source.SQS, request["requestId"], request["requestedAt"]),
                             request["requestId"])
    except InvalidRequest as error:
        fail(f"invalid resume request: {error.message}", EXIT_USAGE, mode)


def _send(request: dict[str, Any], queue: str, mode: OutputFormat) -> dict[str, str]:
    extra: dict[str, str] = {}
    if queue.endswith(".fifo"):
        # One group per resumed request keeps its resumes in order; the request id deduplicates resends.
        extra = {"MessageGroupId": f"resume:{request['resumeOf']}"[:128],
                 "MessageDeduplicationId": hashlib.sha256(request["requestId"].encode()).hexdigest()}
    try:
        response = client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(request, separators=(",", ":")),
                                              **extra)
    except (BotoCoreError, ClientError) as error:
        fail(f"could not send the request: {error}", EXIT_FAILED, mode)
    return {"queueUrl": queue, "messageId": response["MessageId"]}


def _preview(request: dict[str, Any], queue: str, topic: str, timeout: float, mode: OutputFormat) -> list[str]:
    """A dry run of the resume through the function (it reads the history, judges the producer policy): what it
    would start, shown, then a question. Exits, nothing started, unless the answer is yes."""
    dry = {**request, "requestId": f"preview-{uuid.uuid4()}", "dryRun": True,
           "reason": f"dry run before: {request.get('reason') or 'a resume'}"[:512]}
    _validate(dry, mode)
    waited = send_and_wait(topic, dry["requestId"], lambda: _send(dry, queue, mode), None, timeout, mode,
                           f"Dry run {escape(dry['requestId'])} sent: reading what {escape(request['resumeOf'])} "
                           "stopped…")
    collected = waited.collected
    out = error_console() if mode is OutputFormat.JSON else console()  # stdout stays the JSON document
    if collected.interrupted:
        fail("interrupted during the dry run: nothing was started", EXIT_INTERRUPTED, mode)
    if collected.timed_out:
        fail(f"no answer to the dry run within {timeout:g} s (is the function running?): nothing was started. "
             "Pass --yes to resume without a dry run.", EXIT_TIMEOUT, mode)
    if any(result.get("outcome") not in RESUME_OK_OUTCOMES for result in collected.results):
        print_results(collected, out)
        fail("the dry run did not succeed, and the resume would not either: nothing was started", EXIT_FAILED, mode)
    campaigns = sorted(f"{r.get('streamId')}/{r['campaignId']}" for r in collected.results
                       if r.get("outcome") == "dry_run" and isinstance(r.get("campaignId"), str))
    if not campaigns:
        out.print(Text(f"Request {request['resumeOf']} stopped no campaign itself: nothing to resume."))
        raise typer.Exit(EXIT_OK)
    out.print(Text(f"Would start {len(campaigns)} campaign(s) that {request['resumeOf']} stopped, each only if it is "
                   "still Stopped (schedules it disabled stay disabled):", style="bold"))
    table = Table("stream/campaign")
    for campaign in campaigns:
        table.add_row(Text(campaign))
    out.print(table)
    if not typer.confirm(f"Start these {len(campaigns)} campaign(s) again?", default=False, err=True):
        fail("not confirmed: nothing was started", EXIT_FAILED, mode)
    return campaigns


def print_results(collected: Collected, out: Console | None = None) -> None:
    out = out or console()
    table = Table("stream", "campaign", "type", "outcome", "error code", "message")
    for result in sorted(collected.results, key=lambda r: (str(r.get("streamId")), str(r.get("campaignId")))):
        error: dict[str, Any] = result["error"] if isinstance(result.get("error"), dict) else {}
        api: dict[str, Any] = result["api"] if isinstance(result.get("api"), dict) else {}
        outcome = str(result.get("outcome"))
        table.add_row(
            Text(str(result.get("streamId") or "-")), Text(str(result.get("campaignId") or "-")),
            Text(str(result.get("campaignType") or "-")),
            Text(outcome, style="green" if outcome in RESUME_OK_OUTCOMES else "red"),
            Text(str(error.get("code", ""))), Text(str(error.get("message") or api.get("message") or "")),
        )
    out.print(table)
    if collected.summaries:  # one per stream and campaign type: counted together
        outcomes: Counter[str] = Counter()
        for summary in collected.summaries:
            outcomes.update(summary.get("outcomes") or {})
        campaigns = sum(int(summary.get("campaigns") or 0) for summary in collected.summaries)
        counts = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
        out.print(Text(f"Summary: {campaigns} campaign(s): {counts or 'none'}"))
    if collected.timed_out:
        out.print("[bold yellow]Timed out[/] before every result arrived.")
