"""When `--wait` has every result of a request (campaign_stop_cli.stop.Collected): no sockets."""

from __future__ import annotations

from typing import Any

from campaign_stop_cli.stop import Collected


def _result(stream_id: str, campaign_id: str, outcome: str = "resumed") -> dict[str, Any]:
    return {"resultId": f"r-{stream_id}-{campaign_id}", "streamId": stream_id, "campaignId": campaign_id,
            "campaignType": "sms", "outcome": outcome}


def _summary(stream_id: str, **outcomes: int) -> dict[str, Any]:
    return {"resultId": f"s-{stream_id}", "eventType": "summary", "streamId": stream_id, "campaignType": "sms",
            "campaigns": sum(outcomes.values()), "outcomes": outcomes}


def test_one_part_summed_up_does_not_end_the_wait_while_another_part_has_results_but_no_summary() -> None:
    collected = Collected()
    for event in [_result("st-1", "cd-1"), _summary("st-1", resumed=1), _result("st-2", "cd-7")]:
        collected.add(event, None)
    assert not collected.complete(None)  # st-2's summary is still to come

    collected.add(_summary("st-2", resumed=2), None)
    assert not collected.complete(None)  # it counts two campaigns: one result is still to come
    collected.add(_result("st-2", "cd-8"), None)
    assert collected.complete(None) and collected.total(None) == 3


def test_a_known_number_of_campaigns_is_waited_for_even_when_the_summaries_so_far_add_up() -> None:
    collected = Collected()
    for event in [_result("st-1", "cd-1"), _summary("st-1", resumed=1)]:
        collected.add(event, None)
    assert collected.complete(None) and not collected.complete(2)


def test_a_stop_ends_with_its_summary_and_all_the_results_it_counts() -> None:
    collected = Collected()
    collected.add(_summary("st-1", stopped=1, failed=1), None)
    collected.add(_result("st-1", "cd-1", "stopped"), None)
    assert not collected.complete(2)
    collected.add(_result("st-1", "cd-2", "failed"), None)
    collected.add(_result("st-1", "cd-2", "failed"), None)  # a second SNS delivery is one result
    assert collected.complete(2) and len(collected.results) == 2
