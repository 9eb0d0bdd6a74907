"""Fixtures for the offline template tests: the source template, its SAM transform, cfn-lint findings.

Everything here runs without network or AWS credentials. Expensive steps (transform, cfn-lint) run once
per session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# devtools and (in a bare checkout) stop_campaign come from pytest's pythonpath (pyproject.toml).
from devtools.template_loader import load_template, resolve_static, transform_template

REPO_ROOT = Path(__file__).resolve().parents[2]

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
LINT_REGIONS = ["us-east-1", "eu-west-1"]


@pytest.fixture(scope="session")
def template_path() -> Path:
    return TEMPLATE_PATH


@pytest.fixture(scope="session")
def source_template() -> dict[str, Any]:
    """template.yaml as written (SAM resources, long-form intrinsics)."""
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def transformed() -> dict[str, Any]:
    """The CloudFormation template aws-sam-translator makes of template.yaml (offline)."""
    return transform_template(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def resources(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return transformed["Resources"]


@pytest.fixture(scope="session")
def resolve(transformed: dict[str, Any]):
    """Resolves constants (Fn::FindInMap, parameter defaults, literals) of the transformed template."""
    return lambda value: resolve_static(transformed, value)


@pytest.fixture(scope="session")
def function(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Properties of the one Lambda function."""
    functions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 1, "the stack has exactly one function"
    return functions[0]["Properties"]


@pytest.fixture(scope="session")
def event_source_mappings(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The function's SQS event source mappings, by the logical id of the queue each reads."""
    mappings = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    by_queue = {m["EventSourceArn"]["Fn::GetAtt"][0]: m for m in mappings}
    assert set(by_queue) == {"StopQueue", "StopEventsQueue"}, "the stop queue and the stop bus's events queue"
    return by_queue


@pytest.fixture(scope="session")
def sqs_event_source(event_source_mappings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return event_source_mappings["StopQueue"]


def _lint(text: str) -> list[Any]:
    from cfnlint.api import ManualArgs, lint

    return lint(text, config=ManualArgs(regions=LINT_REGIONS))


@pytest.fixture(scope="session")
def cfn_lint_source() -> list[Any]:
    """cfn-lint findings on template.yaml (cfn-lint applies the SAM transform itself)."""
    return _lint(TEMPLATE_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def cfn_lint_transformed(transformed: dict[str, Any]) -> list[Any]:
    """cfn-lint findings on our own transform; it checks the function's final properties too."""
    return _lint(json.dumps(transformed))
