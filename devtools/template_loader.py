"""Reads template.yaml offline: CloudFormation short tags, the SAM transform, and local-stack settings.

load_template(path)        -> the template as a dict, short tags as long-form intrinsics
                              (!Ref X -> {"Ref": "X"}, !GetAtt A.B -> {"Fn::GetAtt": ["A", "B"]}, ...)
transform_template(path)   -> the CloudFormation template aws-sam-translator makes of it (no AWS access)
local_stack_settings(tpl)  -> plain data a local stack needs (queue timeouts, redrive, TTL attribute, ...)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"

# Short tag -> long-form key. !Ref and !Condition keep their names; every other tag is Fn::<Tag>.
_SHORT_TAGS = (
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "Join",
    "Select",
    "Split",
    "FindInMap",
    "If",
    "Not",
    "Equals",
    "And",
    "Or",
    "Base64",
    "Cidr",
    "GetAZs",
    "ImportValue",
    "Transform",
    "Length",
    "ToJsonString",
    "ForEach",
)


def _long_name(tag: str) -> str:
    return tag if tag in ("Ref", "Condition") else f"Fn::{tag}"


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation short tags and keeps date-like scalars as strings."""


# CloudFormation reads "2012-10-17" as a string, not a date: drop the timestamp resolver (on a copy).
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _intrinsic(tag: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    name = _long_name(tag)

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":  # !GetAtt Resource.Attribute(.Nested) -> [Resource, Attribute(.Nested)]
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _tag in _SHORT_TAGS:
    _TemplateLoader.add_constructor(f"!{_tag}", _intrinsic(_tag))


def load_template(path: str | Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The template at `path` (relative paths from the repository root) as plain data."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = REPO_ROOT / path
    with path.open(encoding="utf-8") as stream:
        template = yaml.load(stream, Loader=_TemplateLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(template, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return template


def transform_template(
    path: str | Path = DEFAULT_TEMPLATE,
    parameter_values: dict[str, Any] | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """Runs aws-sam-translator on the template, offline.

    No AWS call is made: the managed-policy map (normally fetched from IAM) is empty, which is enough as
    long as the template names managed policies by ARN (it names none), and the region is fixed. Local
    code paths (CodeUri: functions/) become s3://local-build/<path>, as `sam package` would upload them.
    """
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = copy.deepcopy(load_template(path))
    for resource in _resources_of_type(template, "AWS::Serverless::Function").values():
        code_uri = resource.get("Properties", {}).get("CodeUri")
        if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
            resource["Properties"]["CodeUri"] = f"s3://local-build/{code_uri.strip('/') or 'code'}.zip"
    session = boto3.session.Session(region_name=region)  # no credentials needed, nothing is called
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
    return translator.translate(
        template,
        parameter_values=dict(parameter_values or {}),
        get_managed_policy_map=lambda: {},
    )


# ------------------------------------------------------------------------------------------- settings
def _resources_of_type(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") in types
    }


def _only(resources: dict[str, dict[str, Any]], what: str) -> tuple[str, dict[str, Any]]:
    if len(resources) != 1:
        raise ValueError(f"expected exactly one {what}, found {sorted(resources)}")
    return next(iter(resources.items()))


def _logical_id(ref: Any) -> str | None:
    """The resource a {"Ref": X} or {"Fn::GetAtt": [X, ...]} points at."""
    if isinstance(ref, dict):
        if "Ref" in ref:
            return ref["Ref"]
        if "Fn::GetAtt" in ref:
            return ref["Fn::GetAtt"][0]
    return None


def resolve_static(template: dict[str, Any], value: Any) -> Any:
    """A value that needs no stack to know: literals, Fn::FindInMap, Ref to a parameter (its default).

    Returns None for anything that depends on a deployed resource or a pseudo parameter.
    """
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict) and len(value) == 1:
        if "Fn::FindInMap" in value:
            keys = [resolve_static(template, key) for key in value["Fn::FindInMap"][:3]]
            if any(key is None for key in keys):
                return None
            try:
                return template["Mappings"][keys[0]][keys[1]][keys[2]]
            except (KeyError, TypeError):
                return None
        if "Ref" in value:
            parameter = template.get("Parameters", {}).get(value["Ref"])
            return None if parameter is None else parameter.get("Default")
    return None


def substitute(value: Any, pseudo: dict[str, str]) -> Any:
    """A ``Fn::Sub`` of a plain string whose variables are all pseudo parameters (``AWS::AccountId`` …), with
    their values from ``pseudo``; anything else unchanged."""
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text = value["Fn::Sub"]
        for name, replacement in pseudo.items():
            text = text.replace("${" + name + "}", replacement)
        return text
    return value


def local_stack_settings(template: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a local stack (moto, LocalStack, a test) needs to mirror the deployed one, as plain data.

    `template` is what load_template() returns (default: the repository's template.yaml). Resource names
    are CloudFormation logical ids, which a local stack can use as queue/table/topic names.
    """
    template = load_template() if template is None else template

    function_id, function = _only(_resources_of_type(template, "AWS::Serverless::Function"), "function")
    properties = function["Properties"]
    events = properties.get("Events", {})
    variables: dict[str, Any] = properties.get("Environment", {}).get("Variables", {})
    # The stop queue's event is the one of the queue continuations go back to; the events queue's, the other.
    stop_queue_id = _logical_id(variables.get("STOP_QUEUE_URL"))
    sqs_events = {k: v for k, v in events.items() if v.get("Type") == "SQS"}
    _, sqs_event = _only({k: v for k, v in sqs_events.items()
                          if _logical_id(v["Properties"]["Queue"]) == stop_queue_id}, "stop queue SQS event")
    events_queue_id = _logical_id(variables.get("STOP_EVENTS_QUEUE_ARN"))

    queues = _resources_of_type(template, "AWS::SQS::Queue")
    stop_queue = queues[stop_queue_id]["Properties"]
    redrive = stop_queue["RedrivePolicy"]
    dead_letter_queue_id = _logical_id(redrive["deadLetterTargetArn"])
    dead_letter_queue = queues[dead_letter_queue_id]["Properties"]

    tables = _resources_of_type(template, "AWS::DynamoDB::Table")
    table_id = _logical_id(variables.get("IDEMPOTENCY_TABLE_NAME")) or ""
    table_properties = tables[table_id]["Properties"]
    partition_key = next(k["AttributeName"] for k in table_properties["KeySchema"] if k["KeyType"] == "HASH")
    history_id = _logical_id(variables.get("REQUEST_HISTORY_TABLE"))
    holds_id = _logical_id(variables.get("HOLDS_TABLE"))

    env_values = {name: resolve_static(template, value) for name, value in variables.items()}
    policy_id = _logical_id(variables.get("PRODUCER_POLICY_PARAMETER"))
    policy = template["Resources"][policy_id]["Properties"] if policy_id else None

    results_topic_id = _logical_id(variables.get("RESULTS_TOPIC_ARN"))
    bus_id, _ = _only(_resources_of_type(template, "AWS::Events::EventBus"), "event bus")
    stop_rule = next(
        rule["Properties"]
        for rule in _resources_of_type(template, "AWS::Events::Rule").values()
        if _logical_id(rule["Properties"].get("EventBusName")) == bus_id
    )
    sqs_properties = sqs_event["Properties"]

    return {
        "function_logical_id": function_id,
        "handler": properties["Handler"],
        "runtime": properties["Runtime"],
        "function_timeout_seconds": int(resolve_static(template, properties["Timeout"])),
        "function_memory_mb": int(resolve_static(template, properties["MemorySize"])),
        "stop_queue_logical_id": stop_queue_id,
        "stop_queue_visibility_timeout_seconds": int(resolve_static(template, stop_queue["VisibilityTimeout"])),
        "stop_queue_retention_seconds": int(resolve_static(template, stop_queue["MessageRetentionPeriod"])),
        "max_receive_count": int(resolve_static(template, redrive["maxReceiveCount"])),
        "dead_letter_queue_logical_id": dead_letter_queue_id,
        "dead_letter_queue_retention_seconds": int(
            resolve_static(template, dead_letter_queue["MessageRetentionPeriod"])
        ),
        "batch_size": int(resolve_static(template, sqs_properties["BatchSize"])),
        "maximum_batching_window_seconds": int(
            resolve_static(template, sqs_properties.get("MaximumBatchingWindowInSeconds", 0))
        ),
        "report_batch_item_failures": "ReportBatchItemFailures" in sqs_properties.get("FunctionResponseTypes", []),
        "idempotency_table_logical_id": table_id,
        "idempotency_partition_key": partition_key,
        "ttl_attribute": table_properties["TimeToLiveSpecification"]["AttributeName"],
        # The request history table: its logical id and the properties a local copy is created from (keys,
        # indexes, TTL), None when the template declares none.
        "history_table_logical_id": history_id,
        "history_table_properties": tables[history_id]["Properties"] if history_id else None,
        "holds_table_logical_id": holds_id,
        "holds_table_properties": tables[holds_id]["Properties"] if holds_id else None,
        "results_topic_logical_id": results_topic_id,
        "stop_bus_logical_id": bus_id,
        "stop_request_detail_types": list(stop_rule["EventPattern"]["detail-type"]),
        "stop_rule_target_logical_ids": [_logical_id(target["Arn"]) for target in stop_rule["Targets"]],
        "events_queue_logical_id": events_queue_id,
        # The producer policy the stack creates: its parameter's default name, and its value with the pseudo
        # parameters of `pseudo` (a local stack's account and region) put in.
        "producer_policy_parameter": resolve_static(template, policy["Name"]) if policy else None,
        "producer_policy_value": policy["Value"] if policy else None,
        "environment_variable_names": list(variables),
        # Values known without a stack (literals, constants, parameter defaults); None where the value is
        # a deployed resource's name/ARN/URL, which the local stack supplies itself.
        "environment": {name: None if value is None else str(value) for name, value in env_values.items()},
    }
