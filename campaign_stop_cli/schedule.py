"""`campaign-stop schedule`: stop campaigns at a set local time (quiet hours) with Amazon EventBridge Scheduler.

A schedule's target is the stop queue; its input is a stop request (version 1) built as `stop` builds one and
checked with the function's own parser. Its ``requestId`` and ``requestedAt`` carry Scheduler's context attribute
``<aws.scheduler.scheduled-time>``, which Scheduler replaces when it delivers: every retry of one firing carries the
same scheduled time, so it is the same request (the function stops nothing twice), and the next firing is a new one.

Time zones, one-time ``at()`` times and ``cron()`` expressions are checked here, before anything is created: a
schedule that would never fire, fire at a time that does not exist, or stop something the function would reject is
refused with exit code 2.
"""

from __future__ import annotations

import calendar
import difflib
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import boto3
import typer
from aws_cron_expression_validator.validator import (
    AWSCronExpressionDayOfMonthError,
    AWSCronExpressionDayOfWeekError,
    AWSCronExpressionError,
    AWSCronExpressionHourError,
    AWSCronExpressionMinuteError,
    AWSCronExpressionMonthError,
    AWSCronExpressionValidator,
    AWSCronExpressionYearError,
)
from botocore.exceptions import BotoCoreError, ClientError
from cronsim import CronSim, CronSimError
from rich.markup import escape
from rich.table import Table

from campaign_stop_cli import stop as stop_command
from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OutputFormat,
    OutputOption,
    QueueUrlOption,
    ResultsTopicOption,
    client,
    console,
    error_console,
    fail,
    find_resource,
    output_format,
    print_json,
    resource,
)
from stop_campaign.domain.intake import InvalidRequest, Origin, parse_stop_request
from stop_campaign.domain.models import CampaignType, Source

app = typer.Typer(
    help="Stop campaigns at a set local time (quiet hours) with EventBridge Scheduler: create, list, delete, fire.",
    no_args_is_help=True,
)

# EventBridge Scheduler's context attributes: replaced in the target's input each time it delivers.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # e.g. 2026-12-25T01:55:00Z; the same for every retry
SCHEDULE_ARN = "<aws.scheduler.schedule-arn>"
EXECUTION_ID = "<aws.scheduler.execution-id>"  # new for each attempt: never part of the request id
ATTEMPT_NUMBER = "<aws.scheduler.attempt-number>"
SCHEDULED_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

NAME_PATTERN = re.compile(r"[0-9A-Za-z_.-]{1,64}")  # Scheduler's own rule for schedule and group names
MAX_RETRY_ATTEMPTS = 185  # Scheduler's maximum; the event age below is what really bounds the retries
DEFAULT_MAX_EVENT_AGE = 3600  # a stop delivered more than an hour late could stop a campaign the next morning
LAST_YEAR = 2199  # the last year a cron expression can name

GroupOption = Annotated[
    str | None, typer.Option("--schedule-group", help="Schedule group (env SCHEDULE_GROUP_NAME).", metavar="GROUP")
]


def _fail(message: str, code: int, mode: OutputFormat) -> NoReturn:
    """common.fail (which shows what the user typed literally: a '[' in it is not Rich markup)."""
    fail(message, code, mode)


# ---------------------------------------------------------------------------------------------------------------
# Time zones and times


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_zone(name: str) -> ZoneInfo:
    """An IANA time zone (America/New_York); ValueError says what is wrong and suggests a close name."""
    if name in _time_zones():
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    close = difflib.get_close_matches(name, sorted(_time_zones()), n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]!r}?)" if close else " (an IANA name such as America/New_York or America/Phoenix)"
    raise ValueError(f"unknown time zone {name!r}{hint}")


def _exists(local: datetime, zone: ZoneInfo) -> bool:
    """False for a wall time the clocks skip (spring forward): it comes back different from a round trip."""
    aware = local.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local


def _ambiguous(local: datetime, zone: ZoneInfo) -> bool:
    """True for a wall time that happens twice (fall back)."""
    return local.replace(tzinfo=zone, fold=0).utcoffset() != local.replace(tzinfo=zone, fold=1).utcoffset()


def parse_local_time(text: str) -> datetime:
    """A wall time without offset: 2026-12-24T20:55 (or with seconds, or a space for the T)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time such as 2026-12-24T20:55") from None
    if value.tzinfo is not None:
        raise ValueError(f"{text!r} has an offset: give the local wall time, the zone is --timezone")
    return value.replace(microsecond=0)


def _shown(moment: datetime | None, zone: ZoneInfo) -> dict[str, str] | None:
    if moment is None:
        return None
    local = moment.astimezone(zone)
    return {"local": local.strftime("%Y-%m-%dT%H:%M:%S%z"), "zone": local.tzname() or "",
            "utc": moment.astimezone(UTC).strftime(SCHEDULED_TIME_FORMAT)}


def _shown_text(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"


# ---------------------------------------------------------------------------------------------------------------
# Cron expressions, in EventBridge's syntax: minutes hours day-of-month month day-of-week year
#
# Checked by aws-cron-expression-validator (EventBridge's grammar: 6 fields, ?, L, W, #, the year); evaluated by
# cronsim (5-field cron with L, LW, nL and #) on the schedule's wall clock. The adapter below only translates
# what cronsim lacks: EventBridge's day-of-week numbers (1 = SUN, cronsim's 0), the year field and nW (the
# weekday nearest day n), which cronsim does not evaluate; the zone's gaps and overlaps are Scheduler's rule.


FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
# Each field's error class in the validator, and what the field allows (EventBridge's table), for the message.
FIELD_RULES: tuple[tuple[type[AWSCronExpressionError], int, int, str], ...] = (
    (AWSCronExpressionMinuteError, 0, 59, ", - * /"),
    (AWSCronExpressionHourError, 0, 23, ", - * /"),
    (AWSCronExpressionDayOfMonthError, 1, 31, ", - * ? / L W"),
    (AWSCronExpressionMonthError, 1, 12, ", - * / (or JAN-DEC)"),
    (AWSCronExpressionDayOfWeekError, 1, 7, ", - * ? L # (or SUN-SAT)"),
    (AWSCronExpressionYearError, 1970, LAST_YEAR, ", - * /"),
)
NEAREST_WEEKDAY = re.compile(r"(\d{1,2})W")  # day-of-month nW (EventBridge allows it alone in the field)


class CronError(ValueError):
    pass


def _field_error(index: int, value: str) -> CronError:
    """The validator's verdict on one field, said with the field's name and, for a number, its range."""
    name, (_, low, high, wildcards) = FIELD_NAMES[index], FIELD_RULES[index]
    for number in re.findall(r"(?<![#/\d])\d+", value):
        if not low <= int(number) <= high:
            return CronError(f"the {name} field: {int(number)} is outside {low}-{high}")
    return CronError(f"the {name} field {value!r} is not valid EventBridge cron: {low}-{high} with {wildcards}")


def _validate(fields: tuple[str, ...]) -> None:
    try:
        AWSCronExpressionValidator.validate(" ".join(fields))
    except AWSCronExpressionError as error:
        for index, (error_class, *_rest) in enumerate(FIELD_RULES):
            if isinstance(error, error_class):
                raise _field_error(index, fields[index]) from None
        raise CronError("exactly one of day-of-month and day-of-week must be '?': e.g. '55 20 * * ? *' "
                        "(every day) or '55 20 ? * MON-FRI *' (weekdays)") from None


def _years(text: str) -> frozenset[int]:
    """The year field (already validated): items of *, y, a-b (either end may be *), each with an optional /step.
    Adapter: cronsim has no year field."""
    years: set[int] = set()
    for item in text.split(","):
        base, slash, step = item.partition("/")
        first, dash, last = base.partition("-")
        start = 1970 if first == "*" else int(first)
        end = (LAST_YEAR if last == "*" else int(last)) if dash else (LAST_YEAR if slash or base == "*" else start)
        years.update(range(start, end + 1, int(step) if slash else 1))
    return frozenset(years)


def _cronsim_day_of_week(text: str) -> str:
    """Adapter: EventBridge numbers the days 1 (SUN) to 7 (SAT), cronsim 0 to 6, and L alone is the week's last
    day (SAT); names, nL and n#k keep their meaning once the numbers are shifted (the k after # is not a day)."""
    if text == "?":
        return "*"
    if text == "L":
        return "SAT"
    return re.sub(r"(?<![#\d])\d+", lambda match: str(int(match[0]) - 1), text)


def _weekday_near(year: int, month: int, n: int) -> int | None:
    """Adapter for nW, which cronsim lacks: the weekday (Monday to Friday) nearest to day n, never leaving the
    month (Quartz's W, as EventBridge documents it); None in a month without day n."""
    month_days = calendar.monthrange(year, month)[1]
    if n > month_days:
        return None
    weekday = date(year, month, n).weekday()  # Monday 0 … Sunday 6
    if weekday == 5:  # Saturday: the Friday before, unless that is last month
        return n - 1 if n > 1 else n + 2
    if weekday == 6:  # Sunday: the Monday after, unless that is next month
        return n - 2 if n == month_days else n + 1
    return n


@dataclass(frozen=True)
class CronExpression:
    fields: tuple[str, ...]
    simulated: str  # the first five fields in cronsim's syntax
    years: frozenset[int]
    nearest_weekday: int | None  # n of a day-of-month nW

    @property
    def expression(self) -> str:
        return f"cron({' '.join(self.fields)})"

    def _wall_times(self, start: datetime) -> Iterator[datetime]:
        """Every wall time the expression names after ``start`` (naive, no zone), year and nW applied."""
        while start.year <= LAST_YEAR:
            try:
                candidate = next(CronSim(self.simulated, start))
            except (StopIteration, CronSimError):  # nothing for 50 years, or a day no month has (31 2)
                return
            if candidate.year not in self.years:
                later = [year for year in self.years if year > candidate.year]
                if not later:
                    return
                start = datetime(min(later), 1, 1) - timedelta(seconds=1)
                continue
            if self.nearest_weekday is not None and candidate.day != _weekday_near(
                    candidate.year, candidate.month, self.nearest_weekday):
                start = datetime.combine(candidate.date(), time()) + timedelta(days=1, seconds=-1)
                continue
            yield candidate
            start = candidate

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """The first firing strictly after ``after``, evaluated in ``zone`` as Scheduler does: a wall time the
        clocks skip (spring forward) does not fire; one that happens twice (fall back) fires once, the first."""
        after = after.astimezone(UTC)
        for local in self._wall_times(after.astimezone(zone).replace(tzinfo=None, fold=0)):
            if not _exists(local, zone):
                continue
            aware = local.replace(tzinfo=zone)
            if aware > after:
                return aware
        return None


def parse_cron(text: str) -> CronExpression:
    """``55 20 * * ? *`` or ``cron(55 20 * * ? *)``; CronError names the field that is wrong."""
    inner = text.strip()
    if inner.lower().startswith("cron(") and inner.endswith(")"):
        inner = inner[5:-1]
    fields = tuple(inner.split())
    if len(fields) != len(FIELD_NAMES):
        raise CronError(
            f"a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), "
            f"found {len(fields)}: e.g. '55 20 * * ? *' is 20:55 every day"
        )
    _validate(fields)
    minutes, hours, day_of_month, month, day_of_week, year = fields
    nearest = NEAREST_WEEKDAY.fullmatch(day_of_month)
    days = "*" if day_of_month == "?" or nearest else day_of_month
    simulated = f"{minutes} {hours} {days} {month} {_cronsim_day_of_week(day_of_week)}"
    try:  # what the validator's grammar lets through and cronsim cannot read; any month, so 31 is a day here
        CronSim(f"{minutes} {hours} {days} * {_cronsim_day_of_week(day_of_week)}", datetime(2000, 1, 1))
        CronSim(f"0 0 1 {month} *", datetime(2000, 1, 1))
    except CronSimError:
        for index, value in enumerate(fields):
            for first, last in re.findall(r"(\d+)-(\d+)", value):
                if int(first) > int(last):
                    raise CronError(f"the {FIELD_NAMES[index]} field: the range {first}-{last} runs backwards; "
                                    "split it, e.g. 22-23,0-2") from None
        raise CronError(f"cron({' '.join(fields)}) is not an expression this tool can evaluate") from None
    return CronExpression(fields, simulated, _years(year), int(nearest[1]) if nearest else None)


def next_run(expression: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """When a stored schedule expression fires next (after ``after``); None for one in the past, a rate() or one
    that cannot be read."""
    if expression.startswith("at(") and expression.endswith(")"):
        try:
            local = datetime.fromisoformat(expression[3:-1])
        except ValueError:
            return None
        moment = local.replace(tzinfo=zone)
        return moment if moment > after else None
    if expression.startswith("cron("):
        try:
            return parse_cron(expression).next_after(after, zone)
        except CronError:
            return None
    return None


# ---------------------------------------------------------------------------------------------------------------
# The request a schedule sends


def request_template(
    *, group: str, name: str, stream: str, campaigns: list[str], all_active: bool, campaign_type: CampaignType,
    reason: str | None, dry_run: bool,
) -> dict[str, Any]:
    """A stop request v1, field for field as `stop` builds one; the scheduled time is Scheduler's to fill in."""
    request: dict[str, Any] = {"streamId": stream}
    if all_active:
        request["campaigns"] = "all-active"
    elif len(campaigns) == 1:
        request["campaignId"] = campaigns[0]
    else:
        request["campaignIds"] = campaigns
    request["campaignType"] = campaign_type.value
    # The same for every retry of one firing (same scheduled time), new for the next firing; the group is in it
    # so that two groups' schedules of the same name never share a request id.
    request["requestId"] = f"schedule:{group}/{name}:{SCHEDULED_TIME}"
    if reason is not None:
        request["reason"] = reason
    request["requestedBy"] = f"schedule:{group}/{name}"
    request["requestedAt"] = SCHEDULED_TIME
    request["dryRun"] = dry_run
    return request


def substitute(text: str, *, scheduled_time: datetime, schedule_arn: str, execution_id: str | None = None,
               attempt: int = 1) -> str:
    """The input as Scheduler delivers it: each context attribute replaced by its value."""
    return (
        text.replace(SCHEDULED_TIME, scheduled_time.astimezone(UTC).strftime(SCHEDULED_TIME_FORMAT))
        .replace(SCHEDULE_ARN, schedule_arn)
        .replace(EXECUTION_ID, execution_id or uuid.uuid4().hex[:16])
        .replace(ATTEMPT_NUMBER, str(attempt))
    )


def check_request(payload: str) -> dict[str, Any]:
    """The delivered input through the function's own parser and schema; InvalidRequest or ValueError if not."""
    request = json.loads(payload)
    if not isinstance(request, dict):
        raise ValueError("the input is not a JSON object")
    request_id = str(request.get("requestId") or "schedule")
    parse_stop_request(request, Origin(Source.SQS, request_id, str(request.get("requestedAt") or "")), request_id)
    return request


def _describe_stop(request: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(request, dict) or "streamId" not in request:
        return None
    if request.get("campaigns") == "all-active":
        campaigns: str | list[str] = "all-active"
    elif "campaignIds" in request:
        campaigns = list(request["campaignIds"])
    else:
        campaigns = [str(request.get("campaignId"))]
    return {"streamId": request["streamId"], "campaigns": campaigns,
            "campaignType": request.get("campaignType", "sms"), "dryRun": request.get("dryRun") is True}


def _stops_text(stops: dict[str, Any] | None) -> tuple[str, str, str]:
    if stops is None:
        return "?", "?", "?"
    campaigns = stops["campaigns"] if isinstance(stops["campaigns"], str) else ", ".join(stops["campaigns"])
    kind = stops["campaignType"] + (" (dry run)" if stops["dryRun"] else "")
    return stops["streamId"], campaigns, kind


# ---------------------------------------------------------------------------------------------------------------
# AWS


def _client_error_code(error: Exception) -> str:
    return str(error.response.get("Error", {}).get("Code", "")) if isinstance(error, ClientError) else ""


def _queue_attributes(queue_url: str, mode: OutputFormat, what: str) -> dict[str, str]:
    try:
        return dict(client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn", "FifoQueue", "ContentBasedDeduplication"],
        )["Attributes"])
    except (BotoCoreError, ClientError) as error:
        _fail(f"cannot read the {what} queue {queue_url}: {error}", EXIT_USAGE, mode)


def _queue_target(queue_url: str, mode: OutputFormat) -> tuple[str, bool]:
    """The stop queue's ARN and whether it is FIFO; a FIFO queue must deduplicate on content (Scheduler sets no
    deduplication id)."""
    attributes = _queue_attributes(queue_url, mode, "stop")
    fifo = attributes.get("FifoQueue") == "true"
    if fifo and attributes.get("ContentBasedDeduplication") != "true":
        _fail(f"the stop queue {queue_url} is FIFO without content-based deduplication, which EventBridge "
             "Scheduler needs (it sets no deduplication id): enable ContentBasedDeduplication", EXIT_USAGE, mode)
    return str(attributes["QueueArn"]), fifo


def _dead_letter_target(queue_url: str, mode: OutputFormat) -> str | None:
    """The dead-letter queue's ARN for the schedule's DeadLetterConfig; None (with a warning) for a FIFO queue,
    which EventBridge Scheduler does not support as a schedule's dead-letter queue."""
    attributes = _queue_attributes(queue_url, mode, "dead-letter")
    if attributes.get("FifoQueue") == "true":
        error_console().print(
            f"[yellow]warning:[/] the dead-letter queue {escape(queue_url)} is FIFO, which EventBridge Scheduler "
            "does not support as a schedule's dead-letter queue: the schedule gets none, and a delivery Scheduler "
            "gives up on is dropped (give a standard queue with --dlq-url, or --no-dlq to say so)", highlight=False)
        return None
    return str(attributes["QueueArn"])


def _get_schedule(group: str, name: str, mode: OutputFormat) -> dict[str, Any]:
    try:
        return dict(client("scheduler").get_schedule(GroupName=group, Name=name))
    except ClientError as error:
        if _client_error_code(error) == "ResourceNotFoundException":
            _fail(f"no schedule {name!r} in schedule group {group!r}", EXIT_FAILED, mode)
        _fail(f"could not read schedule {group}/{name}: {error}", EXIT_FAILED, mode)
    except BotoCoreError as error:
        _fail(f"could not read schedule {group}/{name}: {error}", EXIT_FAILED, mode)


def _schedule_zone(schedule: dict[str, Any]) -> ZoneInfo:
    try:
        return parse_zone(str(schedule.get("ScheduleExpressionTimezone") or "UTC"))
    except ValueError:
        return ZoneInfo("UTC")


def _template_of(schedule: dict[str, Any]) -> dict[str, Any] | None:
    try:
        document = json.loads(str(schedule.get("Target", {}).get("Input", "")))
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _summary(schedule: dict[str, Any], now: datetime) -> dict[str, Any]:
    zone = _schedule_zone(schedule)
    expression = str(schedule.get("ScheduleExpression", ""))
    enabled = schedule.get("State", "ENABLED") == "ENABLED"
    template = _template_of(schedule)
    target = schedule.get("Target", {})
    return {
        "name": schedule.get("Name"), "group": schedule.get("GroupName"), "arn": schedule.get("Arn"),
        "state": schedule.get("State"), "expression": expression,
        "timezone": schedule.get("ScheduleExpressionTimezone") or "UTC",
        "nextRun": _shown(next_run(expression, zone, now), zone) if enabled else None,
        "description": schedule.get("Description"), "stops": _describe_stop(template),
        "target": {key: target[key] for key in ("Arn", "RoleArn", "RetryPolicy", "SqsParameters") if key in target},
        "input": template if template is not None else target.get("Input"),
        "actionAfterCompletion": schedule.get("ActionAfterCompletion"),
    }


# ---------------------------------------------------------------------------------------------------------------
# Commands


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schedule name (letters, digits, - _ .; up to 64).")],
    stream: Annotated[str, typer.Option("--stream", help="Stream id (st-…) whose campaigns to stop.",
                                        metavar="STREAM_ID")],
    timezone: Annotated[str, typer.Option(
        "--timezone", help="IANA time zone the time is in, e.g. America/New_York, America/Phoenix.", metavar="ZONE")],
    campaign: Annotated[
        list[str] | None, typer.Option("--campaign", help="Campaign id (cd-…); repeat for several.",
                                       metavar="CAMPAIGN_ID")
    ] = None,
    all_active: Annotated[bool, typer.Option("--all-active", help="Every active campaign of the stream.")] = False,
    campaign_type: Annotated[CampaignType, typer.Option("--type", help="Campaign type.")] = CampaignType.SMS,
    at: Annotated[str | None, typer.Option(
        "--at", help="Once, at this local wall time in --timezone (2026-12-24T20:55); the schedule then deletes "
        "itself.", metavar="TIME")] = None,
    cron: Annotated[str | None, typer.Option(
        "--cron", help="Recurring, EventBridge cron in --timezone: minutes hours day-of-month month day-of-week "
        "year, e.g. '55 20 * * ? *' (20:55 daily).", metavar="EXPRESSION")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in every result).", metavar="TEXT")] = None,
    dry_run_request: Annotated[bool, typer.Option(
        "--dry-run-request", help="Each firing sends a dry run: reports what would stop, stops nothing.")] = False,
    description: Annotated[str | None, typer.Option("--description", help="Shown with the schedule.",
                                                    metavar="TEXT")] = None,
    max_event_age: Annotated[int, typer.Option(
        "--max-event-age", min=60, max=86400,
        help="Seconds Scheduler keeps retrying a delivery that fails before it gives up.",
                                               metavar="SECONDS")] = DEFAULT_MAX_EVENT_AGE,
    schedule_group: GroupOption = None,
    scheduler_role_arn: Annotated[str | None, typer.Option(
        "--scheduler-role-arn", help="Role Scheduler assumes to send (env SCHEDULER_ROLE_ARN).", metavar="ARN")] = None,
    queue_url: QueueUrlOption = None,
    dlq_url: Annotated[str | None, typer.Option(
        "--dlq-url", help="Dead-letter queue for deliveries Scheduler gives up on (env DEAD_LETTER_QUEUE_URL; "
        "none found, or a FIFO queue, which Scheduler does not support there: such a delivery is dropped, with a "
        "warning now).", metavar="URL")] = None,
    no_dlq: Annotated[bool, typer.Option(
        "--no-dlq", help="No dead-letter queue: a delivery Scheduler gives up on is dropped.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --all-active: " + stop_command.YES_HELP)] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1, help="Seconds the dry run before an --all-active schedule waits for.",
                                           metavar="SECONDS")] = 120.0,
    results_topic_arn: Annotated[str | None, typer.Option(
        "--results-topic-arn", help="Results topic ARN, for the dry run before --all-active (env "
        "RESULTS_TOPIC_ARN).", metavar="ARN")] = None,
    output: OutputOption = None,
) -> None:
    """Create a schedule that sends a stop request to the stop queue, once (--at) or on a cron (--cron).

    --all-active (unless --dry-run-request or --yes) first sends a dry run of it now, shows what it would stop and
    asks for the stream id to be typed; without a terminal that is an error (exit 2)."""
    mode = output_format(ctx, output)
    campaigns = list(dict.fromkeys(campaign or []))
    _check_create_options(name, campaigns, all_active, at, cron, no_dlq, dlq_url, mode)
    guarded = all_active and not dry_run_request and not yes
    if guarded:
        stop_command.require_terminal("schedule create --all-active", mode)
    try:
        zone = parse_zone(timezone)
    except ValueError as error:
        _fail(str(error), EXIT_USAGE, mode)
    expression, first = _first_run(at, cron, timezone, zone, mode)

    group = resource("schedule_group", schedule_group, mode)
    if not NAME_PATTERN.fullmatch(group):
        _fail(f"invalid schedule group name {group!r}", EXIT_USAGE, mode)
    role_arn = resource("scheduler_role_arn", scheduler_role_arn, mode)
    stop_queue_url = resource("stop_queue_url", queue_url, mode)

    template = request_template(
        group=group, name=name, stream=stream, campaigns=campaigns, all_active=all_active,
        campaign_type=campaign_type,
        reason=reason if reason is not None else f"scheduled stop: {expression} {timezone}",
        dry_run=dry_run_request,
    )
    payload = json.dumps(template, separators=(",", ":"))
    example = _first_request(payload, group, name, first, mode)
    target = _schedule_target(stop_queue_url, role_arn, payload, max_event_age, stream, mode)
    _add_dead_letter_queue(target, no_dlq, dlq_url, mode)
    if guarded:
        topic = resource("results_topic_arn", results_topic_arn, mode)
        group_id = (target.get("SqsParameters") or {}).get("MessageGroupId")
        _, _, _, region, account, queue_name = str(target["Arn"]).split(":", 5)  # the queue the schedule will target
        looked = stop_command.preview_all_active(
            example, lambda body: _send_to_queue(region, account, queue_name, json.dumps(body), group_id, mode),
            topic, timeout, mode)
        stop_command.confirm_stream(stream, looked, mode, "create a schedule that stops every active "
                                                          f"{campaign_type.value} campaign of it at each firing")
    what = "all active campaigns" if all_active else ", ".join(campaigns)
    text = description if description is not None else f"campaign-stop: stop {what} of {stream} ({campaign_type})"
    created = _create_schedule(
        name=name, group=group, expression=expression, timezone=timezone, description=text, once=at is not None,
        target=target, mode=mode,
    )

    if mode.machine:
        print_json({
            "scheduleArn": created["ScheduleArn"], "name": name, "group": group, "expression": expression,
            "timezone": timezone, "nextRun": _shown(first, zone), "stops": _describe_stop(template),
            "target": {key: value for key, value in target.items() if key != "Input"}, "input": template,
            "firstRequest": example,
        })
    else:
        out = console()
        out.print(f"Created schedule [bold]{group}/{name}[/]: {expression} in {timezone}", highlight=False)
        out.print(f"Next run: {_shown_text(first, zone)}", highlight=False)
        stream_text, campaigns_text, kind = _stops_text(_describe_stop(template))
        out.print(f"Stops: {campaigns_text} of {stream_text} ({kind}); request id {example['requestId']}",
                  highlight=False)
    raise typer.Exit(EXIT_OK)


def _check_create_options(name: str, campaigns: list[str], all_active: bool, at: str | None, cron: str | None,
                          no_dlq: bool, dlq_url: str | None, mode: OutputFormat) -> None:
    """The options `create` takes one of, or not together; the schedule's name."""
    if no_dlq and dlq_url:
        _fail("give --dlq-url or --no-dlq, not both", EXIT_USAGE, mode)
    if bool(campaigns) == all_active:
        _fail("give either --campaign (one or more) or --all-active", EXIT_USAGE, mode)
    if (at is None) == (cron is None):
        _fail("give either --at (one time, local wall time) or --cron (recurring)", EXIT_USAGE, mode)
    if not NAME_PATTERN.fullmatch(name):
        _fail(f"invalid schedule name {name!r}: 1 to 64 letters, digits, '-', '_' or '.'", EXIT_USAGE, mode)


def _first_run(at: str | None, cron: str | None, timezone: str, zone: ZoneInfo,
               mode: OutputFormat) -> tuple[str, datetime]:
    """The schedule expression and its first firing, from --at or --cron (exactly one is given)."""
    now = datetime.now(UTC)
    if at is not None:
        return _first_run_once(at, timezone, zone, now, mode)
    assert cron is not None
    return _first_run_cron(cron, timezone, zone, now, mode)


def _first_run_once(at: str, timezone: str, zone: ZoneInfo, now: datetime,
                    mode: OutputFormat) -> tuple[str, datetime]:
    try:
        local = parse_local_time(at)
    except ValueError as error:
        _fail(f"--at: {error}", EXIT_USAGE, mode)
    if not _exists(local, zone):
        _fail(f"--at {local:%Y-%m-%dT%H:%M} does not exist in {timezone}: the clocks skip it (daylight saving "
             "time starts)", EXIT_USAGE, mode)
    first = local.replace(tzinfo=zone)
    if first <= now:
        _fail(f"--at {local:%Y-%m-%dT%H:%M} in {timezone} is in the past (it is now "
             f"{now.astimezone(zone):%Y-%m-%d %H:%M %Z} there)", EXIT_USAGE, mode)
    if _ambiguous(local, zone):
        error_console().print(f"[yellow]warning:[/] {local:%Y-%m-%dT%H:%M} happens twice in {timezone} (the "
                              "clocks fall back); the first is shown", highlight=False)
    return f"at({local:%Y-%m-%dT%H:%M:%S})", first


def _first_run_cron(cron: str, timezone: str, zone: ZoneInfo, now: datetime,
                    mode: OutputFormat) -> tuple[str, datetime]:
    try:
        parsed = parse_cron(cron)
    except CronError as error:
        _fail(f"--cron: {error}", EXIT_USAGE, mode)
    upcoming = parsed.next_after(now, zone)
    if upcoming is None:
        _fail(f"--cron: {parsed.expression} never fires from now on in {timezone}", EXIT_USAGE, mode)
    return parsed.expression, upcoming


def _first_request(payload: str, group: str, name: str, first: datetime, mode: OutputFormat) -> dict[str, Any]:
    """The request as Scheduler will deliver it at its first firing, checked by the function's parser."""
    arn_placeholder = f"arn:aws:scheduler:::schedule/{group}/{name}"
    try:
        return check_request(substitute(payload, scheduled_time=first, schedule_arn=arn_placeholder))
    except InvalidRequest as error:
        _fail(f"invalid stop request: {error.message}", EXIT_USAGE, mode)


def _schedule_target(stop_queue_url: str, role_arn: str, payload: str, max_event_age: int, stream: str,
                     mode: OutputFormat) -> dict[str, Any]:
    """The schedule's Target: the stop queue, the role Scheduler assumes, the input and the retry policy."""
    queue_arn, fifo = _queue_target(stop_queue_url, mode)
    target: dict[str, Any] = {
        "Arn": queue_arn, "RoleArn": role_arn, "Input": payload,
        "RetryPolicy": {"MaximumEventAgeInSeconds": max_event_age, "MaximumRetryAttempts": MAX_RETRY_ATTEMPTS},
    }
    if fifo:
        target["SqsParameters"] = {"MessageGroupId": stream}  # one group per stream, as `stop` sends
    return target


def _add_dead_letter_queue(target: dict[str, Any], no_dlq: bool, dlq_url: str | None, mode: OutputFormat) -> None:
    """The target's DeadLetterConfig, unless --no-dlq, none is found (a warning) or it is FIFO (a warning)."""
    dead_letter_queue_url = None if no_dlq else find_resource("dead_letter_queue_url", dlq_url, mode)
    if dead_letter_queue_url:  # a delivery that keeps failing is kept with the other dead letters, to redrive
        dead_letter_arn = _dead_letter_target(dead_letter_queue_url, mode)
        if dead_letter_arn:
            target["DeadLetterConfig"] = {"Arn": dead_letter_arn}
    elif not no_dlq:
        error_console().print("[yellow]warning:[/] no dead-letter queue (--dlq-url, DEAD_LETTER_QUEUE_URL): a "
                              "delivery Scheduler gives up on is dropped (--no-dlq: no warning)", highlight=False)


def _create_schedule(*, name: str, group: str, expression: str, timezone: str, description: str, once: bool,
                     target: dict[str, Any], mode: OutputFormat) -> dict[str, Any]:
    """CreateSchedule; a one-time schedule deletes itself after its firing."""
    try:
        return dict(client("scheduler").create_schedule(
            Name=name, GroupName=group, ScheduleExpression=expression, ScheduleExpressionTimezone=timezone,
            FlexibleTimeWindow={"Mode": "OFF"}, State="ENABLED", Description=description[:512],
            ActionAfterCompletion="DELETE" if once else "NONE", Target=target,
        ))
    except ClientError as error:
        code = _client_error_code(error)
        if code == "ConflictException":
            _fail(f"a schedule {name!r} already exists in group {group!r}: delete it first", EXIT_USAGE, mode)
        usage = code in ("ValidationException", "ResourceNotFoundException")
        _fail(f"could not create the schedule: {error}", EXIT_USAGE if usage else EXIT_FAILED, mode)
    except BotoCoreError as error:
        _fail(f"could not create the schedule: {error}", EXIT_FAILED, mode)


@app.command("list")
def list_schedules(
    ctx: typer.Context,
    schedule_group: GroupOption = None,
    output: OutputOption = None,
) -> None:
    """The group's schedules: expression, time zone, state, next run and what each one stops."""
    mode = output_format(ctx, output)
    group = resource("schedule_group", schedule_group, mode)
    scheduler = client("scheduler")
    schedules: list[dict[str, Any]] = []
    try:
        for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group):
            for item in page.get("Schedules", []):
                try:
                    schedules.append(dict(scheduler.get_schedule(GroupName=group, Name=item["Name"])))
                except ClientError as error:
                    if _client_error_code(error) != "ResourceNotFoundException":  # deleted meanwhile: skip
                        raise
    except (BotoCoreError, ClientError) as error:
        _fail(f"could not list the schedules of group {group!r}: {error}", EXIT_FAILED, mode)
    now = datetime.now(UTC)
    summaries = sorted((_summary(schedule, now) for schedule in schedules), key=lambda s: str(s["name"]))
    if mode.machine:
        print_json({"group": group, "schedules": summaries}, records="schedules")
        raise typer.Exit(EXIT_OK)
    if not summaries:
        console().print(f"No schedules in group {group}.", highlight=False)
        raise typer.Exit(EXIT_OK)
    table = Table("name", "expression", "time zone", "state", "next run", "stream", "campaigns", "type")
    for summary in summaries:
        nxt = summary["nextRun"]
        shown = f"{nxt['local'][:16].replace('T', ' ')} {nxt['zone']} ({nxt['utc'][:16].replace('T', ' ')} UTC)" \
            if nxt else "-"
        cells = (str(summary["name"]), summary["expression"], summary["timezone"], str(summary["state"]), shown,
                 *_stops_text(summary["stops"]))
        table.add_row(*(escape(str(cell)) for cell in cells))
    console().print(table)
    raise typer.Exit(EXIT_OK)


@app.command()
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
    schedule_group: GroupOption = None,
    output: OutputOption = None,
) -> None:
    """Delete a schedule (it will not fire again)."""
    mode = output_format(ctx, output)
    group = resource("schedule_group", schedule_group, mode)
    _get_schedule(group, name, mode)  # a missing schedule exits 1 before asking
    if not yes:
        typer.confirm(f"Delete schedule {group}/{name}?", abort=True, err=True)  # stdout stays the output (json)
    try:
        client("scheduler").delete_schedule(GroupName=group, Name=name)
    except ClientError as error:
        if _client_error_code(error) == "ResourceNotFoundException":
            _fail(f"no schedule {name!r} in schedule group {group!r}", EXIT_FAILED, mode)
        _fail(f"could not delete schedule {group}/{name}: {error}", EXIT_FAILED, mode)
    except BotoCoreError as error:
        _fail(f"could not delete schedule {group}/{name}: {error}", EXIT_FAILED, mode)
    if mode.machine:
        print_json({"deleted": name, "group": group})
    else:
        console().print(f"Deleted schedule {group}/{name}.", highlight=False)
    raise typer.Exit(EXIT_OK)


@app.command()
def fire(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    at: Annotated[str | None, typer.Option(
        "--at", help="The scheduled time to fill in: a local wall time in the schedule's time zone "
        "(2026-12-24T20:55) or an instant with offset (2026-12-25T01:55:00Z); default: now. The same time again "
        "is the same request, as a retried delivery is. A time later than now is refused without --force.",
                                           metavar="TIME")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Allow an --at later than now. That firing's request id is the one the real firing will "
        "carry, so the function (which remembers request ids for a day) will take the real firing as a duplicate "
        "and stop nothing then.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Without --at: " + stop_command.YES_HELP)] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for every campaign's result, then show them.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds --wait waits before exit code 3.", metavar="SECONDS")
    ] = 120.0,
    schedule_group: GroupOption = None,
    results_topic_arn: ResultsTopicOption = None,
    output: OutputOption = None,
) -> None:
    """Send the schedule's request now, filled in as Scheduler fills it: try a schedule, or resend one firing.

    A real stop unless created with --dry-run-request; the same --at twice is one request, stopped once. An --at
    in the future is refused (exit 2) unless --force: it would use up the real firing's request id. With --wait,
    exit 130 when interrupted (Ctrl-C), after printing the request id. Without --at (a real stop now, unless the
    schedule sends dry runs) it first shows what it would stop (for an all-active, a dry run of it) and asks for
    the stream id to be typed, unless --yes; without a terminal that is an error (exit 2)."""
    mode = output_format(ctx, output)
    group = resource("schedule_group", schedule_group, mode)
    if at is None and not yes:
        stop_command.require_terminal("schedule fire without --at", mode)
    topic = resource("results_topic_arn", results_topic_arn, mode) if wait or (at is None and not yes) else None
    schedule = _get_schedule(group, name, mode)
    zone = _schedule_zone(schedule)
    scheduled = _scheduled_time(at, zone, mode)
    now = datetime.now(UTC)
    if scheduled > now and not force:
        _fail(f"--at {at} is later than now ({_utc_text(scheduled)} > {_utc_text(now)}): the real firing at that "
              "time carries the same request id, and the function, which remembers request ids for a day, would "
              "take it as a duplicate and stop nothing then. Give a time that has passed, leave --at out (now), or "
              "add --force if that is what you want", EXIT_USAGE, mode)
    target = schedule.get("Target", {})
    arn = str(target.get("Arn", ""))
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "sqs":
        _fail(f"fire sends to SQS queue targets only; schedule {group}/{name} targets {arn or 'nothing'}",
             EXIT_USAGE, mode)
    body = substitute(str(target.get("Input", "")), scheduled_time=scheduled, schedule_arn=str(schedule.get("Arn")))
    try:
        request = check_request(body)
    except InvalidRequest as error:
        _fail(f"the schedule's input is not a valid stop request: {error.message}", EXIT_USAGE, mode)
    except ValueError as error:
        _fail(f"the schedule's input is not a stop request: {error}", EXIT_USAGE, mode)

    region, account, queue_name = parts[3], parts[4], parts[5]
    group_id = (target.get("SqsParameters") or {}).get("MessageGroupId")
    if queue_name.endswith(".fifo") and not group_id:
        _fail(f"schedule {group}/{name} targets a FIFO queue without SqsParameters.MessageGroupId: Scheduler cannot "
             "deliver it either", EXIT_USAGE, mode)
    if at is None and not yes and request.get("dryRun") is not True:
        assert topic is not None
        _confirm_firing(request, lambda body: _send_to_queue(region, account, queue_name, body, group_id, mode),
                        topic, timeout, mode)
    if wait:
        assert topic is not None
        expected = None  # all-active: the summary says how many
        if request.get("campaigns") != "all-active":
            expected = len(request["campaignIds"]) if "campaignIds" in request else 1
        waited = stop_command.send_and_wait(
            topic, request["requestId"], lambda: _send_to_queue(region, account, queue_name, body, group_id, mode),
            expected, timeout, mode, f"Sent [bold]{escape(request['requestId'])}[/]; waiting for results…")
        collected = waited.collected
        code = collected.exit_code()
        if mode.machine:
            print_json({"schedule": f"{group}/{name}", "scheduledTime": _utc_text(scheduled), **(waited.sent or {}),
                        "requestId": request["requestId"], "request": request, "results": collected.results,
                        "summary": collected.summary, "timedOut": collected.timed_out,
                        "interrupted": collected.interrupted, "sent": waited.sent_state, "exitCode": code})
        else:
            stop_command.print_results(collected)
            stop_command.print_interrupted(waited, request["requestId"])
            if collected.timed_out and not collected.results:
                console().print("No result arrived: if this scheduled time was already sent, the function took "
                                "this one as the same request and stopped nothing twice.", highlight=False)
        raise typer.Exit(code)
    sent = _send_to_queue(region, account, queue_name, body, group_id, mode)
    if mode.machine:
        print_json({"schedule": f"{group}/{name}", "scheduledTime": _utc_text(scheduled), **sent,
                    "requestId": request["requestId"], "request": request})
    else:
        console().print(request["requestId"], highlight=False)
    raise typer.Exit(EXIT_OK)


def _confirm_firing(request: dict[str, Any], send: Callable[[str], dict[str, str]], topic: str, timeout: float,
                    mode: OutputFormat) -> None:
    """Before a firing that stops now: what it would stop (an all-active: a dry run of it), then the stream id typed."""
    stream = str(request["streamId"])
    if request.get("campaigns") == "all-active":
        looked = stop_command.preview_all_active(request, lambda body: send(json.dumps(body)), topic, timeout, mode)
    else:
        ids = request["campaignIds"] if "campaignIds" in request else [request["campaignId"]]
        looked = stop_command.Collected(results=[{"campaignId": campaign_id, "outcome": "dry_run"}
                                                 for campaign_id in ids])
    note = "" if request.get("campaigns") != "all-active" else None
    if note is None:
        stop_command.confirm_stream(stream, looked, mode, "fire it now")
    else:
        stop_command.confirm_stream(stream, looked, mode, "fire it now", note=note)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(SCHEDULED_TIME_FORMAT)


def _scheduled_time(text: str | None, zone: ZoneInfo, mode: OutputFormat) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        _fail(f"--at: {text!r} is not a date and time such as 2026-12-24T20:55", EXIT_USAGE, mode)
    value = value.replace(microsecond=0)
    if value.tzinfo is None:
        if not _exists(value, zone):
            _fail(f"--at {text} does not exist in {zone.key}: the clocks skip it", EXIT_USAGE, mode)
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _send_to_queue(region: str, account: str, queue_name: str, body: str, group_id: str | None,
                   mode: OutputFormat) -> dict[str, str]:
    """SendMessage as Scheduler's SQS target does: the input as the body; on a FIFO queue the schedule's message
    group, deduplicated on content (the SHA-256 of the body, as content-based deduplication does)."""
    try:
        sqs = client("sqs")
        if region and sqs.meta.region_name != region:  # a queue in another region than the default one
            sqs = boto3.session.Session().client("sqs", region_name=region)
        queue_url = sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        extra: dict[str, str] = {}
        if queue_name.endswith(".fifo"):
            digest = hashlib.sha256(body.encode()).hexdigest()
            extra = {"MessageGroupId": group_id or "", "MessageDeduplicationId": digest}
        response = sqs.send_message(QueueUrl=queue_url, MessageBody=body, **extra)
    except (BotoCoreError, ClientError) as error:
        _fail(f"could not send to the schedule's queue {queue_name}: {error}", EXIT_FAILED, mode)
    return {"queueUrl": str(queue_url), "messageId": str(response["MessageId"])}
