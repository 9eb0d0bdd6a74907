"""`campaign-stop dlq`: look at the dead-letter queue and send its messages back to the stop queue.

Dead letters come from four writers: the function (stop_campaign.adapters.dead_letter: the original body with the
attributes errorCode, errorMessage, requestId, source, retryable), EventBridge (ERROR_CODE, ERROR_MESSAGE,
RULE_ARN, TARGET_ARN…), EventBridge Scheduler (ERROR_CODE, ERROR_MESSAGE, SCHEDULE_ARN…) and the stop queue's own
redrive policy (the message as it was, without a reason).

SQS cannot read a message by id or without hiding it, so every command scans: it receives, notes each message
id once, and makes the messages visible again (see _Scan). Moving is careful: a copy is sent to the stop queue
first and the dead letter deleted only after that send succeeded, and no message is sent twice in one run.

Anyone else reading the queue at the same time (another `dlq list`, a console's "poll for messages") hides the
messages it holds: a redrive moves what it meets while moving, looks again while others hold letters (a few
seconds), and says so (exit 1) when matching letters may still be held elsewhere."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Annotated, Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.json import JSON
from rich.markup import escape
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    DlqUrlOption,
    OutputFormat,
    OutputOption,
    QueueUrlOption,
    ResultsTopicOption,
    client,
    console,
    error_console,
    fail,
    find_resource,
    interrupts_deferred,
    output_format,
    print_json,
    resource,
    terminate_as_ctrl_c,
    warn,
)
from campaign_stop_cli.output import one_line, outcomes_exit_code, share_of_width
from campaign_stop_cli.stop import Collected, print_results
from campaign_stop_cli.subscription import ResultsQueue, results_subscription
from stop_campaign.domain.intake import (
    ORIGINAL_SENT_ATTRIBUTE,
    AlarmStateChange,
    InvalidRequest,
    age_basis,
    epoch_ms,
    expiry,
    first_sent_at,
    parse_sqs_body,
)
from stop_campaign.domain.models import Continuation, Origin, Source, StopRequest
from stop_campaign.domain.resume import ResumeRequest
from stop_campaign.settings import OPTIONAL_ENV_VARS

app = typer.Typer(help="Look at the dead-letter queue and send its messages back to the stop queue.",
                  no_args_is_help=True)

DlqUrlOption = DlqUrlOption

SQS_MAX_PER_CALL = 10  # ReceiveMessage, ChangeMessageVisibilityBatch
HOLD_SECONDS = 30  # how long a received message stays hidden at most, should this run die before releasing it
WAIT_SECONDS = 1  # long polling: short polling samples only some SQS servers and may miss messages
MOVE_TASK_POLL_SECONDS = 2.0
SETTLE_SECONDS = 5.0  # how long a redrive keeps looking again while another reader holds dead letters
SETTLE_POLL_SECONDS = 1.0
FIFO_GROUP_DEPTH = 10  # a FIFO queue hands out no more of a message group while some of it is in flight
REDRIVEN_FROM = "redrivenFrom"  # message attribute on the copy sent to the stop queue: the dead letter's id
# Why, and by whom, it was dead-lettered: never carried over to the copy. A new failure writes a new reason, and the
# function takes any of the reason attributes on a stop-queue message as the mark of a redrive by SQS's move task.
FUNCTION_REASON = frozenset({"errorCode", "errorMessage", "requestId", "source", "retryable"})  # the function's own
EVENTBRIDGE_REASON = frozenset({"ERROR_CODE", "ERROR_MESSAGE", "RULE_ARN", "TARGET_ARN", "EXHAUSTED_RETRY_CONDITION",
                                "RETRY_ATTEMPTS"})  # a rule's target DLQ
SCHEDULER_REASON = frozenset({"ERROR_CODE", "ERROR_MESSAGE", "EXECUTION_ID", "EXHAUSTED_RETRY_CONDITION",
                              "IS_PAYLOAD_TRUNCATED", "RETRY_ATTEMPTS", "SCHEDULED_TIME", "SCHEDULE_ARN", "GROUP_NAME",
                              "TARGET_ARN"})  # a schedule's DeadLetterConfig
REASON_ATTRIBUTES = FUNCTION_REASON | EVENTBRIDGE_REASON | SCHEDULER_REASON
NO_REASON = "(no attributes: moved here by the stop queue's redrive policy after repeated failed receives)"


# -- one dead letter ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, dict[str, Any]]  # SQS message attributes, as received
    system: dict[str, str]  # SQS system attributes (SentTimestamp, ApproximateReceiveCount…)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> DeadLetter:
        return cls(str(message["MessageId"]), str(message["ReceiptHandle"]), str(message.get("Body") or ""),
                   dict(message.get("MessageAttributes") or {}), dict(message.get("Attributes") or {}))

    def attribute(self, name: str) -> str | None:
        value = self.attributes.get(name) or {}
        text = value.get("StringValue")
        return str(text) if text is not None else None

    def attribute_texts(self) -> dict[str, str]:
        return {name: self.attribute(name) or f"<binary, {len(value.get('BinaryValue') or b'')} bytes>"
                for name, value in sorted(self.attributes.items())}

    @property
    def error_code(self) -> str | None:
        return self.attribute("errorCode") or self.attribute("ERROR_CODE")

    @property
    def error_message(self) -> str | None:
        return self.attribute("errorMessage") or self.attribute("ERROR_MESSAGE")

    @property
    def writer(self) -> str:
        """Who put it here: the function, EventBridge, or the stop queue's redrive policy (no reason attached)."""
        if self.attribute("errorCode") is not None:
            return "function"
        if self.attribute("ERROR_CODE") is not None or self.attribute("RULE_ARN") is not None:
            return "eventbridge"
        return "redrive-policy"

    @property
    def source(self) -> str:
        if self.writer == "function":
            return self.attribute("source") or "-"
        if self.writer == "eventbridge":
            return "eventbridge (delivery failed)"
        return "stop queue (redrive policy)"

    @property
    def request_id(self) -> str | None:
        """The attribute, else the body's (a stop request, an EventBridge event or a continuation)."""
        found = self.attribute("requestId")
        if found:
            return found
        _, body = self.parsed_body()
        if isinstance(body, dict):
            for holder in (body, body.get("detail"), body.get("request")):
                if isinstance(holder, dict) and isinstance(holder.get("requestId"), str):
                    return str(holder["requestId"])
        return None

    def _body_holders(self) -> list[dict[str, Any]]:
        """Where a request's fields are in the body: a stop request itself, an EventBridge event's detail, or a
        continuation's request."""
        _, body = self.parsed_body()
        if not isinstance(body, dict):
            return []
        return [holder for holder in (body, body.get("detail"), body.get("request")) if isinstance(holder, dict)]

    @property
    def stream_id(self) -> str | None:
        for holder in self._body_holders():
            if isinstance(holder.get("streamId"), str):
                return str(holder["streamId"])
        return None

    @property
    def campaigns(self) -> list[str]:
        """The campaign ids the request names; ["all-active"] for an all-active request, [] when it names none (an
        alarm: the alarm map decides)."""
        for holder in self._body_holders():
            if holder.get("campaigns") == "all-active":
                return ["all-active"]
            if isinstance(holder.get("campaignId"), str):
                return [str(holder["campaignId"])]
            if isinstance(holder.get("campaignIds"), list):
                return [str(item) for item in holder["campaignIds"]]
        return []

    def campaigns_text(self) -> str:
        campaigns = self.campaigns
        if not campaigns:
            return "-"
        return ", ".join(campaigns[:3]) + (f" (+{len(campaigns) - 3})" if len(campaigns) > 3 else "")

    def parsed_body(self) -> tuple[bool, Any]:
        """(is JSON, the parsed value)."""
        try:
            return True, json.loads(self.body)
        except ValueError:
            return False, None

    @property
    def sent_at(self) -> datetime | None:
        stamp = self.system.get("SentTimestamp")
        return datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp and stamp.isdigit() else None

    def age_seconds(self) -> int | None:
        sent = self.sent_at
        return max(0, int((datetime.now(UTC) - sent).total_seconds())) if sent else None

    def first_sent_at(self) -> str | None:
        """When its request was first sent: the ``originalSentTimestamp`` the function's dead letters carry (and a
        redriven copy keeps), else its own SentTimestamp (the stop queue's redrive policy keeps the original).
        Read by the function's own rule (intake.first_sent_at)."""
        return first_sent_at({
            "messageAttributes": {name: {"stringValue": value.get("StringValue")}
                                  for name, value in self.attributes.items()},
            "attributes": self.system,
        })

    def as_json(self, with_body: bool = False) -> dict[str, Any]:
        document: dict[str, Any] = {
            "messageId": self.message_id,
            "requestId": self.request_id,
            "streamId": self.stream_id,
            "campaignIds": self.campaigns,
            "errorCode": self.error_code,
            "errorMessage": self.error_message,
            "source": self.source,
            "writer": self.writer,
            "retryable": self.attribute("retryable"),
            "sentAt": self.sent_at.isoformat() if self.sent_at else None,
            "ageSeconds": self.age_seconds(),
            "receiveCount": self.system.get("ApproximateReceiveCount"),
            "attributes": self.attribute_texts(),
        }
        if with_body:
            is_json, parsed = self.parsed_body()
            document["systemAttributes"] = dict(sorted(self.system.items()))
            document["bodyIsJson"] = is_json
            document["body"] = parsed if is_json else self.body
        return document


# -- choosing dead letters ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """What `dlq list` and `dlq redrive` choose by; every given filter must hold (several values of one: any)."""

    request_ids: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()
    campaigns: frozenset[str] = frozenset()
    error_codes: frozenset[str] = frozenset()
    older_than_seconds: int | None = None

    def __bool__(self) -> bool:
        return bool(self.request_ids or self.streams or self.campaigns or self.error_codes
                    or self.older_than_seconds is not None)

    def match(self, letter: DeadLetter) -> bool:
        age = letter.age_seconds()
        return ((not self.request_ids or (letter.request_id or "") in self.request_ids)
                and (not self.streams or (letter.stream_id or "") in self.streams)
                and (not self.campaigns or bool(self.campaigns & set(letter.campaigns)))
                and (not self.error_codes or (letter.error_code or "") in self.error_codes)
                and (self.older_than_seconds is None or (age is not None and age >= self.older_than_seconds)))

    def as_json(self) -> dict[str, Any]:
        return {"requestIds": sorted(self.request_ids), "streams": sorted(self.streams),
                "campaigns": sorted(self.campaigns), "errorCodes": sorted(self.error_codes),
                "olderThanSeconds": self.older_than_seconds}


_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | None, mode: OutputFormat) -> int | None:
    """--older-than: seconds, or a number with s, m, h or d (90m, 2h, 1d)."""
    if text is None:
        return None
    value = text.strip().lower()
    unit = _DURATION.get(value[-1:]) if value else None
    number = value[:-1] if unit else value
    if not number.isdigit():
        fail(f"--older-than {text!r}: give seconds, or a number with s, m, h or d (e.g. 90m, 2h, 1d)", EXIT_USAGE,
             mode)
    return int(number) * (unit or 1)


def unmatched_codes(codes: frozenset[str], letters: list[DeadLetter]) -> str | None:
    """An --error-code no dead letter read has: said, with the codes that are there (a typo moves nothing)."""
    present: dict[str, int] = {}
    for letter in letters:
        present[letter.error_code or "(none)"] = present.get(letter.error_code or "(none)", 0) + 1
    missing = sorted(code for code in codes if code not in present)
    if not missing:
        return None
    there = ", ".join(f"{code} {count}" for code, count in sorted(present.items())) or "none: the queue is empty"
    return f"no dead letter has error code {', '.join(missing)}; the error codes there now: {there}"


# -- what a redrive would do ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Redriven:
    """What one dead letter would do sent back now, as the function would judge it (its own parser and expiry rule,
    stop_campaign.domain.intake): what it stops, how old its request is, and whether it would be rejected as
    expired (``expired`` holds the function's reason)."""

    stops: str
    age_seconds: int | None
    expired: str | None

    def as_json(self) -> dict[str, Any]:
        return {"stops": self.stops, "requestAgeSeconds": self.age_seconds, "wouldExpire": self.expired is not None,
                "expiredBecause": self.expired}


def judge(letter: DeadLetter, now: datetime, max_age_seconds: float) -> Redriven:
    origin = Origin(Source.SQS, letter.message_id, now.isoformat(), sent_at=letter.first_sent_at())
    try:
        parsed = parse_sqs_body(letter.body, origin)
    except InvalidRequest as error:
        return Redriven(f"nothing: rejected again ({error.message})", None, None)
    if isinstance(parsed, Continuation):  # the rest of a request it accepted: never judged by age
        request = parsed.request
        return Redriven(f"the rest of request {request.request_id}: {_campaigns_text(request)}", None, None)
    basis = age_basis(parsed)
    age = max(0, int((now - basis[1]).total_seconds())) if basis else None
    late = expiry(parsed, now, max_age_seconds)
    if isinstance(parsed, AlarmStateChange):
        stops = (f"what the alarm map maps {parsed.alarm_name} to" if parsed.state == "ALARM"
                 else f"nothing (alarm {parsed.alarm_name} {parsed.state})")
    elif isinstance(parsed, ResumeRequest):
        stops = (f"nothing: starts again what request {parsed.resume_of} stopped, if still Stopped"
                 + (" (dry run)" if parsed.dry_run else ""))
    else:
        stops = _campaigns_text(parsed)
    return Redriven(stops, age, late.message if late is not None else None)


def _campaigns_text(request: StopRequest) -> str:
    if request.all_active:
        what = f"every active {request.campaign_type} campaign"
    else:
        ids = list(request.campaign_ids)
        what = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    resumed = f"resume of {request.resume_of}: start " if request.resume_of is not None else ""
    return f"{resumed}{what} of {request.stream_id}" + (" (dry run)" if request.dry_run else "")


def max_request_age(flag_value: int | None, mode: OutputFormat) -> float:
    """The function's MAX_REQUEST_AGE_SECONDS: the flag, the stack's parameter, the variable, else its default."""
    text = find_resource("max_request_age", str(flag_value) if flag_value is not None else None, mode)
    try:
        return float(text or OPTIONAL_ENV_VARS["MAX_REQUEST_AGE_SECONDS"])
    except ValueError:
        fail(f"MAX_REQUEST_AGE_SECONDS must be a number of seconds, got {text!r}", EXIT_USAGE, mode)


# -- reading the queue -----------------------------------------------------------------------------------

class _Scan:
    """Every message of a queue, each message id once, made visible again as soon as possible.

    Messages a caller lets go are released (visibility 0) right after the receive that brought them. Should a
    receive bring nothing new (SQS returned the same messages again: short queues, or moto, which answers in
    queue order), the scan holds what it sees from then on (hidden for HOLD_SECONDS at most) so the next receive
    reaches further, and releases all of it at the end. It ends when a receive brings nothing it has not seen.
    A FIFO queue is never held: it hands out no more of a message group while part of it is in flight, so holding
    would only block the group; without moving (deleting) messages, a scan of it sees the first
    FIFO_GROUP_DEPTH of each group. Used as a context manager: the release at the end also runs on errors, Ctrl-C,
    SIGTERM and SIGHUP (which raise KeyboardInterrupt meanwhile)."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._may_hold = not is_fifo(queue_url)
        self.seen: set[str] = set()
        self._holding = False
        self._hidden: dict[str, str] = {}  # received and not yet released: message id -> latest receipt handle
        self._gone: set[str] = set()  # deleted by the caller: nothing to release
        self._signals = ExitStack()

    def __enter__(self) -> _Scan:
        self._signals.enter_context(terminate_as_ctrl_c())
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
                 ) -> None:
        try:
            with interrupts_deferred() as noted:  # a signal now would leave messages hidden for HOLD_SECONDS
                self._flush()
        finally:
            self._signals.close()
        if noted and kind is None:
            raise KeyboardInterrupt

    def __iter__(self) -> Iterator[DeadLetter]:
        while True:
            letters = [DeadLetter.from_message(message) for message in self._receive()]
            # Noted before anything is handed out: a caller that stops early still has the whole batch released.
            progress = any(letter.message_id not in self._hidden for letter in letters)
            for letter in letters:
                self._hidden[letter.message_id] = letter.receipt_handle
            new = [letter for letter in letters if letter.message_id not in self.seen]
            for letter in new:
                self.seen.add(letter.message_id)
                yield letter  # the caller may delete it (done()); otherwise it is let go
            if not self._holding:
                self._flush()
            if not letters or not progress:
                return
            if not new:
                if not self._may_hold:
                    return  # FIFO: what comes next of these groups comes only once these are gone
                self._holding = True  # SQS handed out the same messages again: hold them to reach the others

    def done(self, letter: DeadLetter) -> None:
        """The caller deleted this message."""
        self._gone.add(letter.message_id)
        self._hidden.pop(letter.message_id, None)

    def _receive(self) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._url, MaxNumberOfMessages=SQS_MAX_PER_CALL, MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"], VisibilityTimeout=HOLD_SECONDS, WaitTimeSeconds=WAIT_SECONDS,
        )
        return list(response.get("Messages", []))

    def _flush(self) -> None:
        pending = [(message_id, handle) for message_id, handle in self._hidden.items() if message_id not in self._gone]
        self._hidden.clear()
        for start in range(0, len(pending), SQS_MAX_PER_CALL):
            chunk = pending[start:start + SQS_MAX_PER_CALL]
            try:
                response = self._sqs.change_message_visibility_batch(QueueUrl=self._url, Entries=[
                    {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for index, (_, handle) in enumerate(chunk)
                ])
                failed = len(response.get("Failed", []))
            except (BotoCoreError, ClientError):
                failed = len(chunk)
            if failed:
                error_console().print(f"[yellow]warning:[/] {failed} message(s) could not be made visible at once; "
                                      f"they are visible again within {HOLD_SECONDS} s.")


def _all_letters(sqs: Any, queue_url: str) -> list[DeadLetter]:
    """Every dead letter that can be read now (all made visible again)."""
    with _Scan(sqs, queue_url) as scan:
        return list(scan)


def is_fifo(queue_url: str) -> bool:
    return queue_url.rstrip("/").endswith(".fifo")  # SQS: a FIFO queue's name must end in .fifo


def _scan_failed(error: BaseException, mode: OutputFormat) -> NoReturn:
    fail(f"could not read the dead-letter queue: {error}", EXIT_FAILED, mode)


def _queue_counts(sqs: Any, queue_url: str, mode: OutputFormat) -> tuple[int, int]:
    """(visible, in flight) approximately; also the check that the queue exists before a scan."""
    visible, in_flight, _ = _queue_state(sqs, queue_url, mode)
    return visible, in_flight


def _queue_state(sqs: Any, queue_url: str, mode: OutputFormat) -> tuple[int, int, int]:
    """(visible, in flight, now in milliseconds since the epoch): now is this machine's clock unless the queue
    service's own (the answer's Date) is more than 2 s away from it, to compare with SentTimestamp."""
    try:
        response = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot read queue {queue_url}: {error}", EXIT_USAGE, mode)
    now_ms = int(time.time() * 1000)
    date = str(response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date") or "")
    try:
        server_ms = int(parsedate_to_datetime(date).timestamp() * 1000) + 500 if date else now_ms  # within its second
    except (TypeError, ValueError):
        server_ms = now_ms
    attributes = response["Attributes"]
    return (int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            now_ms if abs(server_ms - now_ms) <= 2000 else server_ms)


def _queue_arn(sqs: Any, queue_url: str, mode: OutputFormat) -> str:
    try:
        return str(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot read queue {queue_url}: {error}", EXIT_USAGE, mode)


def _queue_name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            rest = (seconds % size) // small_size
            return f"{seconds // size}{unit} {rest}{smaller}" if rest else f"{seconds // size}{unit}"
    return f"{seconds}s"


NARROW_COLUMNS = 100  # below this a six-column table cannot show a whole message id: one block per letter instead


def _print_letters(letters: list[DeadLetter], title: str, redriven: dict[str, Redriven] | None = None) -> None:
    """The letters as a table, or on a narrow terminal one block per letter. Ids are copied from here into
    `dlq show` and `dlq redrive --message-id`: a message id (a UUID, 36 characters) is never cut or wrapped, and a
    request id or an error code may fold but is never cut."""
    out = console()
    if out.width >= NARROW_COLUMNS:
        out.print(_letters_table(letters, title, redriven))
        return
    out.print(f"[bold]{escape(title)}[/]", highlight=False)
    for letter in letters:
        code = letter.error_code
        out.print(f"{letter.message_id}  " + (f"[red]{escape(code)}[/]" if code else "(no error code)")
                  + f"  {_age(letter.age_seconds())}", highlight=False, soft_wrap=False, overflow="fold")
        details = [f"request {letter.request_id or '-'}, stream {letter.stream_id or '-'}, campaign "
                   f"{letter.campaigns_text()}, from {letter.source}",
                   (letter.error_message if letter.writer != "redrive-policy" else NO_REASON) or ""]
        if redriven and letter.message_id in redriven:
            verdict = redriven[letter.message_id]
            details += [f"stops {verdict.stops}; request {_age(verdict.age_seconds)} old",
                        f"would now be rejected as expired: {verdict.expired}" if verdict.expired else ""]
        for detail in details:
            if detail:
                out.print(Padding(Text(detail, overflow="fold"), (0, 0, 0, 4)), highlight=False, soft_wrap=False)


def _letters_table(letters: list[DeadLetter], title: str | None = None,
                   redriven: dict[str, Redriven] | None = None) -> Table:
    """With ``redriven`` (a redrive's question and dry run): what each would stop, its request's age, and whether the
    function would now reject it as expired."""
    columns: list[Column | str] = [
        Column("message id", no_wrap=True, min_width=36), Column("request id", overflow="fold", min_width=12),
        Column("stream / campaign", overflow="fold"), Column("error code", overflow="fold"),
        Column("error message", ratio=share_of_width()), "source", Column("age", no_wrap=True),
    ]
    if redriven is not None:
        columns += [Column("would stop", ratio=share_of_width()), Column("request age", no_wrap=True),
                    Column("sent back now")]
    table = Table(*columns, title=title)
    for letter in letters:
        code = letter.error_code
        message = letter.error_message if letter.writer != "redrive-policy" else NO_REASON
        cells: list[Any] = [letter.message_id, escape(letter.request_id or "-"),
                            Text(f"{letter.stream_id or '-'} / {letter.campaigns_text()}"),
                            f"[red]{escape(code)}[/]" if code else "-", escape(one_line(message)),
                            escape(letter.source),
                            _age(letter.age_seconds())]
        verdict = (redriven or {}).get(letter.message_id)
        if redriven is not None and verdict is not None:
            cells += [Text(verdict.stops), _age(verdict.age_seconds),
                      Text("expired", style="bold red") if verdict.expired else Text("served")]
        elif redriven is not None:
            cells += ["-", "-", "-"]
        table.add_row(*cells)
    return table


# -- list ------------------------------------------------------------------------------------------------

RequestIdFilter = Annotated[list[str] | None, typer.Option(
    "--request-id", help="Only dead letters of this request (repeat for several).", metavar="REQUEST_ID")]
ErrorCodeFilter = Annotated[list[str] | None, typer.Option(
    "--error-code", help="Only dead letters with this error code (repeat for several).", metavar="CODE")]


@app.command("list")
def list_letters(
    ctx: typer.Context,
    request_ids: RequestIdFilter = None,
    streams: Annotated[list[str] | None, typer.Option("--stream", help="Only this stream's (repeat for several).",
                                                      metavar="STREAM_ID")]
    = None,
    campaigns: Annotated[list[str] | None, typer.Option(
        "--campaign", help="Only requests naming this campaign id (repeat for several; all-active matches "
                           "all-active requests).", metavar="CAMPAIGN_ID")] = None,
    error_codes: ErrorCodeFilter = None,
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="Only dead letters at least this old: seconds, or 90m, 2h, 1d.", metavar="AGE")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Show at most this many.", metavar="N")] = 50,
    dlq_url: DlqUrlOption = None,
    output: OutputOption = None,
) -> None:
    """List dead letters: message id, request id, stream and campaign, error code and message, source, age.

    The filters read every dead letter and show those that match them all. An --error-code that no dead letter has
    is said, with the codes there are. Reading hides a message in SQS: each one is made visible again right away
    (or, for longer queues, at the end of the listing; never more than 30 s), and each read counts as a receive
    (ApproximateReceiveCount).
    """
    mode = output_format(ctx, output)
    filters = Filters(frozenset(request_ids or []), frozenset(streams or []), frozenset(campaigns or []),
                      frozenset(error_codes or []), parse_duration(older_than, mode))
    url = resource("dead_letter_queue_url", dlq_url, mode)
    sqs = client("sqs")
    visible, in_flight = _queue_counts(sqs, url, mode)
    letters: list[DeadLetter] = []
    read: list[DeadLetter] = []
    try:
        with _Scan(sqs, url) as scan:
            for letter in scan:
                read.append(letter)
                if filters.match(letter):
                    letters.append(letter)
                    if len(letters) >= limit:
                        break
    except (BotoCoreError, ClientError) as error:
        _scan_failed(error, mode)
    unknown = unmatched_codes(filters.error_codes, read) if filters.error_codes and not letters else None
    if unknown:
        warn(unknown)
    if mode.machine:
        print_json({"queueUrl": url, "approximateVisible": visible, "approximateInFlight": in_flight,
                    "filters": filters.as_json(), "read": len(read), "shown": len(letters),
                    "messages": [letter.as_json() for letter in letters]}, records="messages")
        return
    out = console()
    if not letters:
        out.print(f"{_queue_name(url)} is empty." if not read else
                  f"No dead letter of the {len(read)} read matches the filters.", highlight=False)
        return
    matching = f" matching, of {len(read)} read" if filters else ""
    _print_letters(letters, f"{_queue_name(url)}: {len(letters)} shown{matching}, about {visible} visible and "
                            f"{in_flight} in flight")
    if len(letters) >= limit:
        out.print(f"Stopped at --limit {limit}.", highlight=False)
    elif is_fifo(url) and len(read) < visible:
        out.print(f"A FIFO queue shows only the first {FIFO_GROUP_DEPTH} messages of each message group to a reader "
                  "that does not delete them: the others come into view as those are redriven.", highlight=False)


# -- show ------------------------------------------------------------------------------------------------

@app.command("show")
def show(
    ctx: typer.Context,
    letter_id: Annotated[str, typer.Argument(
        metavar="ID", help="The dead letter's SQS message id, or a request id (every dead letter of that request).")],
    dlq_url: DlqUrlOption = None,
    output: OutputOption = None,
) -> None:
    """Show a dead letter: its attributes and its full body (pretty-printed when it is JSON). ID is its message id
    (see `dlq list`) or the request id it carries: then every dead letter of that request is shown. Exit 1 when
    none is in the queue."""
    mode = output_format(ctx, output)
    url = resource("dead_letter_queue_url", dlq_url, mode)
    sqs = client("sqs")
    _queue_counts(sqs, url, mode)
    found: list[DeadLetter] = []
    try:
        with _Scan(sqs, url) as scan:
            for letter in scan:
                if letter.message_id == letter_id:
                    found = [letter]
                    break
                if letter.request_id == letter_id:
                    found.append(letter)
    except (BotoCoreError, ClientError) as error:
        _scan_failed(error, mode)
    if not found:
        fifo = (f"; a FIFO queue shows only the first {FIFO_GROUP_DEPTH} messages of each message group"
                if is_fifo(url) else "")
        fail(f"{letter_id} is not in {_queue_name(url)}, as a message id or as a request id (or another reader "
             f"holds it just now{fifo})", EXIT_FAILED, mode)
    if mode.machine:
        documents = [letter.as_json(with_body=True) for letter in found]
        print_json(documents[0] if len(documents) == 1 else documents)
        return
    for letter in found:
        _show_one(letter, url)


def _show_one(found: DeadLetter, url: str) -> None:
    out = console()
    out.print(f"[bold]{found.message_id}[/] in {escape(_queue_name(url))}", highlight=False)
    table = Table("attribute", Column("value", overflow="fold"))
    for name, value in found.attribute_texts().items():
        table.add_row(escape(name), escape(value))
    if found.writer == "redrive-policy":
        table.add_row("(reason)", NO_REASON)
    for name, value in sorted(found.system.items()):
        shown = value
        if name.endswith("Timestamp") and value.isdigit():
            shown = datetime.fromtimestamp(int(value) / 1000, UTC).isoformat()
        table.add_row(f"[dim]{escape(name)}[/]", escape(shown))
    out.print(table)
    out.print("[bold]body[/]")
    is_json, body = found.parsed_body()
    if is_json:
        out.print(JSON(json.dumps(body)))
    else:
        out.print(found.body, highlight=False, markup=False)


# -- redrive ---------------------------------------------------------------------------------------------

@dataclass
class _Moves:
    moved: list[str] = field(default_factory=list)
    skipped: int = 0  # seen, not chosen (or arrived after the run started: left for the next run)
    newer: int = 0  # of the skipped: dead letters that arrived after the run started
    failed: list[dict[str, str]] = field(default_factory=list)  # messageId, error
    not_found: list[str] = field(default_factory=list)
    interrupted: bool = False
    method: str = "one-by-one"
    task: dict[str, Any] | None = None
    # Matching dead letters may remain: {"inFlight": held by another reader, "unread": visible, never reached}
    may_remain: dict[str, int] | None = None
    letters: dict[str, DeadLetter] = field(default_factory=dict)  # moved, by message id: what --wait follows

    def exit_code(self) -> int:
        failed = self.failed or self.not_found or self.interrupted or self.may_remain
        return EXIT_FAILED if failed else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "moved": len(self.moved) if self.task is None else self.task.get("moved"),
                "skipped": self.skipped, "arrivedDuringRun": self.newer,
                "failed": len(self.failed) + len(self.not_found), "movedIds": self.moved, "failures": self.failed,
                "notFound": self.not_found, "mayRemain": self.may_remain, "interrupted": self.interrupted,
                "moveTask": self.task, "exitCode": self.exit_code()}


@app.command("redrive")
def redrive(
    ctx: typer.Context,
    all_letters: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    message_ids: Annotated[
        list[str] | None, typer.Option("--message-id", help="This dead letter (repeat for several).",
                                       metavar="MESSAGE_ID")
    ] = None,
    error_codes: Annotated[
        list[str] | None, typer.Option("--error-code", help="Dead letters with this errorCode (repeat for several).",
                                       metavar="CODE")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before moving.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would move; move nothing.")] = False,
    request_ids: RequestIdFilter = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Follow the redriven requests to their new results on the results topic, then show them.")]
    = False,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds --wait waits before exit code 3.",
                                           metavar="SECONDS")]
    = 120.0,
    results_topic_arn: ResultsTopicOption = None,
    max_age: Annotated[int | None, typer.Option(
        "--max-request-age", min=1, help="The function's MAX_REQUEST_AGE_SECONDS, to say which dead letters it would "
        "now reject as expired (default: the stack's MaxRequestAgeSeconds, else env MAX_REQUEST_AGE_SECONDS, else "
        f"{OPTIONAL_ENV_VARS['MAX_REQUEST_AGE_SECONDS']}).", metavar="SECONDS")] = None,
    dlq_url: DlqUrlOption = None,
    queue_url: QueueUrlOption = None,
    output: OutputOption = None,
) -> None:
    """Send dead letters back to the stop queue, once their cause is fixed.

    Choose exactly one of --all, --message-id, --request-id or --error-code (each repeatable). --all uses SQS's
    own message move task where the service offers it (not with --wait, which needs to know what moved);
    otherwise, and for the filters, each chosen message is sent to the stop queue (attribute redrivenFrom = its
    dead-letter message id; the dead-letter reason stays behind) and deleted from the dead-letter queue only after
    that send succeeded; the others are made visible again. With --wait, the redriven requests are then followed
    to their new results (exit as `stop --wait`: 1 when one failed again, 3 on --timeout).
    Before the question (and with --dry-run) each dead letter shows what it would stop, how old its request is (from
    its requestedAt, else when it was first sent: the function's own rule) and whether the function would now
    reject it as expired. What is listed before the question is what could be read then: --all and --error-code
    move every matching dead letter that was there when the run started, including ones another reader held at
    first. One that fails again meanwhile stays for the next run. Exit 1 when any move failed, a --message-id or
    --request-id was not found, an --error-code matches no dead letter, the run was interrupted, or matching dead
    letters may remain because another reader holds them.
    """
    mode = output_format(ctx, output)
    ids = list(dict.fromkeys(message_ids or []))
    codes = set(error_codes or [])
    requests = set(request_ids or [])
    if sum((all_letters, bool(ids), bool(codes), bool(requests))) != 1:
        fail("give exactly one of --all, --message-id, --request-id or --error-code (one or more)", EXIT_USAGE,
             mode)
    dlq = resource("dead_letter_queue_url", dlq_url, mode)
    stop_queue = resource("stop_queue_url", queue_url, mode)
    topic = resource("results_topic_arn", results_topic_arn, mode) if wait and not dry_run else None
    max_age_seconds = max_request_age(max_age, mode)
    sqs = client("sqs")
    visible, in_flight, started_ms = _queue_state(sqs, dlq, mode)
    stop_queue_arn = _queue_arn(sqs, stop_queue, mode)  # also checks the stop queue exists before anything moves

    def chosen(letter: DeadLetter) -> bool:
        return (all_letters or letter.message_id in ids or (letter.error_code or "") in codes
                or (letter.request_id or "") in requests)

    try:
        snapshot = _snapshot(sqs, dlq, chosen, set(ids))
    except (BotoCoreError, ClientError) as error:
        _scan_failed(error, mode)
    now = datetime.fromtimestamp(started_ms / 1000, UTC)  # the queue service's clock, as SentTimestamp is
    redriven = {letter.message_id: judge(letter, now, max_age_seconds) for letter in snapshot}
    not_found = [message_id for message_id in ids if message_id not in {letter.message_id for letter in snapshot}]
    not_found += sorted(request_id for request_id in requests
                        if request_id not in {letter.request_id for letter in snapshot})
    if codes and not snapshot and not in_flight:
        fail(f"nothing to move: {unmatched_codes(frozenset(codes), _all_letters(sqs, dlq))}", EXIT_FAILED, mode)
    if dry_run:
        _report_dry_run(snapshot, not_found, dlq, stop_queue, mode, in_flight, redriven)
        raise typer.Exit(EXIT_FAILED if not_found else EXIT_OK)
    if snapshot and mode is OutputFormat.TABLE:
        _print_letters(snapshot, f"To move back to {_queue_name(stop_queue)}", redriven)
    expired = sum(1 for verdict in redriven.values() if verdict.expired)
    if expired:
        warn(f"{expired} of these would now be rejected as expired (older than {max_age_seconds:g} s, or past their "
             "notAfter): sent back, they stop nothing and come back here as dead letters with error code expired")
    confirmed = yes
    if all_letters and topic is None:
        confirmed = _redrive_all_by_move_task(sqs, dlq, stop_queue, stop_queue_arn, visible, in_flight, yes, mode)
    if snapshot and not confirmed:
        more = "" if ids else " (and any other matching dead letter met while moving)"
        typer.confirm(f"Move {len(snapshot)} dead letter(s){more} from {_queue_name(dlq)} back to "
                      f"{_queue_name(stop_queue)}?", abort=True, err=True)
        confirmed = True
    if not (snapshot or (confirmed and in_flight)):  # nothing readable, and none held elsewhere to look for again
        moves = _Moves(not_found=not_found)
        if in_flight:
            moves.may_remain = {"inFlight": in_flight, "unread": 0}
        _report(moves, dlq, stop_queue, mode, snapshot)
        raise typer.Exit(moves.exit_code())
    with ExitStack() as listening:
        # Subscribed before anything moves: SNS keeps nothing, so a result published first would be missed.
        results_queue = listening.enter_context(results_subscription(topic, None, mode)) if topic else None
        # Chosen, and (but for a --message-id, which is exact) there before the run started: a redriven copy that
        # fails again while this runs comes back as a new dead letter, for the next run.
        moves = _move(sqs, dlq, stop_queue, chosen, None if ids else started_ms, set(ids), len(snapshot), mode)
        if ids and not moves.interrupted:
            done = set(moves.moved) | {failure["messageId"] for failure in moves.failed}
            moves.not_found = [message_id for message_id in ids if message_id not in done]
        elif requests and not moves.interrupted:
            moves.not_found = [request_id for request_id in sorted(requests)
                               if request_id not in {letter.request_id for letter in moves.letters.values()}]
        _report(moves, dlq, stop_queue, mode, snapshot, as_document=results_queue is None)
        if results_queue is None:
            raise typer.Exit(moves.exit_code())
        followed = follow_redriven(results_queue, list(moves.letters.values()), timeout, mode)
    _report_followed(followed, moves, dlq, stop_queue, mode)
    raise typer.Exit(max(moves.exit_code(), followed.exit_code()) if moves.exit_code() else followed.exit_code())


def _redrive_all_by_move_task(sqs: Any, dlq: str, stop_queue: str, stop_queue_arn: str, visible: int,
                              in_flight: int, confirmed: bool, mode: OutputFormat) -> bool:
    """--all: with SQS's own message move task where the service offers it, then exit (as with an empty queue).
    Otherwise returns whether the move was confirmed (asked here when there is something to move), for the
    message by message move."""
    if visible == 0 and in_flight == 0:
        _report(_Moves(), dlq, stop_queue, mode, [])
        raise typer.Exit(EXIT_OK)
    if visible > 0:
        if not confirmed:
            typer.confirm(f"Move all dead letters (about {visible}) from {_queue_name(dlq)} back to "
                          f"{_queue_name(stop_queue)}?", abort=True, err=True)
            confirmed = True
        moves = _with_move_task(sqs, _queue_arn(sqs, dlq, mode), stop_queue_arn, visible, mode)
        if moves is not None:
            held = _queue_counts(sqs, dlq, mode)[1]
            if held:  # a move task moves what it can receive: what another reader held stayed behind
                moves.may_remain = {"inFlight": held, "unread": 0}
            _report(moves, dlq, stop_queue, mode, [])
            raise typer.Exit(moves.exit_code())
    return confirmed


def _sent_before(letter: DeadLetter, moment_ms: int) -> bool:
    stamp = letter.system.get("SentTimestamp", "")
    return not stamp.isdigit() or int(stamp) < moment_ms


def _snapshot(sqs: Any, dlq: str, chosen: Callable[[DeadLetter], bool], wanted: set[str]) -> list[DeadLetter]:
    """The chosen dead letters that can be read now (all made visible again), for the question and --dry-run."""
    letters: list[DeadLetter] = []
    with _Scan(sqs, dlq) as scan:
        for letter in scan:
            if chosen(letter):
                letters.append(letter)
                if wanted and wanted <= {found.message_id for found in letters}:
                    break
    return letters


def _move(sqs: Any, dlq: str, stop_queue: str, chosen: Callable[[DeadLetter], bool], started_ms: int | None,
          wanted: set[str], expected: int, mode: OutputFormat) -> _Moves:
    """Move every ``chosen`` dead letter sent before ``started_ms`` (None: whenever), each at most once: send it,
    delete it after the send succeeded; let every other message go. ``wanted`` (--message-id): stop once those
    are moved.

    One pass scans the queue, moving as it goes (on a FIFO queue that is what brings the rest of a message group
    into view). After a pass the queue's counts tell whether it saw everything: when others hold messages (in
    flight) or more are visible than the pass left behind, it passes again, for up to SETTLE_SECONDS; what may
    still be held elsewhere then is reported in ``may_remain``."""
    handled: set[str] = set()  # never sent twice in one run, whatever SQS hands out again
    skipped: set[str] = set()
    newer: set[str] = set()
    moves = _Moves()
    progress = Progress(
        SpinnerColumn(), TextColumn("moving"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console(), transient=True, disable=mode.machine,
    )
    settle_until: float | None = None
    try:
        with terminate_as_ctrl_c(), progress:
            task = progress.add_task("moving", total=expected or None)
            while True:
                left: set[str] = set()  # seen in this pass and still in the queue
                with _Scan(sqs, dlq) as scan:
                    for letter in scan:
                        arrived_later = started_ms is not None and not _sent_before(letter, started_ms)
                        if letter.message_id in handled or not chosen(letter) or arrived_later:
                            left.add(letter.message_id)
                            if letter.message_id not in handled:
                                skipped.add(letter.message_id)
                                if arrived_later and chosen(letter):
                                    newer.add(letter.message_id)
                            continue
                        handled.add(letter.message_id)
                        with interrupts_deferred() as noted:  # sent and not deleted would be in both queues
                            if not _move_one(sqs, stop_queue, dlq, letter, scan, moves):
                                left.add(letter.message_id)
                        if noted:
                            raise KeyboardInterrupt  # takes effect between two messages
                        progress.update(task, completed=len(moves.moved), total=max(expected, len(handled)))
                        if wanted and wanted <= handled:
                            break
                if wanted and wanted <= handled:
                    break
                visible, in_flight = _queue_counts(sqs, dlq, mode)
                if in_flight == 0 and visible <= len(left):
                    break  # everything in the queue was looked at
                settle_until = settle_until or time.monotonic() + SETTLE_SECONDS
                if time.monotonic() >= settle_until:  # (a --message-id not reached is also reported not found)
                    moves.may_remain = {"inFlight": in_flight, "unread": max(0, visible - len(left))}
                    break
                time.sleep(SETTLE_POLL_SECONDS)
    except KeyboardInterrupt:
        moves.interrupted = True
    except (BotoCoreError, ClientError) as error:  # the scan's own receive failed: stop, keep what is done
        moves.failed.append({"messageId": "-", "error": f"reading the dead-letter queue: {error}"})
    moves.skipped = len(skipped - handled)
    moves.newer = len(newer - handled)
    return moves


def _move_one(sqs: Any, stop_queue: str, dlq: str, letter: DeadLetter, scan: _Scan, moves: _Moves) -> bool:
    """Send one dead letter to the stop queue, then delete it; False when it is still in the dead-letter queue."""
    # The message's own attributes go with it (as SQS's move task keeps them); the dead-letter reason stays.
    attributes = {name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
                  for name, value in letter.attributes.items()
                  if name not in REASON_ATTRIBUTES and name != REDRIVEN_FROM}
    attributes[REDRIVEN_FROM] = {"DataType": "String", "StringValue": letter.message_id}
    first_ms = epoch_ms(letter.first_sent_at())  # judged by its original age there, not by this copy's
    if first_ms is not None:
        attributes[ORIGINAL_SENT_ATTRIBUTE] = {"DataType": "String", "StringValue": str(first_ms)}
    extra: dict[str, str] = {}
    if is_fifo(stop_queue):
        # From the dead letter's id: its own group (a redriven message blocks no stream), and a second run within
        # SQS's five-minute deduplication window cannot queue it twice.
        extra = {"MessageGroupId": letter.message_id, "MessageDeduplicationId": letter.message_id}
    try:
        sqs.send_message(QueueUrl=stop_queue, MessageBody=letter.body, MessageAttributes=attributes, **extra)
    except (BotoCoreError, ClientError) as error:
        moves.failed.append({"messageId": letter.message_id, "error": f"not sent (left in the queue): {error}"})
        return False  # made visible again by the scan
    try:
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=letter.receipt_handle)
    except (BotoCoreError, ClientError) as error:
        moves.failed.append({"messageId": letter.message_id, "error": (
            f"sent, but not deleted from the dead-letter queue: {error}; delete it there by hand, or it will be "
            "sent again by the next redrive")})
        return False
    scan.done(letter)
    moves.moved.append(letter.message_id)
    moves.letters[letter.message_id] = letter
    return True


def _with_move_task(sqs: Any, dlq_arn: str, stop_queue_arn: str, expected: int, mode: OutputFormat) -> _Moves | None:
    """SQS's own message move task, followed to its end; None when the service does not offer it (moto, some
    endpoints and permissions), so the caller moves the messages itself."""
    try:
        handle = str(sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=stop_queue_arn)["TaskHandle"])
    except (BotoCoreError, ClientError, KeyError) as error:
        error_console().print(f"The queue service did not start a message move task ({_brief(error)}); moving the "
                              "messages one by one instead.", highlight=False, markup=False)
        return None
    moves = _Moves(method="move-task")
    progress = Progress(
        SpinnerColumn(), TextColumn("move task"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console(), transient=True, disable=mode.machine,
    )
    with progress:
        bar = progress.add_task("move task", total=expected or None)
        while True:
            try:
                results = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10).get("Results", [])
            except (BotoCoreError, ClientError) as error:
                fail(f"move task {handle} started, but its progress cannot be read ({_brief(error)}); follow it "
                     "with `aws sqs list-message-move-tasks`", EXIT_FAILED, mode)
            # TaskHandle is listed only while the task runs; the newest task comes first.
            task = next((t for t in results if t.get("TaskHandle") == handle), results[0] if results else {})
            status = str(task.get("Status") or "UNKNOWN")
            moved = int(task.get("ApproximateNumberOfMessagesMoved") or 0)
            total = task.get("ApproximateNumberOfMessagesToMove")
            progress.update(bar, completed=moved, total=int(total) if total else (expected or None))
            if status in {"COMPLETED", "FAILED", "CANCELLED"}:
                break
            time.sleep(MOVE_TASK_POLL_SECONDS)
    moves.task = {"taskHandle": handle, "status": status, "moved": moved, "toMove": total,
                  "failureReason": task.get("FailureReason")}
    if status != "COMPLETED":
        moves.failed.append({"messageId": "-", "error": f"move task {status.lower()}: "
                                                         f"{task.get('FailureReason') or 'no reason given'}"})
    return moves


def _brief(error: BaseException) -> str:
    """One line about an AWS error (an emulator may answer with a whole HTML page)."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code") or "error")
        message = str(error.response.get("Error", {}).get("Message") or "").strip()
        if message and not message.startswith("<"):
            return f"{code}: {message.splitlines()[0][:200]}"
        return f"{error.operation_name} answered {code}"
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def _report_dry_run(snapshot: list[DeadLetter], not_found: list[str], dlq: str, stop_queue: str,
                    mode: OutputFormat, in_flight: int, redriven: dict[str, Redriven]) -> None:
    expired = sum(1 for verdict in redriven.values() if verdict.expired)
    if mode.machine:
        print_json({"dryRun": True, "dlqUrl": dlq, "stopQueueUrl": stop_queue, "wouldMove": len(snapshot),
                    "wouldExpire": expired,
                    "messages": [{**letter.as_json(), "redrive": redriven[letter.message_id].as_json()}
                                 for letter in snapshot], "notFound": not_found,
                    "inFlight": in_flight})
        return
    out = console()
    if snapshot:
        _print_letters(snapshot, f"Would move back to {_queue_name(stop_queue)} (dry run)", redriven)
    out.print(f"Dry run: {len(snapshot)} dead letter(s) would move ({expired} of them would now be rejected as "
              "expired); nothing was moved.", highlight=False)
    if in_flight:
        out.print(f"{in_flight} more dead letter(s) were held by another reader (in flight) and could not be "
                  "listed.", highlight=False)
    for message_id in not_found:
        out.print(f"[yellow]not found:[/] {escape(message_id)}", highlight=False)


def _report(moves: _Moves, dlq: str, stop_queue: str, mode: OutputFormat, snapshot: list[DeadLetter],
            as_document: bool = True) -> None:
    """What moved. ``as_document`` False (--wait): in json mode the document comes after the results instead."""
    if moves.may_remain:
        held, unread = moves.may_remain["inFlight"], moves.may_remain["unread"]
        parts = [f"{held} dead letter(s) held by another reader (in flight)" if held else "",
                 f"{unread} that could not be read" if unread else ""]
        error_console().print(
            f"[yellow]warning:[/] {' and '.join(part for part in parts if part)}: matching dead letters may still be "
            f"in {_queue_name(dlq)}. Run the redrive again once they are free (`campaign-stop dlq list` shows "
            "them).", highlight=False)
    if mode.machine:
        if as_document:
            print_json({"dlqUrl": dlq, "stopQueueUrl": stop_queue, **moves.as_json()})
        return
    out = console()
    for failure in moves.failed:
        out.print(f"[red]failed[/] {escape(failure['messageId'])}: {escape(failure['error'])}", highlight=False)
    for message_id in moves.not_found:
        out.print(f"[yellow]not found[/] {escape(message_id)}: not in the dead-letter queue (any more)",
                  highlight=False)
    document = moves.as_json()
    how = "by SQS's message move task" if moves.method == "move-task" else "one by one"
    newer = f" ({moves.newer} arrived during the run: left for the next)" if moves.newer else ""
    line = (f"Moved {document['moved']} dead letter(s) to {_queue_name(stop_queue)} {how}; "
            f"skipped {moves.skipped}{newer}; failed {document['failed']}.")
    if not snapshot and not moves.moved and moves.task is None and not moves.failed:
        line = "Nothing to move." + (f" {len(moves.not_found)} message id(s) not found." if moves.not_found else "")
    if moves.interrupted:
        line += " Interrupted: the rest stays in the dead-letter queue."
    out.print(line, highlight=False)


# -- redrive --wait: the redriven requests' new results -------------------------------------------------------


@dataclass
class Followed:
    """The results each redriven request got after the move (by request id), as `stop --wait` collects them."""

    requests: dict[str, Collected] = field(default_factory=dict)
    expected: dict[str, int | None] = field(default_factory=dict)  # campaigns to expect; None: until its summary
    unfollowed: list[str] = field(default_factory=list)  # message ids of moved letters without a request id
    timed_out: bool = False
    interrupted: bool = False

    def complete(self) -> bool:
        return all(collected.complete(self.expected[request_id]) for request_id, collected in self.requests.items())

    def exit_code(self) -> int:
        outcomes = [result.get("outcome") for collected in self.requests.values() for result in collected.results]
        return outcomes_exit_code(outcomes, self.timed_out, self.interrupted)

    def as_json(self) -> dict[str, Any]:
        return {"requests": [{"requestId": request_id, "results": collected.results, "summary": collected.summary,
                              "complete": collected.complete(self.expected[request_id])}
                             for request_id, collected in self.requests.items()],
                "notFollowed": self.unfollowed, "timedOut": self.timed_out, "interrupted": self.interrupted}


def _expected(letters: list[DeadLetter]) -> int | None:
    """One letter naming its campaigns: that many results; anything else (all-active, an alarm, several letters of
    one request): until the request's summary."""
    if len(letters) != 1:
        return None
    campaigns = letters[0].campaigns
    return len(campaigns) if campaigns and campaigns != ["all-active"] else None


def follow_redriven(queue: ResultsQueue, moved: list[DeadLetter], timeout: float, mode: OutputFormat) -> Followed:
    """Collect the results of the redriven requests (subscribed before the move) until each has all of its own,
    ``timeout`` passes, or Ctrl-C."""
    followed = Followed()
    by_request: dict[str, list[DeadLetter]] = {}
    for letter in moved:
        if letter.request_id:
            by_request.setdefault(letter.request_id, []).append(letter)
        else:
            followed.unfollowed.append(letter.message_id)
    for request_id, letters in by_request.items():
        followed.requests[request_id] = Collected()
        followed.expected[request_id] = _expected(letters)
    deadline = time.monotonic() + timeout
    progress = Progress(SpinnerColumn(), TextColumn("waiting for the redriven requests' results"),
                        TimeElapsedColumn(), console=error_console(), transient=True, disable=mode.machine)
    try:
        with terminate_as_ctrl_c(), progress:
            progress.add_task("results", total=None)
            while not followed.complete():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    followed.timed_out = True
                    break
                for delivery in queue.receive(max(1, min(2, int(remaining)))):
                    collected = followed.requests.get(str(delivery.event.get("requestId") or ""))
                    if collected is not None:
                        collected.add(delivery.event, delivery.event_type)
    except KeyboardInterrupt:
        followed.interrupted = True
    return followed


def _report_followed(followed: Followed, moves: _Moves, dlq: str, stop_queue: str, mode: OutputFormat) -> None:
    code = moves.exit_code() or followed.exit_code()
    if mode.machine:
        print_json({"dlqUrl": dlq, "stopQueueUrl": stop_queue, **moves.as_json(), "followed": followed.as_json(),
                    "exitCode": code})
        return
    out = console()
    for request_id, collected in followed.requests.items():
        out.print(Text(f"Request {request_id}:", style="bold"), highlight=False)
        if collected.results or collected.summary:
            print_results(collected, out)
        else:
            out.print("  no result yet.", highlight=False)
    if followed.unfollowed:
        out.print(f"Not followed (no request id in the dead letter): {', '.join(followed.unfollowed)}",
                  highlight=False)
    if followed.timed_out:
        out.print(Text("Timed out before every redriven request had its results: campaign-stop results "
                       "--request-id <id> shows them later.", style="yellow"), highlight=False)
    if followed.interrupted:
        out.print(Text("Interrupted: the redriven requests go on; campaign-stop results --request-id <id> shows "
                       "their results.", style="yellow"), highlight=False)
