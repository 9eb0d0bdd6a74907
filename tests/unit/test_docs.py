"""The docs site documents every setting: each environment variable the function reads, and each template
parameter, appears in a table row of docs/settings.md. Read from the sources (not imported), so the check follows
a moved module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_PAGE = ROOT / "docs" / "settings.md"
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# The names that hold the function's variables in settings.py (a tuple of names, a dict of name -> default).
DECLARED = ("REQUIRED_ENV_VARS", "OPTIONAL_ENV_VARS")


def settings_source() -> Path:
    # settings.py may live in the package root or in a sub-package (domain/); there must be exactly one.
    found = sorted((ROOT / "functions" / "stop_campaign").glob("**/settings.py"))
    assert len(found) == 1, f"expected one functions/stop_campaign/**/settings.py, found {found}"
    return found[0]


def _names(node: ast.AST | None) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
        return {node.value}
    return set()


def env_names_read(source: str) -> set[str]:
    """Every environment variable settings.py declares or reads: the entries of REQUIRED_ENV_VARS and the keys of
    OPTIONAL_ENV_VARS, and every name given as a string to a lookup (env["X"], env.get("X"), os.getenv("X"),
    _number(env, "X", ...))."""
    tree = ast.parse(source)
    names: set[str] = set()
    declared: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in DECLARED for t in targets):
                declared.update(t.id for t in targets if isinstance(t, ast.Name))
                value = node.value
                items = value.keys if isinstance(value, ast.Dict) else getattr(value, "elts", [])
                for item in items:
                    names |= _names(item)
        elif isinstance(node, ast.Subscript):
            names |= _names(node.slice)
        elif isinstance(node, ast.Call):
            for arg in node.args:
                names |= _names(arg)
    assert declared == set(DECLARED), f"settings.py no longer declares {set(DECLARED) - declared}"
    return names


def documented(page: str, name: str) -> bool:
    return any(line.startswith("|") and f"`{name}`" in line for line in page.splitlines())


def test_env_names_are_read_from_the_source():
    names = env_names_read(settings_source().read_text(encoding="utf-8"))
    # a few that have always been there, so that a parser finding nothing cannot pass the test below
    assert {"KORE_BASE_URL", "STOP_QUEUE_URL", "KORE_RATE_LIMIT", "MAX_WAIT_SECONDS"} <= names
    assert len(names) >= 15


def test_every_env_var_is_in_the_settings_page():
    page = SETTINGS_PAGE.read_text(encoding="utf-8")
    names = env_names_read(settings_source().read_text(encoding="utf-8"))
    missing = sorted(name for name in names if not documented(page, name))
    assert not missing, f"docs/settings.md has no table row for {missing}"


def test_an_undocumented_name_is_caught():
    source = (
        'REQUIRED_ENV_VARS = ("KORE_BASE_URL",)\n'
        'OPTIONAL_ENV_VARS = {"NEW_KNOB": "1"}\n'
        'x = env.get("OTHER_KNOB")\n'
    )
    names = env_names_read(source)
    assert names == {"KORE_BASE_URL", "NEW_KNOB", "OTHER_KNOB"}
    page = "| `KORE_BASE_URL` | the URL | required |\nNEW_KNOB is mentioned in prose only\n"
    assert [name for name in sorted(names) if not documented(page, name)] == ["NEW_KNOB", "OTHER_KNOB"]


class _AnyTag(yaml.SafeLoader):
    """template.yaml uses CloudFormation's short tags (!Ref, !Sub, ...): read them as plain values."""


_AnyTag.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_every_template_parameter_is_in_the_settings_page():
    page = SETTINGS_PAGE
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_AnyTag)  # noqa: S506
    parameters = sorted(template["Parameters"])
    assert "KoreBaseUrl" in parameters
    text = page.read_text(encoding="utf-8")
    missing = [name for name in parameters if not documented(text, name)]
    assert not missing, f"{page.relative_to(ROOT)} has no table row for the template parameters {missing}"
