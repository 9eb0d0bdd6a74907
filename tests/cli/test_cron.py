"""EventBridge cron as `schedule` reads it: aws-cron-expression-validator's grammar, cronsim's evaluation, and the
adapter's parts (day numbers 1 = SUN, L alone = SAT, nW, the year) and Scheduler's daylight-saving rule: a wall
time the clocks skip does not fire, one that happens twice fires once (the first). Pure: no AWS."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from campaign_stop_cli.schedule import CronError, next_run, parse_cron

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("55 20 * * ? *", "2026-12-01T21:00", "2026-12-02T20:55"),
    ("55 20 ? * MON-FRI *", "2026-12-04T21:00", "2026-12-07T20:55"),  # Friday evening: Monday next
    ("55 20 ? * 2-6 *", "2026-12-04T21:00", "2026-12-07T20:55"),  # the same in numbers: 2 = MON, 6 = FRI
    ("0 12 ? * 1 *", "2026-12-01T00:00", "2026-12-06T12:00"),  # 1 = SUN
    ("0 12 ? * L *", "2026-12-01T00:00", "2026-12-05T12:00"),  # L alone: the last day of the week, SAT
    ("0 10 ? * 6L *", "2026-12-01T00:00", "2026-12-25T10:00"),  # the last Friday
    ("0 8 ? * 3#2 *", "2026-12-01T09:00", "2026-12-08T08:00"),  # the second Tuesday
    ("0 0 L * ? *", "2027-02-01T00:00", "2027-02-28T00:00"),
    ("0 9 LW * ? *", "2026-01-01T00:00", "2026-01-30T09:00"),  # 31 January 2026 is a Saturday
    ("0 9 15W * ? *", "2026-11-01T00:00", "2026-11-16T09:00"),  # 15 November 2026 is a Sunday: Monday
    ("0 9 1W * ? *", "2026-07-02T00:00", "2026-08-03T09:00"),  # 1 August 2026 is a Saturday: not July
    ("0 0 31 * ? *", "2026-04-01T00:00", "2026-05-31T00:00"),  # April has no 31st
    ("0 0 29 2 ? *", "2026-03-01T00:00", "2028-02-29T00:00"),
    ("0/15 9-10 * * ? *", "2026-12-01T09:50", "2026-12-01T10:00"),
    ("0 0 1 1 ? 2150", "2026-12-01T00:00", "2150-01-01T00:00"),
    ("0 0 1 JAN ? 2026/2", "2026-12-01T00:00", "2028-01-01T00:00"),
])
def test_next_firing(expression: str, after: str, expected: str) -> None:
    assert parse_cron(expression).next_after(at(after), UTC_ZONE) == at(expected)


@pytest.mark.parametrize("expression", ["0 0 31 2 ? *", "0 0 1 1 ? 2020", "0 0 30 2 ? 2027-2030"])
def test_never_fires(expression: str) -> None:
    assert parse_cron(expression).next_after(at("2026-12-01T00:00"), UTC_ZONE) is None


def test_a_skipped_wall_time_does_not_fire() -> None:
    # 14 March 2027 the clocks go from 02:00 to 03:00 in New York: 02:30 fires the next day (06:30 UTC, EDT)
    assert parse_cron("30 2 * * ? *").next_after(at("2027-03-13T12:00"), NEW_YORK) == at("2027-03-15T06:30")


def test_a_repeated_wall_time_fires_once_the_first() -> None:
    # 1 November 2026 01:00-02:00 happens twice in New York: 01:30 EDT (05:30 UTC) fires, 01:30 EST does not
    # (compared in UTC: Python never calls an ambiguous local time equal to a time in another zone)
    cron = parse_cron("30 1 * * ? *")
    first = cron.next_after(at("2026-11-01T00:00"), NEW_YORK)
    assert first is not None and first.astimezone(UTC) == at("2026-11-01T05:30")
    assert cron.next_after(at("2026-11-01T05:30"), NEW_YORK) == at("2026-11-02T06:30")


@pytest.mark.parametrize(("expression", "message"), [
    ("55 20 * * *", "has 6 fields"),
    ("55 20 * * * *", "exactly one of day-of-month and day-of-week must be '?'"),
    ("55 20 ? * ? *", "exactly one of day-of-month and day-of-week must be '?'"),
    ("61 20 * * ? *", "the minutes field: 61 is outside 0-59"),
    ("0 24 * * ? *", "the hours field: 24 is outside 0-23"),
    ("0 0 ? * 8 *", "the day-of-week field: 8 is outside 1-7"),
    ("0 0 1 1 ? 1969", "the year field: 1969 is outside 1970-2199"),
    ("0 0 ? * MON,L *", "the day-of-week field 'MON,L' is not valid"),
    ("0 22-2 * * ? *", "the hours field: the range 22-2 runs backwards"),
])
def test_invalid_expressions(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message.replace("?", r"\?").replace("(", r"\(")):
        parse_cron(expression)


def test_the_expression_as_scheduler_stores_it() -> None:
    assert parse_cron("cron(55  20 * * ? *)").expression == "cron(55 20 * * ? *)"
    assert next_run("cron(55 20 * * ? *)", UTC_ZONE, at("2026-12-01T21:00")) == at("2026-12-02T20:55")
    assert next_run("cron(not one)", UTC_ZONE, at("2026-12-01T21:00")) is None
    assert next_run("rate(5 minutes)", UTC_ZONE, at("2026-12-01T21:00")) is None
