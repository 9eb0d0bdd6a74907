"""`campaign-stop producers`: check, show, write and try the producer policy (who may stop what).

The policy is read with the function's own code (stop_campaign.domain.policy), so what `validate` accepts is what
the function accepts. SQS reports a role's sender as its role id (``AROA…:<session>``) and a user's as its user
id (``AIDA…``), never an ARN: a policy file may name this account's roles and users by ARN
(``sqs:arn:aws:iam::111122223333:role/fraud-service``) and `put` resolves each to its id (IAM GetRole / GetUser)
before writing; the stored policy holds ids only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
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
    output_format,
    print_json,
    read_parameter,
    resource,
)
from stop_campaign.domain.intake import InvalidRequest, parse_stop_request
from stop_campaign.domain.models import Origin, Source
from stop_campaign.domain.policy import (
    SENDER_KINDS,
    PolicyInvalid,
    ProducerPolicy,
    Sender,
    is_iam_arn_pattern,
    parse_policy,
)

app = typer.Typer(help="Check, show, write and try the producer policy (who may stop what).", no_args_is_help=True)

ParameterOption = Annotated[
    str | None, typer.Option("--parameter", help="SSM parameter name (env PRODUCER_POLICY_PARAMETER).", metavar="NAME")
]


class _Loaded:
    """A policy document as read, with what was found wrong (problems) or worth a look (warnings)."""

    def __init__(self, document: Any, problems: list[str], warnings: list[str]) -> None:
        self.document = document
        self.problems = problems
        self.warnings = warnings

    def as_json(self) -> dict[str, Any]:
        return {"valid": not self.problems, "problems": self.problems, "warnings": self.warnings}


def parse_text(text: str, *, role_arns: bool) -> _Loaded:
    """The document as the function would read it (json.loads), every problem of it, duplicate keys (which JSON
    silently drops) and warnings about what is legal but probably not meant."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(f"{key!r} appears more than once in one object; only the last would be used")
            seen[key] = value
        return seen

    try:
        document = json.loads(text, object_pairs_hook=pairs)
    except ValueError as error:
        return _Loaded(None, [f"not valid JSON: {error}"], [])
    problems = list(duplicates)
    try:
        policy = parse_policy(document, role_arns=role_arns)
    except PolicyInvalid as invalid:
        return _Loaded(document, problems + invalid.problems, [])
    return _Loaded(document, problems, _warnings(policy))


def _warnings(policy: ProducerPolicy) -> list[str]:
    notes = []
    for producer in policy.producers:
        if not producer.allow:
            notes.append(f"producers.{producer.name}: no allow entry, it may stop nothing")
        for pattern in producer.senders:
            if is_iam_arn_pattern(pattern):
                notes.append(f"producers.{producer.name}: {pattern} is resolved to its id by `producers put`")
            if pattern.endswith(":*") and pattern.count(":") == 1:
                notes.append(f"producers.{producer.name}: {pattern} is every {pattern[:-2]} sender")
    if policy.otherwise == "allow":
        notes.append("otherwise is allow: a sender that is no producer may stop everything")
    return notes


def _read_file(file: Path, mode: OutputFormat) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except OSError as error:
        fail(f"cannot read {file}: {error}", EXIT_USAGE, mode)


def _print_report(loaded: _Loaded, source: str, mode: OutputFormat, extra: dict[str, Any] | None = None) -> None:
    if mode.machine:
        print_json({"source": source, **loaded.as_json(), **(extra or {})})
        return
    out = console() if not loaded.problems else error_console()
    # Text, not markup: a policy's names and patterns ("allow[0]", "[...]") are shown as they are.
    for problem in loaded.problems:
        out.print(Text.assemble(("problem ", "bold red"), problem), highlight=False)
    for warning in loaded.warnings:
        out.print(Text.assemble(("warning ", "yellow"), warning), highlight=False)
    if loaded.problems:
        out.print(Text(f"{source}: {len(loaded.problems)} problem(s); the policy is not valid.", "bold red"))
    else:
        console().print(Text.assemble((f"{source}: valid", "green"), f" ({len(loaded.warnings)} warning(s))"))


@app.command("validate")
def validate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Producer policy JSON file.")],
    output: OutputOption = None,
) -> None:
    """Check a policy file as the function would read it (role ARNs allowed: `put` resolves them); exit 2 on any
    problem."""
    mode = output_format(ctx, output)
    loaded = parse_text(_read_file(file, mode), role_arns=True)
    _print_report(loaded, str(file), mode)
    raise typer.Exit(EXIT_USAGE if loaded.problems else EXIT_OK)


@app.command("show")
def show(ctx: typer.Context, parameter: ParameterOption = None, output: OutputOption = None) -> None:
    """Print the policy the function reads (the SSM parameter), with any problems in it (exit 2 if invalid)."""
    mode = output_format(ctx, output)
    name = resource("producer_policy_parameter", parameter, mode)
    stored = read_parameter(name, mode)
    loaded = parse_text(stored["Value"], role_arns=False)
    if mode.machine:
        print_json({"parameter": name, "version": stored.get("Version"), "lastModified": stored.get("LastModifiedDate"),
                    "policy": loaded.document if loaded.document is not None else stored["Value"],
                    **loaded.as_json()})
    else:
        console().print(Text.assemble((name, "bold"), f" (version {stored.get('Version')})"))
        if loaded.document is not None:
            console().print(JSON(json.dumps(loaded.document)))
        else:
            console().print(stored["Value"], highlight=False, markup=False)
        if loaded.problems or loaded.warnings:
            _print_report(loaded, name, mode)
    raise typer.Exit(EXIT_USAGE if loaded.problems else EXIT_OK)


def resolve_arns(document: dict[str, Any], mode: OutputFormat) -> dict[str, str]:
    """Every ``sqs:arn:…`` sender of ``document`` replaced, in place, by the id SQS reports for it: a role's
    ``sqs:<RoleId>:*`` (any session of it), a user's ``sqs:<UserId>``. Returns what was resolved to what."""
    resolved: dict[str, str] = {}
    for producer in document.get("producers", {}).values():
        senders = producer.get("senders", [])
        for index, pattern in enumerate(senders):
            if isinstance(pattern, str) and is_iam_arn_pattern(pattern):
                resolved[pattern] = resolved.get(pattern) or _resolved(pattern, mode)
                senders[index] = resolved[pattern]
    return resolved


def _resolved(pattern: str, mode: OutputFormat) -> str:
    arn = pattern.removeprefix("sqs:")
    parts = arn.split(":", 5)
    resource_part = parts[5] if len(parts) == 6 and parts[2] == "iam" else ""
    kind, _, path = resource_part.partition("/")
    name = path.rsplit("/", 1)[-1]
    if kind not in ("role", "user") or not name or name.endswith("*"):
        fail(f"{pattern}: only an exact IAM role or user ARN can be resolved (arn:aws:iam::<account>:role/<name>)",
             EXIT_USAGE, mode)
    try:
        if kind == "role":
            return f"sqs:{client('iam').get_role(RoleName=name)['Role']['RoleId']}:*"
        return f"sqs:{client('iam').get_user(UserName=name)['User']['UserId']}"
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot resolve {arn} to its id ({error}). A role of another account is resolved there: "
             f"aws iam get-role --role-name {name} --query Role.RoleId; then write sqs:<that id>:*",
             EXIT_FAILED, mode)


@app.command("put")
def put(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Producer policy JSON file.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before writing.")] = False,
    parameter: ParameterOption = None,
    output: OutputOption = None,
) -> None:
    """Validate a policy file, resolve its role and user ARNs to the ids SQS reports, and, only if it is valid,
    write it to the SSM parameter."""
    mode = output_format(ctx, output)
    name = resource("producer_policy_parameter", parameter, mode)
    loaded = parse_text(_read_file(file, mode), role_arns=True)
    if loaded.problems or not isinstance(loaded.document, dict):
        _print_report(loaded, str(file), mode, {"written": False})
        raise typer.Exit(EXIT_USAGE)
    resolved = resolve_arns(loaded.document, mode)
    final = parse_text(json.dumps(loaded.document), role_arns=False)
    if final.problems:  # e.g. two ARNs of one role in two producers
        _print_report(final, str(file), mode, {"written": False, "resolved": resolved})
        raise typer.Exit(EXIT_USAGE)
    if mode is OutputFormat.TABLE:
        _print_report(loaded, str(file), mode)
        for arn, sender in resolved.items():
            console().print(f"{arn} -> {sender}", highlight=False, markup=False)
    producers = len(loaded.document.get("producers", {}))
    if not yes:
        typer.confirm(f"Write {producers} producer(s) to {name}?", abort=True, err=True)
    try:
        version = client("ssm").put_parameter(
            Name=name, Value=json.dumps(loaded.document, separators=(",", ":")), Type="String", Overwrite=True
        )["Version"]
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot write SSM parameter {name}: {error}", EXIT_FAILED, mode)
    if mode.machine:
        print_json({"source": str(file), **loaded.as_json(), "resolved": resolved, "written": True,
                    "parameter": name, "version": version})
    else:
        console().print(f"Wrote {name} (version {version}).", highlight=False)


def _sender(text: str, mode: OutputFormat) -> Sender:
    kind, colon, ident = text.partition(":")
    if not colon or kind not in SENDER_KINDS or not ident:
        fail(f"--sender must be KIND:ID with KIND one of {', '.join(SENDER_KINDS)} (e.g. sqs:AROAEXAMPLE:session, "
             "events:111122223333/com.example.fraud, alarm:111122223333, direct:-)", EXIT_USAGE, mode)
    return Sender(kind, ident)


def _request(text: str, mode: OutputFormat) -> Any:
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        text = _read_file(path, mode)
    try:
        payload = json.loads(text)
    except ValueError as error:
        fail(f"--request is neither a stop request (JSON) nor a file holding one: {error}", EXIT_USAGE, mode)
    if not isinstance(payload, dict):
        fail("--request must be a JSON object (a stop request)", EXIT_USAGE, mode)
    try:
        return parse_stop_request(payload, Origin(Source.SQS, "producers-test", "1970-01-01T00:00:00Z"), "test")
    except InvalidRequest as error:
        fail(f"--request is not a valid stop request: {error.message}", EXIT_USAGE, mode)


def _policy_for_test(file: Path | None, parameter: str | None, mode: OutputFormat) -> tuple[str, ProducerPolicy]:
    if file is not None:
        source, loaded = str(file), parse_text(_read_file(file, mode), role_arns=True)
        if not loaded.problems and isinstance(loaded.document, dict):
            resolve_arns(loaded.document, mode)  # as `put` would write it
            loaded = parse_text(json.dumps(loaded.document), role_arns=False)
    else:
        source = resource("producer_policy_parameter", parameter, mode)
        loaded = parse_text(read_parameter(source, mode)["Value"], role_arns=False)
    if loaded.problems:
        fail(f"{source}: {'; '.join(loaded.problems[:3])}", EXIT_USAGE, mode)
    return source, parse_policy(loaded.document)


@app.command("test")
def test(
    ctx: typer.Context,
    sender: Annotated[str, typer.Option("--sender", help="Who sends it, KIND:ID, as the function would read it.",
                                        metavar="KIND:ID")],
    request: Annotated[str, typer.Option("--request", help="A stop request: JSON, or a file holding it.",
                                         metavar="JSON")],
    file: Annotated[Path | None, typer.Option("--file", help="Try a policy file instead of the SSM parameter.",
                                              metavar="PATH")]
    = None,
    parameter: ParameterOption = None,
    output: OutputOption = None,
) -> None:
    """Whether SENDER may make REQUEST: campaign by campaign (all-active as a whole), which producer it is and
    which allow entry decides. Exit 0 when all of it is allowed, 1 when any is refused."""
    mode = output_format(ctx, output)
    who = _sender(sender, mode)
    asked = _request(request, mode)
    source, policy = _policy_for_test(file, parameter, mode)
    found = policy.producer_for(who)
    targets: list[str | None] = [None] if asked.all_active else list(asked.campaign_ids)
    verdicts = [(campaign_id, policy.judge(who, asked.stream_id, asked.campaign_type, campaign_id))
                for campaign_id in targets]
    rows: list[dict[str, Any]] = [{"campaign": campaign_id or "all-active", "allowed": verdict.allowed,
                                   "entry": verdict.entry, "why": verdict.why} for campaign_id, verdict in verdicts]
    allowed = all(verdict.allowed for _, verdict in verdicts)
    if mode.machine:
        print_json({"source": source, "sender": str(who), "producer": found[0].name if found else None,
                    "matchedBy": found[1] if found else None, "otherwise": policy.otherwise,
                    "streamId": asked.stream_id, "campaignType": asked.campaign_type.value, "allowed": allowed,
                    "campaigns": rows})
    else:
        what: Text | str = Text.assemble("producer ", (found[0].name, "bold"), f" (sender pattern {found[1]})") \
            if found else f"no producer: otherwise is {policy.otherwise}"
        console().print(Text.assemble("Sender ", (str(who), "bold"), " is ", what, f" in {source}."))
        table = Table("campaign", "verdict", "entry", "why",
                      title=Text(f"stream {asked.stream_id}, {asked.campaign_type.value}"))
        for row in rows:
            table.add_row(Text(str(row["campaign"])),
                          Text("allowed", "green") if row["allowed"] else Text("refused", "red"),
                          Text("" if row["entry"] is None else f"allow[{row['entry']}]"), Text(str(row["why"])))
        console().print(table)
    raise typer.Exit(EXIT_OK if allowed else EXIT_FAILED)
