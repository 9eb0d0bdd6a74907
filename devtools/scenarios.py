"""The demo's scenarios: stop requests built from the files in ``events/``, each with the ends it expects.

Shared by ``python -m devtools.demo`` and ``tests/integration/test_demo.py``. A scenario seeds the
campaigns it needs on the Kore.ai simulator (so scenarios do not depend on each other's order), queues
faults, sends its requests (to the stop queue, to the EventBridge bus, or straight to the handler), lets
the event source mapping drain the queue, and then compares what happened with what it declares:

* the results on SNS (read back from the results subscriber queue), as a multiset;
* the simulator's request log: exactly these calls (kind, raw path — the SMS stop path keeps its ``//`` —
  and the status answered), as a multiset, so a duplicate stop call is a failure;
* the dead-letter queue: exactly these messages (``errorCode`` attribute and, where given, the body);
* nothing left in the stop queue.

``run_scenario`` needs the function's environment already set (the demo and the tests each do that).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from devtools.kore_simulator import KoreSimulator, RecordedRequest
from devtools.lambda_runtime import LocalLambdaContext
from devtools.local_stack import LocalStack, function_environment
from devtools.poller import InvocationReport, PollingTimedOut, SqsEventSourceMapping
from devtools.template_loader import REPO_ROOT, local_stack_settings

EVENTS_DIR = REPO_ROOT / "events"
STREAM_ID = "st-1"
PACED_STREAM = "st-paced"  # a stream of its own, so its stop-all finds only its own campaigns
# Placeholders for ids only known once sent: any SQS message id / EventBridge event id of the scenario.
MESSAGE_ID = "<sqs message id>"
EVENT_ID = "<eventbridge event id>"

Handler = Callable[[dict[str, Any], Any], Any]


# ---- building blocks -------------------------------------------------------------------------------


def load_event(name: str) -> Any:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def sqs_body(name: str, index: int = 0) -> str:
    """The body of record `index` of an SQS sample event, exactly as the file has it."""
    return str(load_event(name)["Records"][index]["body"])


def with_fields(body: str, **fields: Any) -> str:
    return json.dumps({**json.loads(body), **fields})


# Paths as Kore.ai documents them, spelled out here rather than taken from the handler under test.
def sms_stop_path(campaign_id: str, stream_id: str = STREAM_ID) -> str:
    return f"/campaign/api/v2/public/{stream_id}/campaign//trigger/{campaign_id}"


def list_path(stream_id: str = STREAM_ID) -> str:
    return f"/campaign/api/v2/public/{stream_id}/campaign/getAllCampaignDetails"


def voice_stop_path(campaign_id: str, stream_id: str = STREAM_ID) -> str:
    return f"/api/v2/public/{stream_id}/campaign/trigger/{campaign_id}"


def status_path(campaign_id: str, stream_id: str = STREAM_ID) -> str:
    return f"/campaign/api/v2/public/{stream_id}/campaign/{campaign_id}/status"


def sms_start_path(campaign_id: str, stream_id: str = STREAM_ID) -> str:
    return f"/campaign/api/v2/public/{stream_id}/campaign/{campaign_id}"


def schedule_path(stream_id: str = STREAM_ID) -> str:
    return f"/campaign/api/v2/public/{stream_id}/campaign/schedule"


@dataclass(frozen=True)
class Campaign:
    """Seeded (or reset) on the simulator before the scenario runs."""

    campaign_id: str
    campaign_type: str = "sms"
    status: str = "Active"
    stream_id: str = STREAM_ID
    name: str | None = None  # None: its id
    recurring: bool = False  # an enabled recurring schedule: FireRecurrence starts it again, unless disabled


@dataclass(frozen=True)
class Fault:
    kind: str
    status: int
    times: int


@dataclass(frozen=True)
class SendToQueue:
    """Send these bodies to the stop queue, then let the event source mapping drain it."""

    bodies: tuple[str, ...]


@dataclass(frozen=True)
class PutOnBus:
    """PutEvents on the stop bus; the rule routes matching events to the stop queue."""

    event: Mapping[str, Any]  # an EventBridge event as in events/ (source, detail-type, detail)


@dataclass(frozen=True)
class InvokeDirectly:
    """Invoke the handler with this event, as EventBridge (alarms) or `aws lambda invoke` would."""

    event: Mapping[str, Any]


@dataclass(frozen=True)
class FireRecurrence:
    """The next recurrence of these campaigns comes round on the simulator: one whose recurring schedule is still
    enabled starts again (Active)."""

    campaign_ids: tuple[str, ...]
    stream_id: str = STREAM_ID


@dataclass(frozen=True)
class SetAlarmState:
    """The alarm itself, on (moto's) CloudWatch, is in this state: what a hold check asks DescribeAlarms."""

    alarm_name: str
    state: str


@dataclass(frozen=True)
class RestartCampaigns:
    """Someone starts these campaigns again by hand on the platform (the simulator's ``restart``)."""

    campaign_ids: tuple[str, ...]
    stream_id: str = STREAM_ID


Step = SendToQueue | PutOnBus | InvokeDirectly | FireRecurrence | SetAlarmState | RestartCampaigns


@dataclass(frozen=True)
class Result:
    """An expected result event; None fields match anything."""

    campaign_id: str | None
    outcome: str
    request_id: str | None = None  # or MESSAGE_ID / EVENT_ID
    source: str | None = None
    attempts: int | None = None
    error_code: str | None = None
    schedule_disabled: bool | None = None  # the result's schedule.disabled; None: not checked
    hold_of: str | None = None  # the result's holdOf (a hold check's re-stop); None: not checked

    def matches(self, actual: Mapping[str, Any], message_ids: list[str], event_ids: list[str]) -> bool:
        error = actual.get("error") or {}
        request_id = actual.get("requestId")
        if self.request_id == MESSAGE_ID:
            request_ok = request_id in message_ids
        elif self.request_id == EVENT_ID:
            request_ok = request_id in event_ids
        else:
            request_ok = self.request_id is None or request_id == self.request_id
        return (
            request_ok
            and actual.get("campaignId") == self.campaign_id
            and actual.get("outcome") == self.outcome
            and (self.source is None or actual.get("source") == self.source)
            and (self.attempts is None or actual.get("attempts") == self.attempts)
            and (self.error_code is None or error.get("code") == self.error_code)
            and (self.schedule_disabled is None
                 or (actual.get("schedule") or {}).get("disabled") is self.schedule_disabled)
            and (self.hold_of is None or actual.get("holdOf") == self.hold_of)
        )

    def describe(self) -> str:
        parts = [f"{self.outcome} {self.campaign_id or '(no campaign)'}"]
        parts += [
            f"{name}={value}"
            for name, value in (
                ("requestId", self.request_id), ("source", self.source), ("attempts", self.attempts),
                ("error", self.error_code), ("scheduleDisabled", self.schedule_disabled), ("holdOf", self.hold_of),
            )
            if value is not None
        ]
        return " ".join(parts)


@dataclass(frozen=True)
class Call:
    """One request the simulator must have received (and the status it answered)."""

    kind: str
    path: str
    status: int


@dataclass(frozen=True)
class DeadLetter:
    error_code: str | None  # the errorCode attribute; None: moved by the queue's redrive policy (no attributes)
    body: str | None = None  # None: any body

    def matches(self, message: Mapping[str, Any]) -> bool:
        return dead_letter_error_code(message) == self.error_code and (
            self.body is None or message.get("Body") == self.body
        )


def dead_letter_error_code(message: Mapping[str, Any]) -> str | None:
    attribute = message.get("MessageAttributes", {}).get("errorCode")
    return attribute.get("StringValue") if attribute else None


@dataclass(frozen=True)
class Scenario:
    name: str  # short, unique: `--scenario NAME`, test ids
    title: str
    steps: tuple[Step, ...]
    results: tuple[Result, ...]
    calls: tuple[Call, ...]
    dead_letters: tuple[DeadLetter, ...] = ()
    campaigns: tuple[Campaign, ...] = ()
    faults: tuple[Fault, ...] = ()
    alarm_map: Mapping[str, Any] | None = None
    # Extra function settings for this scenario only; the runner starts a fresh container around it.
    function_env: Mapping[str, str] = field(default_factory=dict)
    # The platform's own rate limit for this scenario: (calls, seconds), answered with 429 + Retry-After: 1.
    platform_rate_limit: tuple[int, float] | None = None
    function_timeout_seconds: float | None = None  # None: the template's
    # Each campaign's status on the simulator once the scenario has run: (campaign id, status)
    statuses_after: tuple[tuple[str, str], ...] = ()


# ---- the scenarios -----------------------------------------------------------------------------------


@cache
def all_scenarios() -> tuple[Scenario, ...]:
    max_receive_count = int(local_stack_settings()["max_receive_count"])
    normal = sqs_body("sqs_stop_request.json")  # cd-1, requestId req-2026-11-28-0001
    duplicate = with_fields(normal, campaignId="cd-2", requestId="req-2026-11-28-0002")
    first_stop = with_fields(normal, requestId="req-2026-11-28-0003")
    second_stop = with_fields(normal, requestId="req-2026-11-28-0004")
    completed = with_fields(normal, campaignId="cd-done", requestId="req-2026-11-28-0005")
    unknown = with_fields(normal, campaignId="cd-unknown", requestId="req-2026-11-28-0006")
    mixed = tuple(sqs_body("sqs_batch_mixed.json", index) for index in range(3))
    envelope = sqs_body("sqs_eventbridge_envelope.json")  # cd-3, EventBridge event id 7bf73129-...
    envelope_id = json.loads(envelope)["id"]
    voice = json.dumps({**load_event("direct_stop_voice.json"), "requestId": "req-2026-11-28-0007"})
    notification = sqs_body("sqs_sns_notification.json")  # cd-4 inside an SNS notification
    notification_id = json.loads(notification)["MessageId"]
    bulk_ids = [f"cd-bulk-{number:02d}" for number in range(1, 21)]
    paced_ids = [f"cd-paced-{number:02d}" for number in range(1, 25)]
    bulk_request = json.dumps({
        "streamId": STREAM_ID, "campaignIds": bulk_ids[:10], "requestId": "req-bulk-01-10",
        "reason": "Bulk stop: one request, ten campaigns", "requestedBy": "make demo",
    })
    bulk_singles = tuple(
        json.dumps({"streamId": STREAM_ID, "campaignId": campaign_id, "requestId": f"req-bulk-{campaign_id[-2:]}"})
        for campaign_id in bulk_ids[10:]
    )
    alarm = load_event("eventbridge_alarm_state_change.json")
    alarm_ok = load_event("eventbridge_alarm_ok.json")
    alarm_id = f"alarm:{alarm['detail']['alarmName']}:{alarm['detail']['state']['timestamp']}"
    alarm_ok_id = f"alarm:{alarm_ok['detail']['alarmName']}:{alarm_ok['detail']['state']['timestamp']}"
    for_good = json.dumps({**load_event("direct_stop_recurring.json"), "requestId": "req-daily-for-good"})
    until_next = json.dumps({"streamId": STREAM_ID, "campaignId": "cd-weekly", "requestId": "req-weekly-until-next",
                             "reason": "the same stop without disableSchedule", "requestedBy": "make demo"})
    # A kill switch whose alarm-map entry holds its campaigns, and the hold checks the template's schedule sends.
    hold_alarm = "checkout-hold"
    held_alarm = {**alarm, "id": "evt-checkout-hold", "resources": [alarm["resources"][0].replace(
        alarm["detail"]["alarmName"], hold_alarm)], "detail": {**alarm["detail"], "alarmName": hold_alarm}}
    hold_of = f"alarm:{hold_alarm}:{alarm['detail']['state']['timestamp']}"
    first_check = {"action": "hold-check", "at": "2026-11-28T10:06:00Z"}
    later_check = {"action": "hold-check", "at": "2026-11-28T10:07:00Z"}
    # The same alarm, of an account the stack's default producer policy does not name (its own alarms only).
    foreign_arn = alarm["resources"][0].replace(":123456789012:", ":999999999999:")
    foreign_alarm = {**alarm, "account": "999999999999", "resources": [foreign_arn],
                     "detail": {**alarm["detail"], "state": {**alarm["detail"]["state"],
                                                              "timestamp": "2026-11-28T10:15:00.000+0000"}}}
    foreign_id = f"alarm:{alarm['detail']['alarmName']}:2026-11-28T10:15:00.000+0000"
    resume = load_event("direct_resume_request.json")  # resumes req-incident-2026-11-28
    incident = json.dumps({"streamId": STREAM_ID, "campaignIds": ["cd-r1", "cd-r2", "cd-r3"],
                           "requestId": resume["resumeOf"], "reason": "Incident: stop these three",
                           "requestedBy": "make demo"})

    return (
        Scenario(
            name="normal",
            title="A normal stop: events/sqs_stop_request.json's body sent to the stop queue",
            campaigns=(Campaign("cd-1"),),
            steps=(SendToQueue((normal,)),),
            results=(Result("cd-1", "stopped", "req-2026-11-28-0001", source="sqs", attempts=1),),
            calls=(Call("stop_sms", sms_stop_path("cd-1"), 200),),
        ),
        Scenario(
            name="duplicate",
            title="A duplicate delivery: the same message body twice in the queue -> one stop call, one result",
            campaigns=(Campaign("cd-2"),),
            steps=(SendToQueue((duplicate, duplicate)),),
            results=(Result("cd-2", "stopped", "req-2026-11-28-0002", source="sqs"),),
            calls=(Call("stop_sms", sms_stop_path("cd-2"), 200),),
        ),
        Scenario(
            name="already-stopped",
            title="Already stopped: cd-1 stopped by one request then another; cd-done is Completed",
            campaigns=(Campaign("cd-1"), Campaign("cd-done", status="Completed")),
            steps=(SendToQueue((first_stop,)), SendToQueue((second_stop, completed))),
            results=(
                Result("cd-1", "stopped", "req-2026-11-28-0003", attempts=1),
                Result("cd-1", "already_stopped", "req-2026-11-28-0004", attempts=1),
                Result("cd-done", "already_stopped", "req-2026-11-28-0005", attempts=1),
            ),
            calls=(
                Call("stop_sms", sms_stop_path("cd-1"), 200),
                Call("stop_sms", sms_stop_path("cd-1"), 400),
                Call("status", status_path("cd-1"), 200),
                Call("stop_sms", sms_stop_path("cd-done"), 400),
                Call("status", status_path("cd-done"), 200),
            ),
        ),
        Scenario(
            name="unknown-campaign",
            title="An unknown campaign: the platform answers 404 -> a failed result and the message in the DLQ",
            steps=(SendToQueue((unknown,)),),
            results=(Result("cd-unknown", "failed", "req-2026-11-28-0006", attempts=1, error_code="stop_refused"),),
            calls=(
                Call("stop_sms", sms_stop_path("cd-unknown"), 404),
                Call("status", status_path("cd-unknown"), 404),
            ),
            dead_letters=(DeadLetter("stop_refused", unknown),),
        ),
        Scenario(
            name="malformed",
            title="A mixed batch (events/sqs_batch_mixed.json): one good request, two rejected into the DLQ",
            campaigns=(Campaign("cd-2"),),
            steps=(SendToQueue(mixed),),
            results=(
                Result("cd-2", "stopped", MESSAGE_ID, source="sqs"),
                Result(None, "rejected", MESSAGE_ID, error_code="invalid_request"),
                Result(None, "rejected", MESSAGE_ID, error_code="invalid_request"),
            ),
            calls=(Call("stop_sms", sms_stop_path("cd-2"), 200),),
            dead_letters=(DeadLetter("invalid_request", mixed[1]), DeadLetter("invalid_request", mixed[2])),
        ),
        Scenario(
            name="api-recovers",
            title="The API fails twice (503) and recovers: retried within the invocation, stopped on attempt 1",
            campaigns=(Campaign("cd-3"),),
            faults=(Fault("stop_sms", 503, 2),),
            steps=(SendToQueue((envelope,)),),
            results=(Result("cd-3", "stopped", envelope_id, source="eventbridge", attempts=1),),
            calls=(
                Call("stop_sms", sms_stop_path("cd-3"), 503),
                Call("stop_sms", sms_stop_path("cd-3"), 503),
                Call("stop_sms", sms_stop_path("cd-3"), 200),
            ),
        ),
        Scenario(
            name="api-down",
            title=(
                f"The API stays down (HTTP_MAX_RETRIES=0): SQS redelivers {max_receive_count} times, the last "
                "attempt publishes failed and dead-letters the message with the reason"
            ),
            campaigns=(Campaign("cd-voice-1", campaign_type="voice"),),
            faults=(Fault("stop_voice", 503, max_receive_count),),
            function_env={"HTTP_MAX_RETRIES": "0"},
            steps=(SendToQueue((voice,)),),
            results=(
                Result("cd-voice-1", "failed", "req-2026-11-28-0007", attempts=max_receive_count,
                       error_code="api_unavailable"),
            ),
            calls=tuple(Call("stop_voice", voice_stop_path("cd-voice-1"), 503) for _ in range(max_receive_count)),
            dead_letters=(DeadLetter("api_unavailable", voice),),
        ),
        Scenario(
            name="eventbridge",
            title="Through EventBridge: events/eventbridge_stop_request.json put on the bus -> rule -> events queue",
            campaigns=(Campaign("cd-5"),),
            steps=(PutOnBus(load_event("eventbridge_stop_request.json")),),
            results=(Result("cd-5", "stopped", EVENT_ID, source="eventbridge", attempts=1),),
            calls=(Call("stop_sms", sms_stop_path("cd-5"), 200),),
        ),
        Scenario(
            name="sns",
            title="Through SNS: events/sqs_sns_notification.json's body (an SNS notification) in the stop queue",
            campaigns=(Campaign("cd-4"),),
            steps=(SendToQueue((notification,)),),
            results=(Result("cd-4", "stopped", notification_id, source="sqs", attempts=1),),
            calls=(Call("stop_sms", sms_stop_path("cd-4"), 200),),
        ),
        Scenario(
            name="bulk",
            title="Many campaigns: cd-bulk-01..10 in one campaignIds request, cd-bulk-11..20 as ten messages",
            campaigns=tuple(Campaign(campaign_id) for campaign_id in bulk_ids),
            steps=(SendToQueue((bulk_request, *bulk_singles)),),
            results=tuple(
                Result(
                    campaign_id, "stopped",
                    "req-bulk-01-10" if index < 10 else f"req-bulk-{campaign_id[-2:]}", attempts=1,
                )
                for index, campaign_id in enumerate(bulk_ids)
            ),
            calls=tuple(Call("stop_sms", sms_stop_path(campaign_id), 200) for campaign_id in bulk_ids),
        ),
        Scenario(
            name="paced-stop-all",
            title=(
                "A stop-all past the rate budget: 24 campaigns, KORE_RATE_LIMIT=10/2 (a scaled 60 a minute, the "
                "platform allowing 12), 6 s invocations: the rest continues in delayed continuations, one summary"
            ),
            campaigns=tuple(Campaign(campaign_id, stream_id=PACED_STREAM) for campaign_id in paced_ids),
            function_env={"KORE_RATE_LIMIT": "10/2", "HTTP_READ_TIMEOUT_SECONDS": "2"},
            platform_rate_limit=(12, 2.0),
            function_timeout_seconds=6,  # 2 s to start calls after the 3 s kept for the end and 1 s per call
            steps=(SendToQueue((json.dumps(
                {"streamId": PACED_STREAM, "campaigns": "all-active", "requestId": "req-paced-all"}),),),),
            results=tuple(
                Result(campaign_id, "stopped", "req-paced-all", source="sqs", attempts=1) for campaign_id in paced_ids
            ),
            calls=(
                Call("list", list_path(PACED_STREAM), 200),
                *(Call("stop_sms", sms_stop_path(campaign_id, PACED_STREAM), 200) for campaign_id in paced_ids),
            ),
        ),
        Scenario(
            name="alarm",
            title=(
                "Kill switch: events/eventbridge_alarm_state_change.json invoked with events/alarm_map.json "
                "stops cd-1 and cd-2; the same alarm again stops nothing twice; the OK event is ignored"
            ),
            campaigns=(Campaign("cd-1"), Campaign("cd-2")),
            alarm_map=load_event("alarm_map.json"),
            steps=(InvokeDirectly(alarm), InvokeDirectly(alarm), InvokeDirectly(alarm_ok)),
            results=(
                Result("cd-1", "stopped", alarm_id, source="alarm"),
                Result("cd-2", "stopped", alarm_id, source="alarm"),
                Result(None, "ignored", alarm_ok_id, source="alarm"),
            ),
            calls=(
                Call("stop_sms", sms_stop_path("cd-1"), 200),
                Call("stop_sms", sms_stop_path("cd-2"), 200),
            ),
        ),
        Scenario(
            name="stopped-for-good",
            title=(
                "A recurring campaign stopped for good: cd-daily with disableSchedule (events/direct_stop_recurring"
                ".json: stop, then its schedule disabled by name), cd-weekly without; their next recurrence comes "
                "round: cd-weekly starts again, cd-daily stays Stopped"
            ),
            campaigns=(Campaign("cd-daily", name="Daily reminder", recurring=True),
                       Campaign("cd-weekly", name="Weekly digest", recurring=True)),
            steps=(SendToQueue((for_good, until_next)), FireRecurrence(("cd-daily", "cd-weekly"))),
            results=(
                Result("cd-daily", "stopped", "req-daily-for-good", attempts=1, schedule_disabled=True),
                Result("cd-weekly", "stopped", "req-weekly-until-next", attempts=1),
            ),
            calls=(
                Call("stop_sms", sms_stop_path("cd-daily"), 200),
                Call("status", status_path("cd-daily"), 200),  # a stop by id: its name from the status call
                Call("schedule", schedule_path(), 200),
                Call("stop_sms", sms_stop_path("cd-weekly"), 200),
            ),
            statuses_after=(("cd-daily", "Stopped"), ("cd-weekly", "Active")),
        ),
        Scenario(
            name="held",
            title=(
                "A hold re-stopping a restarted campaign: alarm checkout-hold (hold: true) stops cd-held-1 and "
                "cd-held-2; while it still fires someone restarts cd-held-1 and cd-free (not held): the hold check "
                "lists the stream once and stops cd-held-1 again (holdOf), the same check again calls nothing; the "
                "alarm goes OK: the next check ends the hold, and cd-held-1, restarted again, runs"
            ),
            campaigns=(Campaign("cd-held-1"), Campaign("cd-held-2"), Campaign("cd-free", status="Stopped")),
            alarm_map={hold_alarm: [{"streamId": STREAM_ID, "campaignIds": ["cd-held-1", "cd-held-2"],
                                     "hold": True}]},
            function_env={"ALARM_TARGETS_CACHE_SECONDS": "0"},  # this map, not the one an earlier scenario cached
            steps=(SetAlarmState(hold_alarm, "ALARM"), InvokeDirectly(held_alarm),
                   RestartCampaigns(("cd-held-1", "cd-free")), InvokeDirectly(first_check),
                   InvokeDirectly(first_check), SetAlarmState(hold_alarm, "OK"), RestartCampaigns(("cd-held-1",)),
                   InvokeDirectly(later_check)),
            results=(
                Result("cd-held-1", "stopped", hold_of, source="alarm"),
                Result("cd-held-2", "stopped", hold_of, source="alarm"),
                Result("cd-held-1", "stopped", f"hold:{hold_of}:{first_check['at']}", source="alarm",
                       hold_of=hold_of),
            ),
            calls=(
                Call("stop_sms", sms_stop_path("cd-held-1"), 200),
                Call("stop_sms", sms_stop_path("cd-held-2"), 200),
                Call("list", list_path(), 200),  # one list call for the stream: no status call per campaign
                Call("stop_sms", sms_stop_path("cd-held-1"), 200),
            ),
            statuses_after=(("cd-held-1", "Active"), ("cd-held-2", "Stopped"), ("cd-free", "Active")),
        ),
        Scenario(
            name="refused-producer",
            title=(
                "A producer the policy does not name: the same mapped alarm, of account 999999999999 (the default "
                "producer policy takes this account's alarms only) -> rejected not_authorized, no call, a dead letter"
            ),
            campaigns=(Campaign("cd-1"), Campaign("cd-2")),
            alarm_map=load_event("alarm_map.json"),
            steps=(InvokeDirectly(foreign_alarm),),
            results=(
                Result("cd-1", "rejected", foreign_id, source="alarm", error_code="not_authorized"),
                Result("cd-2", "rejected", foreign_id, source="alarm", error_code="not_authorized"),
            ),
            calls=(),
            dead_letters=(DeadLetter("not_authorized"),),
        ),
        Scenario(
            name="resume",
            title=(
                "A resume: an incident's stop of cd-r1, cd-r2 and cd-r3 (already stopped before it); cd-r2's "
                "recurrence starts it again; then events/direct_resume_request.json starts again exactly what the "
                "stop stopped and is still Stopped: cd-r1 resumed, cd-r2 ignored (running), cd-r3 not touched"
            ),
            campaigns=(Campaign("cd-r1"), Campaign("cd-r2", recurring=True), Campaign("cd-r3", status="Stopped")),
            steps=(SendToQueue((incident,)), FireRecurrence(("cd-r2",)), SendToQueue((json.dumps(resume),))),
            results=(
                Result("cd-r1", "stopped", resume["resumeOf"]),
                Result("cd-r2", "stopped", resume["resumeOf"]),
                Result("cd-r3", "already_stopped", resume["resumeOf"]),
                Result("cd-r1", "resumed", resume["requestId"]),
                Result("cd-r2", "ignored", resume["requestId"]),
            ),
            calls=(
                Call("stop_sms", sms_stop_path("cd-r1"), 200),
                Call("stop_sms", sms_stop_path("cd-r2"), 200),
                Call("stop_sms", sms_stop_path("cd-r3"), 400),  # already stopped: the status call says so
                Call("status", status_path("cd-r3"), 200),
                Call("status", status_path("cd-r1"), 200),  # the resume: still Stopped? then start it
                Call("start_sms", sms_start_path("cd-r1"), 200),
                Call("status", status_path("cd-r2"), 200),  # running again: left alone, no start call
            ),
            statuses_after=(("cd-r1", "Active"), ("cd-r2", "Active"), ("cd-r3", "Stopped")),
        ),
    )


def scenario_named(name: str) -> Scenario:
    for scenario in all_scenarios():
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario {name!r}; known: {', '.join(s.name for s in all_scenarios())}")


# ---- running one ---------------------------------------------------------------------------------------


@dataclass
class World:
    """The running parts a scenario acts on. The function's environment must already point at them."""

    stack: LocalStack
    sim: KoreSimulator
    mapping: SqsEventSourceMapping
    handler: Handler
    poll_seconds: float = 30.0
    events_mapping: SqsEventSourceMapping | None = None  # the stop bus's events queue (made from the stack if None)

    def __post_init__(self) -> None:
        if self.events_mapping is None and self.stack.events_queue_url:
            self.events_mapping = SqsEventSourceMapping(
                self.stack, queue_url=self.stack.events_queue_url, queue_arn=self.stack.events_queue_arn,
                handler=self.handler, retry_delay_seconds=self.mapping.retry_delay_seconds,
                max_receive_count=self.stack.max_receive_count,
            )

    @staticmethod
    def cold_start() -> None:
        """The next invocation builds a new container (settings, clients, caches)."""
        from stop_campaign import app, settings

        app.container.cache_clear()
        settings.get_settings.cache_clear()


@dataclass
class Observed:
    results: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    calls: list[RecordedRequest] = field(default_factory=list)
    invocations: list[InvocationReport] = field(default_factory=list)
    direct_responses: list[Any] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    left_in_queue: int = 0
    statuses: dict[str, str] = field(default_factory=dict)  # the campaigns of Scenario.statuses_after, at the end


@dataclass
class ScenarioRun:
    scenario: Scenario
    observed: Observed
    problems: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def stop_statuses(self, campaign_id: str | None) -> list[int]:
        """Statuses of the stop calls made for `campaign_id` during the scenario, in order."""
        if campaign_id is None:
            return []
        return [call.status for call in self.observed.calls
                if call.kind in ("stop_sms", "stop_voice") and stop_call_campaign(call.path) == campaign_id]

    def stop_statuses_by_result(self) -> dict[str, list[int]]:
        """Each result's own stop calls (by resultId): see pair_stop_calls."""
        return pair_stop_calls(self.observed.results, self.observed.calls)


def stop_call_campaign(path: str) -> str:
    """The campaign a stop call's path names (SMS and voice stop paths both end in the campaign id)."""
    return path.rsplit("/", 1)[-1]


DECIDING_STATUSES = frozenset({200, 400, 404, 409})  # a stop call that ends its campaign's attempt: not 429, not 5xx


def pair_stop_calls(results: Sequence[Mapping[str, Any]], calls: Sequence[Any]) -> dict[str, list[int]]:
    """Which stop calls (HTTP statuses, in order) each result came from, by resultId. A campaign's calls are
    handed out to its results in the order they completed: each takes calls up to the first one that decided its
    outcome (200 stopped, 400 already stopped, 404 no such campaign); the last result takes what is left (retries
    that never succeeded). Results without a campaign (a request that failed as a whole) made no stop call."""
    calls_of: dict[str, list[int]] = {}
    for call in calls:
        if call.kind in ("stop_sms", "stop_voice"):
            calls_of.setdefault(stop_call_campaign(call.path), []).append(call.status)
    paired: dict[str, list[int]] = {}
    ordered = sorted(results, key=lambda result: str(result.get("completedAt") or ""))
    for campaign_id, statuses in calls_of.items():
        own = [result for result in ordered if result.get("campaignId") == campaign_id]
        for index, result in enumerate(own):
            last = index == len(own) - 1
            taken: list[int] = []
            while statuses:
                taken.append(statuses.pop(0))
                if taken[-1] in DECIDING_STATUSES and not last:
                    break
            paired[str(result.get("resultId"))] = taken
    return paired


def run_scenario(scenario: Scenario, world: World) -> ScenarioRun:
    started = time.perf_counter()
    observed = Observed()
    sim, stack = world.sim, world.stack
    for campaign in scenario.campaigns:
        sim.add_campaign(campaign.stream_id, campaign.campaign_id, campaign.campaign_type, campaign.status,
                         campaign.name, scheduling=campaign.recurring, recurrence=campaign.recurring)
    if scenario.alarm_map is not None:
        stack.put_alarm_map(dict(scenario.alarm_map))
    sim.clear_faults()
    if scenario.platform_rate_limit is not None:
        calls, seconds = scenario.platform_rate_limit
        sim.set_rate_limit(max_requests=calls, window_seconds=seconds, retry_after=1)
        scope_limit = True
    else:
        scope_limit = False
    for fault in scenario.faults:
        sim.inject(kind=fault.kind, status=fault.status, times=fault.times)
    sim.reset_log()
    with ExitStack() as scope:
        if scenario.function_timeout_seconds is not None:
            usual = world.mapping.function_timeout_seconds
            world.mapping.function_timeout_seconds = scenario.function_timeout_seconds
            scope.callback(setattr, world.mapping, "function_timeout_seconds", usual)
        if scenario.function_env:
            scope.enter_context(function_environment(dict(scenario.function_env)))
            world.cold_start()
            scope.callback(world.cold_start)  # the next scenario gets a container with the usual settings
        for step in scenario.steps:
            _run_step(step, world, observed)
    sim.clear_faults()
    if scope_limit:
        sim.set_rate_limit(None)
    observed.calls = sim.requests
    observed.results = stack.drain_results()
    observed.summaries = stack.drain_summaries()
    observed.dead_letters = stack.drain_dead_letters()
    observed.left_in_queue = world.mapping.messages_in_queue()
    streams = {campaign.campaign_id: campaign.stream_id for campaign in scenario.campaigns}
    observed.statuses = {campaign_id: sim.campaign_status(streams.get(campaign_id, STREAM_ID), campaign_id)
                         for campaign_id, _ in scenario.statuses_after}
    return ScenarioRun(scenario, observed, check(scenario, observed), time.perf_counter() - started)


def summary_problems(observed: Observed) -> list[str]:
    """A summary counts exactly the results its request published, and no request is summed up twice."""
    problems = []
    keys = [(summary["requestId"], summary["streamId"], summary["dryRun"]) for summary in observed.summaries]
    problems += [f"summary published twice: {key}" for key in {key for key in keys if keys.count(key) > 1}]
    for summary in observed.summaries:
        counted = Counter(
            result["outcome"] for result in observed.results
            if (result["requestId"], result["streamId"], result["dryRun"])
            == (summary["requestId"], summary["streamId"], summary["dryRun"])
        )
        if counted != Counter(summary["outcomes"]):
            problems.append(f"summary of {summary['requestId']} counts {summary['outcomes']}, results {dict(counted)}")
    return problems


def _run_step(step: Step, world: World, observed: Observed) -> None:
    sqs = world.stack.client("sqs")
    if isinstance(step, SendToQueue):
        for body in step.bodies:
            sent = sqs.send_message(QueueUrl=world.stack.stop_queue_url, MessageBody=body)
            observed.message_ids.append(sent["MessageId"])
    elif isinstance(step, PutOnBus):
        _put_on_bus(step, world, observed)
    elif isinstance(step, SetAlarmState):
        cloudwatch = world.stack.client("cloudwatch")
        cloudwatch.put_metric_alarm(AlarmName=step.alarm_name, Namespace="Demo", MetricName="Errors", Statistic="Sum",
                                    Period=60, EvaluationPeriods=1, Threshold=1,
                                    ComparisonOperator="GreaterThanThreshold")
        cloudwatch.set_alarm_state(AlarmName=step.alarm_name, StateValue=step.state, StateReason="make demo")
        observed.notes.append(f"alarm {step.alarm_name} is {step.state}")
        return
    elif isinstance(step, RestartCampaigns):
        for campaign_id in step.campaign_ids:
            world.sim.restart(step.stream_id, campaign_id)
        observed.notes.append(f"restarted by hand: {', '.join(step.campaign_ids)}")
        return
    elif isinstance(step, FireRecurrence):
        for campaign_id in step.campaign_ids:
            started = world.sim.fire_recurrence(step.stream_id, campaign_id)
            observed.notes.append(f"{campaign_id}'s next recurrence {'started it' if started else 'left it as it was'}")
        return
    else:
        try:
            response = world.handler(dict(step.event), LocalLambdaContext(world.mapping.function_timeout_seconds))
        except Exception as error:
            observed.errors.append(f"direct invocation raised {type(error).__name__}: {error}")
        else:
            observed.direct_responses.append(response)
        return
    mappings = [world.events_mapping] if isinstance(step, PutOnBus) and world.events_mapping else []
    reports: list[InvocationReport] = []
    for mapping in [*mappings, world.mapping]:  # the bus's requests first: their continuations go to the stop queue
        try:
            reports += mapping.poll_until_empty(world.poll_seconds)
        except PollingTimedOut as timed_out:
            reports += timed_out.reports
            observed.errors.append(str(timed_out))
    observed.invocations.extend(reports)
    observed.errors.extend(f"invocation failed the whole batch: {report.error}" for report in reports if report.error)


def _put_on_bus(step: PutOnBus, world: World, observed: Observed) -> None:
    stack, event = world.stack, step.event
    answer = stack.client("events").put_events(Entries=[{
        "EventBusName": stack.bus_name, "Source": event["source"], "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]), "Resources": list(event.get("resources", [])),
    }])
    if answer.get("FailedEntryCount"):
        observed.errors.append(f"PutEvents failed: {answer['Entries']}")
        return
    event_id = answer["Entries"][0]["EventId"]
    observed.event_ids.append(event_id)
    events_mapping = world.events_mapping or world.mapping
    if events_mapping.messages_in_queue() == 0:
        # moto 5 delivers to SQS targets synchronously; if a version stops doing so, keep the demo useful.
        envelope = {**event, "id": event_id, "account": stack.account_id}
        stack.client("sqs").send_message(QueueUrl=events_mapping.queue_url, MessageBody=json.dumps(envelope))
        observed.notes.append("moto's EventBridge did not deliver to the queue: the envelope was sent to it directly")


# ---- checking ----------------------------------------------------------------------------------------


def check(scenario: Scenario, observed: Observed) -> list[str]:
    """Every difference between what the scenario expects and what happened, readably."""
    problems = list(observed.errors)
    unmatched = list(observed.results)
    for expected in scenario.results:
        found = next(
            (actual for actual in unmatched if expected.matches(actual, observed.message_ids, observed.event_ids)),
            None,
        )
        if found is None:
            problems.append(f"missing result: {expected.describe()}")
        else:
            unmatched.remove(found)
    problems += [f"unexpected result: {_describe_result(actual)}" for actual in unmatched]
    problems += summary_problems(observed)

    expected_calls: Counter[tuple[str | None, str, int]] = Counter(
        (call.kind, call.path, call.status) for call in scenario.calls
    )
    actual_calls: Counter[tuple[str | None, str, int]] = Counter(
        (call.kind, call.path, call.status) for call in observed.calls
    )
    for (kind, path, status), count in (expected_calls - actual_calls).items():
        problems.append(f"missing call: {count} x {kind} {path} -> {status}")
    for (kind, path, status), count in (actual_calls - expected_calls).items():
        problems.append(f"unexpected call: {count} x {kind} {path} -> {status}")

    letters = list(observed.dead_letters)
    for expected_letter in scenario.dead_letters:
        match = next((message for message in letters if expected_letter.matches(message)), None)
        if match is None:
            problems.append(f"missing dead letter: errorCode={expected_letter.error_code}")
        else:
            letters.remove(match)
    problems += [
        f"unexpected dead letter: errorCode={dead_letter_error_code(message)} body={message.get('Body', '')[:80]}"
        for message in letters
    ]
    if observed.left_in_queue:
        problems.append(f"{observed.left_in_queue} message(s) left in the stop queue")
    problems += [
        f"{campaign_id} ended {observed.statuses.get(campaign_id)}, not {status}"
        for campaign_id, status in scenario.statuses_after if observed.statuses.get(campaign_id) != status
    ]
    return problems


def _describe_result(result: Mapping[str, Any]) -> str:
    error = (result.get("error") or {}).get("code")
    return (
        f"{result.get('outcome')} {result.get('campaignId') or '(no campaign)'} requestId={result.get('requestId')} "
        f"attempts={result.get('attempts')}" + (f" error={error}" if error else "")
    )

