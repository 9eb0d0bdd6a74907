"""Request history: what every request did to each campaign, as DynamoDB items. Plain Python, no I/O.

One table (REQUEST_HISTORY_TABLE), two kinds of items, both in the request's own partition:

* ``{requestId, entry: "result#<stream>#<type>#<campaign>#<account>#<dry run>"}``: one per (request, campaign),
  holding the result event exactly as published (``result``, JSON) and its ``outcome``. "Results of request X" and
  "which campaigns did request X stop" are one Query on the partition (``entry`` begins with ``result#``).
* ``{requestId, entry: "request"}``: what a listing shows of the request (first seen, source, producer, who and
  why, the streams) with one ``count_<outcome>`` number per outcome, and ``day`` / ``at`` for the ``recent`` index.

The ``recent`` global secondary index (partition ``day``, the UTC date the request was first seen; sort ``at``, its
time) is sparse: only request items carry ``day``, so "recent requests" reads request items only, newest first,
one Query per day back, stopping once it has enough. A day per partition (rather than one constant key for every
request of 90 days) spreads the index's writes and lets a listing start from today without reading the rest.

Every item carries ``expiresAt`` (epoch seconds: the table's TTL attribute), REQUEST_HISTORY_DAYS ahead.
"""

from __future__ import annotations

import json
from typing import Any

PARTITION_KEY = "requestId"
SORT_KEY = "entry"
REQUEST_ENTRY = "request"
RESULT_PREFIX = "result#"
RECENT_INDEX = "recent"
RECENT_PARTITION = "day"
RECENT_SORT = "at"
TTL_ATTRIBUTE = "expiresAt"
COUNT_PREFIX = "count_"  # count_<outcome>: results of the request with that outcome


def result_entry(message: dict[str, Any]) -> str:
    """The sort key of one campaign's result within its request: the same for every result of that campaign (a
    later one, e.g. after a redrive, replaces the earlier). A request-level result (no campaign) has ``-``."""
    parts = [message.get(name) for name in ("streamId", "campaignType", "campaignId", "accountId")]
    dry_run = "dry" if message.get("dryRun") else "live"
    return RESULT_PREFIX + "#".join([*(str(part) if part else "-" for part in parts), dry_run])


def first_seen(message: dict[str, Any]) -> str:
    """When the request was first seen, as the results say (``receivedAt``)."""
    return str(message.get("receivedAt") or message.get("completedAt") or "")


def request_fields(message: dict[str, Any]) -> dict[str, Any]:
    """What the request item keeps of a result or summary event, for a listing: set once, by the first event."""
    producer = message.get("producer")
    fields = {
        RECENT_PARTITION: first_seen(message)[:10] or "unknown",
        RECENT_SORT: first_seen(message),
        "source": message.get("source"),
        "producer": json.dumps(producer, sort_keys=True) if isinstance(producer, dict) else None,
        "requestedBy": message.get("requestedBy"),
        "reason": message.get("reason"),
        "streamId": message.get("streamId"),
        "dryRun": bool(message.get("dryRun")),
        "alarmArn": message.get("alarmArn"),
    }
    return {name: value for name, value in fields.items() if value is not None and value != ""}


def listing_row(item: dict[str, Any]) -> dict[str, Any]:
    """A request item (plain values, deserialized) as ``campaign-stop history`` shows it."""
    outcomes = {
        name[len(COUNT_PREFIX):]: int(value) for name, value in sorted(item.items())
        if name.startswith(COUNT_PREFIX) and int(value) > 0
    }
    producer = item.get("producer")
    row: dict[str, Any] = {
        "requestId": item.get(PARTITION_KEY),
        "receivedAt": item.get(RECENT_SORT),
        "lastCompletedAt": item.get("lastAt"),
        "source": item.get("source"),
        "producer": json.loads(producer) if isinstance(producer, str) else None,
        "requestedBy": item.get("requestedBy"),
        "reason": item.get("reason"),
        "streamId": item.get("streamId"),
        "dryRun": bool(item.get("dryRun")),
        "campaigns": sum(outcomes.values()),
        "outcomes": outcomes,
    }
    summary = item.get("summary")
    if isinstance(summary, str):
        row["summary"] = json.loads(summary)
    return row


def stopped_campaigns(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of a request's results (from history), the campaigns it stopped itself (outcome ``stopped``)."""
    return [result for result in results if result.get("outcome") == "stopped" and result.get("campaignId")]
