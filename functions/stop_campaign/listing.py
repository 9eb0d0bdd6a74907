"""Paging through Get All Campaigns without ever skipping a campaign. Plain Python: no I/O.

Kore.ai documents no maximum for ``limit``, so a page may hold fewer campaigns than asked. Every next page
starts after what was actually received (``skip``) and is the next of the platform's own pages (``page``),
so it is right whichever of the two the platform honours.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from stop_campaign.models import ID_PATTERN, STOPPABLE_STATUSES, PermanentStopError
from stop_campaign.outcomes import scrubbed

logger = Logger(child=True)

# 50 pages are read in one go: they must fit one invocation and one rate window (60 calls a minute), so that
# the list is one snapshot. 5,000 campaigns at 100 a page; a stream beyond that fails loudly, never half done.
MAX_LIST_PAGES = 50


class ListPaging:
    """Where the next page starts, whether there is one, and the stoppable campaign ids seen so far."""

    def __init__(self, page_size: int, max_pages: int = MAX_LIST_PAGES) -> None:
        self._asked = page_size
        self._max_pages = max_pages
        self._received = 0
        self._pages = 0
        self._seen: set[str] = set()  # every usable id, stoppable or not: tells a repeated page
        self._ids: dict[str, None] = {}  # the stoppable ones, insertion-ordered

    @property
    def campaign_ids(self) -> list[str]:
        return list(self._ids)

    def next_request(self) -> dict[str, int]:
        """The paging fields of the next request body."""
        return {"limit": self._asked, "skip": self._received, "page": self._pages + 1}

    def take(self, data: dict[str, Any]) -> bool:
        """Read one page's ``data``; True when another page must be fetched."""
        results = data.get("results")
        if not isinstance(results, list):
            raise PermanentStopError("list_failed", "Get All Campaigns answered without data.results")
        self._pages += 1
        usable = new = 0
        for campaign in results:
            campaign_id = campaign.get("id") if isinstance(campaign, dict) else None
            if not isinstance(campaign_id, str) or not ID_PATTERN.match(campaign_id):
                logger.warning("Skipping a listed campaign with no usable id", extra={"item": scrubbed(repr(campaign))})
                continue
            usable += 1
            if campaign_id in self._seen:
                continue
            self._seen.add(campaign_id)
            new += 1
            if campaign.get("status") in STOPPABLE_STATUSES:
                self._ids[campaign_id] = None
        if not results:
            return False
        self._received += len(results)
        if not self._more(data):
            return False
        if usable and not new:  # a platform that ignores both skip and page would serve page 1 for ever
            raise PermanentStopError(
                "list_failed", f"Get All Campaigns served page {self._pages} again: paging does not advance"
            )
        if self._pages >= self._max_pages:
            raise PermanentStopError(
                "list_too_long",
                f"the stream lists more than {self._max_pages} pages of campaigns ({self._received} so far); "
                "stop it in parts with campaignIds",
            )
        return True

    def _more(self, data: dict[str, Any]) -> bool:
        # hasMore is authoritative when present: a totalPages computed from the asked limit would end too early.
        has_more = data.get("hasMore")
        if isinstance(has_more, bool):
            return has_more
        # Without it, read on while either total says there is more (one of them may count by the asked limit).
        total_pages = _positive_int(data.get("totalPages"))
        total_results = _positive_int(data.get("totalResults"))
        if total_pages is None and total_results is None:
            return True  # nothing said: read on until an empty page
        return (total_pages is not None and self._pages < total_pages) or (
            total_results is not None and self._received < total_results
        )


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
