"""Turns whatever arrived (SQS body, EventBridge event, SNS notification, direct payload) into requests.

Plain Python: no AWS, no I/O. Everything a message says is validated here, before any call is made, and every
shape ends in a request, an alarm state change or an ``InvalidRequest`` that says what was wrong: nothing a
sender can put in a message makes intake raise anything else.

Carriers (they wrap what is asked): an SQS body, SNS (a notification, or Lambda's SNS event record), Lambda's
on-failure record of an asynchronous invocation. Messages (what is asked): a stop request, an EventBridge event
(a stop request in ``detail``, or a CloudWatch alarm state change), a CloudWatch alarm's own Lambda action
payload, or a CloudWatch alarm notification (through SNS).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

from stop_campaign.domain.models import (
    ALL_ACTIVE,
    CONTINUATION_VERSION,
    ID_PATTERN,
    CampaignType,
    Continuation,
    Origin,
    Outcome,
    Producer,
    Progress,
    RequestRejected,
    Source,
    StopRequest,
)
from stop_campaign.domain.readonly import readonly_dataclass
from stop_campaign.domain.resume import RESUME_ACTION, ResumeRequest

SCHEMAS = Path(__file__).parent.parent / "schemas"  # the published contracts, at the package root
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
ALARM_STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")  # every state a CloudWatch alarm can be in
SNS_EVENT_SOURCE = "aws:sns"  # Lambda's SNS event records ("EventSource")
SQS_EVENT_SOURCE = "aws:sqs"  # Lambda's SQS event records ("eventSource")
MAX_BODY_BYTES = 1024 * 1024  # SQS's own message limit (1 MiB); anything larger is not ours
CAMPAIGN_SELECTORS = ("campaignId", "campaignIds", "campaigns")
MAX_CONTINUED_CAMPAIGNS = 5000  # what listing can find (50 pages of 100); ~150 KiB of ids, far below 1 MiB


@readonly_dataclass
class AlarmStateChange:
    """A CloudWatch alarm changed state; the alarm map decides what, if anything, stops."""

    alarm_name: str
    alarm_arn: str | None
    state: str
    changed_at: str
    reason: str | None
    received_at: str
    attempt: int = 1
    sent_at: str | None = None  # Origin.sent_at: the age of an alarm whose state change time is unreadable

    @property
    def request_id(self) -> str:
        # Same alarm + same state change = same request: a redelivery stops nothing twice,
        # while the alarm firing again later (a new timestamp) stops again.
        return alarm_request_id(self.alarm_name, self.changed_at)


def alarm_request_id(alarm_name: str, changed_at: str) -> str:
    """``alarm:<name>:<time>`` when that is a well-formed request id; otherwise (a space or any character outside
    printable ASCII, or longer than 256) the same with such characters as ``_``, the name cut to fit and a digest of
    the exact name and time after it. Always well-formed, so it survives every hand-over (a continuation's id is
    checked like any request id) and is the same on every delivery path."""
    natural = f"alarm:{alarm_name}:{changed_at}"
    if REQUEST_ID_PATTERN.fullmatch(natural):
        return natural
    exact = json.dumps([alarm_name, changed_at]).encode()  # ASCII: escapes even a lone surrogate
    digest = hashlib.sha256(exact).hexdigest()[:16]
    time = _UNPRINTABLE.sub("_", changed_at)[:64]
    room = 256 - len(f"alarm:~{digest}:{time}")
    return f"alarm:{_UNPRINTABLE.sub('_', alarm_name)[:room]}~{digest}:{time}"


_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")


class InvalidRequest(RequestRejected):
    """A message that is not a valid stop request; carries what could be read for the result."""

    def __init__(self, message: str, request_id: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__("invalid_request", message)
        self.request_id = request_id
        self.fields = fields or {}


class RequestExpired(InvalidRequest):
    """A request served too late: past its own ``notAfter``, or older than MAX_REQUEST_AGE_SECONDS."""

    def __init__(self, message: str, request_id: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message, request_id, fields)
        self.code = EXPIRED


EXPIRED = "expired"  # the error code of a request served too late (see ``expiry``)


@cache
def _stop_request_validator() -> Any:
    # Compiled once: Powertools' validate() recompiles the schema on every call (~3 ms each).
    return fastjsonschema.compile(json.loads((SCHEMAS / "stop_request_v1.json").read_text()))


@cache
def _resume_request_validator() -> Any:
    return fastjsonschema.compile(json.loads((SCHEMAS / "resume_request_v1.json").read_text()))


def parse_sqs_body(body: str, origin: Origin) -> StopRequest | AlarmStateChange | ResumeRequest | Continuation:
    """An SQS body: a stop request, an EventBridge envelope, an SNS notification, a continuation, Lambda's
    on-failure record, or anything the function dead-lettered itself (so a redriven dead letter is understood)."""
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise InvalidRequest("message body is larger than 1 MiB", origin.message_id)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the interpreter allows
        raise InvalidRequest("message body is not valid JSON", origin.message_id) from None
    if isinstance(payload, dict) and isinstance(payload.get("requestContext"), dict) and "requestPayload" in payload:
        return _parse_failed_invocation(payload, origin)
    if isinstance(payload, dict) and "continuation" in payload:
        return parse_continuation(payload, origin)
    return parse_event(payload, origin)


# What a request id may look like (the stop request schema says the same): echoed into every result, so an id
# taken from a message is used only when it fits; otherwise the id of the delivery stands in.
REQUEST_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,256}")
TICKET_PATTERN = re.compile(r"[0-9a-f]{16}")  # what processing._hand_over books places under


def usable_id(value: Any, fallback: str) -> str:
    """``value`` when it is a well-formed request id, else ``fallback`` (itself bounded)."""
    if isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return fallback[:256]


# The reasons a dead letter carries, whole sets only (a producer's own "errorCode" is no redrive): ours
# (dead_letter.py), EventBridge's and Scheduler's. SQS's own move task takes them along.
DEAD_LETTER_REASONS = (
    frozenset({"errorCode", "requestId", "source"}),
    frozenset({"ERROR_CODE", "RULE_ARN"}),
    frozenset({"ERROR_CODE", "SCHEDULE_ARN"}),
)


def redrive_marker(record: dict[str, Any]) -> str | None:
    """Which dead letter an SQS record was redriven from, if it was: ``campaign-stop dlq redrive`` says so in
    ``redrivenFrom``; a message moved back by SQS's move task still carries the dead letter's reason, and then its
    own message id stands for the redrive. None for everything else, so copies of one request that arrived as
    separate messages are still one result."""
    attributes = record.get("messageAttributes")
    if not isinstance(attributes, dict):
        return None
    delivery = usable_id(record.get("messageId"), "redriven")
    marker = attributes.get("redrivenFrom")
    if isinstance(marker, dict) and isinstance(marker.get("stringValue"), str):
        return usable_id(marker["stringValue"], delivery)
    if any(reasons <= attributes.keys() for reasons in DEAD_LETTER_REASONS):
        return delivery
    return None


# The message attribute that keeps a message's first SentTimestamp (epoch milliseconds) through the dead-letter queue
# and a redrive: set by the function on its dead letters (dead_letter.py) and by `campaign-stop dlq redrive`.
ORIGINAL_SENT_ATTRIBUTE = "originalSentTimestamp"


def first_sent_at(record: dict[str, Any]) -> str | None:
    """When an SQS record's message was first sent, as ISO-8601: the ``originalSentTimestamp`` a redriven dead letter
    carries, else the record's own ``SentTimestamp``; None when neither is a time."""
    attributes = record.get("messageAttributes")
    original = attributes.get(ORIGINAL_SENT_ATTRIBUTE) if isinstance(attributes, dict) else None
    system = record.get("attributes")
    for value in (original.get("stringValue") if isinstance(original, dict) else None,
                  system.get("SentTimestamp") if isinstance(system, dict) else None):
        if isinstance(value, str) and value.isdigit() and len(value) <= 15:
            return epoch_ms_text(int(value))
    return None


def epoch_ms_text(milliseconds: int) -> str:
    """Epoch milliseconds (SQS's timestamps) as this service writes times: ISO-8601 UTC, ``Z``-suffixed."""
    moment = datetime.fromtimestamp(milliseconds / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(text: str | None) -> int | None:
    """An ISO-8601 time as epoch milliseconds (what ``originalSentTimestamp`` holds); None for anything else."""
    moment = _moment(text)
    return round(moment.timestamp() * 1000) if moment is not None else None


def expiry(
    parsed: StopRequest | AlarmStateChange | ResumeRequest, now: datetime, max_age_seconds: float,
) -> RequestExpired | None:
    """Whether a request arrives too late to be served: past its own ``notAfter``, or older than ``max_age_seconds``
    (see ``age_basis``). None when it may be served, or when nothing tells its age. Judged when a request is first
    served, never on a continuation."""
    if isinstance(parsed, AlarmStateChange | ResumeRequest):
        request_id, fields = parsed.request_id, {}
    else:
        request_id = parsed.request_id
        fields = {"streamId": parsed.stream_id, "campaignType": parsed.campaign_type.value,
                  **({"campaignId": parsed.campaign_ids[0]} if len(parsed.campaign_ids) == 1 else {}),
                  **({"accountId": parsed.account_id} if parsed.account_id else {})}
        deadline = _moment(parsed.not_after)
        if deadline is not None and now > deadline:
            return RequestExpired(f"notAfter {parsed.not_after} has passed (served at {_text_of(now)})",
                                  request_id, fields)
    basis = age_basis(parsed)
    if basis is None:
        return None
    named, moment = basis
    age = (now - moment).total_seconds()
    if age <= max_age_seconds:
        return None
    return RequestExpired(
        f"the request is {age:.0f} s old (from {named} {_text_of(moment)}), older than MAX_REQUEST_AGE_SECONDS "
        f"({max_age_seconds:g} s)", request_id, fields,
    )


def age_basis(parsed: StopRequest | AlarmStateChange | ResumeRequest) -> tuple[str, datetime] | None:
    """What a request's age runs from, named, and when: ``requestedAt``, else when its message was first sent (the
    SQS SentTimestamp, kept through a redrive, else the event's time); an alarm's from its state change, else when
    it was sent. None when none of them is a time."""
    candidates: tuple[tuple[str, str | None], ...]
    if isinstance(parsed, AlarmStateChange):
        candidates = (("its state change", parsed.changed_at), ("sent", parsed.sent_at))
    else:
        candidates = (("requestedAt", parsed.requested_at), ("sent", parsed.sent_at))
    for named, value in candidates:
        moment = _moment(value)
        if moment is not None:
            return named, moment
    return None


def _moment(value: str | None) -> datetime | None:
    """An ISO-8601 time as an aware datetime (one without an offset is UTC); None for anything else."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text_of(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_continuation(payload: dict[str, Any], origin: Origin) -> Continuation:
    """The rest of a request, handed over by an earlier invocation (see models.Continuation).

    Checked as strictly as a request: anyone who may send to the stop queue can send one, and it must not
    be able to do more than a stop request can.
    """
    marker, body = payload.get("continuation"), payload.get("request")
    request_id = usable_id(body.get("requestId") if isinstance(body, dict) else None, origin.message_id)

    def invalid(why: str) -> InvalidRequest:
        return InvalidRequest(f"continuation: {why}", request_id)

    if not isinstance(marker, dict) or marker.get("version") != CONTINUATION_VERSION or not isinstance(body, dict):
        raise invalid(f"expected version {CONTINUATION_VERSION} with a request object")
    all_active = body.get("campaigns") == ALL_ACTIVE  # handed over before its list could be read
    ids = [] if all_active else body.get("campaignIds")
    if not isinstance(ids, list) or not (all_active or 1 <= len(ids) <= MAX_CONTINUED_CAMPAIGNS):
        raise invalid(f"campaignIds must be a list of 1 to {MAX_CONTINUED_CAMPAIGNS} ids, or campaigns all-active")
    if not all(isinstance(value, str) and ID_PATTERN.match(value) for value in (body.get("streamId"), *ids)):
        raise invalid("streamId and campaignIds must be ids")
    account_id = body.get("accountId")
    if account_id is not None and not (isinstance(account_id, str) and ID_PATTERN.match(account_id)):
        raise invalid("accountId must be an id")
    try:
        source, campaign_type = Source(str(body.get("source"))), CampaignType(str(body.get("campaignType")))
    except ValueError:
        raise invalid("source or campaignType is not one of the known values") from None
    raw_counts = [marker.get(name, 0) for name in ("segment", "invocations", "campaigns", "stalled")]
    tallies = marker.get("tallies")
    if not all(_is_count(value) for value in raw_counts) or not isinstance(tallies, dict) or not all(
        name in Outcome.__members__.values() and _is_count(value) and value > 0 for name, value in tallies.items()
    ):
        raise invalid("segment, invocations, campaigns and tallies must be counts")
    counts = [value for value in raw_counts if isinstance(value, int)]  # all of them, as checked above
    ticket = marker.get("ticket")  # an odd one is dropped: the holder then queues like a new request
    request = StopRequest(
        stream_id=body["streamId"],
        campaign_type=campaign_type,
        request_id=request_id[:256],
        source=source,
        received_at=_timestamp(body.get("receivedAt")) or origin.received_at,
        campaign_ids=tuple(ids),
        all_active=all_active,
        reason=_text(body.get("reason"), 512),
        requested_by=_text(body.get("requestedBy"), 256),
        requested_at=_text(body.get("requestedAt"), 64),
        account_id=account_id,
        dry_run=body.get("dryRun") is True,
        alarm_arn=_text(body.get("alarmArn"), 2048),
        attempt=origin.attempt,
        ticket=ticket if isinstance(ticket, str) and TICKET_PATTERN.fullmatch(ticket) else None,
        disable_schedule=body.get("disableSchedule") is True,
        hold=body.get("hold") is True,
        hold_of=usable_id(body.get("holdOf"), "") or None,
        producer=_producer(payload.get("producer")),
        resume_of=_resume_of(body.get("resumeOf")),
    )
    progress = Progress(
        segment=counts[0], invocations=counts[1], campaigns=counts[2], stalled=counts[3],
        all_active=marker.get("allActive") is True,
        tallies=tuple(sorted(tallies.items())),
        first_stop_at=_timestamp(marker.get("firstStopAt")), last_stop_at=_timestamp(marker.get("lastStopAt")),
    )
    proof = payload.get("signature")
    return Continuation(request, progress, signature=proof if isinstance(proof, str) else None,
                        signed_text=canonical_text(payload))


def canonical_text(message: dict[str, Any]) -> str:
    """What a continuation's signature covers: the message without its signature, keys sorted, ASCII only, so
    it is the same text after any JSON round trip (provenance.signed makes the signature of it)."""
    unsigned = {key: value for key, value in message.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


PRODUCER_KINDS = ("sqs", "events", "alarm", "sns", "direct")


def _producer(value: Any) -> Producer | None:
    """The producer a continuation names (believed only once its signature is checked: processing._plan)."""
    if not isinstance(value, dict):
        return None
    kind, ident, name = value.get("kind"), value.get("id"), value.get("name")
    if kind not in PRODUCER_KINDS or not isinstance(ident, str) or not ident or len(ident) > 2048:
        return None
    return Producer(str(kind), ident, name[:256] if isinstance(name, str) else None)


def _timestamp(value: Any) -> str | None:
    """An ISO-8601 date-time carried by a continuation, or None: the events it goes into promise date-times."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value


def _resume_of(value: Any) -> str | None:
    """The request a continuation of a resume resumes (None: a stop's continuation)."""
    return value if isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value) else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1_000_000


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _parse_failed_invocation(record: dict[str, Any], origin: Origin) -> StopRequest | AlarmStateChange | ResumeRequest:
    """Lambda's on-failure record of an asynchronous invocation: the original event, one more time.

    The original invocation's request id stands in for the message id, so a stop request without its own
    ``requestId`` keeps the idempotency key it had when it was first invoked.
    """
    original = Origin(
        Source.DIRECT, usable_id(record["requestContext"].get("requestId"), origin.message_id),
        origin.received_at, origin.attempt, sent_at=origin.sent_at,
    )
    return parse_event(record["requestPayload"], original)


def parse_event(payload: Any, origin: Origin) -> StopRequest | AlarmStateChange | ResumeRequest:
    """A decoded payload: an SNS carrier (Lambda's SNS event, one of its records, a notification) or a message
    (see ``_parse_message``)."""
    if not isinstance(payload, dict):
        raise InvalidRequest("a stop request must be a JSON object", origin.message_id)
    if "Records" in payload:
        return _parse_records(payload.get("Records"), origin)
    if payload.get("EventSource") == SNS_EVENT_SOURCE:
        return parse_sns_record(payload, origin)
    if payload.get("eventSource") == SQS_EVENT_SOURCE:
        raise _sqs_record_rejection(payload, origin)
    if "Type" in payload and ("Message" in payload or "TopicArn" in payload):
        return _parse_sns_notification(payload, origin)
    return _parse_message(payload, origin)


def _parse_message(payload: Any, origin: Origin) -> StopRequest | AlarmStateChange | ResumeRequest:
    """What a carrier carries: a CloudWatch alarm's Lambda action payload, an EventBridge event (alarm state
    change or stop request) or a bare stop request."""
    if not isinstance(payload, dict):
        raise InvalidRequest("a stop request must be a JSON object", origin.message_id)
    if payload.get("source") == "aws.cloudwatch" and "detail-type" not in payload:
        return _parse_alarm_action(payload, origin)
    if payload.get("action") == "hold-check":  # the handler serves it; here only as a failed invocation's record
        raise InvalidRequest("a hold check ({\"action\": \"hold-check\"}) whose invocation failed: no need to "
                             "redrive it, the next scheduled check does its work", origin.message_id)
    if "detail-type" in payload and "detail" in payload:
        return _parse_eventbridge(payload, origin)
    return parse_request(payload, origin, default_request_id=origin.message_id)


def _parse_records(records: Any, origin: Origin) -> StopRequest | AlarmStateChange | ResumeRequest:
    """A Lambda event with ``Records`` that reached intake whole: the only one that can is an SNS event, brought
    back by Lambda's on-failure record (SNS invokes with exactly one record). An SQS batch never arrives whole."""
    if isinstance(records, list) and len(records) == 1 and _is_sns_record(records[0]):
        return parse_sns_record(records[0], origin)
    if isinstance(records, list) and records and all(_is_sns_record(record) for record in records):
        raise InvalidRequest(f"SNS event: expected exactly one record, found {len(records)}", origin.message_id)
    if isinstance(records, list) and records and all(_is_sqs_record(record) for record in records):
        raise InvalidRequest("SQS event: its records are served one by one, not inside another message",
                             origin.message_id)
    raise InvalidRequest(
        "unrecognized event: Records must be SQS records (eventSource aws:sqs) or one SNS record "
        "(EventSource aws:sns)", origin.message_id,
    )


def _is_sns_record(record: Any) -> bool:
    return isinstance(record, dict) and record.get("EventSource") == SNS_EVENT_SOURCE


def _is_sqs_record(record: Any) -> bool:
    return isinstance(record, dict) and record.get("eventSource") == SQS_EVENT_SOURCE


def event_records(event: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """What kind of Lambda event source batch ``event`` is: ("sqs", records) when every record is an SQS record,
    ("sns", records) when every record is an SNS record; None for anything else (served as one message)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        return None
    if all(_is_sqs_record(record) for record in records):
        return "sqs", records
    if all(_is_sns_record(record) for record in records):
        return "sns", records
    return None


def parse_sns_record(record: dict[str, Any], origin: Origin) -> StopRequest | AlarmStateChange | ResumeRequest:
    """One record of Lambda's SNS event (SNS invoking the function directly): its ``Sns`` object is the same
    notification that SNS delivers to an SQS queue."""
    notification = record.get("Sns")
    if not isinstance(notification, dict):
        raise InvalidRequest("SNS record: Sns must be a JSON object (the notification)", origin.message_id)
    return _parse_sns_notification(notification, origin)


def _sqs_record_rejection(record: dict[str, Any], origin: Origin) -> InvalidRequest:
    """An SQS record the function cannot serve: one without a message id can be neither acknowledged nor
    retried, one without a body asks for nothing."""
    message_id = record.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        return InvalidRequest("SQS record: messageId is missing or not a string", origin.message_id)
    body = record.get("body")
    if not isinstance(body, str) or not body:
        return InvalidRequest("SQS record: body is missing, empty or not a string", message_id[:256])
    return InvalidRequest("SQS record: arrived outside an SQS event's Records", message_id[:256])


def _parse_eventbridge(event: dict[str, Any], origin: Origin) -> StopRequest | AlarmStateChange | ResumeRequest:
    event_id = usable_id(event.get("id"), origin.message_id)
    origin = replace(origin, sent_at=origin.sent_at or _timestamp(event.get("time")))  # SQS's time, else the event's
    detail = event.get("detail")
    if event.get("detail-type") == ALARM_DETAIL_TYPE and event.get("source") == "aws.cloudwatch":
        return _parse_eventbridge_alarm(event, origin, str(event_id))
    if not isinstance(detail, dict):
        raise InvalidRequest("EventBridge detail must be a JSON object", str(event_id))
    return parse_request(
        detail, Origin(Source.EVENTBRIDGE, str(event_id), origin.received_at, origin.attempt, sent_at=origin.sent_at),
        str(event_id),
    )


def _parse_eventbridge_alarm(event: dict[str, Any], origin: Origin, event_id: str) -> AlarmStateChange:
    detail = _object(event.get("detail"))
    state = _object(detail.get("state"))
    resources_ = event.get("resources")
    arn = resources_[0] if isinstance(resources_, list) and resources_ and isinstance(resources_[0], str) else None
    return _alarm(
        name=detail.get("alarmName"),
        arn=arn,
        state=state.get("value"),
        changed_at=state.get("timestamp") or event.get("time"),
        reason=state.get("reason"),
        origin=origin,
        request_id=event_id,
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _parse_sns_notification(
    notification: dict[str, Any], origin: Origin,
) -> StopRequest | AlarmStateChange | ResumeRequest:
    # A duplicate SNS delivery (a new SQS message, or SNS invoking the function again) keeps SNS's MessageId.
    sns_origin = Origin(
        origin.source, usable_id(notification.get("MessageId"), origin.message_id), origin.received_at,
        origin.attempt, sent_at=origin.sent_at or _timestamp(notification.get("Timestamp")),
    )
    kind = notification.get("Type")
    if kind != "Notification":
        shown = repr(kind)[:40] if isinstance(kind, str) else "missing or not a string"
        raise InvalidRequest(f"SNS message: Type is {shown}, only a Notification carries a request",
                             sns_origin.message_id)
    message = notification.get("Message")
    try:
        payload = json.loads(message) if isinstance(message, str) else None
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise InvalidRequest("SNS message is not a JSON object", sns_origin.message_id)
    if "AlarmName" in payload and "NewStateValue" in payload:
        return _alarm(
            name=payload.get("AlarmName"),
            arn=payload.get("AlarmArn"),
            state=payload.get("NewStateValue"),
            changed_at=payload.get("StateChangeTime"),
            reason=payload.get("NewStateReason"),
            origin=sns_origin,
            request_id=sns_origin.message_id,
            fields=("AlarmName", "NewStateValue", "StateChangeTime"),
            kind="CloudWatch alarm notification",
        )
    return _parse_message(payload, sns_origin)


def _parse_alarm_action(event: dict[str, Any], origin: Origin) -> AlarmStateChange:
    """A CloudWatch alarm's own Lambda action (metric, metric-math and composite alarms alike): ``alarmData``
    holds the alarm's name and its new state; ``configuration`` (metrics or alarmRule) decides nothing here."""
    data = event.get("alarmData")
    if not isinstance(data, dict):
        raise InvalidRequest("CloudWatch alarm action: alarmData must be a JSON object", origin.message_id)
    state = data.get("state")
    if not isinstance(state, dict):
        raise InvalidRequest("CloudWatch alarm action: alarmData.state must be a JSON object", origin.message_id)
    return _alarm(
        name=data.get("alarmName"),
        arn=event.get("alarmArn"),
        state=state.get("value"),
        changed_at=state.get("timestamp") or event.get("time"),
        reason=state.get("reason"),
        origin=origin,
        request_id=origin.message_id,
        fields=("alarmData.alarmName", "alarmData.state.value", "alarmData.state.timestamp"),
        kind="CloudWatch alarm action",
    )


def _alarm(
    *, name: Any, arn: Any, state: Any, changed_at: Any, reason: Any, origin: Origin, request_id: str,
    fields: tuple[str, str, str] = ("alarmName", "state", "stateChangeTime"), kind: str = "alarm event",
) -> AlarmStateChange:
    for field_name, value in zip(fields, (name, state, changed_at), strict=True):
        if not isinstance(value, str) or not value or len(value) > 512:
            raise InvalidRequest(f"{kind}: {field_name} is missing or not a string", request_id)
    if state not in ALARM_STATES:
        raise InvalidRequest(f"{kind}: {fields[1]} must be one of {', '.join(ALARM_STATES)}", request_id)
    return AlarmStateChange(
        alarm_name=name,
        alarm_arn=arn if isinstance(arn, str) and len(arn) <= 2048 else None,
        state=state,
        changed_at=changed_at,
        reason=reason[:512] if isinstance(reason, str) else None,
        received_at=origin.received_at,
        attempt=origin.attempt,
        sent_at=origin.sent_at,
    )


def parse_request(payload: dict[str, Any], origin: Origin, default_request_id: str) -> StopRequest | ResumeRequest:
    """A request: a resume (``"action": "resume"``) or a stop (no ``action``)."""
    if "action" in payload and payload["action"] != "stop":
        return parse_resume_request(payload, origin, default_request_id)
    return parse_stop_request(payload, origin, default_request_id)


def parse_resume_request(payload: dict[str, Any], origin: Origin, default_request_id: str) -> ResumeRequest:
    """Validate a resume request (v1) against its schema; the error names the offending field."""
    request_id = usable_id(payload.get("requestId"), default_request_id)
    if payload.get("action") != RESUME_ACTION:
        shown = repr(payload.get("action"))[:40]
        raise InvalidRequest(f"request.action {shown} is not one of: {RESUME_ACTION} (a stop has no action)",
                             request_id)
    try:
        _resume_request_validator()(payload)
    except fastjsonschema.JsonSchemaValueException as error:
        raise InvalidRequest(_describe(error), request_id) from None
    if payload["resumeOf"] == request_id:
        raise InvalidRequest("request.resumeOf names this very request: a resume needs its own requestId", request_id)
    return ResumeRequest(
        resume_of=payload["resumeOf"], request_id=request_id, source=origin.source, received_at=origin.received_at,
        reason=payload.get("reason"), requested_by=payload.get("requestedBy"), requested_at=payload.get("requestedAt"),
        dry_run=payload.get("dryRun", False), attempt=origin.attempt, sent_at=origin.sent_at,
    )


def parse_stop_request(payload: dict[str, Any], origin: Origin, default_request_id: str) -> StopRequest:
    """Validate a stop request (v1) against its schema; the error names the offending field."""
    request_id = usable_id(payload.get("requestId"), default_request_id)
    readable = _readable_fields(payload)
    selectors = [name for name in CAMPAIGN_SELECTORS if name in payload]
    if len(selectors) != 1:
        found = f" (found {', '.join(selectors)})" if selectors else ""
        raise InvalidRequest(
            f"exactly one of campaignId, campaignIds or campaigns is required{found}", request_id, readable
        )
    try:
        _stop_request_validator()(payload)
    except fastjsonschema.JsonSchemaValueException as error:
        raise InvalidRequest(_describe(error), request_id, readable) from None
    campaign_ids: tuple[str, ...] = ()
    if "campaignId" in payload:
        campaign_ids = (payload["campaignId"],)
    elif "campaignIds" in payload:
        campaign_ids = tuple(payload["campaignIds"])
    return StopRequest(
        stream_id=payload["streamId"],
        campaign_type=CampaignType(payload.get("campaignType", CampaignType.SMS.value)),
        request_id=request_id,
        source=origin.source,
        received_at=origin.received_at,
        campaign_ids=campaign_ids,
        all_active=payload.get("campaigns") == ALL_ACTIVE,
        reason=payload.get("reason"),
        requested_by=payload.get("requestedBy"),
        requested_at=payload.get("requestedAt"),
        account_id=payload.get("accountId"),
        dry_run=payload.get("dryRun", False),
        attempt=origin.attempt,
        not_after=payload.get("notAfter"),
        sent_at=origin.sent_at,
        disable_schedule=payload.get("disableSchedule") is True,
    )


def _describe(error: fastjsonschema.JsonSchemaValueException) -> str:
    # fastjsonschema names the field ("data.streamId must be string"); say "request." instead of "data."
    message = str(error.message)
    if message.startswith("data"):
        message = "request" + message[len("data"):]
    return message[:300]


def _readable_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The ids a rejected result can safely echo: only well-formed ones, so no junk is republished."""
    fields: dict[str, Any] = {}
    for name in ("streamId", "campaignId", "accountId"):
        value = payload.get(name)
        if isinstance(value, str) and ID_PATTERN.match(value):
            fields[name] = value
    if payload.get("campaignType") in ("sms", "voice"):
        fields["campaignType"] = payload["campaignType"]
    return fields

