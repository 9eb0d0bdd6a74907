"""Paging through Get All Campaigns: ListPaging talking to pure models of platforms that page differently.

Each test is a whole conversation: ListPaging asks for a page, a platform model (a function from the request's
paging fields to the response's ``data``) answers, until ListPaging says it is done or refuses to go on.
ListPaging may ask for several pages at once (once page 1 told how long the list is); the conversation answers
them in page order or, to stand for concurrent reads, in reverse. No sockets, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from stop_campaign.domain.listing import MAX_LIST_PAGES, ListPaging, read_page, unusable_items
from stop_campaign.domain.models import STOPPABLE_STATUSES, PermanentStopError

ASKED = 100  # what the stopper asks for (stopper.LIST_PAGE_SIZE)
ALL_STATUSES = ("Active", "Completed", "Ready", "Paused", "Preparing", "Stopped", "Scheduled", "Rescheduled")
REPORTS = ("hasMore", "totalPages", "totalResults")

Platform = Callable[[dict[str, int]], dict[str, Any]]


def stream(count: int, prefix: str = "cd") -> list[dict[str, Any]]:
    """``count`` campaigns cycling through every status (3 of every 8 not stoppable by us, Ready among them)."""
    return [{"id": f"{prefix}-{n:04}", "status": ALL_STATUSES[n % len(ALL_STATUSES)]} for n in range(count)]


def stoppable(campaigns: Iterable[Any]) -> list[str]:
    """Ids a stop-all must find, first-seen order, each once."""
    found: dict[str, None] = {}
    for campaign in campaigns:
        if isinstance(campaign, dict) and campaign.get("status") in STOPPABLE_STATUSES:
            found.setdefault(campaign["id"], None)
    return list(found)


def listed(campaigns: list[Any], filtered: bool) -> list[Any]:
    if not filtered:
        return campaigns
    return [c for c in campaigns if isinstance(c, dict) and c.get("status") in STOPPABLE_STATUSES]


def platform(
    campaigns: list[Any],
    *,
    page_size: int = ASKED,
    honours: str = "skip",
    reports: Iterable[str] = REPORTS,
    echo_limit: bool = False,
    filtered: bool = False,
) -> Platform:
    """A Get All Campaigns that serves at most ``page_size`` items a page whatever ``limit`` asks.

    honours: "skip" (starts at ``skip``), "page" (starts at (page - 1) * its own page size) or "nothing"
    (serves page 1 for ever). reports: which of hasMore/totalPages/totalResults it sends. echo_limit: it
    answers ``limit`` (and computes totalPages) with the asked limit, not with what it served. filtered: it
    applies the status filter the stopper sends (only our stoppable statuses), else it lists every status.
    """
    reports = frozenset(reports)
    campaigns = listed(campaigns, filtered)

    def answer(request: dict[str, int]) -> dict[str, Any]:
        served = min(request["limit"], page_size)
        start = {"skip": request["skip"], "page": (request["page"] - 1) * served, "nothing": 0}[honours]
        results = campaigns[start : start + served]
        said_limit = request["limit"] if echo_limit else served
        data: dict[str, Any] = {"results": results, "skip": start, "limit": said_limit}
        if "hasMore" in reports:
            data["hasMore"] = start + len(results) < len(campaigns)
        if "totalPages" in reports:
            data["totalPages"] = math.ceil(len(campaigns) / said_limit)
        if "totalResults" in reports:
            data["totalResults"] = len(campaigns)
        return data

    return answer


def converse(
    answer: Platform, paging: ListPaging | None = None, bound: int = 1000, reverse: bool = False
) -> tuple[ListPaging, list[dict]]:
    """Run the conversation to its end; the requests ListPaging made, in order. ``reverse``: the pages asked for
    at once are answered last first (reads that run concurrently come back in any order)."""
    paging = paging or ListPaging(ASKED)
    requests: list[dict[str, int]] = []
    while not paging.done:
        batch = paging.requests()
        assert batch, "ListPaging neither done nor asking for a page"
        requests.extend(batch)
        assert len(requests) <= bound, "ListPaging never stopped asking"
        for request in reversed(batch) if reverse else batch:
            paging.take(request, read_page(answer(request)))
    return paging, requests


def consecutive(requests: list[dict[str, int]], page_size: int) -> list[dict[str, int]]:
    return [{"limit": ASKED, "skip": n * page_size, "page": n + 1} for n in range(len(requests))]


# -- (a) (b) (c): whatever the platform pages by and whatever page size it keeps to ------------------------


@pytest.mark.parametrize("filtered", [False, True], ids=["status-filter-ignored", "status-filter-applied"])
@pytest.mark.parametrize("honours", ["skip", "page"])
@pytest.mark.parametrize("page_size", [10, 25, 100])
def test_every_stoppable_campaign_is_found_whichever_paging_and_page_size(honours, page_size, filtered):
    campaigns = stream(230)
    paging, requests = converse(platform(campaigns, page_size=page_size, honours=honours, filtered=filtered))
    assert paging.campaign_ids == stoppable(campaigns)
    assert len(paging.campaign_ids) == 143  # 5 of every 8: not Completed, Ready or Stopped
    assert requests == consecutive(requests, page_size)
    assert len(requests) == math.ceil(len(listed(campaigns, filtered)) / page_size)


def test_the_incident_22_stoppable_10_a_page_all_22_found():
    campaigns = [{"id": f"cd-{n}", "status": "Active"} for n in range(22)]
    for honours in ("skip", "page"):
        paging, requests = converse(platform(campaigns, page_size=10, honours=honours))
        assert paging.campaign_ids == [f"cd-{n}" for n in range(22)]
        assert [(r["skip"], r["page"]) for r in requests] == [(0, 1), (10, 2), (20, 3)]


@pytest.mark.parametrize("honours", ["skip", "page"])
def test_a_platform_that_echoes_the_asked_limit_while_serving_10(honours):
    campaigns = stream(95)
    answer = platform(campaigns, page_size=10, honours=honours, echo_limit=True)
    assert answer({"limit": ASKED, "skip": 0, "page": 1})["limit"] == 100  # it says 100, sends 10
    paging, requests = converse(answer)
    assert paging.campaign_ids == stoppable(campaigns)
    assert requests == consecutive(requests, 10) and len(requests) == 10


def test_echoed_limit_without_has_more_follows_total_results_not_a_total_pages_from_the_asked_limit():
    campaigns = [{"id": f"cd-{n}", "status": "Active"} for n in range(22)]
    answer = platform(campaigns, page_size=10, echo_limit=True, reports=("totalPages", "totalResults"))
    assert answer({"limit": ASKED, "skip": 0, "page": 1})["totalPages"] == 1
    paging, _ = converse(answer)
    assert paging.campaign_ids == stoppable(campaigns)


# -- (d) (e) (f): whatever the platform says about the pages left ------------------------------------------


@pytest.mark.parametrize("filtered", [False, True], ids=["status-filter-ignored", "status-filter-applied"])
@pytest.mark.parametrize("honours", ["skip", "page"])
@pytest.mark.parametrize("page_size", [10, 25])
@pytest.mark.parametrize("reports", [("totalPages",), ("totalResults",)], ids=["totalPages-only", "totalResults-only"])
def test_the_end_of_the_list_without_has_more(honours, page_size, reports, filtered):
    campaigns = stream(107)
    paging, requests = converse(
        platform(campaigns, page_size=page_size, honours=honours, reports=reports, filtered=filtered)
    )
    assert paging.campaign_ids == stoppable(campaigns)
    assert requests == consecutive(requests, page_size)
    assert len(requests) == math.ceil(len(listed(campaigns, filtered)) / page_size)


@pytest.mark.parametrize("filtered", [False, True], ids=["status-filter-ignored", "status-filter-applied"])
@pytest.mark.parametrize("page_size", [10, 25])
def test_a_skip_platform_that_says_nothing_is_read_to_an_empty_page(page_size, filtered):
    campaigns = stream(107)
    served = len(listed(campaigns, filtered))  # 107, or 67 stoppable
    paging, requests = converse(platform(campaigns, page_size=page_size, reports=(), filtered=filtered))
    assert paging.campaign_ids == stoppable(campaigns)
    full_pages = math.ceil(served / page_size)
    assert requests[:full_pages] == consecutive(requests[:full_pages], page_size)
    assert [r["skip"] for r in requests[full_pages:]] == [served]  # one more request: the empty page


@pytest.mark.parametrize("filtered", [False, True], ids=["status-filter-ignored", "status-filter-applied"])
@pytest.mark.parametrize("page_size", [10, 25])
def test_a_page_platform_that_says_nothing_is_read_to_an_empty_page(page_size, filtered):
    campaigns = stream(107)
    served = len(listed(campaigns, filtered))
    paging, requests = converse(platform(campaigns, page_size=page_size, honours="page", reports=(), filtered=filtered))
    assert paging.campaign_ids == stoppable(campaigns)
    assert [r["page"] for r in requests] == list(range(1, math.ceil(served / page_size) + 2))


@pytest.mark.parametrize("honours", ["skip", "page"])
def test_a_list_that_fills_its_last_page_exactly_and_says_nothing_ends_on_the_empty_page(honours):
    campaigns = stream(30)
    paging, requests = converse(platform(campaigns, page_size=10, honours=honours, reports=()))
    assert paging.campaign_ids == stoppable(campaigns)
    assert requests == consecutive(requests, 10) and len(requests) == 4


def test_has_more_is_believed_over_a_total_pages_computed_from_the_asked_limit():
    campaigns = stream(60)
    paging, requests = converse(platform(campaigns, page_size=10, echo_limit=True))  # totalPages says 1
    assert paging.campaign_ids == stoppable(campaigns) and len(requests) == 6


@pytest.mark.parametrize("reports", [REPORTS, ("totalPages",), ("totalResults",), ()])
def test_an_empty_stream_is_one_request(reports):
    paging, requests = converse(platform([], page_size=10, reports=reports))
    assert paging.campaign_ids == [] and requests == [{"limit": ASKED, "skip": 0, "page": 1}]


# -- (g) a platform that ignores both skip and page --------------------------------------------------------


@pytest.mark.parametrize("reports", [REPORTS, ("hasMore",), ()])
def test_page_one_for_ever_fails_the_list_on_the_second_page(reports):
    campaigns = [{"id": f"cd-{n}", "status": "Active"} for n in range(40)]
    answer = platform(campaigns, page_size=10, honours="nothing", reports=reports)
    with pytest.raises(PermanentStopError) as raised:
        converse(answer)
    assert raised.value.code == "list_failed"
    assert "does not advance" in raised.value.message


def test_page_one_for_ever_with_campaigns_we_do_not_stop_on_it_fails_the_list_on_the_second_page():
    campaigns = stream(40)  # Completed, Ready and Stopped among the first 10
    answer = platform(campaigns, page_size=10, honours="nothing")
    requests: list[dict[str, int]] = []

    def counted(request: dict[str, int]) -> dict[str, Any]:
        requests.append(request)
        return answer(request)

    with pytest.raises(PermanentStopError) as raised:
        converse(counted)
    assert (raised.value.code, [r["page"] for r in requests]) == ("list_failed", [1, 2])  # pages 2-4 asked at once


# -- (h) too many pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("honours", ["skip", "page"])
@pytest.mark.parametrize("reports", [REPORTS, ("hasMore",)], ids=["counted", "hasMore-only"])
def test_more_than_max_list_pages_fails_loudly_and_never_half_done(honours, reports):
    campaigns = [{"id": f"cd-{n:05}", "status": "Active"} for n in range(MAX_LIST_PAGES * 10 + 1)]
    requests: list[dict[str, int]] = []
    answer = platform(campaigns, page_size=10, honours=honours, reports=reports)

    def counted(request: dict[str, int]) -> dict[str, Any]:
        requests.append(request)
        return answer(request)

    paging = ListPaging(ASKED)
    with pytest.raises(PermanentStopError) as raised:
        converse(counted, paging)
    assert raised.value.code == "list_too_long"
    assert f"more than {MAX_LIST_PAGES} pages" in raised.value.message
    # Told by page 1, it fails there; page by page, at the last page allowed: never a 51st call. Not counted,
    # nothing may be stopped before the end (the stopper holds the stops), so it is never half done.
    assert len(requests) == (1 if reports == REPORTS else MAX_LIST_PAGES)
    assert not paging.counted  # no stop may have started


@pytest.mark.parametrize("reports", [REPORTS, ("totalPages",), ("totalResults",)])
def test_exactly_max_list_pages_is_read_in_full(reports):
    campaigns = [{"id": f"cd-{n:05}", "status": "Active"} for n in range(MAX_LIST_PAGES * 10)]
    paging, requests = converse(platform(campaigns, page_size=10, reports=reports))
    assert paging.campaign_ids == stoppable(campaigns) and len(requests) == MAX_LIST_PAGES


def test_the_page_limit_is_a_parameter():
    campaigns = stream(40)
    with pytest.raises(PermanentStopError, match="list_too_long"):
        converse(platform(campaigns, page_size=10), ListPaging(ASKED, max_pages=3))
    paging, _ = converse(platform(campaigns, page_size=10), ListPaging(ASKED, max_pages=4))
    assert paging.campaign_ids == stoppable(campaigns)


# -- (i) duplicates and (j) unusable ids ------------------------------------------------------------------


@pytest.mark.parametrize("honours", ["skip", "page"])
def test_a_campaign_listed_twice_is_found_once_in_first_seen_order(honours):
    # A campaign created mid-list pushes the rest along: the last of one page comes again first on the next.
    campaigns = stream(25)
    listed = campaigns[:10] + campaigns[9:20] + campaigns[3:5] + campaigns[19:]
    paging, requests = converse(platform(listed, page_size=10, honours=honours))
    assert paging.campaign_ids == stoppable(campaigns)
    assert len(requests) == math.ceil(len(listed) / 10)


BAD_ITEMS = [
    None,
    "cd-string",
    ["cd-list"],
    {"status": "Active"},
    {"id": None, "status": "Active"},
    {"id": 1234, "status": "Active"},
    {"id": "", "status": "Active"},
    {"id": "../cd-1", "status": "Active"},
    {"id": "cd/1", "status": "Active"},
    {"id": "cd 1", "status": "Active"},
    {"id": "cd-1\n", "status": "Active"},
    {"id": "x" * 129, "status": "Active"},
]


@pytest.mark.parametrize("honours", ["skip", "page"])
def test_unusable_ids_are_skipped_and_every_usable_one_found(honours):
    good = stream(28)
    listed: list[Any] = []
    for index, campaign in enumerate(good):  # one bad item after every few good ones, across every page
        listed.append(campaign)
        if index % 3 == 2:
            listed.append(BAD_ITEMS[(index // 3) % len(BAD_ITEMS)])
    assert len(listed) > 30
    paging, requests = converse(platform(listed, page_size=10, honours=honours))
    assert paging.campaign_ids == stoppable(good)
    assert requests == consecutive(requests, 10)


def test_a_status_we_do_not_stop_is_not_listed_even_if_the_platform_calls_it_stoppable():
    campaigns = [{"id": f"cd-{status.lower()}", "status": status} for status in ALL_STATUSES]
    campaigns += [{"id": "cd-lower", "status": "active"}, {"id": "cd-none"}, {"id": "cd-null", "status": None}]
    paging, _ = converse(platform(campaigns, page_size=10))
    assert set(paging.campaign_ids) == {f"cd-{s.lower()}" for s in STOPPABLE_STATUSES}
    assert "cd-ready" not in paging.campaign_ids


def test_a_whole_page_of_unusable_ids_does_not_look_like_a_repeated_page():
    listed = [{"id": f"bad/{n}", "status": "Active"} for n in range(10)] + stream(15)
    paging, _ = converse(platform(listed, page_size=10))
    assert paging.campaign_ids == stoppable(stream(15))


# -- answers without a list --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, [], {}, {"results": None}, {"results": {"id": "cd-1"}}, {"hasMore": True}])
def test_an_answer_without_data_results_fails_the_list(data):
    with pytest.raises(PermanentStopError) as raised:
        read_page(data)
    assert raised.value.code == "list_failed"


def test_the_first_request_asks_for_the_first_page():
    assert ListPaging(ASKED).requests() == [{"limit": 100, "skip": 0, "page": 1}]
    assert ListPaging(40).requests() == [{"limit": 40, "skip": 0, "page": 1}]


# -- the vendor's own samples -----------------------------------------------------------------------------


def sample_row(key: str, number: int, status: str = "Active") -> dict[str, Any]:
    """A row exactly as the vendor's Get All Campaigns v2 samples show one (voice: "_id", SMS: "id")."""
    return {key: f"cd-{number:03}", "name": f"Campaign {number}", "priority": 1,
            "schedule": {"isSchedulingEnabled": False, "isRecurrenceEnabled": False}, "status": status}


@pytest.mark.parametrize("key", ["_id", "id"], ids=["voice-sample", "sms-sample"])
def test_rows_keyed_as_in_the_vendor_samples_are_all_found(key):
    campaigns = [sample_row(key, n, ALL_STATUSES[n % len(ALL_STATUSES)]) for n in range(25)]
    paging, requests = converse(platform(campaigns, page_size=10))
    assert paging.campaign_ids == [c[key] for c in campaigns if c["status"] in STOPPABLE_STATUSES]
    assert len(requests) == 3


def test_a_row_with_both_keys_is_read_by_id_and_a_bad_id_falls_back_to_the_other():
    page = read_page({"results": [{"id": "cd-1", "_id": "cd-x", "status": "Active"},
                                  {"id": "bad/1", "_id": "cd-2", "status": "Active"},
                                  {"_id": 7, "status": "Active"}], "hasMore": False})
    assert page["ids"] == ["cd-1", "cd-2"] and page["served"] == 3


def test_the_rows_skipped_for_want_of_an_id_are_named_for_the_caller_to_log():
    data = {"results": [{"id": "cd-1", "status": "Active"}, {"_id": 7, "status": "Active"}, "junk"], "hasMore": False}
    assert read_page(data)["ids"] == ["cd-1"]
    assert unusable_items(data) == ["{'_id': 7, 'status': 'Active'}", "'junk'"]
    assert unusable_items({"results": "no list"}) == [] and unusable_items(None) == []


# -- several pages at once ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reports", [REPORTS, ("totalResults",), ("totalPages",), ("hasMore", "totalResults")])
def test_once_page_one_tells_the_count_every_other_page_is_asked_for_at_once(reports):
    campaigns = stream(95)
    paging = ListPaging(ASKED)
    [first] = paging.requests()
    paging.take(first, read_page(platform(campaigns, page_size=10, reports=reports)(first)))
    assert paging.counted
    assert paging.requests() == [{"limit": ASKED, "skip": 10 * n, "page": n + 1} for n in range(1, 10)]
    assert paging.requests() == []  # each asked for once


@pytest.mark.parametrize("reports", [("hasMore",), ()])
def test_without_a_count_pages_are_asked_for_one_at_a_time(reports):
    campaigns = stream(45)
    paging = ListPaging(ASKED)
    answer = platform(campaigns, page_size=10, reports=reports)
    [first] = paging.requests()
    paging.take(first, read_page(answer(first)))
    assert not paging.counted
    assert paging.requests() == [{"limit": ASKED, "skip": 10, "page": 2}]


def test_a_total_pages_counted_by_the_asked_limit_is_not_taken_for_the_count():
    paging = ListPaging(ASKED)
    answer = platform(stream(60), page_size=10, echo_limit=True, reports=("hasMore", "totalPages"))
    [first] = paging.requests()
    paging.take(first, read_page(answer(first)))
    assert not paging.counted and len(paging.requests()) == 1


@pytest.mark.parametrize("filtered", [False, True], ids=["status-filter-ignored", "status-filter-applied"])
@pytest.mark.parametrize("honours", ["skip", "page"])
@pytest.mark.parametrize("reports", [REPORTS, ("totalPages",), ("totalResults",)])
def test_pages_answered_in_any_order_find_every_campaign(honours, reports, filtered):
    campaigns = stream(230)
    paging, requests = converse(platform(campaigns, page_size=10, honours=honours, reports=reports,
                                         filtered=filtered), reverse=True)
    assert set(paging.campaign_ids) == set(stoppable(campaigns))
    assert len(paging.campaign_ids) == 143
    assert requests == consecutive(requests, 10)
    assert paging.unfiltered is not filtered


def test_a_count_that_falls_short_is_followed_by_reading_on():
    campaigns = stream(60)
    # totalResults counts 30 while hasMore says more: the list grew after page 1, or the total is wrong
    answer = platform(campaigns, page_size=10)

    def short(request: dict[str, int]) -> dict[str, Any]:
        data = answer(request)
        return {**data, "totalResults": 30, "totalPages": 3} if request["page"] == 1 else data

    paging, requests = converse(short, reverse=True)
    assert paging.campaign_ids and set(paging.campaign_ids) == set(stoppable(campaigns))
    assert [r["page"] for r in requests] == [1, 2, 3, 4, 5, 6]


def test_a_page_too_big_to_keep_for_a_redelivery_fails_loudly():
    rows = [{"id": f"cd-{n:05}-" + "x" * 118, "status": "Active"} for n in range(3000)]  # ignores limit
    with pytest.raises(PermanentStopError) as raised:
        read_page({"results": rows, "hasMore": False})
    assert raised.value.code == "list_too_long"
    assert len(read_page({"results": rows[:100], "hasMore": False})["ids"]) == 100


def test_a_page_keeps_the_names_of_its_stoppable_campaigns_for_disable_schedule():
    page = read_page({"results": [
        {"id": "cd-1", "name": "Daily reminder", "status": "Active",
         "schedule": {"isSchedulingEnabled": True, "isRecurrenceEnabled": True}},
        {"_id": "cd-2", "name": "Weekly call", "status": "Scheduled"},
        {"id": "cd-3", "name": "Done", "status": "Completed"},  # not stopped: its name is not needed
        {"id": "cd-4", "status": "Active"},  # no name: asked for with a status call if ever needed
        {"id": "cd-5", "name": "x" * 600, "status": "Active"},
    ]})
    assert page["names"] == {"cd-1": "Daily reminder", "cd-2": "Weekly call"}
    assert page["ids"] == ["cd-1", "cd-2", "cd-4", "cd-5"]
