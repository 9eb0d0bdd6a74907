"""The layers stay layers: the domain (stop_campaign/domain/) is plain Python with no I/O. Every module of it is
read with ``ast`` (not imported: an import would hide behind another module's), and every import it makes,
at the top, in a function or under TYPE_CHECKING, must be of neither an I/O library nor an I/O layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "stop_campaign"
DOMAIN = PACKAGE / "domain"

# Libraries that do I/O (AWS, HTTP, logging/metrics/tracing, tokens), and the package's layers that use them.
FORBIDDEN_IN_DOMAIN = (
    "boto3",
    "botocore",
    "aws_lambda_powertools",
    "urllib3",
    "jwt",
    "stop_campaign.adapters",
    "stop_campaign.service",
    "stop_campaign.sources",
    "stop_campaign.pacing.account_budgets",
    "stop_campaign.pacing.rate_ledger",
    "stop_campaign.composition",
    "stop_campaign.app",
    "stop_campaign.settings",
)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)  # a package's ends in __init__


def imported_modules(source: str, module: str) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, by absolute name: ``import a.b``, ``from a import
    b`` (as a and a.b: b may be a module), relative imports resolved, and ``importlib.import_module("...")`` or
    ``__import__("...")`` with a literal name."""
    names: set[str] = set()
    package = module.split(".")[:-1]  # what a relative import starts from (a package's __init__: the package)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if called in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value))
    return names


def forbidden(names: set[str]) -> set[str]:
    return {name for name in names for banned in FORBIDDEN_IN_DOMAIN if name == banned or name.startswith(banned + ".")}


DOMAIN_MODULES = sorted(DOMAIN.rglob("*.py"))


def test_the_domain_has_its_modules():
    found = {path.stem for path in DOMAIN_MODULES}
    assert {"models", "intake", "planning", "decision", "outcomes", "listing", "alarms"} <= found


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda path: path.name)
def test_a_domain_module_imports_no_io(path: Path):
    names = imported_modules(path.read_text(encoding="utf-8"), _module_name(path))
    assert not forbidden(names), f"{path.name} imports {sorted(forbidden(names))}: the domain does no I/O"


@pytest.mark.parametrize(
    "source",
    [
        "import boto3",
        "from botocore.exceptions import ClientError",
        "def f():\n    from aws_lambda_powertools import Logger\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import urllib3\n",
        "import jwt as token",
        "from stop_campaign.adapters.kore_client import KoreClient",
        "from stop_campaign import adapters",
        "from ..adapters import results",
        "from ..service.stopper import CampaignStopper",
        "import importlib\nimportlib.import_module('boto3')",
    ],
)
def test_the_check_catches_an_io_import(source: str):
    """The check itself can fail: each of these, in a domain module, would be caught."""
    assert forbidden(imported_modules(source, "stop_campaign.domain.example"))


def test_the_check_lets_plain_python_through():
    source = "import json\nfrom dataclasses import dataclass\nimport fastjsonschema\nfrom .models import Outcome\n"
    assert imported_modules(source, "stop_campaign.domain.example") >= {"stop_campaign.domain.models"}
    assert not forbidden(imported_modules(source, "stop_campaign.domain.example"))
