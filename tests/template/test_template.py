"""Offline checks of template.yaml: cfn-lint, and one test per deployment rule on the SAM transform.

No network and no AWS account: aws-sam-translator runs with an empty managed-policy map.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from devtools.template_loader import load_template, local_stack_settings
from stop_campaign.settings import (
    IDEMPOTENCY_TTL_ATTRIBUTE,
    OPTIONAL_ENV_VARS,
    REQUIRED_ENV_VARS,
    ConfigurationError,
    validate_base_url,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FOURTEEN_DAYS = 14 * 24 * 3600

# cfn-lint findings we accept, by rule id, each with the reason. Errors (E) are never accepted.
IGNORED_LINT_RULES: dict[str, str] = {
    # (none at the moment: add "W1234": "why it does not apply here")
}


def _ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


def _arn(logical_id: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _of_type(resources: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == resource_type}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _describe(matches: list[Any]) -> list[str]:
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]


def _unaccepted(matches: list[Any]) -> list[Any]:
    return [m for m in matches if m.rule.id.startswith("E") or m.rule.id not in IGNORED_LINT_RULES]


# ------------------------------------------------------------------------------------------- lint
def test_cfn_lint_finds_nothing_in_the_source_template(cfn_lint_source):
    assert _describe(_unaccepted(cfn_lint_source)) == []


def test_cfn_lint_finds_nothing_in_the_transformed_template(cfn_lint_transformed):
    assert _describe(_unaccepted(cfn_lint_transformed)) == []


def test_template_has_no_globals_and_uses_the_sam_transform(source_template):
    assert source_template["Transform"] == "AWS::Serverless-2016-10-31"
    assert "Globals" not in source_template


# ------------------------------------------------------------------------------------------- function
def test_function_code_root_is_functions_dir_with_package_handler(source_template):
    properties = source_template["Resources"]["StopCampaignFunction"]["Properties"]
    assert properties["CodeUri"].rstrip("/") == "functions"
    assert properties["Handler"] == "stop_campaign.app.lambda_handler"
    package = REPO_ROOT / "functions" / "stop_campaign"
    assert (package / "__init__.py").is_file()
    app = package / "app.py"
    if app.is_file():  # written by the handler's authors; check the entry point once it exists
        assert re.search(r"^def lambda_handler\(", app.read_text(encoding="utf-8"), re.MULTILINE)


def test_build_requirements_match_the_package_requirements():
    """`sam build` reads requirements.txt at the CodeUri root; the package keeps its own copy."""
    build = (REPO_ROOT / "functions" / "requirements.txt").read_text(encoding="utf-8")
    package = (REPO_ROOT / "functions" / "stop_campaign" / "requirements.txt").read_text(encoding="utf-8")
    assert build == package


def test_function_runtime_architecture_timeout_memory_tracing(function):
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert function["Timeout"] == 30
    assert function["MemorySize"] == 512
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_sdk_tracing_is_opt_in_because_it_costs_cold_start(function, transformed):
    assert transformed["Parameters"]["DetailedTracing"]["Default"] == "false"
    assert function["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == {
        "Fn::If": ["SdkTracing", "false", "true"]
    }
    assert function["LoggingConfig"]["LogGroup"] == _ref("StopCampaignLogGroup")


def test_environment_variable_names_are_the_required_ones_plus_known_extras(function):
    names = set(function["Environment"]["Variables"])
    powertools = {
        "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_TRACE_DISABLED"
    }
    extras = {"STOP_CONCURRENCY", "KORE_RATE_LIMIT", "PRODUCER_POLICY_PARAMETER", "STOP_EVENTS_QUEUE_ARN",
              "FUNCTION_ROLE_ID"}
    assert set(REQUIRED_ENV_VARS) <= names
    extras |= {"MAX_REQUEST_AGE_SECONDS", "REQUEST_HISTORY_TABLE", "REQUEST_HISTORY_DAYS"}
    extras |= {"HOLDS_TABLE", "HOLD_CHECK_SECONDS"}
    assert names - set(REQUIRED_ENV_VARS) == powertools | extras
    assert extras <= set(OPTIONAL_ENV_VARS)


def test_environment_is_wired_to_the_stack_resources(function):
    variables = function["Environment"]["Variables"]
    assert variables["KORE_BASE_URL"] == _ref("KoreBaseUrl")
    assert variables["CREDENTIALS_SECRET_ID"] == _ref("CredentialsSecretArn")
    assert variables["RESULTS_TOPIC_ARN"] == _ref("ResultsTopic")  # Ref of a topic is its ARN
    assert variables["DEAD_LETTER_QUEUE_URL"] == _ref("DeadLetterQueue")  # Ref of a queue is its URL
    assert variables["IDEMPOTENCY_TABLE_NAME"] == _ref("IdempotencyTable")
    assert variables["ALARM_TARGETS_PARAMETER"] == _ref("AlarmTargetsParameterName")
    assert variables["STOP_CONCURRENCY"] == _ref("StopConcurrency")
    assert variables["STOP_QUEUE_URL"] == _ref("StopQueue")  # continuations go back to the stop queue
    assert variables["REQUEST_HISTORY_TABLE"] == _ref("RequestHistoryTable")
    assert variables["REQUEST_HISTORY_DAYS"] == _ref("RequestHistoryDays")
    assert variables["HOLDS_TABLE"] == _ref("HoldsTable")
    assert variables["HOLD_CHECK_SECONDS"] == _ref("HoldCheckSeconds")
    assert variables["KORE_RATE_LIMIT"] == _ref("KoreRateLimit")
    assert variables["MAX_REQUEST_AGE_SECONDS"] == _ref("MaxRequestAgeSeconds")
    assert variables["POWERTOOLS_SERVICE_NAME"] == "campaign-stop"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "CampaignStop"
    assert variables["POWERTOOLS_LOG_LEVEL"] == _ref("LogLevel")


# ------------------------------------------------------------------------------------------- SQS source
def test_sqs_event_reports_batch_item_failures(sqs_event_source):
    assert sqs_event_source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs_event_source["EventSourceArn"] == _arn("StopQueue")


def test_sqs_event_batching_window_is_zero(sqs_event_source):
    assert sqs_event_source["MaximumBatchingWindowInSeconds"] == 0


def test_sqs_event_batch_size_and_maximum_concurrency_come_from_parameters(sqs_event_source, transformed):
    assert sqs_event_source["BatchSize"] == _ref("BatchSize")
    assert sqs_event_source["ScalingConfig"]["MaximumConcurrency"] == _ref("MaximumConcurrency")
    parameters = transformed["Parameters"]
    assert (parameters["BatchSize"]["Default"], parameters["BatchSize"]["MinValue"]) == (10, 1)
    assert parameters["BatchSize"]["MaxValue"] == 10
    assert parameters["MaximumConcurrency"]["Default"] == 5
    assert parameters["MaximumConcurrency"]["MinValue"] == 2  # Lambda's own minimum


def test_every_invocation_path_is_bounded_by_reserved_concurrency_above_the_queues_cap(transformed) -> None:
    function = transformed["Resources"]["StopCampaignFunction"]["Properties"]
    parameters = transformed["Parameters"]
    assert function["ReservedConcurrentExecutions"] == _ref("ReservedConcurrency")
    # Room for kill switches beside both queues at their caps.
    assert parameters["ReservedConcurrency"]["Default"] > (
        parameters["MaximumConcurrency"]["Default"] + parameters["EventsQueueMaximumConcurrency"]["Default"])


def test_the_events_queue_is_read_like_the_stop_queue_with_its_own_cap(event_source_mappings, resources):
    events, stop = event_source_mappings["StopEventsQueue"], event_source_mappings["StopQueue"]
    for name in ("FunctionResponseTypes", "BatchSize", "MaximumBatchingWindowInSeconds"):
        assert events[name] == stop[name], name
    assert events["ScalingConfig"]["MaximumConcurrency"] == _ref("EventsQueueMaximumConcurrency")
    queue, stop_queue = resources["StopEventsQueue"]["Properties"], resources["StopQueue"]["Properties"]
    for name in ("VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy", "SqsManagedSseEnabled"):
        assert queue[name] == stop_queue[name], name


# ------------------------------------------------------------------------------------------- queues
def test_redrive_max_receive_count_is_at_least_5_and_equals_the_function_setting(resources, function, resolve):
    redrive = resources["StopQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == _arn("DeadLetterQueue")
    # one constant, two uses: both point at the same Mappings entry
    assert redrive["maxReceiveCount"] == function["Environment"]["Variables"]["MAX_RECEIVE_COUNT"]
    count = resolve(redrive["maxReceiveCount"])
    assert int(count) >= 5
    assert str(resolve(function["Environment"]["Variables"]["MAX_RECEIVE_COUNT"])) == str(count)


def test_stop_queue_visibility_timeout_is_at_least_six_times_the_function_timeout(resources, function):
    assert resources["StopQueue"]["Properties"]["VisibilityTimeout"] >= 6 * function["Timeout"]


def test_dead_letter_queue_keeps_messages_14_days(resources):
    dead_letter = resources["DeadLetterQueue"]["Properties"]
    assert dead_letter["MessageRetentionPeriod"] == FOURTEEN_DAYS
    stop = resources["StopQueue"]["Properties"]
    assert stop["MessageRetentionPeriod"] < dead_letter["MessageRetentionPeriod"]


def test_every_queue_is_encrypted(resources):
    queues = _of_type(resources, "AWS::SQS::Queue")
    assert set(queues) >= {"StopQueue", "DeadLetterQueue", "ResultsArchiveQueue"}
    for logical_id, queue in queues.items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, logical_id


def test_every_topic_is_encrypted(resources):
    topics = _of_type(resources, "AWS::SNS::Topic")
    assert set(topics) == {"ResultsTopic", "OperatorAlarmsTopic"}
    for logical_id, topic in topics.items():
        assert topic["Properties"].get("KmsMasterKeyId"), logical_id
    # only the function publishes results, so the AWS managed key is enough there
    assert topics["ResultsTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"
    # CloudWatch cannot use aws/sns: the alarms topic has a key whose policy lets CloudWatch in
    assert topics["OperatorAlarmsTopic"]["Properties"]["KmsMasterKeyId"] == _ref("OperatorAlarmsKey")
    key = resources["OperatorAlarmsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    services = [s["Principal"].get("Service") for s in key["KeyPolicy"]["Statement"]]
    assert "cloudwatch.amazonaws.com" in services


def _unconditional(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statements, a conditional one ({"Fn::If": [condition, statement, AWS::NoValue]}) as its statement."""
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in statements]


def _policy_statements(resources: dict[str, dict[str, Any]], queue_id: str) -> list[dict[str, Any]]:
    for policy in _of_type(resources, "AWS::SQS::QueuePolicy").values():
        if _ref(queue_id) in policy["Properties"]["Queues"]:
            return _unconditional(policy["Properties"]["PolicyDocument"]["Statement"])
    raise AssertionError(f"{queue_id} has no queue policy")


def _allowed_source_arns(statements: list[dict[str, Any]], service: str) -> list[Any]:
    arns: list[Any] = []
    for statement in statements:
        if statement["Effect"] == "Allow" and statement["Principal"] == {"Service": service}:
            assert "sqs:SendMessage" in _as_list(statement["Action"])
            arns += _as_list(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    return arns


def test_only_the_stop_bus_rule_may_send_to_the_events_queue(resources):
    """The function believes an events queue message is the bus's (events:<account>/<source>): the rule alone may
    send, and a Deny keeps out even this account's principals that IAM would let send to any queue."""
    statements = _policy_statements(resources, "StopEventsQueue")
    assert _allowed_source_arns(statements, "events.amazonaws.com") == [_arn("StopRequestsToQueue")]
    assert [s["Principal"] for s in statements if s["Effect"] == "Allow"] == [{"Service": "events.amazonaws.com"}]
    [deny] = [s for s in statements if s["Effect"] == "Deny" and "sqs:SendMessage" in _as_list(s["Action"])]
    assert deny["Principal"] == "*"
    assert deny["Condition"] == {"ArnNotEquals": {"aws:SourceArn": _arn("StopRequestsToQueue")}}
    assert _allowed_source_arns(_policy_statements(resources, "StopQueue"), "events.amazonaws.com") == []


def test_stop_queue_admits_other_accounts_producers_only_as_the_parameters_say(resources, transformed):
    raw = next(p["Properties"]["PolicyDocument"]["Statement"] for p in _of_type(resources, "AWS::SQS::QueuePolicy")
               .values() if _ref("StopQueue") in p["Properties"]["Queues"])
    conditional = {s["Fn::If"][0]: s["Fn::If"] for s in raw if "Fn::If" in s}
    assert set(conditional) == {"HasProducerAccounts", "HasProducerRoles", "HasProducerOrganization"}
    for condition, statement, otherwise in conditional.values():
        assert otherwise == _ref("AWS::NoValue"), condition
        assert (statement["Effect"], statement["Action"]) == ("Allow", "sqs:SendMessage")
        assert statement["Resource"] == _arn("StopQueue")
    assert conditional["HasProducerAccounts"][1]["Principal"] == {"AWS": _ref("ProducerAccountIds")}
    assert conditional["HasProducerRoles"][1]["Principal"] == {"AWS": _ref("ProducerRoleArns")}
    organization = conditional["HasProducerOrganization"][1]
    assert organization["Principal"] == "*"
    assert organization["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": _ref("ProducerOrganizationId")}}
    parameters = transformed["Parameters"]
    for name in ("ProducerAccountIds", "ProducerRoleArns", "AlarmAccountIds"):
        assert (parameters[name]["Type"], parameters[name]["Default"]) == ("CommaDelimitedList", ""), name
    assert parameters["ProducerOrganizationId"]["Default"] == ""
    for condition, name in (("HasProducerAccounts", "ProducerAccountIds"), ("HasProducerRoles", "ProducerRoleArns"),
                            ("HasAlarmAccounts", "AlarmAccountIds")):
        assert transformed["Conditions"][condition] == {
            "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", _ref(name)]}, ""]}]}


def test_stop_bus_admits_other_accounts_producers_only_as_the_parameters_say(resources):
    policies = {p["Condition"]: p["Properties"] for p in _of_type(resources, "AWS::Events::EventBusPolicy").values()}
    assert set(policies) == {"HasProducerAccounts", "HasProducerRoles", "HasProducerOrganization",
                             "HasAlarmAccounts"}
    for condition in ("HasProducerAccounts", "HasProducerRoles", "HasProducerOrganization"):
        policy = policies[condition]
        assert policy["EventBusName"] == _ref("StopBus")
        assert (policy["Statement"]["Effect"], policy["Statement"]["Action"]) == ("Allow", "events:PutEvents")
        assert policy["Statement"]["Resource"] == _arn("StopBus")
    assert policies["HasProducerAccounts"]["Statement"]["Principal"] == {"AWS": _ref("ProducerAccountIds")}
    assert policies["HasProducerRoles"]["Statement"]["Principal"] == {"AWS": _ref("ProducerRoleArns")}
    assert policies["HasProducerOrganization"]["Statement"]["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": _ref("ProducerOrganizationId")}}
    alarms = policies["HasAlarmAccounts"]  # forwarding to the default bus, where the alarm rule is
    assert alarms["EventBusName"] == "default"
    assert alarms["Statement"]["Principal"] == {"AWS": _ref("AlarmAccountIds")}


def test_every_queue_denies_insecure_transport(resources):
    for queue_id in _of_type(resources, "AWS::SQS::Queue"):
        statements = _policy_statements(resources, queue_id)
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        ), queue_id


# ------------------------------------------------------------------------------------------- EventBridge
def _rules(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return _of_type(resources, "AWS::Events::Rule")


def test_every_rule_target_has_retry_policy_and_dead_letter_config(resources, resolve):
    rules = _rules(resources)
    assert set(rules) == {"StopRequestsToQueue", "StopCampaignFunctionAlarmStateChange"}
    for logical_id, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            retry = target["RetryPolicy"]
            assert int(resolve(retry["MaximumRetryAttempts"])) > 0, logical_id
            assert 60 <= int(resolve(retry["MaximumEventAgeInSeconds"])) <= 86400, logical_id
            assert target["DeadLetterConfig"] == {"Arn": _arn("DeadLetterQueue")}, logical_id


def test_dead_letter_queue_policy_lets_every_rule_deliver_undeliverable_events(resources):
    statements = _policy_statements(resources, "DeadLetterQueue")
    allowed = _allowed_source_arns(statements, "events.amazonaws.com")
    assert sorted(map(str, allowed)) == sorted(str(_arn(rule)) for rule in _rules(resources))


def test_stop_bus_rule_buffers_stop_requests_in_the_events_queue(resources):
    rule = resources["StopRequestsToQueue"]["Properties"]
    assert rule["EventBusName"] == _ref("StopBus")
    assert rule["EventPattern"] == {"detail-type": ["Stop Campaign Request"]}
    assert [t["Arn"] for t in rule["Targets"]] == [_arn("StopEventsQueue")]  # its own queue, not the stop queue
    assert rule["State"] == "ENABLED"


def test_alarm_rule_invokes_the_function_for_alarm_state_only(resources):
    rule = resources["StopCampaignFunctionAlarmStateChange"]["Properties"]
    assert "EventBusName" not in rule  # the default bus: CloudWatch publishes nowhere else
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    condition, with_prefix, without_prefix = pattern["detail"]["Fn::If"]
    assert condition == "HasAlarmNamePrefix"
    for detail in (with_prefix, without_prefix):
        assert detail["state"] == {"value": ["ALARM"]}
    assert with_prefix["alarmName"] == [{"prefix": _ref("AlarmNamePrefix")}]
    # only this account's alarms, and those of AlarmAccountIds (forwarded to this default bus)
    condition, with_accounts, this_account = pattern["account"]["Fn::If"]
    assert condition == "HasAlarmAccounts"
    assert this_account == [_ref("AWS::AccountId")]
    assert with_accounts == {"Fn::Split": [",", {"Fn::Join": [",", [
        _ref("AWS::AccountId"), {"Fn::Join": [",", _ref("AlarmAccountIds")]}]]}]}
    # without a prefix, the stack's own operator alarms ("<stack>-...") never trigger a stop
    assert without_prefix["alarmName"] == [{"anything-but": {"prefix": {"Fn::Sub": "${AWS::StackName}-"}}}]
    for alarm in _of_type(resources, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")
    assert [t["Arn"] for t in rule["Targets"]] == [_arn("StopCampaignFunction")]
    permission = resources["StopCampaignFunctionAlarmStateChangePermission"]["Properties"]
    assert permission["SourceArn"] == _arn("StopCampaignFunctionAlarmStateChange")


def test_event_invoke_config_sends_failures_back_through_the_stop_queue(resources):
    configs = _of_type(resources, "AWS::Lambda::EventInvokeConfig")
    assert len(configs) == 1
    config = next(iter(configs.values()))["Properties"]
    assert config["MaximumRetryAttempts"] == 2
    # There the queue's final attempt publishes `failed` and dead-letters it with the reason.
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == _arn("StopQueue")


# ------------------------------------------------------------------------------------------- table
def test_idempotency_table_key_ttl_on_demand_pitr_and_encryption(resources):
    table = resources["IdempotencyTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"]["Enabled"] is True
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_request_history_table_keys_recent_index_ttl_pitr_and_encryption(resources, transformed):
    from stop_campaign.domain import history

    table = resources["RequestHistoryTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": history.PARTITION_KEY, "KeyType": "HASH"},
                                  {"AttributeName": history.SORT_KEY, "KeyType": "RANGE"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == history.RECENT_INDEX
    assert index["KeySchema"] == [{"AttributeName": history.RECENT_PARTITION, "KeyType": "HASH"},
                                  {"AttributeName": history.RECENT_SORT, "KeyType": "RANGE"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": history.TTL_ATTRIBUTE, "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert transformed["Parameters"]["RequestHistoryDays"]["Default"] == 90
    assert transformed["Outputs"]["RequestHistoryTableName"]["Value"] == _ref("RequestHistoryTable")


def test_holds_table_key_ttl_on_demand_pitr_and_encryption(resources, transformed):
    from stop_campaign.domain import holds

    table = resources["HoldsTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": holds.PARTITION_KEY, "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": holds.PARTITION_KEY, "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": holds.TTL_ATTRIBUTE, "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert transformed["Outputs"]["HoldsTableName"]["Value"] == _ref("HoldsTable")


def test_hold_check_schedule_invokes_the_function_with_the_hold_check_payload(resources):
    schedule = resources["HoldCheckSchedule"]["Properties"]
    target = schedule["Target"]
    assert target["Arn"] == _arn("StopCampaignFunction")
    assert target["RoleArn"] == _arn("HoldCheckSchedulerRole")
    payload = json.loads(target["Input"])
    assert payload == {"action": "hold-check", "at": "<aws.scheduler.scheduled-time>"}  # Scheduler fills `at` in
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0  # the next check is its retry
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ScheduleExpression"] == {"Fn::FindInMap": ["HoldCheckRate", _ref("HoldCheckSeconds"),
                                                                "Expression"]}
    role = resources["HoldCheckSchedulerRole"]["Properties"]
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("lambda:InvokeFunction", _arn("StopCampaignFunction"))
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}


def test_hold_check_rate_is_the_parameter_in_whole_minutes_at_least_one(source_template):
    parameter = source_template["Parameters"]["HoldCheckSeconds"]
    assert parameter["Default"] == 60
    rates = source_template["Mappings"]["HoldCheckRate"]
    assert sorted(rates, key=int) == [str(value) for value in parameter["AllowedValues"]]
    for seconds, rate in rates.items():
        minutes = int(seconds) // 60
        assert int(seconds) >= 60 and int(seconds) % 60 == 0
        assert rate["Expression"] == f"rate({minutes} minute{'s' if minutes > 1 else ''})"


def test_ttl_attribute_matches_the_settings(resources):
    ttl = resources["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl["AttributeName"] == IDEMPOTENCY_TTL_ATTRIBUTE


# ------------------------------------------------------------------------------------------- IAM
# Actions that AWS authorizes on no narrower resource than "*".
WILDCARD_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "cloudwatch:PutMetricData",
}


_POLICY_DOCUMENT_TYPES = {
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
}


def _iam_statements(resources: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every statement of an identity policy or of a queue/topic policy (key policies excluded: there
    "*" means the key itself)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        documents: list[dict[str, Any]] = []
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in properties.get("Policies", [])]
        elif resource["Type"] in _POLICY_DOCUMENT_TYPES:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            for statement in document["Statement"]:
                if isinstance(statement, dict) and "Fn::If" in statement:  # conditional statement
                    found += [(logical_id, s) for s in statement["Fn::If"][1:] if "Effect" in s]
                else:
                    found.append((logical_id, statement))
    return found


def test_no_allow_on_every_resource_except_where_aws_offers_nothing_narrower(resources):
    statements = _iam_statements(resources)
    assert statements
    for logical_id, statement in statements:
        if statement["Effect"] == "Allow" and "*" in _as_list(statement["Resource"]):
            assert set(_as_list(statement["Action"])) <= WILDCARD_RESOURCE_ACTIONS, (logical_id, statement)
        for action in _as_list(statement["Action"]):
            if statement["Effect"] == "Allow":
                assert not action.endswith(":*"), (logical_id, statement)


def test_function_role_has_no_managed_policies(resources):
    """Managed policies (AWSLambdaSQSQueueExecutionRole, ...) grant on every resource; the role is inline."""
    role = resources["StopCampaignFunctionRole"]["Properties"]
    assert not role.get("ManagedPolicyArns")
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


def test_function_role_grants_what_the_function_uses(resources):
    grants: dict[str, list[Any]] = {}
    for logical_id, statement in _iam_statements(resources):
        if logical_id == "StopCampaignFunctionRole" and statement["Effect"] == "Allow":
            for action in _as_list(statement["Action"]):
                grants.setdefault(action, []).extend(_as_list(statement["Resource"]))
    assert grants["sqs:ReceiveMessage"] == [_arn("StopQueue"), _arn("StopEventsQueue")]
    assert grants["sqs:DeleteMessage"] == [_arn("StopQueue"), _arn("StopEventsQueue")]
    assert grants["sqs:SendMessage"] == [_arn("DeadLetterQueue"), _arn("StopQueue")]  # dead letters; on-failure
    assert grants["sns:Publish"] == [_ref("ResultsTopic")]
    for action in ("GetItem", "DeleteItem"):
        assert grants[f"dynamodb:{action}"] == [_arn("IdempotencyTable")]
    # the history is written by the function, and read by a resume only
    assert grants["dynamodb:PutItem"] == [_arn("IdempotencyTable"), _arn("RequestHistoryTable")]
    assert grants["dynamodb:UpdateItem"] == [_arn("IdempotencyTable"), _arn("RequestHistoryTable"), _arn("HoldsTable")]
    assert grants["dynamodb:Query"] == [_arn("RequestHistoryTable")]
    assert grants["dynamodb:Scan"] == [_arn("HoldsTable")]  # the hold check's one read of the active holds
    assert grants["cloudwatch:DescribeAlarms"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"}]
    assert grants["secretsmanager:GetSecretValue"] == [_ref("CredentialsSecretArn")]
    parameter = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
    assert grants["ssm:GetParameter"] == [
        {"Fn::Sub": f"{parameter}${{ProducerPolicyParameterName}}"},
        {"Fn::Sub": f"{parameter}${{AlarmTargetsParameterName}}"},
    ]
    assert grants["kms:Decrypt"] == [_ref("CredentialsSecretKmsKeyArn")]  # only with the condition
    assert grants["logs:PutLogEvents"] == [_arn("StopCampaignLogGroup")]


# ------------------------------------------------------------------------------------------- alarms
def _alarm(resources: dict[str, dict[str, Any]], namespace: str, metric: str) -> dict[str, Any]:
    found = [
        a["Properties"]
        for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if (a["Properties"]["Namespace"], a["Properties"]["MetricName"]) == (namespace, metric)
    ]
    assert len(found) == 1, f"one alarm on {namespace} {metric}"
    return found[0]


@pytest.mark.parametrize(
    ("namespace", "metric", "dimension"),
    [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}),
        ("AWS/Lambda", "Errors", _ref("StopCampaignFunction")),
        ("AWS/Lambda", "Throttles", _ref("StopCampaignFunction")),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", {"Fn::GetAtt": ["StopQueue", "QueueName"]}),
    ],
)
def test_alarm_notifies_operators(resources, namespace, metric, dimension):
    alarm = _alarm(resources, namespace, metric)
    assert [d["Value"] for d in alarm["Dimensions"]] == [dimension]
    assert alarm["AlarmActions"] == [_ref("OperatorAlarmsTopic")]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


def test_dead_letter_queue_alarm_fires_on_the_first_message(resources):
    alarm = _alarm(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Threshold"] == 0


def test_alarm_email_subscription_only_when_an_address_is_given(resources, transformed):
    subscription = resources["OperatorAlarmsEmail"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["TopicArn"] == _ref("OperatorAlarmsTopic")
    assert transformed["Parameters"]["AlarmEmail"]["Default"] == ""
    assert transformed["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [_ref("AlarmEmail"), ""]}]}


def test_results_archive_is_optional_and_gets_raw_messages(resources, transformed):
    assert transformed["Parameters"]["EnableResultsArchive"]["Default"] == "false"
    assert transformed["Conditions"]["ArchiveResults"] == {"Fn::Equals": [_ref("EnableResultsArchive"), "true"]}
    for logical_id in ("ResultsArchiveQueue", "ResultsArchiveQueuePolicy", "ResultsArchiveSubscription"):
        assert resources[logical_id]["Condition"] == "ArchiveResults", logical_id
    subscription = resources["ResultsArchiveSubscription"]["Properties"]
    assert subscription["TopicArn"] == _ref("ResultsTopic")
    assert subscription["Protocol"] == "sqs"
    assert subscription["RawMessageDelivery"] is True
    statements = _policy_statements(resources, "ResultsArchiveQueue")
    assert _allowed_source_arns(statements, "sns.amazonaws.com") == [_ref("ResultsTopic")]


# ------------------------------------------------------------------------------------------- outputs
def test_outputs_present(transformed):
    assert set(transformed["Outputs"]) >= {
        "StopQueueUrl",
        "StopQueueArn",
        "StopBusName",
        "ResultsTopicArn",
        "DeadLetterQueueUrl",
        "DeadLetterQueueArn",
        "StopCampaignFunctionName",
        "IdempotencyTableName",
        "OperatorAlarmsTopicArn",
    }


# ------------------------------------------------------------------------------------------- parameters
def _matches_allowed_pattern(parameter: dict[str, Any], value: str) -> bool:
    return re.fullmatch(parameter["AllowedPattern"], value) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://platform.kore.ai",
        "http://127.0.0.1:8080",
        "ftp://platform.kore.ai",
        "https://",
        "https://user:secret@platform.kore.ai",
        "https://platform.kore.ai?x=1",
        "https://platform.kore.ai/#frag",
        "https://platform.kore.ai evil",
        "platform.kore.ai",
    ],
)
def test_kore_base_url_pattern_rejects(transformed, url):
    assert not _matches_allowed_pattern(transformed["Parameters"]["KoreBaseUrl"], url)


@pytest.mark.parametrize(
    "url", ["https://platform.kore.ai", "https://de-platform.kore.ai/", "https://kore.example.com:8443/api"]
)
def test_kore_base_url_pattern_accepts_what_the_function_accepts(transformed, url):
    parameter = transformed["Parameters"]["KoreBaseUrl"]
    assert _matches_allowed_pattern(parameter, url)
    validate_base_url(url)  # the function would start with it
    assert _matches_allowed_pattern(parameter, parameter["Default"])


def test_the_function_rejects_plain_http_too():
    with pytest.raises(ConfigurationError):
        validate_base_url("http://platform.kore.ai")


def test_parameter_patterns(transformed):
    parameters = transformed["Parameters"]
    secret = parameters["CredentialsSecretArn"]
    assert _matches_allowed_pattern(
        secret, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:campaign-stop/kore-AbCdEf"
    )
    assert not _matches_allowed_pattern(secret, "campaign-stop/kore")
    name = parameters["AlarmTargetsParameterName"]
    assert _matches_allowed_pattern(name, name["Default"])
    assert not _matches_allowed_pattern(name, "campaign-stop/alarm-targets")  # needs the leading slash
    assert parameters["LogLevel"]["AllowedValues"] == ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert parameters["LogLevel"]["Default"] == "INFO"
    assert _matches_allowed_pattern(parameters["AlarmEmail"], "")
    assert _matches_allowed_pattern(parameters["AlarmEmail"], "ops@example.com")
    assert not _matches_allowed_pattern(parameters["AlarmEmail"], "not-an-address")


# ------------------------------------------------------------------------------------------- devtools
def test_loader_reads_short_tags_as_long_form_intrinsics(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "Version: 2012-10-17\n"
        "A: !Ref X\n"
        "B: !GetAtt Q.Arn\n"
        "C: !Sub '${AWS::StackName}-x'\n"
        "D: !If [Cond, !FindInMap [M, K, V], !Ref AWS::NoValue]\n"
        "E: !GetAtt [Q, QueueName]\n"
        "F: !Not [!Equals [!Ref P, '']]\n",
        encoding="utf-8",
    )
    assert load_template(path) == {
        "Version": "2012-10-17",
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Q", "Arn"]},
        "C": {"Fn::Sub": "${AWS::StackName}-x"},
        "D": {"Fn::If": ["Cond", {"Fn::FindInMap": ["M", "K", "V"]}, {"Ref": "AWS::NoValue"}]},
        "E": {"Fn::GetAtt": ["Q", "QueueName"]},
        "F": {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]},
    }


def test_local_stack_settings_mirror_the_template(source_template, resources, function, resolve):
    settings = local_stack_settings(source_template)
    stop_queue = resources["StopQueue"]["Properties"]
    assert settings["stop_queue_logical_id"] == "StopQueue"
    assert settings["dead_letter_queue_logical_id"] == "DeadLetterQueue"
    assert settings["stop_queue_visibility_timeout_seconds"] == stop_queue["VisibilityTimeout"]
    assert settings["max_receive_count"] == int(resolve(stop_queue["RedrivePolicy"]["maxReceiveCount"]))
    assert settings["dead_letter_queue_retention_seconds"] == FOURTEEN_DAYS
    assert settings["ttl_attribute"] == IDEMPOTENCY_TTL_ATTRIBUTE
    assert settings["idempotency_partition_key"] == "id"
    assert settings["function_timeout_seconds"] == function["Timeout"]
    assert settings["batch_size"] == 10
    assert settings["maximum_batching_window_seconds"] == 0
    assert settings["report_batch_item_failures"] is True
    assert settings["stop_request_detail_types"] == ["Stop Campaign Request"]
    assert settings["environment_variable_names"] == list(function["Environment"]["Variables"])
    assert settings["environment"]["MAX_RECEIVE_COUNT"] == str(settings["max_receive_count"])
    assert settings["environment"]["RESULTS_TOPIC_ARN"] is None  # a deployed resource: the stack supplies it
    assert local_stack_settings() == settings  # default: the repository's template.yaml


# ------------------------------------------------------------------------------------------- alarm Lambda actions
def test_alarm_lambda_actions_are_opt_in(transformed, resources):
    parameter = transformed["Parameters"]["AllowAlarmLambdaActions"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["false", "true"])
    assert transformed["Conditions"]["AlarmLambdaActions"] == {
        "Fn::Equals": [_ref("AllowAlarmLambdaActions"), "true"]
    }
    permissions = {
        logical_id: resource for logical_id, resource in _of_type(resources, "AWS::Lambda::Permission").items()
        if resource["Properties"]["Principal"] == "lambda.alarms.cloudwatch.amazonaws.com"
    }
    assert list(permissions) == ["AlarmLambdaActionPermission"]
    assert permissions["AlarmLambdaActionPermission"]["Condition"] == "AlarmLambdaActions"


def test_alarm_lambda_action_permission_is_limited_to_this_accounts_alarms(resources):
    permission = resources["AlarmLambdaActionPermission"]["Properties"]
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["FunctionName"] == _arn("StopCampaignFunction")
    assert permission["SourceAccount"] == _ref("AWS::AccountId")  # no other account's alarm can invoke it
    condition, with_prefix, without_prefix = permission["SourceArn"]["Fn::If"]
    alarms = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:"
    assert condition == "HasAlarmNamePrefix"  # the same prefix as the EventBridge alarm rule
    assert with_prefix == {"Fn::Sub": alarms + "${AlarmNamePrefix}*"}
    assert without_prefix == {"Fn::Sub": alarms + "*"}


def test_alarm_lambda_action_permission_arns_resolve_to_alarm_arns(transformed):
    """Both branches, as CloudFormation would substitute them, are alarm ARNs of one account and Region."""
    values = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012",
              "AlarmNamePrefix": "checkout-"}
    branches = transformed["Resources"]["AlarmLambdaActionPermission"]["Properties"]["SourceArn"]["Fn::If"][1:]
    resolved = [re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], branch["Fn::Sub"]) for branch in branches]
    assert resolved == [
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:checkout-*",
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*",
    ]
    assert transformed["Conditions"]["HasAlarmNamePrefix"] == {
        "Fn::Not": [{"Fn::Equals": [_ref("AlarmNamePrefix"), ""]}]
    }


# ------------------------------------------------------------------------------------------- producer policy
def _default_policy(resources: dict[str, dict[str, Any]]) -> Any:
    from devtools.template_loader import substitute
    from stop_campaign.domain.policy import parse_policy

    value = resources["ProducerPolicy"]["Properties"]["Value"]
    text = substitute(value, {"AWS::AccountId": "111122223333", "AWS::Region": "eu-west-1", "AWS::Partition": "aws"})
    assert "${" not in text, "only pseudo parameters in the default policy"
    return parse_policy(json.loads(text))


def test_the_function_reads_the_producer_policy_the_stack_creates(resources, function, transformed):
    parameter = resources["ProducerPolicy"]["Properties"]
    assert (parameter["Name"], parameter["Type"]) == (_ref("ProducerPolicyParameterName"), "String")
    assert transformed["Parameters"]["ProducerPolicyParameterName"]["Default"] == "/campaign-stop/producer-policy"
    variables = function["Environment"]["Variables"]
    assert variables["PRODUCER_POLICY_PARAMETER"] == _ref("ProducerPolicy")  # its name, once it exists
    assert variables["STOP_EVENTS_QUEUE_ARN"] == _arn("StopEventsQueue")
    assert variables["FUNCTION_ROLE_ID"] == {"Fn::GetAtt": ["StopCampaignFunctionRole", "RoleId"]}


@pytest.mark.parametrize(("sender", "allowed"), [
    ("sqs:AROAANYROLEOFTHEACCOUNT:session", True),  # whoever the stop queue admits, as before
    ("events:111122223333/com.example.fraud", True),
    ("alarm:111122223333", True),
    ("sns:arn:aws:sns:eu-west-1:111122223333:kill-switches", True),
    ("direct:-", True),
    ("events:999999999999/com.example.fraud", False),  # other accounts: only once a policy names them
    ("alarm:999999999999", False),
    ("sns:arn:aws:sns:eu-west-1:999999999999:topic", False),
])
def test_the_default_policy_keeps_todays_same_account_behaviour(resources, sender, allowed):
    from stop_campaign.domain.models import CampaignType
    from stop_campaign.domain.policy import Sender

    policy = _default_policy(resources)
    kind, _, ident = sender.partition(":")
    for campaign_id in ("cd-1", None):  # a campaign by id, and all-active
        verdict = policy.judge(Sender(kind, ident), "st-any", CampaignType.VOICE, campaign_id)
        assert verdict.allowed is allowed, (sender, campaign_id, verdict.why)
