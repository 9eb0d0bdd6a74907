"""`campaign-stop doctor`: check what can be checked without stopping anything, and say how to fix what fails.

Read-only throughout: the credentials secret is read (never printed), a token is minted (never printed), Kore.ai is
asked for one campaign's status, and the queues, topic, table and alarm map are looked at. Nothing is sent to the
stop queue and nothing is received from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table
from rich.text import Text

from campaign_stop_cli.alarm_map import Report, check_credentials, check_map, credential_store, parse_map_text
from campaign_stop_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    DlqUrlOption,
    OutputFormat,
    OutputOption,
    QueueUrlOption,
    ResultsTopicOption,
    client,
    console,
    fail,
    find_resource,
    missing_resource_message,
    output_format,
    print_json,
    stack_name,
)
from stop_campaign.adapters.credentials import (
    CredentialStore,
    CredentialsUnavailable,
    StreamCredentials,
    auth_headers,
    mint_token,
)
from stop_campaign.adapters.kore_client import ApiUnavailable, ClientSettings, Deadline, KoreClient
from stop_campaign.domain.intake import InvalidRequest, Origin, parse_stop_request
from stop_campaign.domain.models import Source, StopDeferred
from stop_campaign.domain.outcomes import describe_refusal
from stop_campaign.settings import IDEMPOTENCY_TTL_ATTRIBUTE, OPTIONAL_ENV_VARS, ConfigurationError, validate_base_url
from stop_campaign.settings import _is_loopback as is_loopback  # the function's own rule for plain http

JWT_TTL_SECONDS = int(OPTIONAL_ENV_VARS["JWT_TTL_SECONDS"])
# Kore.ai is asked once (one retry), with a short leash: a diagnosis should answer in seconds.
KORE_CONNECT_TIMEOUT, KORE_READ_TIMEOUT, KORE_RETRIES = 3.0, 10.0, 1
DEFAULTS = "(defaults)"  # the secret's top-level values, which serve every stream without an entry of its own
CREDENTIALS_MAX_AGE = 300  # seconds the one read of the secret is reused for within this run
# The hosts Kore.ai documents for its API (one per region; bots.kore.ai for older tenants): the only ones a token is
# sent to without --allow-host. A base URL is configuration, and a mistyped or planted one must not receive a token.
DOCUMENTED_KORE_HOSTS = ("platform.kore.ai", "de-platform.kore.ai", "jp-platform.kore.ai", "bots.kore.ai")
SHAPE_FIX = ('put a JSON object {"clientId", "clientSecret", "accountId", "streams": {"st-…": {…}}} '
             "(aws secretsmanager put-secret-value; README: Create the credentials secret)")


class Status(StrEnum):
    PASS = "pass"  # noqa: S105
    FAIL = "fail"
    SKIP = "skip"
    NOT_CONFIGURED = "not configured"


STYLES = {Status.PASS: "green", Status.FAIL: "bold red", Status.SKIP: "dim", Status.NOT_CONFIGURED: "yellow"}


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


class Doctor:
    def __init__(self, mode: OutputFormat) -> None:
        self.mode = mode
        self.checks: list[Check] = []

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def setting(self, name: str, flag_value: str | None, check: str) -> str | None:
        """A resource, or a "not configured" row for this check naming what to pass."""
        value = find_resource(name, flag_value, self.mode)
        if value is None:
            self.add(check, Status.NOT_CONFIGURED, "not found", missing_resource_message(name).split(": ", 1)[1])
        return value

    def exit_code(self) -> int:
        if any(check.status is Status.NOT_CONFIGURED for check in self.checks):
            return EXIT_USAGE
        if any(check.status is Status.FAIL for check in self.checks):
            return EXIT_FAILED
        return EXIT_OK


def doctor(
    ctx: typer.Context,
    stream: Annotated[
        str | None, typer.Option("--stream", help="Stream id (st-…): check its credentials and, with --campaign, "
                                                  "ask Kore.ai for that campaign's status.", metavar="STREAM_ID")
    ] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Campaign id (cd-…) whose status to ask for (read-only).",
                                 metavar="CAMPAIGN_ID")
    ] = None,
    secret_id: Annotated[
        str | None, typer.Option("--secret-id", help="Credentials secret id or ARN (env CREDENTIALS_SECRET_ID).",
                                 metavar="SECRET_ID")
    ] = None,
    kore_base_url: Annotated[
        str | None, typer.Option("--kore-base-url", help="Kore.ai API base URL (env KORE_BASE_URL).", metavar="URL")
    ] = None,
    parameter: Annotated[
        str | None, typer.Option("--parameter", help="Alarm map SSM parameter (env ALARM_TARGETS_PARAMETER).",
                                 metavar="NAME")
    ] = None,
    queue_url: QueueUrlOption = None,
    dlq_url: DlqUrlOption = None,
    results_topic_arn: ResultsTopicOption = None,
    table_name: Annotated[
        str | None, typer.Option("--table-name", help="Idempotency table (env IDEMPOTENCY_TABLE_NAME).",
                                 metavar="TABLE")
    ] = None,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Also send the status call's token to this host (repeat for several): a Kore.ai host "
        f"other than the documented ones ({', '.join(DOCUMENTED_KORE_HOSTS)}), e.g. a private deployment.",
        metavar="HOST")] = None,
    output: OutputOption = None,
) -> None:
    """Check the setup without stopping anything: credentials, token, Kore.ai, alarm map, queues, topic, table.

    Exit 0 when every check passes, 1 when some failed, 2 when settings are missing."""
    mode = output_format(ctx, output)
    if campaign is not None and stream is None:
        fail("--campaign needs --stream", EXIT_USAGE, mode)
    if stream is not None:
        _validate_ids(stream, campaign, mode)
    run = Doctor(mode)

    secret = run.setting("credentials_secret_id", secret_id, "credentials secret")
    store = credentials = None
    if secret is not None:
        store, credentials = _check_credentials(run, secret, stream)
    _check_token(run, credentials)
    _check_kore(run, kore_base_url, stream, campaign, credentials, allow_host or [])
    _check_alarm_map(run, parameter, store)
    dlq_arn = _check_dead_letter_queue(run, dlq_url)
    _check_stop_queue(run, queue_url, dlq_arn)
    _check_topic(run, results_topic_arn)
    _check_table(run, table_name)

    code = run.exit_code()
    _print(run, code)
    raise typer.Exit(code)


def _validate_ids(stream: str, campaign: str | None, mode: OutputFormat) -> None:
    """The ids as the function checks them (its own schema), so a typo is a usage error, not a Kore.ai 404."""
    request: dict[str, Any] = {"streamId": stream}
    if campaign is not None:
        request["campaignId"] = campaign
    else:
        request["campaigns"] = "all-active"
    try:
        parse_stop_request(request, Origin(Source.SQS, "doctor", "1970-01-01T00:00:00Z"), "doctor")
    except InvalidRequest as error:
        fail(f"invalid id: {error.message}", EXIT_USAGE, mode)


# ---- credentials and token ---------------------------------------------------------------------------------


def _check_credentials(
    run: Doctor, secret_id: str, stream: str | None
) -> tuple[CredentialStore | None, StreamCredentials | None]:
    """Read the secret the function's way (Powertools, JSON; the read is cached, so it happens once) and parse it
    with the function's own code: for --stream, that stream's credentials; otherwise every stream listed under
    "streams" and the defaults."""
    name = "credentials secret"
    try:
        store, provider = credential_store(secret_id)
        secret = provider.get(secret_id, max_age=CREDENTIALS_MAX_AGE, transform="json")
        store.for_stream(stream or DEFAULTS)  # the function's own checks of the document itself
    except CredentialsUnavailable as error:
        if error.code == "invalid_credentials":  # not a JSON object
            run.add(name, Status.FAIL, f"{secret_id}: {error.message}", SHAPE_FIX)
            return None, None
    except Exception as error:  # Powertools wraps every read error (and bad JSON) in its own types
        if "Transform" in type(error).__name__:
            run.add(name, Status.FAIL, f"{secret_id}: not valid JSON", SHAPE_FIX)
        else:
            why, fix = _why_unreadable(secret_id)
            run.add(name, Status.FAIL, f"{secret_id}: cannot be read ({why})", fix)
        return None, None
    streams = secret.get("streams") if isinstance(secret, dict) else None
    listed = sorted(streams) if isinstance(streams, dict) else []
    entries = f", {len(listed)} stream entr{'y' if len(listed) == 1 else 'ies'}" if listed else ""
    run.add(name, Status.PASS, f"{secret_id}: a JSON object{entries}")
    if stream is not None:
        return store, _credentials_row(run, store, stream, listed)
    found = [_credentials_row(run, store, listed_stream, listed) for listed_stream in listed]
    defaults = _credentials_row(run, store, DEFAULTS, listed, quiet=bool(listed))
    return store, next((credentials for credentials in found if credentials), defaults)


def _credentials_row(
    run: Doctor, store: CredentialStore, stream: str, listed: list[str], quiet: bool = False
) -> StreamCredentials | None:
    name = "default credentials" if stream == DEFAULTS else f"credentials for {stream}"
    try:
        found = store.for_stream(stream)
    except CredentialsUnavailable as error:
        if quiet:  # no top-level values, but streams of their own: only those streams are served
            run.add(name, Status.PASS, f"none: only the {len(listed)} stream(s) under \"streams\" are served")
            return None
        message = error.message.replace(f"for stream {DEFAULTS}", "at the top level")
        where = f'"streams": {{"{stream}": {{…}}}}' if stream != DEFAULTS else "the top level"
        run.add(name, Status.FAIL, message,
                f"add clientId, clientSecret and accountId to {where} of the secret" +
                (" or to its top level (defaults for every stream)" if stream != DEFAULTS else ""))
        return None
    detail = f"clientId, clientSecret (not shown) and accountId {found.account_id}"
    if stream != DEFAULTS:
        detail += f" from {'its own entry' if stream in listed else 'the defaults'}; iid {found.iid}"
    run.add(name, Status.PASS, detail)
    return found


def _why_unreadable(secret_id: str) -> tuple[str, str]:
    """The AWS error code of reading the secret (the value, if it comes back this time, is dropped at once)."""
    try:
        client("secretsmanager").get_secret_value(SecretId=secret_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "ClientError")
        if code == "ResourceNotFoundException":
            return "it does not exist", ("create it (README: Create the credentials secret) or pass the right "
                                         "--secret-id / CREDENTIALS_SECRET_ID")
        if code in ("AccessDeniedException", "AccessDenied"):
            return code, "allow secretsmanager:GetSecretValue (and kms:Decrypt for its key) to your identity"
        return code, "check the secret's id, region and KMS key"
    except BotoCoreError as error:
        return type(error).__name__, "check your AWS credentials, region and network"
    return "a transient error", "run doctor again"


def _check_token(run: Doctor, credentials: StreamCredentials | None) -> None:
    if credentials is None:
        run.add("token", Status.SKIP, "no usable credentials to mint one with")
        return
    try:
        token = mint_token(credentials, JWT_TTL_SECONDS)
    except Exception as error:  # PyJWT's errors; the message never carries the key
        run.add("token", Status.FAIL, f"cannot mint a token: {type(error).__name__}",
                "check clientSecret in the credentials secret")
        return
    run.add("token", Status.PASS, f"HS256, {JWT_TTL_SECONDS} s, {len(token)} characters (not shown)")


# ---- Kore.ai ------------------------------------------------------------------------------------------------


def _check_kore(
    run: Doctor, flag_value: str | None, stream: str | None, campaign: str | None,
    credentials: StreamCredentials | None, allowed_hosts: list[str],
) -> None:
    name = "Kore.ai status call"
    base_url = run.setting("kore_base_url", flag_value, name)
    if base_url is None:
        return
    try:
        base_url = validate_base_url(base_url)
    except ConfigurationError as error:
        run.add(name, Status.FAIL, str(error), "use the https:// base URL of your Kore.ai region")
        return
    host = (urlsplit(base_url).hostname or "").lower()
    if not token_may_go_to(host, allowed_hosts):
        run.add(name, Status.FAIL, f"{base_url}: {host} is not a documented Kore.ai host; no token was sent to it",
                f"use the base URL of your Kore.ai region ({', '.join(DOCUMENTED_KORE_HOSTS)}), or pass "
                f"--allow-host {host} if it is your Kore.ai")
        return
    if stream is None or campaign is None:
        run.add(name, Status.SKIP, f"{base_url}: give --stream and --campaign to ask for a campaign's status")
        return
    if credentials is None:
        run.add(name, Status.SKIP, f"no usable credentials for {stream}")
        return
    kore = KoreClient(ClientSettings(base_url=base_url, connect_timeout=KORE_CONNECT_TIMEOUT,
                                     read_timeout=KORE_READ_TIMEOUT, max_retries=KORE_RETRIES, pool_size=1))
    try:
        response = kore.campaign_status(
            stream, campaign, credentials.account_id, lambda: auth_headers(credentials, JWT_TTL_SECONDS), Deadline()
        )
    except (ApiUnavailable, StopDeferred) as error:
        run.add(name, Status.FAIL, f"{base_url}: {error}", "check KORE_BASE_URL and that this machine reaches it")
        return
    if response.ok:
        data = (response.body or {}).get("data")
        state = data.get("status") if isinstance(data, dict) else None
        run.add(name, Status.PASS, f"{stream}/{campaign}: {state or 'answered'} (HTTP {response.status}, "
                                   f"{response.latency_ms:.0f} ms)")
        return
    fixes = {
        401: f"Kore.ai refused the token: check clientId, clientSecret and accountId for {stream} in the secret "
             "(and the app's API scopes)",
        403: "the app lacks the campaign API scope: grant it in Kore.ai",
        404: f"no campaign {campaign} on stream {stream}: check both ids",
        412: f"check accountId and iid for {stream} in the secret (iid defaults to the stream id)",
    }
    fix = fixes.get(response.status, "check the Kore.ai API's health and the ids")
    run.add(name, Status.FAIL, f"{stream}/{campaign}: {describe_refusal(response)}", fix)


def token_may_go_to(host: str, allowed_hosts: list[str]) -> bool:
    """A documented Kore.ai host, one the operator named with --allow-host, or this machine (loopback, where the
    function itself allows plain http: the Kore.ai simulator of the local stack; a token sent there stays here)."""
    allowed = {name.strip().lower() for name in allowed_hosts}
    return host in DOCUMENTED_KORE_HOSTS or host in allowed or is_loopback(host)


# ---- the alarm map, queues, topic, table --------------------------------------------------------------------


def _check_alarm_map(run: Doctor, flag_value: str | None, store: CredentialStore | None) -> None:
    name = "alarm map"
    parameter = run.setting("alarm_parameter", flag_value, name)
    if parameter is None:
        return
    try:
        stored = client("ssm").get_parameter(Name=parameter)["Parameter"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            run.add(name, Status.SKIP, f"{parameter} does not exist (needed only for alarm-triggered stops)",
                    "")
            return
        run.add(name, Status.FAIL, f"cannot read {parameter}: {_aws_error(error)}", "allow ssm:GetParameter")
        return
    except BotoCoreError as error:
        run.add(name, Status.FAIL, f"cannot read {parameter}: {error}", "check your AWS credentials and region")
        return
    report = Report()
    alarm_map = parse_map_text(stored["Value"], report)
    if alarm_map is not None:
        check_map(alarm_map, report)
        if store is not None and not report.problems:
            check_credentials(alarm_map, store, report)
    if report.problems:
        listed = "; ".join(f"{key or '(map)'}: {message}" for key, message in report.problems[:3])
        more = f" (and {len(report.problems) - 3} more)" if len(report.problems) > 3 else ""
        run.add(name, Status.FAIL, f"{parameter}: {listed}{more}",
                "campaign-stop alarm-map show; fix the file, then campaign-stop alarm-map put FILE")
        return
    entries = len(alarm_map or {})
    warned = f", {len(report.warnings)} warning(s): campaign-stop alarm-map show" if report.warnings else ""
    run.add(name, Status.PASS, f"{parameter}: {entries} entr{'y' if entries == 1 else 'ies'}, valid{warned}")


def _check_dead_letter_queue(run: Doctor, flag_value: str | None) -> str | None:
    name = "dead-letter queue"
    url = run.setting("dead_letter_queue_url", flag_value, name)
    if url is None:
        return None
    attributes = _queue_attributes(run, name, url, ["QueueArn", "ApproximateNumberOfMessages"])
    if attributes is None:
        return None
    waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
    run.add(name, Status.PASS, f"{_queue_name(url)}: exists, {waiting} message(s) waiting"
                               + (" (campaign-stop dlq list)" if waiting else ""))
    return attributes.get("QueueArn")


def _check_stop_queue(run: Doctor, flag_value: str | None, dlq_arn: str | None) -> None:
    name = "stop queue"
    url = run.setting("stop_queue_url", flag_value, name)
    if url is None:
        return
    attributes = _queue_attributes(run, name, url, ["QueueArn", "RedrivePolicy"])
    if attributes is None:
        return
    try:
        redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
    except ValueError:
        redrive = {}
    target = redrive.get("deadLetterTargetArn") if isinstance(redrive, dict) else None
    if dlq_arn and target and target != dlq_arn:
        run.add(name, Status.FAIL, f"{_queue_name(url)}: redrives to {target}, not to the dead-letter queue "
                                   f"{dlq_arn}",
                "point DEAD_LETTER_QUEUE_URL / --dlq-url at the stop queue's dead-letter queue (same stack)")
        return
    if not target:
        run.add(name, Status.FAIL, f"{_queue_name(url)}: exists but has no redrive policy",
                "deploy the stack's queue (it redrives to the dead-letter queue after MaxReceiveCount receives)")
        return
    run.add(name, Status.PASS, f"{_queue_name(url)}: exists, redrives to {target.rsplit(':', 1)[-1]} after "
                               f"{redrive.get('maxReceiveCount')} receives")


def _queue_attributes(run: Doctor, name: str, url: str, names: list[str]) -> dict[str, str] | None:
    try:
        return client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=names)[  # type: ignore[no-any-return]
            "Attributes"]
    except ClientError as error:
        if "NonExistentQueue" in _aws_code(error) or "QueueDoesNotExist" in _aws_code(error):
            run.add(name, Status.FAIL, f"{url} does not exist", "check the URL (region, account) or deploy the stack")
        else:
            run.add(name, Status.FAIL, f"{url}: {_aws_error(error)}", "allow sqs:GetQueueAttributes")
    except BotoCoreError as error:
        run.add(name, Status.FAIL, f"{url}: {error}", "check your AWS credentials and region")
    return None


def _check_topic(run: Doctor, flag_value: str | None) -> None:
    name = "results topic"
    arn = run.setting("results_topic_arn", flag_value, name)
    if arn is None:
        return
    try:
        attributes = client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]
    except ClientError as error:
        if "NotFound" in _aws_code(error):
            run.add(name, Status.FAIL, f"{arn} does not exist", "check the ARN (region, account) or deploy the stack")
        else:
            run.add(name, Status.FAIL, f"{arn}: {_aws_error(error)}", "allow sns:GetTopicAttributes")
        return
    except BotoCoreError as error:
        run.add(name, Status.FAIL, f"{arn}: {error}", "check your AWS credentials and region")
        return
    encrypted = " (encrypted)" if attributes.get("KmsMasterKeyId") else ""
    run.add(name, Status.PASS, f"{arn.rsplit(':', 1)[-1]}: exists{encrypted}")


def _check_table(run: Doctor, flag_value: str | None) -> None:
    name = "idempotency table"
    table = run.setting("table_name", flag_value, name)
    if table is None:
        return
    dynamodb = client("dynamodb")
    try:
        state = dynamodb.describe_table(TableName=table)["Table"].get("TableStatus")
        ttl = dynamodb.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    except ClientError as error:
        if _aws_code(error) == "ResourceNotFoundException":
            run.add(name, Status.FAIL, f"{table} does not exist", "check the name (region, account) or deploy the "
                                                                  "stack")
        else:
            run.add(name, Status.FAIL, f"{table}: {_aws_error(error)}", "allow dynamodb:DescribeTable and "
                                                                       "dynamodb:DescribeTimeToLive")
        return
    except BotoCoreError as error:
        run.add(name, Status.FAIL, f"{table}: {error}", "check your AWS credentials and region")
        return
    if state != "ACTIVE":
        run.add(name, Status.FAIL, f"{table}: {state}", "wait for the table to become ACTIVE")
        return
    if ttl.get("TimeToLiveStatus") != "ENABLED" or ttl.get("AttributeName") != IDEMPOTENCY_TTL_ATTRIBUTE:
        run.add(name, Status.FAIL, f"{table}: ACTIVE, but time to live is not enabled on "
                                   f"{IDEMPOTENCY_TTL_ATTRIBUTE!r} (records would never expire)",
                f"aws dynamodb update-time-to-live --table-name {table} --time-to-live-specification "
                f"Enabled=true,AttributeName={IDEMPOTENCY_TTL_ATTRIBUTE}")
        return
    run.add(name, Status.PASS, f"{table}: ACTIVE, records expire ({IDEMPOTENCY_TTL_ATTRIBUTE})")


def _aws_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _aws_error(error: ClientError) -> str:
    detail = error.response.get("Error", {})
    return f"{detail.get('Code', 'error')}: {detail.get('Message', '')}".rstrip(": ")


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


# ---- the report -------------------------------------------------------------------------------------------


def _print(run: Doctor, code: int) -> None:
    counts = {status: sum(1 for check in run.checks if check.status is status) for status in Status}
    if run.mode.machine:
        print_json({
            "stack": stack_name(),
            "checks": [{**asdict(check), "status": check.status.value} for check in run.checks],
            "counts": {status.value: count for status, count in counts.items()},
            "exitCode": code,
        })
        return
    table = Table("check", "result", "detail", "fix", title="campaign-stop doctor" + (
        f" (stack {stack_name()})" if stack_name() else ""))
    for check in run.checks:
        style = STYLES[check.status]
        # A URL or an ARN folds onto the next line rather than losing its end to "…".
        table.add_row(check.name, Text(check.status.value, style=style), Text(check.detail, overflow="fold"),
                      Text(check.fix, overflow="fold"))
    out = console()
    out.print(table)
    parts = [f"{counts[status]} {status.value}" for status in Status if counts[status]]
    verdict = {EXIT_OK: "[green]all checks passed[/]", EXIT_FAILED: "[bold red]some checks failed[/]",
               EXIT_USAGE: "[yellow]settings are missing[/]"}[code]
    out.print(f"{verdict} ({', '.join(parts)})", highlight=False)
