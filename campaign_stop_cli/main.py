"""The `campaign-stop` console script (Typer + Rich). Not part of the Lambda bundle: it lives outside functions/."""

from __future__ import annotations

from typing import Annotated

import typer

from campaign_stop_cli import alarm_map, stop
from campaign_stop_cli.common import OutputFormat

app = typer.Typer(
    name="campaign-stop",
    help="Operator's command line for the campaign-stop function: send stop requests, check the alarm map.\n\n"
    "Exit codes: 0 success, 1 some request or campaign failed, 2 usage or configuration error, 3 timed out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table (Rich, for people) or json (for scripts).")
    ] = OutputFormat.TABLE,
) -> None:
    ctx.obj = {"output": output}


app.command("stop")(stop.stop)
app.add_typer(alarm_map.app, name="alarm-map")


if __name__ == "__main__":  # pragma: no cover
    app()
