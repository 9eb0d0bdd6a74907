"""The `campaign-stop` console script (Typer + Rich). Not part of the Lambda bundle: it lives outside functions/."""

from __future__ import annotations

from typing import Annotated

import typer

from campaign_stop_cli import alarm_map, dlq, doctor, history, hold, producers, results, resume, schedule, status, stop
from campaign_stop_cli.common import OutputFormat

app = typer.Typer(
    name="campaign-stop",
    help="Operator's command line for the campaign-stop function: send stop requests and wait for their results, "
    "watch results, undo a request's stops (resume), "
    "inspect and redrive dead letters, check the alarm map and the producer policy, schedule "
    "quiet-hours stops, list and release holds, check the "
    "setup.\n\n"
    "Exit codes: 0 success, 1 some request or campaign failed, 2 usage or configuration error, 3 timed out, "
    "130 interrupted (Ctrl-C) while waiting for results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help (click's layout): Typer's Rich help labels every flag `<bool>` and draws boxes that break in a
    # pipe. The command groups added below inherit it.
    rich_markup_mode=None,
)


@app.callback()
def main(
    ctx: typer.Context,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table (for people; plain lines when stdout is not a "
                                                          "terminal), json (one document) or jsonl (one JSON object "
                                                          "a line).")
    ] = OutputFormat.TABLE,
    stack: Annotated[str | None, typer.Option(
        "--stack", envvar="CAMPAIGN_STOP_STACK", help="CloudFormation stack whose outputs name the resources "
        "(after a command's own flags, before the environment variables).", metavar="STACK")] = None,
) -> None:
    ctx.obj = {"output": output, "stack": (stack or "").strip() or None}  # a blank CAMPAIGN_STOP_STACK is none


app.command("stop")(stop.stop)
app.command("results")(results.results)
app.command("history")(history.history)
app.command("resume")(resume.resume)
app.add_typer(dlq.app, name="dlq")
app.add_typer(alarm_map.app, name="alarm-map")
app.add_typer(producers.app, name="producers")
app.add_typer(schedule.app, name="schedule")
app.add_typer(hold.app, name="hold")
app.command("doctor")(doctor.doctor)
app.command("status")(status.status)


if __name__ == "__main__":  # pragma: no cover
    app()
