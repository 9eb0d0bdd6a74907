"""Paging through Get All Campaigns without ever skipping a campaign. Plain Python: no I/O.

Kore.ai documents no maximum for ``limit``, so a page may hold fewer campaigns than asked. Every page is asked
for at ``skip`` = what the platform actually serves per page and as ``page`` = the platform's own page number,
so it is right whichever of the two the platform honours.

Once page 1 says how long the list is (``totalResults``, or a ``totalPages`` counted by the page size it really
served), the other pages are asked for all at once, and the campaigns of each page can be stopped as it comes
in. Without a trustworthy count the pages are read one after the other, as far as the platform says there is
more, and nothing is stopped before the end (so a list too long is never half stopped).

A page is read by ``read_page`` into a ``PageRead`` (what the stopper stores for a redelivery: only the ids, so
it fits one DynamoDB item), then handed to ``ListPaging.take``.
"""

from __future__ import annotations

import json
import math
from typing import Any, NotRequired, TypedDict

from stop_campaign.domain.models import ID_PATTERN, STOPPABLE_STATUSES, PermanentStopError
from stop_campaign.domain.outcomes import scrubbed

# 50 pages are read in one go: they must fit one invocation and one rate window (60 calls a minute), so that
# the list is one snapshot. 5,000 campaigns at 100 a page; a stream beyond that fails loudly, never half done.
MAX_LIST_PAGES = 50
# What one page may take in its idempotency record (DynamoDB allows 400 KB an item, attributes included):
# 100 ids of 128 characters take 13 KB; only a platform that ignores ``limit`` serves more.
MAX_PAGE_RECORD_CHARS = 300_000


class PageRead(TypedDict):
    """One page, as much as paging needs of it; JSON, as stored in its idempotency record."""

    ids: list[str]  # usable ids of stoppable campaigns, in list order
    others: list[str]  # usable ids in other statuses (a platform that ignores the status filter lists them)
    served: int  # items on the page, usable or not: the next page starts after all of them
    hasMore: bool | None
    totalPages: int | None
    totalResults: int | None
    limit: int | None
    # What the rows call the stoppable campaigns (Disable Schedule works by name); absent in older records
    names: NotRequired[dict[str, str]]


MAX_NAME_CHARS = 512  # a name kept for Disable Schedule; a longer one is asked for again if ever needed


def read_page(data: Any) -> PageRead:
    """The page in ``data`` (the response's ``data``); list_failed when there is no list in it."""
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise PermanentStopError("list_failed", "Get All Campaigns answered without data.results")
    ids: list[str] = []
    others: list[str] = []
    names: dict[str, str] = {}
    for campaign in results:
        # The vendor's own samples key a voice campaign "_id" and an SMS campaign "id": read whichever it has.
        campaign_id = _campaign_id(campaign)
        if campaign_id is None:  # skipped: unusable_items says which, for the caller to log
            continue
        stoppable = campaign.get("status") in STOPPABLE_STATUSES
        (ids if stoppable else others).append(campaign_id)
        name = campaign.get("name")
        if stoppable and isinstance(name, str) and name.strip() and len(name) <= MAX_NAME_CHARS:
            names[campaign_id] = name
    has_more = data.get("hasMore")
    page = PageRead(
        ids=ids, others=others, served=len(results), hasMore=has_more if isinstance(has_more, bool) else None,
        totalPages=_positive_int(data.get("totalPages")), totalResults=_positive_int(data.get("totalResults")),
        limit=_positive_int(data.get("limit")), names=names,
    )
    if len(json.dumps(page)) > MAX_PAGE_RECORD_CHARS:
        raise PermanentStopError(
            "list_too_long", f"Get All Campaigns served {len(results)} campaigns on one page, more than can be kept "
            "for a redelivery; stop them in parts with campaignIds",
        )
    return page


def unusable_items(data: Any) -> list[str]:
    """The items of the page in ``data`` that ``read_page`` skips for want of a usable id, scrubbed for a log."""
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        return []
    return [scrubbed(repr(campaign)) for campaign in results if _campaign_id(campaign) is None]


def _campaign_id(campaign: Any) -> str | None:
    if not isinstance(campaign, dict):
        return None
    for name in ("id", "_id"):
        value = campaign.get(name)
        if isinstance(value, str) and ID_PATTERN.match(value):
            return value
    return None


class ListPaging:
    """One read of the whole list: which pages to ask for now, whether it is done, the stoppable ids seen.

    ``requests()`` gives the pages to ask for now (page 1 first; then, once its count is known, all the others
    at once; or the next one). Each answer goes to ``take`` in any order; it returns the page's stoppable ids
    not seen before.
    """

    def __init__(self, page_size: int, max_pages: int = MAX_LIST_PAGES) -> None:
        self._asked = page_size
        self._max_pages = max_pages
        self._pending: list[dict[str, int]] = [{"limit": page_size, "skip": 0, "page": 1}]
        self._outstanding: set[int] = set()  # pages asked for, not answered yet
        self._served: int | None = None  # what page 1 held: the platform's page size
        self._planned = 1  # the last page asked for
        self._last: tuple[PageRead, int, int] | None = None  # the answer of page _planned, where it ended
        self._done = False
        self.counted = False  # page 1 said how long the list is: stops may start before the end
        self.unfiltered = False  # a campaign outside the status filter was listed: the platform ignores it
        self._seen: set[str] = set()  # every usable id, stoppable or not: tells a repeated page
        self._ids: dict[str, None] = {}  # the stoppable ones, insertion-ordered

    @property
    def campaign_ids(self) -> list[str]:
        return list(self._ids)

    @property
    def done(self) -> bool:
        return self._done

    @property
    def pages(self) -> int:
        """Pages asked for so far."""
        return self._planned

    def requests(self) -> list[dict[str, int]]:
        """The paging fields of the requests to send now (taken: each is given once)."""
        pending, self._pending = self._pending, []
        self._outstanding.update(request["page"] for request in pending)
        return pending

    def take(self, request: dict[str, int], page: PageRead) -> list[str]:
        """Read the answer to ``request``; the stoppable ids it lists that no earlier page did."""
        number = request["page"]
        self._outstanding.discard(number)
        usable = new = 0
        found: list[str] = []
        for campaign_id in (*page["ids"], *page["others"]):
            usable += 1
            if campaign_id in self._seen:
                continue
            self._seen.add(campaign_id)
            new += 1
        for campaign_id in page["ids"]:
            if campaign_id not in self._ids:
                self._ids[campaign_id] = None
                found.append(campaign_id)
        self.unfiltered = self.unfiltered or bool(page["others"])
        ended_at = request["skip"] + page["served"]
        if number == 1:
            self._after_first(page)
        elif page["served"] and usable and not new and self._more(page, number, ended_at):
            # A platform that ignores both skip and page would serve page 1 for ever
            raise PermanentStopError(
                "list_failed", f"Get All Campaigns served page {number} again: paging does not advance"
            )
        if number == self._planned:
            self._last = (page, number, ended_at)
        if not self._outstanding and not self._pending and not self._done:
            self._next_after_last()
        return found

    def _after_first(self, page: PageRead) -> None:
        served = page["served"]
        if not served or not self._more(page, 1, served):
            self._done = True
            return
        self._served = served
        known = [
            math.ceil(page["totalResults"] / served) if page["totalResults"] else None,
            # totalPages counts by the platform's page size: trusted only when it says it served what it holds
            page["totalPages"] if page["totalPages"] and page["limit"] == served else None,
        ]
        count = max((pages for pages in known if pages is not None), default=None)
        if count is None or count <= 1:
            return  # page by page, as far as the platform says there is more
        if count > self._max_pages:
            raise self._too_long(count * served)
        self.counted = True
        self._pending = [self._request(number) for number in range(2, count + 1)]
        self._planned = count

    def _next_after_last(self) -> None:
        """Every page asked for is in: the list ends, or goes on at the next page (a count that fell short)."""
        assert self._last is not None
        page, number, ended_at = self._last
        if not page["served"] or not self._more(page, number, ended_at):
            self._done = True
            return
        if number >= self._max_pages:
            raise self._too_long(ended_at)
        self._planned = number + 1
        self._pending = [{"limit": self._asked, "skip": ended_at, "page": self._planned}]

    def _request(self, number: int) -> dict[str, int]:
        assert self._served is not None
        return {"limit": self._asked, "skip": (number - 1) * self._served, "page": number}

    def _too_long(self, received: int) -> PermanentStopError:
        return PermanentStopError(
            "list_too_long",
            f"the stream lists more than {self._max_pages} pages of campaigns ({received} so far); "
            "stop it in parts with campaignIds",
        )

    @staticmethod
    def _more(page: PageRead, number: int, received: int) -> bool:
        """Whether the list goes on after this page (the ``number``-th, ending at item ``received``)."""
        # hasMore is authoritative when present: a totalPages computed from the asked limit would end too early.
        if page["hasMore"] is not None:
            return page["hasMore"]
        # Without it, read on while either total says there is more (one of them may count by the asked limit).
        total_pages, total_results = page["totalPages"], page["totalResults"]
        if total_pages is None and total_results is None:
            return True  # nothing said: read on until an empty page
        return (total_pages is not None and number < total_pages) or (
            total_results is not None and received < total_results
        )


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
