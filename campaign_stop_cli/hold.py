"""`campaign-stop hold list` and `hold release`: the holds of kill switches whose alarm-map entry says "hold": true,
from the holds table (HOLDS_TABLE). The item shapes are the function's (stop_campaign/domain/holds.py); so is the
store, whose ``release`` resume uses too."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich import box
from rich.table import Table
from rich.text import Text

from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    OutputOption,
    aws_error_exit_code,
    client,
    console,
    fail,
    output_format,
    print_json,
    resource,
)
from stop_campaign.adapters.holds import HoldStore
from stop_campaign.domain.holds import ACTIVE, hold_from_item, listing_row

app = typer.Typer(help="Holds: what kill switches with \"hold\": true keep stopped while their alarm is in ALARM.",
                  no_args_is_help=True)

TableOption = Annotated[str | None, typer.Option("--holds-table", help="Holds table (env HOLDS_TABLE).",
                                                 metavar="TABLE")]


def _store(table: str) -> HoldStore:
    dynamodb = client("dynamodb")
    return HoldStore(table, lambda: dynamodb)


def _unreadable(table: str, error: Exception) -> str:
    message = error.response.get("Error", {}).get("Message", str(error)) if isinstance(error, ClientError) else error
    return f"cannot read the holds table {table}: {message}"


@app.command("list")
def list_holds(
    ctx: typer.Context,
    everything: Annotated[bool, typer.Option("--all", help="Also the holds ended or released lately.")] = False,
    holds_table: TableOption = None,
    output: OutputOption = None,
) -> None:
    """The active holds, oldest first: the alarm, its request id (what `hold release` takes and results call
    holdOf), the streams and campaigns held, since when. json output: one list of holds; jsonl: one a line."""
    mode = output_format(ctx, output)
    table = resource("holds_table", holds_table, mode)
    try:
        items = _store(table).items(only_active=not everything)
    except (BotoCoreError, ClientError) as error:  # 2 for a table that does not exist, else 1
        fail(_unreadable(table, error), aws_error_exit_code(error), mode)
    rows = sorted((listing_row(hold_from_item(item), item) for item in items), key=lambda row: str(row["since"]))
    if mode.machine:
        print_json(rows)
        return
    _print_rows(rows, everything)


def _print_rows(rows: list[dict[str, Any]], everything: bool) -> None:
    out = console()
    if not rows:
        out.print("No hold is active." if not everything else "No hold in the table.", highlight=False)
        return
    table = Table("alarm", "request (holdOf)", "stream", "campaigns", "since (UTC)",
                  *(("status",) if everything else ()), box=box.HEAVY_HEAD)
    for row in rows:
        since = str(row["since"])[:19].replace("T", " ")
        for index, stream in enumerate(row["streams"] or [{}]):
            campaigns = ", ".join(stream.get("campaignIds") or []) or "-"
            if stream.get("selection") == "all-active":
                campaigns = f"all-active: {campaigns}"
            first = index == 0
            # Names and ids from the table are printed as text, never as Rich markup.
            table.add_row(Text(row["alarmName"] if first else ""), Text(row["requestId"] if first else ""),
                          Text(str(stream.get("streamId") or "")), Text(campaigns), Text(since if first else ""),
                          *((Text(row["status"] if first else ""),) if everything else ()))
    out.print(table, highlight=False)
    out.print(f"{len(rows)} hold(s). End one: campaign-stop hold release <request>", highlight=False)


@app.command("release")
def release(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The hold's request id (its alarm request: results' holdOf).")],
    holds_table: TableOption = None,
    output: OutputOption = None,
) -> None:
    """End a hold now, whatever its alarm's state: its campaigns are no longer stopped again (nothing is
    restarted). Exit 0 when released (or ended before: nothing left to do), 2 when there is no such hold."""
    mode = output_format(ctx, output)
    table = resource("holds_table", holds_table, mode)
    store = _store(table)
    try:
        released = store.release(request_id)
        item = store.item(request_id)
    except (BotoCoreError, ClientError) as error:
        fail(_unreadable(table, error), aws_error_exit_code(error), mode)
    if item is None:
        fail(f"no hold {request_id} in {table}: `campaign-stop hold list` shows the active ones", EXIT_FAILED, mode)
    status = str(item.get("status") or ACTIVE)
    document = {"requestId": request_id, "released": released, "status": status,
                "endedAt": item.get("endedAt"), "endReason": item.get("endReason")}
    if mode.machine:
        print_json(document)
    elif released:
        console().print(Text.assemble("Released the hold ", (request_id, "bold"),
                                      ": its campaigns are no longer stopped again."), highlight=False)
    else:
        console().print(Text.assemble("The hold ", (request_id, "bold"), f" was already {status}",
                                      f" ({item.get('endReason')}, {item.get('endedAt')})" if item.get("endedAt")
                                      else "", ": nothing to do."), highlight=False)
    raise typer.Exit(EXIT_OK)
