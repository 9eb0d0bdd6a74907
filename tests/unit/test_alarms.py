"""Kill switches: which alarm changes stop what, decided from the alarm map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stop_campaign.domain.alarms import UnmappedAlarm, requests_for_alarm, should_stop
from stop_campaign.domain.intake import AlarmStateChange
from stop_campaign.domain.models import CampaignType, RequestRejected, Source

ALARM_MAP = json.loads((Path(__file__).resolve().parents[2] / "events" / "alarm_map.json").read_text())


def change(name: str = "checkout-sms-error-rate", state: str = "ALARM", at: str = "2026-11-28T10:05:00.000+0000"):
    return AlarmStateChange(
        alarm_name=name, alarm_arn=f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}", state=state,
        changed_at=at, reason="Threshold Crossed", received_at="2026-11-28T10:05:01.000Z",
    )


@pytest.mark.parametrize(("state", "stops"), [("ALARM", True), ("OK", False), ("INSUFFICIENT_DATA", False)])
def test_only_a_change_into_alarm_stops(state, stops):
    assert should_stop(change(state=state)) is stops


def test_exact_name_maps_to_its_campaigns_with_the_alarm_as_who_and_why():
    [request] = requests_for_alarm(change(), ALARM_MAP)
    assert request.campaign_ids == ("cd-1", "cd-2")
    assert request.source is Source.ALARM
    assert request.request_id == "alarm:checkout-sms-error-rate:2026-11-28T10:05:00.000+0000"
    assert request.requested_by == "cloudwatch-alarm:checkout-sms-error-rate"
    assert request.reason == "CloudWatch alarm checkout-sms-error-rate entered ALARM: Threshold Crossed"
    assert request.requested_at == "2026-11-28T10:05:00.000+0000"
    assert request.alarm_arn.endswith(":alarm:checkout-sms-error-rate")


def test_prefix_maps_to_all_active():
    [request] = requests_for_alarm(change("sms-stop-keyword-storm"), ALARM_MAP)
    assert (request.all_active, request.campaign_type) == (True, CampaignType.SMS)


def test_exact_beats_prefix_and_longest_prefix_wins():
    alarm_map = {
        "sms-*": [{"streamId": "st-1", "campaignId": "cd-short"}],
        "sms-stop-*": [{"streamId": "st-1", "campaignId": "cd-long"}],
        "sms-stop-keyword-storm": [{"streamId": "st-1", "campaignId": "cd-exact"}],
    }
    assert requests_for_alarm(change("sms-stop-keyword-storm"), alarm_map)[0].campaign_ids == ("cd-exact",)
    assert requests_for_alarm(change("sms-stop-other"), alarm_map)[0].campaign_ids == ("cd-long",)
    assert requests_for_alarm(change("sms-other"), alarm_map)[0].campaign_ids == ("cd-short",)


def test_same_alarm_firing_later_is_a_new_request():
    first = requests_for_alarm(change(at="2026-11-28T10:05:00.000+0000"), ALARM_MAP)[0]
    again = requests_for_alarm(change(at="2026-11-28T11:40:00.000+0000"), ALARM_MAP)[0]
    assert first.request_id != again.request_id


def test_unmapped_alarm_is_rejected_naming_it():
    with pytest.raises(UnmappedAlarm, match="'billing-latency' has no entry in the alarm map"):
        requests_for_alarm(change("billing-latency"), ALARM_MAP)


@pytest.mark.parametrize(
    "entry", [[{"streamId": "st/1", "campaignId": "cd-1"}], [{"streamId": "st-1"}], "cd-1", [["st-1"]]]
)
def test_a_broken_map_entry_is_rejected(entry):
    with pytest.raises(RequestRejected) as raised:
        requests_for_alarm(change(), {"checkout-sms-error-rate": entry})
    assert raised.value.code == "invalid_alarm_map"


def test_map_entries_cannot_override_who_and_why():
    entry = {"streamId": "st-1", "campaignId": "cd-1", "requestId": "forged", "requestedBy": "someone-else"}
    [request] = requests_for_alarm(change(), {"checkout-sms-error-rate": entry})
    assert request.request_id.startswith("alarm:") and request.requested_by.startswith("cloudwatch-alarm:")
