"""`campaign-stop history`: recent requests from the request history table (REQUEST_HISTORY_TABLE), and the past
results of one request for `campaign-stop results --request-id`. The item shapes are the function's
(stop_campaign/domain/history.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError
from rich import box
from rich.table import Table
from rich.text import Text

from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    OutputOption,
    client,
    console,
    fail,
    output_format,
    print_json,
    resource,
)
from stop_campaign.domain.history import (
    PARTITION_KEY,
    RECENT_INDEX,
    RECENT_PARTITION,
    REQUEST_ENTRY,
    RESULT_PREFIX,
    SORT_KEY,
    listing_row,
)

DEFAULT_LIMIT = 20
DEFAULT_DAYS = 7
FAILED_OUTCOMES = ("failed", "rejected")
_deserializer = TypeDeserializer()


class HistoryUnreadable(Exception):
    """The history table could not be read (a message fit for the operator)."""


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _query(table: str, most: int | None = None, **query: Any) -> list[dict[str, Any]]:
    """The items a Query finds (its pages followed, up to ``most`` items), deserialized."""
    dynamodb = client("dynamodb")
    items: list[dict[str, Any]] = []
    try:
        while True:
            page = dynamodb.query(TableName=table, **query)
            items.extend(_plain(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page or (most is not None and len(items) >= most):
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except ClientError as error:
        raise HistoryUnreadable(
            f"cannot read the request history {table}: {error.response.get('Error', {}).get('Message', error)}"
        ) from None
    except BotoCoreError as error:
        raise HistoryUnreadable(f"cannot read the request history {table}: {error}") from None


def past_events(table: str, request_id: str) -> list[dict[str, Any]]:
    """One request's result events as published (one per campaign), then its summary event if it had one."""
    items = _query(table, KeyConditionExpression="#id = :id", ExpressionAttributeNames={"#id": PARTITION_KEY},
                   ExpressionAttributeValues={":id": {"S": request_id}})
    events = [json.loads(item["result"]) for item in items
              if str(item.get(SORT_KEY, "")).startswith(RESULT_PREFIX) and isinstance(item.get("result"), str)]
    events.sort(key=lambda event: str(event.get("completedAt") or ""))
    summaries = [json.loads(item["summary"]) for item in items
                 if item.get(SORT_KEY) == REQUEST_ENTRY and isinstance(item.get("summary"), str)]
    return events + summaries


def recent_requests(table: str, limit: int, days: int, today: datetime | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` requests first seen in the last ``days`` UTC days: one Query of the "recent" index per
    day, from today back, until enough are found."""
    today = today or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for back in range(days):
        day = (today - timedelta(days=back)).strftime("%Y-%m-%d")
        items = _query(table, IndexName=RECENT_INDEX, KeyConditionExpression="#day = :day",
                       ExpressionAttributeNames={"#day": RECENT_PARTITION},
                       ExpressionAttributeValues={":day": {"S": day}}, ScanIndexForward=False,
                       Limit=limit - len(rows), most=limit - len(rows))
        rows.extend(listing_row(item) for item in items)
        if len(rows) >= limit:
            break
    rows.sort(key=lambda row: str(row.get("receivedAt") or ""), reverse=True)
    return rows[:limit]


def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many requests to show at most.",
                                       metavar="N")]
    = DEFAULT_LIMIT,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="How many days back (UTC) to look.",
                                      metavar="DAYS")]
    = DEFAULT_DAYS,
    history_table: Annotated[
        str | None, typer.Option("--history-table", help="Request history table (env REQUEST_HISTORY_TABLE).",
                                 metavar="TABLE")
    ] = None,
    output: OutputOption = None,
) -> None:
    """List recent requests, newest first: when each was first seen, its source or producer, and how many
    campaigns ended in each outcome. `campaign-stop results --request-id ID` shows one request's results.

    Read from the request history, which keeps every request REQUEST_HISTORY_DAYS (default 90). Exit 1 when a
    request listed has a failed or rejected campaign, else 0. json output: one list of requests.
    """
    mode = output_format(ctx, output)
    table = resource("history_table", history_table, mode)
    try:
        rows = recent_requests(table, limit, days)
    except HistoryUnreadable as error:
        fail(str(error), mode=mode)
    if mode.machine:
        print_json(rows)
    else:
        _print_rows(rows, days)
    failed = any(row["outcomes"].get(outcome) for row in rows for outcome in FAILED_OUTCOMES)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def who(row: dict[str, Any]) -> str:
    """The producer (its policy name, else its kind and id) when the results said it, else the source."""
    producer = row.get("producer")
    if isinstance(producer, dict):
        return str(producer.get("name") or f"{producer.get('kind')}:{producer.get('id')}")
    return str(row.get("source") or "-")


def _print_rows(rows: list[dict[str, Any]], days: int) -> None:
    out = console()
    if not rows:
        out.print(f"No request in the history for the last {days} day(s).", highlight=False)
        return
    table = Table("first seen (UTC)", "request", "from", "requested by", "stream", "campaigns", "outcomes",
                  box=box.HEAVY_HEAD)
    for row in rows:
        outcomes = ", ".join(f"{name} {count}" for name, count in row["outcomes"].items()) or "none yet"
        style = "red" if any(row["outcomes"].get(outcome) for outcome in FAILED_OUTCOMES) else "green"
        seen = str(row.get("receivedAt") or "")[:19].replace("T", " ")
        # Text from the history (ids, who asked) is printed as text, never as Rich markup.
        table.add_row(Text(seen), Text(str(row["requestId"])), Text(who(row)), Text(str(row.get("requestedBy") or "")),
                      Text(str(row.get("streamId") or "")), str(row["campaigns"]), Text(outcomes, style=style))
    out.print(table, highlight=False)
    out.print(f"{len(rows)} request(s). Details: campaign-stop results --request-id <request>", highlight=False)
