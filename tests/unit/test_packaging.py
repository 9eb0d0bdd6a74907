"""What the wheel ships (`pip install campaign-stop`): the function's code and the operator's CLI, never the
development tools (devtools: the local simulator, stack, demo, bench) or the tests.

Setuptools' own reading of pyproject.toml decides, as at build time: offline, nothing is built."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parents[2]


def packaged(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    monkeypatch.chdir(ROOT)  # the configured `where` folders are relative to the project
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools' notes on its own configuration, not about the project
        distribution = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    return set(distribution.packages or [])


def test_the_wheel_ships_the_function_and_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    packages = packaged(monkeypatch)
    assert {"stop_campaign", "campaign_stop_cli"} <= packages
    # every package of the function's code, whatever sub-packages it has
    for init in (ROOT / "functions").glob("stop_campaign/**/__init__.py"):
        assert ".".join(init.parent.relative_to(ROOT / "functions").parts) in packages


def test_the_wheel_leaves_out_devtools_and_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (ROOT / "devtools" / "__init__.py").is_file()  # a package setuptools could find: left out on purpose
    packages = packaged(monkeypatch)
    assert not {name for name in packages if name.split(".")[0] in ("devtools", "tests")}
