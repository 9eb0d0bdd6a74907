"""`campaign-stop alarm-map`: check the kill-switch map exactly as the function reads it, before an alarm fires."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import typer
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.exceptions import BotoCoreError, ClientError
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OutputFormat,
    OutputOption,
    client,
    console,
    error_console,
    fail,
    find_resource,
    output_format,
    print_json,
    read_parameter,
    resource,
)
from stop_campaign.adapters.credentials import CredentialStore, CredentialsUnavailable, SecretUnreadable
from stop_campaign.domain.alarms import UnmappedAlarm, map_entries_for, requests_for_alarm
from stop_campaign.domain.intake import AlarmStateChange
from stop_campaign.domain.models import RequestRejected, StopRequest

app = typer.Typer(help="Check, show, write and try the alarm map (CloudWatch alarms as kill switches).",
                  no_args_is_help=True)

ALARM_OWNED_FIELDS = ("requestId", "reason", "requestedBy", "requestedAt")  # the alarm sets these, not the map

ParameterOption = Annotated[
    str | None, typer.Option("--parameter", help="SSM parameter name (env ALARM_TARGETS_PARAMETER).", metavar="NAME")
]
SecretOption = Annotated[
    str | None,
    typer.Option("--secret-id", help="Credentials secret, to warn about streams it has no credentials for "
                                     "(env CREDENTIALS_SECRET_ID; skipped when unknown).", metavar="SECRET_ID"),
]
CREDENTIALS_MAX_AGE = 300  # seconds: one read of the secret serves every stream of the map


@dataclass
class Report:
    problems: list[tuple[str, str]] = field(default_factory=list)  # (key, message)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "valid": not self.problems,
            "problems": [{"key": key, "message": message} for key, message in self.problems],
            "warnings": [{"key": key, "message": message} for key, message in self.warnings],
        }


@cache
def _request_fields() -> frozenset[str]:
    """The fields of the function's stop request schema (shipped in the stop_campaign package)."""
    schema = json.loads(files("stop_campaign").joinpath("schemas", "stop_request_v1.json").read_text("utf-8"))
    return frozenset(schema["properties"])


def _unknown_fields(entry: dict[str, Any]) -> list[str]:
    notes = []
    for name in entry:
        if name not in _request_fields():
            close = difflib.get_close_matches(name, sorted(_request_fields()), n=1, cutoff=0.6)
            notes.append(f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return notes


def _fake_alarm(alarm_name: str) -> AlarmStateChange:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return AlarmStateChange(alarm_name=alarm_name, alarm_arn=None, state="ALARM", changed_at=now, reason=None,
                            received_at=now)


def _alarm_name_for(key: str) -> str:
    """An alarm name this key selects: the name itself, or the prefix of a `name*` entry."""
    return key[:-1] if key.endswith("*") else key


def parse_map_text(text: str, report: Report) -> dict[str, Any] | None:
    """The map as the function would read it (json.loads), noting duplicate keys, which JSON silently drops."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                report.problems.append((key, "appears more than once; only the last entry would be used"))
            seen[key] = value
        return seen

    try:
        document = json.loads(text, object_pairs_hook=pairs)
    except ValueError as error:
        report.problems.append(("", f"not valid JSON: {error}"))
        return None
    if not isinstance(document, dict):
        report.problems.append(("", "the alarm map must be a JSON object whose keys are alarm names"))
        return None
    return document


def check_map(alarm_map: dict[str, Any], report: Report) -> None:
    """Every entry through the function's own code (alarms.requests_for_alarm), plus shadowing warnings."""
    for key, value in alarm_map.items():
        if not key:
            report.problems.append((key, "an alarm name cannot be empty"))
            continue
        if "*" in key[:-1]:
            report.warnings.append((key, "'*' matches only at the end of a name; here it is taken literally"))
        entries = value if isinstance(value, list) else [value]
        if not entries:
            report.problems.append((key, "lists no targets: the alarm would stop nothing"))
            continue
        for index, entry in enumerate(entries):
            where = f"{key}[{index}]" if isinstance(value, list) else key
            _check_entry(key, where, entry, report)
    _check_shadowing(alarm_map, report)


def _check_entry(key: str, where: str, entry: Any, report: Report) -> None:
    """One target of the entry ``key`` (shown as ``where``): what the function would reject, or ignore."""
    unknown = _unknown_fields(entry) if isinstance(entry, dict) else []
    if isinstance(entry, dict):
        ignored = [name for name in ALARM_OWNED_FIELDS if name in entry]
        if ignored:
            report.warnings.append((where, f"{', '.join(ignored)} ignored: the alarm sets it"))
    try:
        requests_for_alarm(_fake_alarm(_alarm_name_for(key)), {key: entry})
    except RequestRejected as error:
        message = error.message
        prefix = f"alarm map entry for {_alarm_name_for(key)!r}: "
        message = message.removeprefix(prefix)
        if not isinstance(entry, dict):
            message = "a target must be a JSON object (or a list of them)"
        if unknown:
            message = f"{message}; {'; '.join(unknown)}"
        report.problems.append((where, message))
    else:
        if unknown:
            report.warnings.append((where, "; ".join(unknown) + ": the function ignores it"))
        if isinstance(entry, dict) and entry.get("hold") is True and entry.get("dryRun") is True:
            report.warnings.append((where, "hold with dryRun: a dry run stops nothing, so nothing is held"))


def _check_shadowing(alarm_map: dict[str, Any], report: Report) -> None:
    """A prefix entry (name*) that a longer prefix or an exact name takes over for some alarms."""
    prefixes = [key for key in alarm_map if key.endswith("*")]
    for key in alarm_map:
        for prefix in prefixes:
            if key == prefix or not key.startswith(prefix[:-1]):
                continue
            if key.endswith("*"):
                report.warnings.append((prefix, f"shadowed by the longer prefix {key!r} for alarm names starting "
                                                f"with {key[:-1]!r}"))
            else:
                report.warnings.append((prefix, f"does not apply to alarm {key!r}: its exact entry wins"))


def credential_store(secret_id: str) -> tuple[CredentialStore, SecretsProvider]:
    """The function's own credential reader (Powertools SecretsProvider, JSON) over the CLI's AWS session."""
    provider = SecretsProvider(boto3_client=client("secretsmanager"))
    return CredentialStore(secret_id, max_age=CREDENTIALS_MAX_AGE, provider=provider), provider


def check_credentials(alarm_map: dict[str, Any], store: CredentialStore, report: Report) -> None:
    """Warn about every target whose stream the credentials secret cannot serve: the function would reject that
    alarm's stops (missing_credentials, account_mismatch). Top-level values serve every stream; an entry under
    "streams" overrides them; the same code as the function's decides (CredentialStore.for_stream)."""
    for key, value in alarm_map.items():
        entries = value if isinstance(value, list) else [value]
        for index, entry in enumerate(entries):
            where = f"{key}[{index}]" if isinstance(value, list) else key
            try:
                requests = requests_for_alarm(_fake_alarm(_alarm_name_for(key)), {key: entry}) if key else []
            except RequestRejected:
                continue  # check_map reports it
            for request in requests:
                try:
                    store.for_stream(request.stream_id, request.account_id)
                except CredentialsUnavailable as error:
                    if error.code == "invalid_credentials":
                        report.warnings.append(("", f"credentials secret: {error.message}; streams not checked"))
                        return
                    report.warnings.append((where, f"{error.message}: this alarm's stops would be rejected "
                                                   f"({error.code})"))
                except SecretUnreadable as error:
                    report.warnings.append(("", f"{error}; streams not checked against it"))
                    return


def _warn_about_credentials(
    alarm_map: dict[str, Any] | None, report: Report, secret_flag: str | None, mode: OutputFormat
) -> None:
    """The stream check, only when a secret id is known (flag, stack output or CREDENTIALS_SECRET_ID)."""
    if alarm_map is None or report.problems:
        return
    secret_id = find_resource("credentials_secret_id", secret_flag, mode)
    if secret_id is None:
        return
    try:
        store, _ = credential_store(secret_id)
    except BotoCoreError as error:  # no region, no credentials: a warning, as the check itself is
        report.warnings.append(("", f"credentials secret not read ({error}); streams not checked"))
        return
    check_credentials(alarm_map, store, report)


def _load_file(file: Path, mode: OutputFormat) -> tuple[dict[str, Any] | None, Report]:
    report = Report()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        fail(f"cannot read {file}: {error}", EXIT_USAGE, mode)
    alarm_map = parse_map_text(text, report)
    if alarm_map is not None:
        check_map(alarm_map, report)
    return alarm_map, report


def _print_report(report: Report, source: str, mode: OutputFormat, extra: dict[str, Any] | None = None) -> None:
    if mode.machine:
        print_json({"source": source, **report.as_json(), **(extra or {})})
        return
    out = console() if not report.problems else error_console()
    if report.problems or report.warnings:
        # Keys and messages quote the map itself: Text, never Rich markup (a key may hold "[").
        table = Table("", "key", "message", title=Text(source))
        for key, message in report.problems:
            table.add_row(Text("problem", style="bold red"), Text(key), Text(message))
        for key, message in report.warnings:
            table.add_row(Text("warning", style="yellow"), Text(key), Text(message))
        out.print(table)
    if report.problems:
        out.print(Text(f"{source}: {len(report.problems)} problem(s); the alarm map is not valid.",
                       style="bold red"))
    else:
        console().print(Text.assemble((f"{source}: valid", "green"), f" ({len(report.warnings)} warning(s))"),
                        highlight=False)


@app.command("validate")
def validate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Alarm map JSON file.")],
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 2).")] = False,
    secret_id: SecretOption = None,
    output: OutputOption = None,
) -> None:
    """Check an alarm map file entry by entry, as the function would read it; exit 2 on any problem."""
    mode = output_format(ctx, output)
    alarm_map, report = _load_file(file, mode)
    _warn_about_credentials(alarm_map, report, secret_id, mode)
    _print_report(report, str(file), mode)
    raise typer.Exit(EXIT_USAGE if report.problems or (strict and report.warnings) else EXIT_OK)


@app.command("show")
def show(
    ctx: typer.Context,
    parameter: ParameterOption = None,
    output: OutputOption = None,
) -> None:
    """Print the alarm map the function reads (the SSM parameter), with any problems in it."""
    mode = output_format(ctx, output)
    name = resource("alarm_parameter", parameter, mode)
    stored = read_parameter(name, mode)
    report = Report()
    alarm_map = parse_map_text(stored["Value"], report)
    if alarm_map is not None:
        check_map(alarm_map, report)
    if mode.machine:
        print_json({"parameter": name, "version": stored.get("Version"), "lastModified": stored.get("LastModifiedDate"),
                    "alarmMap": alarm_map if alarm_map is not None else stored["Value"], **report.as_json()})
    else:
        console().print(f"[bold]{name}[/] (version {stored.get('Version')})", highlight=False)
        if alarm_map is not None:
            console().print(JSON(json.dumps(alarm_map)))
        else:
            console().print(stored["Value"], highlight=False, markup=False)
        if report.problems or report.warnings:
            _print_report(report, name, mode)
    raise typer.Exit(EXIT_USAGE if report.problems else EXIT_OK)


@app.command("put")
def put(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Alarm map JSON file.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before writing.")] = False,
    parameter: ParameterOption = None,
    secret_id: SecretOption = None,
    output: OutputOption = None,
) -> None:
    """Validate an alarm map file and, only if it is valid, write it to the SSM parameter."""
    mode = output_format(ctx, output)
    name = resource("alarm_parameter", parameter, mode)
    alarm_map, report = _load_file(file, mode)
    _warn_about_credentials(alarm_map, report, secret_id, mode)
    if report.problems or alarm_map is None:
        _print_report(report, str(file), mode, {"written": False})
        raise typer.Exit(EXIT_USAGE)
    if mode is OutputFormat.TABLE:
        _print_report(report, str(file), mode)
    if not yes:
        typer.confirm(f"Write {len(alarm_map)} entr{'y' if len(alarm_map) == 1 else 'ies'} to {name}?", abort=True,
                      err=True)  # stdout stays the output (json)
    try:
        version = client("ssm").put_parameter(
            Name=name, Value=json.dumps(alarm_map, separators=(",", ":")), Type="String", Overwrite=True
        )["Version"]
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot write SSM parameter {name}: {error}", EXIT_FAILED, mode)
    if mode.machine:
        print_json({"source": str(file), **report.as_json(), "written": True, "parameter": name, "version": version})
    else:
        console().print(f"Wrote {name} (version {version}).", highlight=False)


def _selected_key(alarm_name: str, alarm_map: dict[str, Any]) -> str | None:
    """The key map_entries_for picks: the exact name, else the longest matching prefix."""
    if alarm_name in alarm_map:
        return alarm_name
    prefixes = [key for key in alarm_map if key.endswith("*") and alarm_name.startswith(key[:-1])]
    return max(prefixes, key=len) if prefixes else None


def _describe(request: StopRequest) -> dict[str, Any]:
    return {
        "streamId": request.stream_id,
        "campaigns": "all-active" if request.all_active else list(request.campaign_ids),
        "campaignType": request.campaign_type.value,
        "dryRun": request.dry_run,
        "accountId": request.account_id,
        "hold": request.hold,
    }


@app.command("test")
def test(
    ctx: typer.Context,
    alarm_name: Annotated[str, typer.Argument(help="CloudWatch alarm name.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="Try a map file instead of the SSM parameter.", metavar="PATH")
    ] = None,
    parameter: ParameterOption = None,
    output: OutputOption = None,
) -> None:
    """Which entry an alarm selects (exact name, else the longest prefix) and what it would stop."""
    mode = output_format(ctx, output)
    if file is not None:
        source = str(file)
        report = Report()
        try:
            alarm_map = parse_map_text(file.read_text(encoding="utf-8"), report)
        except OSError as error:
            fail(f"cannot read {file}: {error}", EXIT_USAGE, mode)
    else:
        source = resource("alarm_parameter", parameter, mode)
        report = Report()
        alarm_map = parse_map_text(read_parameter(source, mode)["Value"], report)
    if alarm_map is None:
        fail(f"{source}: {report.problems[0][1]}", EXIT_USAGE, mode)
    key = _selected_key(alarm_name, alarm_map)
    try:
        map_entries_for(alarm_name, alarm_map)
        requests = requests_for_alarm(_fake_alarm(alarm_name), alarm_map)
    except UnmappedAlarm as error:
        if mode.machine:
            print_json({"alarmName": alarm_name, "source": source, "entry": None, "stops": [], "error": error.message})
        else:
            console().print(Text.assemble((error.message, "yellow"), f" ({source}): it would stop nothing."))
        raise typer.Exit(EXIT_FAILED) from None
    except RequestRejected as error:
        fail(f"{source}: {error.message}", EXIT_USAGE, mode)
    match = "exact" if key == alarm_name else "prefix"
    stops = [_describe(request) for request in requests]
    if mode.machine:
        print_json({"alarmName": alarm_name, "source": source, "entry": key, "match": match, "stops": stops})
        return
    console().print(Text.assemble("Alarm ", (alarm_name, "bold"), " selects entry ", (str(key), "bold"),
                                  f" ({match} match) in {source}:"), highlight=False)
    table = Table("stream", "campaigns", "type", "dry run")
    for stop in stops:
        campaigns = stop["campaigns"] if isinstance(stop["campaigns"], str) else ", ".join(stop["campaigns"])
        table.add_row(Text(stop["streamId"]), Text(campaigns), Text(stop["campaignType"]),
                      "yes" if stop["dryRun"] else "no")
    console().print(table)
