"""Stop-all over a platform that serves fewer campaigns a page than asked: the real pipeline, the real simulator.

The incident: 22 stoppable campaigns, 10 a page, only 10 stopped, because the next page started at the page
size asked for (100). Here the simulator caps every list page at ``max_page_size`` and the stop-all must still
stop every stoppable campaign of its type exactly once, publish one result for each and dead-letter nothing.
"""

from __future__ import annotations

import math

import pytest
from conftest import STREAM_ID

from devtools.kore_simulator import state as simulator_state
from stop_campaign.listing import MAX_LIST_PAGES
from stop_campaign.models import STOPPABLE_STATUSES

STREAM = "st-paging"
STATUSES = ("Active", "Completed", "Ready", "Paused", "Preparing", "Stopped", "Scheduled", "Rescheduled")
SMS_PER_STATUS = 7  # 56 sms campaigns, 35 stoppable: 4 pages of 10 (the last short), 2 of 25, 1 of 100
VOICE_PER_STATUS = 3  # 24 voice campaigns, 15 stoppable, in the same stream


def campaign_id(campaign_type: str, status: str, number: int) -> str:
    return f"{'cd' if campaign_type == 'sms' else 'cv'}-{status.lower()}-{number}"


@pytest.fixture(params=["page", "skip"], ids=["honours-page", "honours-skip-only"])
def honours(request, monkeypatch) -> str:
    """The simulator honours ``page`` when sent; "skip" makes it a platform that knows only ``skip``, the one
    on which the old paging (skip advanced by the 100 asked for) stopped 10 campaigns of 22."""
    if request.param == "skip":
        parse = simulator_state._parse_list_body

        def skip_only(body, *args, **kwargs):
            return parse({name: value for name, value in body.items() if name != "page"}, *args, **kwargs)

        monkeypatch.setattr(simulator_state, "_parse_list_body", skip_only)
    return request.param


@pytest.fixture
def mixed_stream(kore):
    """Every status, several of each, sms and voice interleaved so that every page mixes them."""
    campaigns: dict[str, tuple[str, str]] = {}  # id -> (type, status)
    for number in range(SMS_PER_STATUS):
        for status in STATUSES:
            for campaign_type in ("sms", "voice"):
                if campaign_type == "voice" and number >= VOICE_PER_STATUS:
                    continue
                cid = campaign_id(campaign_type, status, number)
                kore.add_campaign(STREAM, cid, campaign_type=campaign_type, status=status)
                campaigns[cid] = (campaign_type, status)
    return campaigns


def stoppable(campaigns: dict[str, tuple[str, str]], campaign_type: str) -> set[str]:
    return {cid for cid, (kind, status) in campaigns.items() if kind == campaign_type and status in STOPPABLE_STATUSES}


def list_calls(kore) -> list:
    return [call for call in kore.requests if call.kind == "list"]


def published(stack) -> tuple[list[dict], list[dict]]:
    """The per-campaign results, and the request summaries (if the pipeline publishes them) apart."""
    events = stack.drain_results()
    summaries = [event for event in events if event.get("eventType") == "summary"]
    return [event for event in events if event.get("eventType") != "summary"], summaries


def assert_stopped_exactly(kore, stack, campaigns, campaign_type: str, request_id: str) -> None:
    """Every stoppable campaign of the type stopped once and reported once; nothing else touched or lost."""
    expected = stoppable(campaigns, campaign_type)
    for cid, (_kind, status) in campaigns.items():
        calls = kore.stop_calls(cid)
        if cid in expected:
            assert [(call.kind, call.status) for call in calls] == [(f"stop_{campaign_type}", 200)], cid
            assert kore.campaign_status(STREAM, cid) == "Stopped", cid
        else:
            assert calls == [], cid
            assert kore.campaign_status(STREAM, cid) == status, cid
    assert len(kore.stop_calls()) == len(expected)

    results, summaries = published(stack)
    assert sorted(r["campaignId"] for r in results) == sorted(expected)  # one each: nothing lost, none twice
    assert {(r["outcome"], r["streamId"], r["campaignType"], r["requestId"]) for r in results} == {
        ("stopped", STREAM, campaign_type, request_id)
    }
    assert [(s["campaigns"], s["outcomes"]) for s in summaries] in ([], [(len(expected), {"stopped": len(expected)})])
    assert stack.drain_dead_letters() == []
    assert kore.campaign_status(STREAM_ID, "cd-1") == "Active"  # another stream is never touched


@pytest.mark.parametrize("page_size", [10, 25, 100])
def test_stop_all_stops_every_stoppable_campaign_once_whatever_the_page_size(
    invoke, stack, kore, sqs, mixed_stream, page_size, honours
):
    kore.max_page_size = page_size
    expected = stoppable(mixed_stream, "sms")
    assert len(expected) == 35 and len(mixed_stream) == 80

    request_id = f"stop-all-paged-{page_size}-{honours}"
    response = invoke(sqs({"streamId": STREAM, "campaigns": "all-active", "requestId": request_id}))

    assert response == {"batchItemFailures": []}
    assert_stopped_exactly(kore, stack, mixed_stream, "sms", request_id)
    calls = list_calls(kore)
    pages = math.ceil(len(expected) / page_size)
    assert [(call.body["skip"], call.body["page"]) for call in calls] == [(n * page_size, n + 1) for n in range(pages)]
    assert {(call.status, call.body["limit"], call.body["type"]) for call in calls} == {(200, 100, "sms")}
    assert set(calls[0].body["filters"]["status"]) == set(STOPPABLE_STATUSES)  # never Ready


def test_stop_all_of_voice_campaigns_pages_the_same_way(invoke, stack, kore, sqs, mixed_stream):
    kore.max_page_size = 10
    request = {"streamId": STREAM, "campaigns": "all-active", "campaignType": "voice", "requestId": "stop-voice"}
    assert invoke(sqs(request)) == {"batchItemFailures": []}
    assert_stopped_exactly(kore, stack, mixed_stream, "voice", "stop-voice")
    assert [(call.body["skip"], call.body["page"]) for call in list_calls(kore)] == [(0, 1), (10, 2)]


def test_the_incident_22_stoppable_at_10_a_page_all_22_stopped(invoke, stack, kore, sqs, honours):
    kore.max_page_size = 10
    campaigns = {f"cd-live-{n:02}": ("sms", "Active") for n in range(22)}
    for cid in campaigns:
        kore.add_campaign(STREAM, cid, campaign_type="sms", status="Active")

    assert invoke(sqs({"streamId": STREAM, "campaigns": "all-active", "requestId": "incident"})) == {
        "batchItemFailures": []
    }
    assert_stopped_exactly(kore, stack, campaigns, "sms", "incident")
    assert [(call.body["skip"], call.body["page"]) for call in list_calls(kore)] == [(0, 1), (10, 2), (20, 3)]


def test_dry_run_names_every_stoppable_campaign_across_small_pages_and_stops_nothing(invoke, stack, kore, mixed_stream):
    kore.max_page_size = 10
    response = invoke({"streamId": STREAM, "campaigns": "all-active", "dryRun": True, "requestId": "dry-paged"})
    assert {r["campaignId"] for r in response["results"]} == stoppable(mixed_stream, "sms")
    assert {r["outcome"] for r in published(stack)[0]} == {"dry_run"}
    assert {call.kind for call in kore.requests} == {"list"} and len(list_calls(kore)) == 4


def test_a_stream_longer_than_the_page_limit_fails_loudly_and_stops_nothing(invoke, stack, kore, sqs):
    kore.max_page_size = 1  # MAX_LIST_PAGES + 1 campaigns are then MAX_LIST_PAGES + 1 pages
    for n in range(MAX_LIST_PAGES + 1):
        kore.add_campaign(STREAM, f"cd-many-{n:03}", campaign_type="sms", status="Active")

    assert invoke(sqs({"streamId": STREAM, "campaigns": "all-active", "requestId": "too-long"})) == {
        "batchItemFailures": []
    }
    assert kore.stop_calls() == []  # never half done
    assert [call.body["page"] for call in list_calls(kore)] == list(range(1, MAX_LIST_PAGES + 1))
    [result], _ = published(stack)
    assert (result["outcome"], result["campaignId"], result["error"]["code"]) == ("failed", None, "list_too_long")
    [dead] = stack.drain_dead_letters()
    assert dead["MessageAttributes"]["errorCode"]["StringValue"] == "list_too_long"
