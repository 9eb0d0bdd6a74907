"""Offline checks of the issue-11 infrastructure in template.yaml: scheduled stops, the opt-in audit archive,
the operations dashboard, the topic and key hardening, and the outputs the operator's CLI reads.

Everything runs on the SAM transform of template.yaml (no AWS account). The dashboard is checked against the
metric names grepped from the function's source, so renaming or adding a metric without updating the
dashboard fails here.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from devtools.template_loader import transform_template

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTION_SOURCE = REPO_ROOT / "functions" / "stop_campaign"
SCHEMAS = FUNCTION_SOURCE / "schemas"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
INSECURE_TRANSPORT = {"Bool": {"aws:SecureTransport": "false"}}
ARCHIVE_TYPES = {
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
}
FIREHOSE_PREFIX = "results/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/"


def _ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


def _arn(logical_id: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _of_type(resources: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == resource_type}


def _role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def _grants(role: dict[str, Any]) -> dict[str, list[Any]]:
    """action -> resources, over the role's inline Allow statements."""
    grants: dict[str, list[Any]] = {}
    for statement in _role_statements(role):
        assert statement["Effect"] == "Allow", statement
        for action in _as_list(statement["Action"]):
            grants.setdefault(action, []).extend(_as_list(statement["Resource"]))
    return grants


def _only_policies_of(resources: dict[str, dict[str, Any]], role_id: str) -> None:
    """No managed policy and no separate IAM policy widens the role beyond its inline statements."""
    assert not resources[role_id]["Properties"].get("ManagedPolicyArns"), role_id
    for logical_id, resource in resources.items():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            assert _ref(role_id) not in resource["Properties"].get("Roles", []), (logical_id, role_id)


def _sub(template: str, values: dict[str, str]) -> str:
    """Fn::Sub as CloudFormation does it, from a dict of values; `${!x}` stays literal `${x}`."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return "${" + name[1:] + "}" if name.startswith("!") else values[name]

    return re.sub(r"\$\{([^}]+)\}", value, template)


# ------------------------------------------------------------------------------------------- scheduled stops
def test_schedule_group_and_scheduler_outputs(resources, transformed):
    assert resources["StopScheduleGroup"]["Type"] == "AWS::Scheduler::ScheduleGroup"
    assert "Condition" not in resources["StopScheduleGroup"]
    outputs = transformed["Outputs"]
    assert outputs["ScheduleGroupName"]["Value"] == _ref("StopScheduleGroup")
    assert outputs["SchedulerRoleArn"]["Value"] == _arn("SchedulerRole")
    assert outputs["StopQueueArn"]["Value"] == _arn("StopQueue")  # the schedules' target


def test_scheduler_role_trusts_only_scheduler_of_this_account_and_group(resources):
    trust = resources["SchedulerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": _ref("AWS::AccountId")},
                "ArnEquals": {"aws:SourceArn": _arn("StopScheduleGroup")},
            },
        }
    ]


def test_scheduler_role_can_only_send_to_the_stop_queue_and_its_dead_letter_queue(resources):
    assert _grants(resources["SchedulerRole"]) == {"sqs:SendMessage": [_arn("StopQueue"), _arn("DeadLetterQueue")]}
    _only_policies_of(resources, "SchedulerRole")


def test_stop_queue_accepts_the_scheduler_roles_messages(resources):
    """The role is of this account (its identity policy is enough): the queue's policy may deny nothing but
    requests without TLS, and the queue has no customer managed key the role would need."""
    queue = resources["StopQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert "KmsMasterKeyId" not in queue
    policy = next(
        p["Properties"]["PolicyDocument"]
        for p in _of_type(resources, "AWS::SQS::QueuePolicy").values()
        if _ref("StopQueue") in p["Properties"]["Queues"]
    )
    denies = [s for s in policy["Statement"] if s.get("Effect") == "Deny"]  # conditional Allows have none
    assert denies
    assert all(s["Condition"] == INSECURE_TRANSPORT for s in denies), denies


# ------------------------------------------------------------------------------------------- audit archive
def test_audit_archive_parameters(transformed):
    parameters = transformed["Parameters"]
    assert (parameters["EnableAuditArchive"]["Default"], parameters["EnableAuditArchive"]["AllowedValues"]) == (
        "false", ["false", "true"]
    )
    assert parameters["AuditRetentionYears"]["Default"] == 5
    assert (parameters["AuditObjectLock"]["Default"], parameters["AuditObjectLock"]["AllowedValues"]) == (
        "false", ["false", "true"]
    )
    assert set(parameters["AuditObjectLockMode"]["AllowedValues"]) == {"GOVERNANCE", "COMPLIANCE"}
    conditions = transformed["Conditions"]
    assert conditions["AuditArchive"] == {"Fn::Equals": [_ref("EnableAuditArchive"), "true"]}
    assert conditions["AuditArchiveObjectLock"] == {
        "Fn::And": [{"Condition": "AuditArchive"}, {"Fn::Equals": [_ref("AuditObjectLock"), "true"]}]
    }


def _archive_ids(resources: dict[str, dict[str, Any]]) -> set[str]:
    return {k for k, v in resources.items() if k.startswith("AuditArchive") or v["Type"] in ARCHIVE_TYPES}


def test_archive_resources_exist_only_under_the_condition(resources):
    archive = _archive_ids(resources)
    assert archive >= {
        "AuditArchiveBucket", "AuditArchiveBucketPolicy", "AuditArchiveStream", "AuditArchiveDeliveryRole",
        "AuditArchiveSubscriptionRole", "AuditArchiveSubscription", "AuditArchiveDatabase",
        "AuditArchiveResultsTable",
    }
    for logical_id in archive:
        assert resources[logical_id].get("Condition") == "AuditArchive", logical_id
    firehose_subscriptions = [
        k for k, v in _of_type(resources, "AWS::SNS::Subscription").items() if v["Properties"]["Protocol"] == "firehose"
    ]
    assert firehose_subscriptions == ["AuditArchiveSubscription"]


def _references(value: Any, guard: str | None = None) -> list[tuple[str, str | None]]:
    """(logical id, condition guarding the reference) for every Ref, GetAtt and Fn::Sub variable in value."""
    found: list[tuple[str, str | None]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.append((inner, guard))
            elif key == "Fn::GetAtt":
                found.append((inner[0], guard))
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                names = re.findall(r"\$\{([^!}][^}]*)\}", text)
                found += [(name.split(".")[0], guard) for name in names]
                if not isinstance(inner, str):
                    found += _references(inner[1], guard)
            elif key == "Fn::If":
                for branch in inner[1:]:
                    found += _references(branch, inner[0])
            else:
                found += _references(inner, guard)
    elif isinstance(value, list):
        for inner in value:
            found += _references(inner, guard)
    return found


def test_nothing_unconditional_refers_to_an_archive_resource(transformed):
    """A resource or output that names a conditional resource carries the same condition (or names it in an
    Fn::If on it): with EnableAuditArchive=false, the stack must not need any of them."""
    resources = transformed["Resources"]
    referrers = {**resources, **{f"Outputs.{k}": v for k, v in transformed["Outputs"].items()}}
    checked = 0
    for referrer_id, referrer in referrers.items():
        own = referrer.get("Condition")
        body = {k: v for k, v in referrer.items() if k != "Condition"}
        for target, guard in _references(body):
            needed = resources.get(target, {}).get("Condition")
            if needed:
                checked += 1
                assert needed in (own, guard), (referrer_id, target, needed)
    assert checked > 10


def test_archive_transforms_with_the_archive_and_object_lock_on(template_path):
    transformed = transform_template(
        template_path,
        parameter_values={
            "CredentialsSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:campaign-stop/kore-AbCdEf",
            "EnableAuditArchive": "true", "AuditObjectLock": "true", "AuditObjectLockMode": "COMPLIANCE",
        },
    )
    assert "AuditArchiveStream" in transformed["Resources"]


def test_lifecycle_expiry_is_retention_years_times_365(resources, transformed):
    years = transformed["Parameters"]["AuditRetentionYears"]
    retention = transformed["Mappings"]["AuditRetention"]
    assert sorted(int(key) for key in retention) == sorted(years["AllowedValues"])
    for key, entry in retention.items():
        assert entry == {"Days": int(key) * 365}, key
    assert years["Default"] in years["AllowedValues"]

    rules = resources["AuditArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    expiring = [rule for rule in rules if "ExpirationInDays" in rule]
    assert len(expiring) == 1 and "Prefix" not in expiring[0] and "TagFilters" not in expiring[0]
    rule = expiring[0]
    assert rule["ExpirationInDays"] == {"Fn::FindInMap": ["AuditRetention", _ref("AuditRetentionYears"), "Days"]}
    assert rule["Transitions"] == [
        {"StorageClass": "GLACIER_IR", "TransitionInDays": _ref("AuditArchiveTransitionDays")}
    ]
    transition_days = transformed["Parameters"]["AuditArchiveTransitionDays"]
    assert transition_days["MaxValue"] < min(years["AllowedValues"]) * 365  # moved before it expires
    assert 0 < rule["NoncurrentVersionExpiration"]["NoncurrentDays"] <= 90  # versions a delete left behind
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] > 0
    assert any(r.get("ExpiredObjectDeleteMarker") is True for r in rules)  # markers the expiry leaves


def test_object_lock_is_conditional_and_retains_for_the_retention_years(resources):
    bucket = resources["AuditArchiveBucket"]["Properties"]
    assert bucket["ObjectLockEnabled"] == {"Fn::If": ["AuditArchiveObjectLock", True, _ref("AWS::NoValue")]}
    condition, on, off = bucket["ObjectLockConfiguration"]["Fn::If"]
    assert (condition, off) == ("AuditArchiveObjectLock", _ref("AWS::NoValue"))
    assert on == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": _ref("AuditObjectLockMode"), "Years": _ref("AuditRetentionYears")}},
    }


def test_archive_bucket_is_private_versioned_encrypted_and_kept(resources):
    bucket = resources["AuditArchiveBucket"]
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True
    }
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def _bucket_statements(resources: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    policy = resources["AuditArchiveBucketPolicy"]["Properties"]
    assert policy["Bucket"] == _ref("AuditArchiveBucket")
    return policy["PolicyDocument"]["Statement"]


def test_archive_bucket_policy_denies_insecure_transport(resources):
    bucket_and_objects = [_arn("AuditArchiveBucket"), {"Fn::Sub": "${AuditArchiveBucket.Arn}/*"}]
    assert {
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": bucket_and_objects, "Condition": INSECURE_TRANSPORT,
    } in _bucket_statements(resources)


def test_archive_bucket_policy_lets_only_the_delivery_role_write(resources):
    statements = _bucket_statements(resources)
    assert all(s["Effect"] == "Deny" for s in statements)  # grants come from IAM, never from the bucket
    (writes,) = [s for s in statements if "s3:PutObject" in _as_list(s["Action"])]
    assert writes["Principal"] == "*"
    assert writes["Resource"] == {"Fn::Sub": "${AuditArchiveBucket.Arn}/*"}
    assert writes["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": _arn("AuditArchiveDeliveryRole")}}


def test_delivery_role_writes_to_the_archive_bucket_only(resources):
    role = resources["AuditArchiveDeliveryRole"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow", "Principal": {"Service": "firehose.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": _ref("AWS::AccountId")}},
        }
    ]
    bucket_and_objects = [_arn("AuditArchiveBucket"), {"Fn::Sub": "${AuditArchiveBucket.Arn}/*"}]
    grants = _grants(role)
    assert grants.pop("logs:PutLogEvents") == [_arn("AuditArchiveDeliveryLogGroup")]  # its own error log
    assert {"s3:PutObject", "s3:GetBucketLocation", "s3:ListBucket"} <= set(grants)
    for action, targets in grants.items():
        assert action.startswith("s3:") and "Delete" not in action, action
        assert targets == bucket_and_objects, action
    _only_policies_of(resources, "AuditArchiveDeliveryRole")


def test_delivery_stream_writes_gzip_json_lines_in_date_partitions(resources):
    stream = resources["AuditArchiveStream"]["Properties"]
    assert stream["DeliveryStreamType"] == "DirectPut"
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    s3 = stream["ExtendedS3DestinationConfiguration"]
    assert (s3["BucketARN"], s3["RoleARN"]) == (_arn("AuditArchiveBucket"), _arn("AuditArchiveDeliveryRole"))
    assert s3["Prefix"] == FIREHOSE_PREFIX
    # Firehose requires an error prefix when the prefix has expressions, with the error type in it.
    assert s3["ErrorOutputPrefix"].startswith("errors/!{firehose:error-output-type}/")
    assert not s3["ErrorOutputPrefix"].startswith(FIREHOSE_PREFIX.split("/")[0])  # errors stay out of the table
    assert s3["CompressionFormat"] == "GZIP"
    hints = s3["BufferingHints"]
    assert 60 <= hints["IntervalInSeconds"] <= 900 and 1 <= hints["SizeInMBs"] <= 128
    # The function publishes compact JSON without a trailing newline: Firehose adds one per record.
    assert s3["ProcessingConfiguration"] == {"Enabled": True, "Processors": [{"Type": "AppendDelimiterToRecord"}]}
    assert s3["CloudWatchLoggingOptions"] == {
        "Enabled": True, "LogGroupName": _ref("AuditArchiveDeliveryLogGroup"),
        "LogStreamName": _ref("AuditArchiveDeliveryLogStream"),
    }


def test_firehose_subscription_is_raw_with_a_role_limited_to_the_stream(resources):
    subscription = resources["AuditArchiveSubscription"]["Properties"]
    assert subscription == {
        "TopicArn": _ref("ResultsTopic"),
        "Protocol": "firehose",
        "Endpoint": _arn("AuditArchiveStream"),
        "SubscriptionRoleArn": _arn("AuditArchiveSubscriptionRole"),
        "RawMessageDelivery": True,  # no filter policy either: every result and summary is archived
    }
    role = resources["AuditArchiveSubscriptionRole"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    grants = _grants(role)
    assert {"firehose:PutRecord", "firehose:PutRecordBatch"} <= set(grants)
    assert set(grants) <= {"firehose:PutRecord", "firehose:PutRecordBatch", "firehose:DescribeDeliveryStream"}
    assert all(targets == [_arn("AuditArchiveStream")] for targets in grants.values())
    _only_policies_of(resources, "AuditArchiveSubscriptionRole")


_HIVE_SCALARS = {"string": "string", "integer": "int|bigint", "boolean": "boolean"}


def _hive_type(schema: dict[str, Any]) -> str:
    """The Glue column type pattern a JSON-schema property needs (null is always allowed)."""
    if "enum" in schema or "const" in schema:
        return "string"
    types = [t for t in _as_list(schema["type"]) if t != "null"]
    assert len(types) == 1, schema
    if types[0] == "object":
        if "properties" in schema:
            fields = ",".join(f"{name.lower()}:{_hive_type(inner)}" for name, inner in schema["properties"].items())
            return f"struct<{fields}>"
        return f"map<string,{_hive_type(schema['additionalProperties'])}>"
    return f"(?:{_HIVE_SCALARS[types[0]]})"


def test_athena_table_columns_are_the_result_and_summary_event_properties(resources):
    expected: dict[str, str] = {}
    for schema_file in ("result_event_v1.json", "summary_event_v1.json"):
        schema = json.loads((SCHEMAS / schema_file).read_text(encoding="utf-8"))
        for name, prop in schema["properties"].items():
            pattern = _hive_type(prop)
            assert expected.setdefault(name.lower(), pattern) == pattern, (schema_file, name)
    table = resources["AuditArchiveResultsTable"]["Properties"]["TableInput"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert sorted(columns) == sorted(expected)
    for name, pattern in expected.items():
        assert re.fullmatch(pattern, columns[name]), (name, columns[name], pattern)
    assert set(columns).isdisjoint(key["Name"] for key in table["PartitionKeys"])


def test_athena_table_projects_the_firehose_date_partitions(resources):
    table = resources["AuditArchiveResultsTable"]["Properties"]
    assert table["DatabaseName"] == _ref("AuditArchiveDatabase")
    table_input = table["TableInput"]
    assert [key["Name"] for key in table_input["PartitionKeys"]] == ["year", "month", "day"]
    parameters = table_input["Parameters"]
    assert parameters["projection.enabled"] == "true"
    for key in ("year", "month", "day"):
        assert parameters[f"projection.{key}.type"] == "integer"
    assert (parameters["projection.month.range"], parameters["projection.day.range"]) == ("1,12", "1,31")
    assert parameters["projection.month.digits"] == parameters["projection.day.digits"] == "2"  # MM, dd
    values = {"AuditArchiveBucket": "archive-bucket"}
    location = _sub(parameters["storage.location.template"]["Fn::Sub"], values)
    firehose_path = (
        FIREHOSE_PREFIX.replace("!{timestamp:yyyy}", "${year}")
        .replace("!{timestamp:MM}", "${month}")
        .replace("!{timestamp:dd}", "${day}")
    )
    assert location == f"s3://archive-bucket/{firehose_path}"
    storage = table_input["StorageDescriptor"]
    assert _sub(storage["Location"]["Fn::Sub"], values) == "s3://archive-bucket/" + FIREHOSE_PREFIX.split("/")[0] + "/"
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert storage["Compressed"] is True


def test_glue_database_name_is_an_athena_name_made_of_the_stack_name(resources):
    name = resources["AuditArchiveDatabase"]["Properties"]["DatabaseInput"]["Name"]
    separator, (split_on, source) = name["Fn::Join"][0], name["Fn::Join"][1]["Fn::Split"]
    resolved = separator.join(_sub(source["Fn::Sub"], {"AWS::StackName": "campaign-stop"}).split(split_on))
    assert resolved == "campaign_stop_audit"
    assert re.fullmatch(r"[a-z0-9_]{1,255}", resolved)


def test_archive_delivery_alarm_notifies_operators_and_triggers_no_stop(resources):
    alarm = resources["AuditArchiveDeliveryAlarm"]
    assert alarm["Condition"] == "AuditArchive"
    properties = alarm["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Firehose", "DeliveryToS3.DataFreshness")
    assert properties["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": _ref("AuditArchiveStream")}]
    assert properties["AlarmActions"] == [_ref("OperatorAlarmsTopic")]
    # "<stack>-..." names are what the alarm rule leaves out, so this alarm never stops a campaign
    assert properties["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")


def test_archive_outputs_only_with_the_archive(transformed):
    outputs = transformed["Outputs"]
    assert outputs["AuditArchiveBucketName"] == {
        "Condition": "AuditArchive", "Description": outputs["AuditArchiveBucketName"]["Description"],
        "Value": _ref("AuditArchiveBucket"),
    }
    assert outputs["AuditArchiveDatabaseName"]["Condition"] == "AuditArchive"


# ------------------------------------------------------------------------------------------- dashboard
def _emitted_metric_names() -> set[str]:
    """Metric names in the function's source: literal names given to Telemetry, and the outcome map."""
    names: set[str] = set()
    dynamic: list[str] = []
    add_metric_calls = 0
    for path in sorted(FUNCTION_SOURCE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        add_metric_calls += text.count(".add_metric(")
        for argument in re.findall(r"telemetry\.(?:count|milliseconds)\(\s*([^,)]+)", text):
            if argument.startswith('"'):
                names.add(argument.strip('"'))
            else:
                dynamic.append(argument)
        names |= set(re.findall(r"Outcome\.[A-Z_]+:\s*\"(\w+)\"", text))
    # Only Telemetry calls add_metric, and the only computed name is the outcome map: otherwise this grep
    # could miss a metric, and must be taught the new way first.
    assert add_metric_calls == 2, "add_metric is called outside Telemetry.count/milliseconds"
    assert dynamic == ["OUTCOME_METRICS[result.outcome]"], dynamic
    return names


@pytest.fixture(scope="session")
def emitted_metrics() -> set[str]:
    names = _emitted_metric_names()
    assert len(names) >= 12, names  # the grep found the metrics
    from stop_campaign.service.processing import OUTCOME_METRICS

    assert set(OUTCOME_METRICS.values()) <= names
    return names


@pytest.fixture(scope="session")
def dashboard_text(resources) -> str:
    dashboard = resources["OperationsDashboard"]["Properties"]
    assert dashboard["DashboardName"] == _ref("AWS::StackName")
    return dashboard["DashboardBody"]["Fn::Sub"]


@pytest.fixture(scope="session")
def dashboard(dashboard_text, transformed) -> dict[str, Any]:
    """The dashboard body as CloudFormation would substitute it (placeholders checked, then filled in)."""
    resources, parameters = transformed["Resources"], transformed["Parameters"]
    values: dict[str, str] = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
    for name in re.findall(r"\$\{([^!}][^}]*)\}", dashboard_text):
        logical_id, _, attribute = name.partition(".")
        if name in values:
            continue
        if logical_id in parameters:
            assert not attribute
            values[name] = str(parameters[logical_id]["Default"])
        else:
            assert logical_id in resources, f"unknown placeholder ${{{name}}}"
            assert "Condition" not in resources[logical_id], f"${{{name}}} is conditional"
            values[name] = f"<{name}>"
    return json.loads(_sub(dashboard_text, values))


def _metrics(dashboard: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any], dict[str, Any]]]:
    """(namespace, name, dimensions, options, widget properties) of every metric line, "." shorthand resolved."""
    found = []
    for widget in dashboard["widgets"]:
        if widget["type"] != "metric":
            continue
        previous: list[Any] = []
        for line in widget["properties"]["metrics"]:
            options = line[-1] if isinstance(line[-1], dict) else {}
            parts = [previous[i] if part == "." else part for i, part in enumerate(line[: len(line) - bool(options)])]
            previous = parts
            namespace, name, *pairs = parts
            found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)), options,
                          widget["properties"]))
    return found


def test_dashboard_body_is_valid_json_with_a_region_on_every_metric_widget(dashboard):
    assert dashboard["widgets"]
    for widget in dashboard["widgets"]:
        assert {"type", "x", "y", "width", "height", "properties"} <= set(widget)
        assert widget["x"] + widget["width"] <= 24
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == REGION
            assert widget["properties"]["title"]


def test_dashboard_shows_only_metrics_the_function_emits(dashboard, emitted_metrics, function):
    variables = function["Environment"]["Variables"]
    namespace, service = variables["POWERTOOLS_METRICS_NAMESPACE"], variables["POWERTOOLS_SERVICE_NAME"]
    custom = [m for m in _metrics(dashboard) if not m[0].startswith("AWS/")]
    assert custom
    for metric_namespace, name, dimensions, _, _ in custom:
        assert metric_namespace == namespace, name
        assert name in emitted_metrics, f"{name} is on the dashboard but the function does not emit it"
        assert dimensions == {"service": service}, name  # Powertools' one default dimension


def test_dashboard_shows_every_metric_the_function_emits(dashboard, emitted_metrics):
    shown = {name for namespace, name, *_ in _metrics(dashboard) if not namespace.startswith("AWS/")}
    assert emitted_metrics - shown == set(), "emitted but not on the dashboard: add a widget line"


def _shown(dashboard: dict[str, Any], namespace: str, name: str, dimensions: dict[str, str]) -> set[str]:
    """The statistics a metric is shown with."""
    return {
        options.get("stat", widget.get("stat", "Average"))
        for ns, metric, dims, options, widget in _metrics(dashboard)
        if (ns, metric, dims) == (namespace, name, dimensions)
    }


def test_dashboard_shows_what_operators_watch(dashboard):
    service = {"service": "campaign-stop"}
    assert _shown(dashboard, "CampaignStop", "TimeToStop", service) == {"p50", "p90", "p99"}
    assert {"p50", "p90", "p99"} <= _shown(dashboard, "CampaignStop", "ApiLatency", service)
    for name in ("RateLimited", "RateBudgetWait", "Continuations", "CampaignsStopped", "StopFailures"):
        assert "Sum" in _shown(dashboard, "CampaignStop", name, service), name
    stop_queue = {"QueueName": "<StopQueue.QueueName>"}
    assert _shown(dashboard, "AWS/SQS", "ApproximateNumberOfMessagesVisible", stop_queue)
    assert _shown(dashboard, "AWS/SQS", "ApproximateAgeOfOldestMessage", stop_queue) == {"Maximum"}
    dead_letters = {"QueueName": "<DeadLetterQueue.QueueName>"}
    assert _shown(dashboard, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dead_letters) == {"Maximum"}
    function = {"FunctionName": "<StopCampaignFunction>"}
    for name, stat in (("Errors", "Sum"), ("Throttles", "Sum"), ("ConcurrentExecutions", "Maximum")):
        assert stat in _shown(dashboard, "AWS/Lambda", name, function), name
    assert {"p50", "p99"} <= _shown(dashboard, "AWS/Lambda", "Duration", function)


def test_dashboard_aws_metrics_name_this_stacks_resources(dashboard):
    expected = {
        "AWS/SQS": {"QueueName": {"<StopQueue.QueueName>", "<DeadLetterQueue.QueueName>"}},
        "AWS/Lambda": {"FunctionName": {"<StopCampaignFunction>"}},
    }
    for namespace, name, dimensions, _, _ in _metrics(dashboard):
        if namespace.startswith("AWS/"):
            assert namespace in expected, name
            for key, value in dimensions.items():
                assert value in expected[namespace][key], (name, key, value)


def test_dashboard_alarm_widget_lists_every_operator_alarm(dashboard, resources):
    listed = [a for w in dashboard["widgets"] if w["type"] == "alarm" for a in w["properties"]["alarms"]]
    unconditional = {
        f"<{k}.Arn>" for k, v in _of_type(resources, "AWS::CloudWatch::Alarm").items() if "Condition" not in v
    }
    assert sorted(listed) == sorted(unconditional)


def test_dashboard_url_output(transformed):
    assert transformed["Outputs"]["DashboardUrl"]["Value"] == {
        "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
        "#dashboards:name=${OperationsDashboard}"
    }


# ------------------------------------------------------------------------------------------- hardening
def _topic_statements(resources: dict[str, dict[str, Any]], topic_id: str) -> list[dict[str, Any]]:
    policies = [
        p["Properties"] for p in _of_type(resources, "AWS::SNS::TopicPolicy").values()
        if _ref(topic_id) in p["Properties"]["Topics"]
    ]
    assert len(policies) == 1, f"{topic_id} has exactly one topic policy"
    return policies[0]["PolicyDocument"]["Statement"]


def test_every_topic_denies_insecure_transport(resources):
    topics = _of_type(resources, "AWS::SNS::Topic")
    assert set(topics) == {"ResultsTopic", "OperatorAlarmsTopic"}
    for topic_id in topics:
        statements = _topic_statements(resources, topic_id)
        assert {
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sns:*",
            "Resource": _ref(topic_id), "Condition": INSECURE_TRANSPORT,
        } in statements, topic_id


def test_topic_policies_deny_nothing_sent_over_tls(resources):
    """The function publishes results through its role (same account, identity policy), and CloudWatch
    publishes alarms: both use TLS, so no Deny may apply to them."""
    for topic_id in ("ResultsTopic", "OperatorAlarmsTopic"):
        for statement in _topic_statements(resources, topic_id):
            if statement["Effect"] == "Deny":
                assert statement["Condition"] == INSECURE_TRANSPORT, (topic_id, statement)
    assert [s for s in _topic_statements(resources, "ResultsTopic") if s["Effect"] == "Allow"] == []
    function_role = resources["StopCampaignFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert {"Sid": "PublishResults", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": _ref("ResultsTopic")} \
        in function_role["Statement"]


_ALARM_ARNS = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"
_ALARMS_OF_THIS_ACCOUNT = {
    "StringEquals": {"aws:SourceAccount": _ref("AWS::AccountId")},
    "ArnLike": {"aws:SourceArn": {"Fn::Sub": _ALARM_ARNS}},
}


def test_cloudwatch_alarms_of_this_account_may_publish_to_the_operator_topic(resources):
    allows = [s for s in _topic_statements(resources, "OperatorAlarmsTopic") if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "CloudWatchAlarmsPublish", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish", "Resource": _ref("OperatorAlarmsTopic"), "Condition": _ALARMS_OF_THIS_ACCOUNT,
        }
    ]
    # every alarm of the stack notifies that topic, and nothing else
    for logical_id, alarm in _of_type(resources, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == properties["OKActions"] == [_ref("OperatorAlarmsTopic")], logical_id


def test_operator_alarms_key_serves_cloudwatch_only_for_this_accounts_alarms(resources):
    statements = resources["OperatorAlarmsKey"]["Properties"]["KeyPolicy"]["Statement"]
    services = [s for s in statements if "Service" in s["Principal"]]
    assert services == [
        {
            "Sid": "CloudWatchAlarmsPublish", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*", "Condition": _ALARMS_OF_THIS_ACCOUNT,
        }
    ]


@pytest.mark.parametrize(
    ("source_arn", "allowed"),
    [
        (f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:checkout-sms-error-rate", True),
        (f"arn:aws:cloudwatch:{REGION}:210987654321:alarm:checkout-sms-error-rate", False),
        (f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:checkout-sms-error-rate", False),
        (f"arn:aws:events:{REGION}:{ACCOUNT}:rule/anything", False),
    ],
)
def test_the_source_arn_condition_matches_only_this_accounts_alarms(source_arn, allowed):
    pattern = _sub(
        _ALARMS_OF_THIS_ACCOUNT["ArnLike"]["aws:SourceArn"]["Fn::Sub"],
        {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT},
    )
    assert fnmatch.fnmatchcase(source_arn, pattern) is allowed


# ------------------------------------------------------------------------------------------- outputs
def test_outputs_the_cli_reads_name_what_the_function_reads(transformed, function):
    outputs, variables = transformed["Outputs"], function["Environment"]["Variables"]
    for output, variable in (
        ("AlarmTargetsParameterName", "ALARM_TARGETS_PARAMETER"),
        ("CredentialsSecretArn", "CREDENTIALS_SECRET_ID"),
        ("KoreBaseUrl", "KORE_BASE_URL"),
        ("ResultsTopicArn", "RESULTS_TOPIC_ARN"),
        ("StopQueueUrl", "STOP_QUEUE_URL"),
        ("DeadLetterQueueUrl", "DEAD_LETTER_QUEUE_URL"),
        ("IdempotencyTableName", "IDEMPOTENCY_TABLE_NAME"),
        ("RequestHistoryTableName", "REQUEST_HISTORY_TABLE"),
    ):
        assert outputs[output]["Value"] == variables[variable], output
        assert "Condition" not in outputs[output], output


def test_existing_outputs_are_kept(transformed):
    assert set(transformed["Outputs"]) >= {
        "StopQueueUrl", "StopQueueArn", "StopBusName", "StopBusArn", "ResultsTopicArn", "DeadLetterQueueUrl",
        "DeadLetterQueueArn", "StopCampaignFunctionName", "StopCampaignFunctionArn", "IdempotencyTableName",
        "OperatorAlarmsTopicArn", "ResultsArchiveQueueUrl",
        "ScheduleGroupName", "SchedulerRoleArn", "DashboardUrl", "AuditArchiveBucketName",
    }
