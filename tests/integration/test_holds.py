"""Holds (an alarm-map entry with "hold": true), through the real handler: moto's server as AWS (the holds table,
CloudWatch's alarms), the Kore.ai simulator (campaigns restarted by hand with ``restart``).

How we know every re-stop ended: each test reads back what SNS delivered (the results subscriber queue) and the
dead-letter queue; the simulator's log says exactly which calls were made (a hold check lists, it never asks a
campaign's status).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import STREAM_ID

from devtools.kore_simulator import KoreSimulator
from devtools.local_stack import LocalStack
from stop_campaign.adapters.holds import HoldStore

ALARM = "kill-checkout"
ALARM_ARN = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}"
FIRED_AT = "2026-11-28T10:05:00.000+0000"
HOLD_OF = f"alarm:{ALARM}:{FIRED_AT}"
CHECK_AT = "2026-11-28T10:06:00Z"
CHECK_EVENT = json.loads((Path(__file__).resolve().parents[2] / "events" / "direct_hold_check.json").read_text())


def alarm_event(state: str = "ALARM", at: str = FIRED_AT, name: str = ALARM) -> dict[str, Any]:
    return {"version": "0", "id": f"evt-{state}-{at}", "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-28T10:05:00Z",
            "region": "us-east-1", "resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"],
            "detail": {"alarmName": name, "state": {"value": state, "reason": "test", "timestamp": at}}}


def check(at: str = CHECK_AT) -> dict[str, Any]:
    """The sample hold check (events/direct_hold_check.json), at ``at``."""
    return {**CHECK_EVENT, "at": at}


def set_alarm(stack: LocalStack, state: str, name: str = ALARM) -> None:
    """The alarm itself, on moto's CloudWatch, in ``state`` (what the hold check asks DescribeAlarms about)."""
    cloudwatch = stack.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName=name, Namespace="Checkout", MetricName="SmsErrors", Statistic="Sum",
                                Period=60, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def calls(kore: KoreSimulator) -> list[tuple[str | None, str, int]]:
    return [(request.kind, request.path.rsplit("/", 1)[-1], request.status) for request in kore.requests]


def holds(stack: LocalStack) -> HoldStore:
    return HoldStore(stack.holds_table_name, lambda: stack.client("dynamodb"))


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


@pytest.fixture
def held(invoke, stack: LocalStack, kore: KoreSimulator) -> KoreSimulator:
    """The alarm fired with a hold on cd-1 and cd-2 (both stopped by it); results and the call log emptied."""
    stack.put_alarm_map({ALARM: [{"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2"], "hold": True}]})
    set_alarm(stack, "ALARM")
    invoke(alarm_event())
    assert {result["campaignId"]: result["outcome"] for result in stack.drain_results()} == {
        "cd-1": "stopped", "cd-2": "stopped"}
    stack.drain_summaries()
    kore.reset_log()
    return kore


def test_the_alarm_request_records_its_hold(held, stack):
    (item,) = holds(stack).items()
    assert item["requestId"] == HOLD_OF and item["status"] == "active"
    assert item["alarmName"] == ALARM and item["alarmArn"] == ALARM_ARN and item["alarmChangedAt"] == FIRED_AT
    assert item["campaigns"] == {f"{STREAM_ID}|sms||cd-1", f"{STREAM_ID}|sms||cd-2"}
    assert item["scopes"] == {f"{STREAM_ID}|sms||ids"}
    assert json.loads(item["producer"])["kind"] == "alarm"


def test_a_restarted_held_campaign_is_stopped_again_with_hold_of_and_another_is_left_alone(invoke, held, stack):
    held.restart(STREAM_ID, "cd-1")
    held.restart(STREAM_ID, "cd-3")  # not held: someone may run it

    answer = invoke(check())

    # One list call for the stream (never a status call per campaign), then the one held campaign found running.
    assert calls(held) == [("list", "getAllCampaignDetails", 200), ("stop_sms", "cd-1", 200)]
    result = only(stack.drain_results())
    assert (result["outcome"], result["campaignId"], result["holdOf"]) == ("stopped", "cd-1", HOLD_OF)
    assert result["requestId"] == f"hold:{HOLD_OF}:{CHECK_AT}"
    assert result["source"] == "alarm" and result["alarmArn"] == ALARM_ARN
    assert result["requestedBy"] == f"hold-check:{ALARM}"
    assert result["producer"]["kind"] == "alarm"  # the hold's, as its alarm request had it
    assert answer["results"] == [result]
    assert answer["holds"] == [{"holdOf": HOLD_OF, "alarmName": ALARM, "state": "held",
                                "requestId": result["requestId"], "restopped": ["cd-1"]}]
    assert (held.campaign_status(STREAM_ID, "cd-1"), held.campaign_status(STREAM_ID, "cd-3")) == ("Stopped", "Active")
    assert stack.drain_dead_letters() == []


def test_a_repeated_check_makes_no_second_call_and_no_second_result(invoke, held, stack):
    held.restart(STREAM_ID, "cd-2")
    first = invoke(check())
    held.reset_log()
    again = invoke(check())  # the same scheduled check, delivered twice

    assert calls(held) == []  # its list page and its stop were kept by the first
    assert [result["resultId"] for result in again["results"]] == [result["resultId"] for result in first["results"]]
    assert only(stack.drain_results())["campaignId"] == "cd-2"


def test_a_later_check_stops_a_campaign_restarted_again(invoke, held, stack):
    held.restart(STREAM_ID, "cd-1")
    invoke(check())
    held.restart(STREAM_ID, "cd-1")
    invoke(check("2026-11-28T10:07:00Z"))
    assert [kind for kind, _, _ in calls(held)].count("stop_sms") == 2
    assert [result["requestId"] for result in stack.drain_results()] == [
        f"hold:{HOLD_OF}:{CHECK_AT}", f"hold:{HOLD_OF}:2026-11-28T10:07:00Z"]


def test_nothing_running_nothing_stopped(invoke, held, stack):
    answer = invoke(check())
    assert calls(held) == [("list", "getAllCampaignDetails", 200)]
    assert stack.drain_results() == [] and answer["holds"][0]["restopped"] == []


def test_no_restop_after_the_alarm_leaves_alarm(invoke, held, stack):
    set_alarm(stack, "OK")
    held.restart(STREAM_ID, "cd-1")

    answer = invoke(check())

    assert calls(held) == []
    assert answer["holds"] == [{"holdOf": HOLD_OF, "alarmName": ALARM, "state": "ended",
                                "reason": f"alarm {ALARM} is OK"}]
    (item,) = holds(stack).items(only_active=False)
    assert (item["status"], item["endReason"]) == ("ended", f"alarm {ALARM} is OK")
    assert "expiresAt" in item
    assert invoke(check("2026-11-28T10:07:00Z"))["holds"] == []  # ended: never checked again
    assert calls(held) == [] and stack.drain_results() == []
    assert held.campaign_status(STREAM_ID, "cd-1") == "Active"


def test_a_deleted_alarm_ends_its_hold(invoke, held, stack):
    stack.client("cloudwatch").delete_alarms(AlarmNames=[ALARM])
    assert invoke(check())["holds"][0]["reason"] == f"alarm {ALARM} no longer exists"
    assert holds(stack).active() == []


def test_the_alarm_leaving_alarm_ends_the_hold_when_its_event_arrives(invoke, held, stack):
    set_alarm(stack, "OK")
    answer = invoke(alarm_event("OK", "2026-11-28T10:09:00.000+0000"))
    assert answer["results"][0]["outcome"] == "ignored"  # as before: the event still gets its result
    assert holds(stack).active() == []
    held.restart(STREAM_ID, "cd-1")
    invoke(check())
    assert calls(held) == []


def test_an_ok_event_the_alarm_itself_contradicts_ends_nothing(invoke, held, stack):
    invoke(alarm_event("OK", "2026-11-28T10:09:00.000+0000"))  # moto's alarm is still in ALARM
    assert [hold.hold_of for hold in holds(stack).active()] == [HOLD_OF]


def test_a_late_ok_of_an_earlier_episode_ends_nothing(invoke, held, stack):
    set_alarm(stack, "OK")
    invoke(alarm_event("OK", "2026-11-28T09:59:00.000+0000"))  # before the change that began the hold
    assert [hold.hold_of for hold in holds(stack).active()] == [HOLD_OF]


def test_no_restop_after_release(invoke, held, stack):
    store = holds(stack)
    assert store.release(HOLD_OF) is True
    assert store.release(HOLD_OF) is False  # idempotent
    assert store.release("alarm:no-such:hold") is False  # an unknown hold is no error
    held.restart(STREAM_ID, "cd-1")
    assert invoke(check())["holds"] == []
    assert calls(held) == [] and stack.drain_results() == []
    (item,) = store.items(only_active=False)
    assert item["status"] == "released"


def test_the_alarm_firing_again_while_released_begins_a_new_hold(invoke, held, stack):
    holds(stack).release(HOLD_OF)
    invoke(alarm_event(at="2026-11-28T11:00:00.000+0000"))
    assert [hold.hold_of for hold in holds(stack).active()] == [f"alarm:{ALARM}:2026-11-28T11:00:00.000+0000"]


def test_all_active_holds_what_its_request_stopped_not_what_started_later(invoke, stack, kore):
    stack.put_alarm_map({ALARM: [{"streamId": STREAM_ID, "campaigns": "all-active", "hold": True}]})
    set_alarm(stack, "ALARM")
    invoke(alarm_event())
    stopped = sorted(result["campaignId"] for result in stack.drain_results())
    assert stopped == ["cd-1", "cd-2", "cd-3", "cd-4", "cd-5"]  # sms only: the voice campaign is another type
    kore.add_campaign(STREAM_ID, "cd-new")  # started after the alarm: not the alarm's to hold
    kore.restart(STREAM_ID, "cd-4")
    kore.reset_log()

    invoke(check())

    assert calls(kore) == [("list", "getAllCampaignDetails", 200), ("stop_sms", "cd-4", 200)]
    assert only(stack.drain_results())["holdOf"] == HOLD_OF
    assert kore.campaign_status(STREAM_ID, "cd-new") == "Active"
    (item,) = holds(stack).items()
    assert item["scopes"] == {f"{STREAM_ID}|sms||all-active"}


def test_a_restop_that_fails_ends_failed_and_in_the_dead_letter_queue(invoke, held, stack, monkeypatch, cold_start):
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    cold_start()
    held.restart(STREAM_ID, "cd-1")
    held.inject("stop_sms", status=503, times=10)

    invoke(check())

    result = only(stack.drain_results())
    assert (result["outcome"], result["holdOf"], result["error"]["retryable"]) == ("failed", HOLD_OF, True)
    letter = only(stack.drain_dead_letters())
    # Kept as a plain stop request: redriven, it stops that campaign.
    assert json.loads(letter["Body"]) | {"reason": None} == {
        "streamId": STREAM_ID, "campaignIds": ["cd-1"], "campaignType": "sms", "requestId": result["requestId"],
        "reason": None, "requestedBy": f"hold-check:{ALARM}"}


def test_entries_without_hold_and_dry_runs_hold_nothing(invoke, stack, kore):
    stack.put_alarm_map({ALARM: [{"streamId": STREAM_ID, "campaignIds": ["cd-1"]},
                                 {"streamId": STREAM_ID, "campaignIds": ["cd-2"], "hold": True, "dryRun": True}]})
    set_alarm(stack, "ALARM")
    invoke(alarm_event())
    assert holds(stack).items(only_active=False) == []
    kore.restart(STREAM_ID, "cd-1")
    kore.reset_log()
    assert invoke(check()) == {"holds": [], "results": []}
    assert calls(kore) == []


def test_a_hold_check_without_a_holds_table_says_so(invoke, monkeypatch):
    monkeypatch.setenv("HOLDS_TABLE", "")
    answer = invoke(check())
    assert answer["holds"] == [] and "HOLDS_TABLE" in answer["note"]


def test_the_check_is_paced_by_the_accounts_budget(invoke, stack, kore, monkeypatch, cold_start):
    monkeypatch.setenv("KORE_RATE_LIMIT", "2/60")  # the alarm's two stops take the account's whole budget
    cold_start()
    stack.put_alarm_map({ALARM: [{"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2"], "hold": True}]})
    set_alarm(stack, "ALARM")
    invoke(alarm_event())
    stack.drain_results()
    kore.restart(STREAM_ID, "cd-1")
    kore.reset_log()

    answer = invoke(check(), timeout_seconds=8)

    assert calls(kore) == []  # no list call before the budget allows one: the next check lists
    assert answer["holds"] == [{"holdOf": HOLD_OF, "alarmName": ALARM, "state": "held",
                                "requestId": f"hold:{HOLD_OF}:{CHECK_AT}", "restopped": []}]
    assert stack.drain_results() == [] and stack.drain_dead_letters() == []
    assert [hold.hold_of for hold in holds(stack).active()] == [HOLD_OF]


def test_a_held_campaign_the_policy_no_longer_lets_the_alarm_stop_is_left_alone(invoke, held, stack, cold_start):
    stack.put_producer_policy({"producers": {"kill-switches": {
        "senders": ["alarm:123456789012"], "allow": [{"streamId": STREAM_ID, "campaignIds": ["cd-2"]}]}},
        "otherwise": "deny"})
    cold_start()  # the policy as it is now, not as a container cached it
    held.restart(STREAM_ID, "cd-1")
    held.restart(STREAM_ID, "cd-2")

    invoke(check())

    result = only(stack.drain_results())
    assert (result["campaignId"], result["holdOf"]) == ("cd-2", HOLD_OF)
    assert result["producer"] == {"kind": "alarm", "id": "123456789012", "name": "kill-switches"}
    assert held.campaign_status(STREAM_ID, "cd-1") == "Active"
    assert stack.drain_dead_letters() == []


def test_a_check_without_its_schedules_time_is_named_by_its_minute(invoke, held, stack):
    held.restart(STREAM_ID, "cd-1")
    invoke({"action": "hold-check"})  # as `aws lambda invoke` would send it by hand
    request_id = only(stack.drain_results())["requestId"]
    assert re.fullmatch(rf"hold:{re.escape(HOLD_OF)}:\d{{4}}-\d\d-\d\dT\d\d:\d\d:00Z", request_id), request_id


def test_a_resume_of_the_alarm_request_releases_its_hold_before_starting_its_campaigns(invoke, held, stack):
    invoke({"action": "resume", "resumeOf": HOLD_OF, "requestId": "req-undo"})

    results = stack.drain_results()
    assert sorted((result["campaignId"], result["outcome"]) for result in results) == [
        ("cd-1", "resumed"), ("cd-2", "resumed")]
    assert [call for call in calls(held) if call[0] and call[0].startswith("start")] != []
    (item,) = holds(stack).items(only_active=False)
    assert item["status"] == "released"  # the resume's, before its first start
    held.reset_log()
    assert invoke(check())["holds"] == []  # the check leaves the resumed campaigns running
    assert calls(held) == []
    assert (held.campaign_status(STREAM_ID, "cd-1"), held.campaign_status(STREAM_ID, "cd-2")) == ("Active", "Active")
    assert stack.drain_dead_letters() == []
