"""`campaign-stop results`: result and summary events from the results topic, read through a temporary queue
subscribed with a filter policy built from the flags (see subscription.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OutputFormat,
    OutputOption,
    ResultsTopicOption,
    console,
    error_console,
    fail,
    find_resource,
    output_format,
    print_json,
    print_json_line,
    resource,
    warn,
)
from campaign_stop_cli.history import HistoryUnreadable, past_events
from campaign_stop_cli.output import LineWriter, one_line, share_of_width
from campaign_stop_cli.subscription import Delivery, ResultsQueue, results_subscription
from stop_campaign.domain.models import Outcome

DEFAULT_WINDOW_SECONDS = 10.0  # without --follow: how long to collect at most
QUIET_SECONDS = 3.0  # without --follow: stop early once nothing new arrived for this long after a first event
POLL_SECONDS = 2  # long-polling step; also how late a --timeout or a quiet spell is noticed at most
FAILED_OUTCOMES = frozenset({Outcome.FAILED.value, Outcome.REJECTED.value})


def results(
    ctx: typer.Context,
    request_id: Annotated[str | None, typer.Option("--request-id", help="Only this request's events.",
                                                   metavar="REQUEST_ID")] = None,
    outcome: Annotated[
        list[Outcome] | None,
        typer.Option("--outcome", help="Only results with this outcome; repeat for several. Summaries carry no "
                                       "outcome, so this leaves them out.", metavar="OUTCOME"),
    ] = None,
    stream: Annotated[str | None, typer.Option("--stream", help="Only this stream's events (st-…).",
                                               metavar="STREAM_ID")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing events as they arrive, until Ctrl-C or --timeout.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=1, help=f"Seconds to listen. Default: {DEFAULT_WINDOW_SECONDS:g} (ending "
                                              f"earlier once {QUIET_SECONDS:g} s pass with nothing new); with "
                                              "--follow, no limit.", metavar="SECONDS"),
    ] = None,
    results_topic_arn: ResultsTopicOption = None,
    history_table: Annotated[
        str | None, typer.Option("--history-table", help="Request history table, read with --request-id (env "
                                                         "REQUEST_HISTORY_TABLE).", metavar="TABLE")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Show result and summary events (outcome, error code and message) as the function publishes them.

    With --request-id, the results that request already has come first, from the request history (kept
    REQUEST_HISTORY_DAYS), then any published while this listens. Otherwise only events published after it starts
    listening are seen (SNS keeps none): start it before, or while, the requests you care about run. It subscribes
    a temporary queue to the results topic (filtered on the flags) and removes both when it ends, Ctrl-C included.
    Exit 1 when any event shown is failed or rejected, else 0. json output: one list, or one event per line with
    --follow.
    """
    mode = output_format(ctx, output)
    if request_id is not None and not request_id.strip():
        fail("--request-id must not be empty", EXIT_USAGE, mode)
    if stream is not None and not stream.strip():
        fail("--stream must not be empty", EXIT_USAGE, mode)
    topic = resource("results_topic_arn", results_topic_arn, mode)
    outcomes = [o.value for o in outcome or []]
    policy = filter_policy(request_id, outcomes, stream)
    table = find_resource("history_table", history_table, mode) if request_id else None
    with results_subscription(topic, policy, mode) as queue:
        # Subscribed first, then the history read: a result published in between is in one or the other (or both,
        # and then shown once, by its resultId).
        past = _past(table, request_id, outcomes, stream) if table and request_id else []
        if follow:
            shown = _follow(queue, timeout, mode, past)
        else:
            shown = _collect(queue, DEFAULT_WINDOW_SECONDS if timeout is None else timeout, mode, past)
            _print_collected(shown, mode)
    raise typer.Exit(EXIT_FAILED if shown.any_failed() else EXIT_OK)


def _past(table: str, request_id: str, outcomes: list[str], stream: str | None) -> list[Delivery]:
    """The request's events from the history, filtered like the subscription; none (and a warning) when the
    history cannot be read: the live ones are still shown."""
    try:
        events = past_events(table, request_id)
    except HistoryUnreadable as error:
        warn(f"{error}; showing only results published from now on")
        return []
    past = []
    for event in events:
        is_summary = event.get("eventType") == "summary"
        if outcomes and (is_summary or event.get("outcome") not in outcomes):
            continue
        if stream and event.get("streamId") != stream:
            continue
        past.append(Delivery(event, "summary" if is_summary else "result", {}))
    return past


def filter_policy(request_id: str | None, outcomes: list[str], stream: str | None) -> dict[str, list[Any]] | None:
    """The SNS filter policy on the topic's message attributes (requestId, outcome, streamId); the conditions
    of one policy must all hold. None when nothing is filtered (every result and summary)."""
    policy: dict[str, list[Any]] = {}
    if request_id:
        policy["requestId"] = [request_id]
    if outcomes:
        policy["outcome"] = sorted(set(outcomes))
    if stream:
        policy["streamId"] = [stream]
    return policy or None


@dataclass
class Shown:
    """Events shown so far, one per resultId (SNS delivers at least once)."""

    events: list[Delivery] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def add(self, delivery: Delivery) -> bool:
        result_id = str(delivery.event.get("resultId") or delivery.attributes.get("resultId") or "")
        if result_id:
            if result_id in self._seen:
                return False
            self._seen.add(result_id)
        self.events.append(delivery)
        return True

    def any_failed(self) -> bool:
        return any(d.event_type != "summary" and d.event.get("outcome") in FAILED_OUTCOMES for d in self.events)


def _collect(queue: ResultsQueue, window: float, mode: OutputFormat, past: list[Delivery]) -> Shown:
    """Listen for ``window`` seconds, until QUIET_SECONDS pass without a new event once one has arrived (or was
    in the history), or until Ctrl-C."""
    shown = Shown()
    for delivery in past:
        shown.add(delivery)
    started = time.monotonic()
    last_new: float | None = started if shown.events else None
    progress = Progress(
        SpinnerColumn(), TextColumn("listening for results: {task.completed} so far"), TimeElapsedColumn(),
        console=console(), transient=True, disable=mode.machine,
    )
    with progress:
        task = progress.add_task("results", total=None)
        try:
            while True:
                now = time.monotonic()
                remaining = started + window - now
                if remaining <= 0 or (last_new is not None and now - last_new >= QUIET_SECONDS):
                    return shown
                for delivery in queue.receive(_wait_seconds(remaining)):
                    if shown.add(delivery):
                        last_new = time.monotonic()
                progress.update(task, completed=len(shown.events))
        except KeyboardInterrupt:
            return shown  # Ctrl-C ends the window early: what arrived is still shown


def _follow(queue: ResultsQueue, timeout: float | None, mode: OutputFormat, past: list[Delivery]) -> Shown:
    """Print the past events, then each new event at once until Ctrl-C (the normal way to end) or the timeout."""
    shown = Shown()
    deadline = None if timeout is None else time.monotonic() + timeout
    lines = LineWriter(FOLLOW_COLUMNS)
    if not mode.machine:
        since = "the request's past results first (history), then" if past else "only"
        error_console().print(f"Following results (Ctrl-C to stop); {since} events published from now on.",
                              highlight=False)
        lines.header()
    for delivery in past:
        if shown.add(delivery):
            _print_one(delivery, mode, lines)
    try:
        while deadline is None or time.monotonic() < deadline:
            remaining = POLL_SECONDS if deadline is None else deadline - time.monotonic()
            for delivery in queue.receive(_wait_seconds(remaining)):
                if shown.add(delivery):
                    _print_one(delivery, mode, lines)
    except KeyboardInterrupt:
        pass  # the subscription is removed by results_subscription on the way out
    if not mode.machine:
        error_console().print(_counts(shown), highlight=False)
    return shown


def _wait_seconds(remaining: float) -> int:
    return max(1, min(POLL_SECONDS, int(remaining)))


def _print_one(delivery: Delivery, mode: OutputFormat, lines: LineWriter) -> None:
    if mode.machine:
        print_json_line(delivery.event)  # JSON lines (with json and jsonl alike); flushed at once
        return
    lines.row(_cells(delivery))


def _print_collected(shown: Shown, mode: OutputFormat) -> None:
    if mode.machine:
        print_json([delivery.event for delivery in shown.events])
        return
    out = console()
    if not shown.events:
        out.print("No results arrived while listening, and none in the history for that request (with --request-id). "
                  "Without --request-id only events published after the subscription was made are seen: use "
                  "--follow, or a longer --timeout, and start it before the requests.", highlight=False)
        return
    ordered = sorted(shown.events, key=lambda d: str(d.event.get("completedAt") or ""))
    if out.width < WIDE_TABLE_COLUMNS:  # a table would squeeze the ids and the message: one line per event instead
        lines = LineWriter(FOLLOW_COLUMNS)
        for delivery in ordered:
            lines.row(_cells(delivery))
    else:
        table = _table()
        for delivery in ordered:
            table.add_row(*_row(delivery))
        out.print(table, highlight=False)
    out.print(_counts(shown), highlight=False)


def _counts(shown: Shown) -> str:
    summaries = sum(1 for d in shown.events if d.event_type == "summary")
    return f"{len(shown.events) - summaries} result(s), {summaries} summary event(s)."


def _table() -> Table:
    """Ids and times never wrap (they are copied into other commands); the messages fold."""
    columns = [Column(name, no_wrap=True) for name in ("at (UTC)", "request", "stream", "campaign", "outcome")]
    columns += [Column("error code", overflow="fold"), Column("error message", overflow="fold", ratio=share_of_width())]
    return Table(*columns, box=box.HEAVY_HEAD)


WIDE_TABLE_COLUMNS = 160  # narrower than this (an 80-120 column terminal), results print as --follow's lines
# --follow: one line per event, these widths (a longer value widens its own line; nothing is cut or wrapped).
FOLLOW_COLUMNS = (("at (UTC)", 8), ("request", 36), ("stream", 12), ("campaign", 14), ("outcome", 15),
                  ("error code", 16), ("error message", 0))


def _cells(delivery: Delivery) -> tuple[str, ...]:
    """The event's columns as plain text (no markup): time of day, request, stream, campaign, outcome, error."""
    event = delivery.event
    completed = str(event.get("completedAt") or "")
    time_of_day = completed[11:19] if len(completed) >= 19 else completed  # results are fresh: the day is today
    request, stream = str(event.get("requestId") or "-"), str(event.get("streamId") or "-")
    if delivery.event_type == "summary":
        counts = ", ".join(f"{name} {count}" for name, count in sorted((event.get("outcomes") or {}).items()))
        return (time_of_day, request, stream, "(summary)", "summary", "",
                f"{event.get('campaigns')} campaign(s): {counts or 'none'}")
    error: dict[str, Any] = event["error"] if isinstance(event.get("error"), dict) else {}
    return (time_of_day, request, stream, str(event.get("campaignId") or "-"), str(event.get("outcome") or "-"),
            str(error.get("code") or ""), one_line(error.get("message") or ""))


def _row(delivery: Delivery) -> tuple[Text, ...]:
    # Text from the event (an API's error message above all) is printed as text, never as Rich markup.
    cells = _cells(delivery)
    style = "red" if cells[4] in FAILED_OUTCOMES else "green"
    return tuple(Text(cell, style=style if index == 4 else "") for index, cell in enumerate(cells))
