"""The bundle's lock (functions/stop_campaign/requirements.txt, what `sam build` installs) agrees with the ranges.

Offline: reads requirements.in, the lock, pyproject.toml and the Makefile, and the metadata of the packages
installed here (the dev venv holds every bundle package, since pyproject repeats the bundle's ranges).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from devtools.template_loader import load_template

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "functions" / "stop_campaign"
LOCK = PACKAGE / "requirements.txt"
RANGES = PACKAGE / "requirements.in"
# The function's runtime, as `make lock` resolves for it (template.yaml: python3.12, arm64; the last test
# below keeps the Makefile and the template in step).
TARGET = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "aarch64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython"}
# Releases with published security advisories the floors must keep out (requirements.in names them).
VULNERABLE = {
    "urllib3": ["2.4.0", "2.5.0", "2.6.3", "2.7.0"],
    "pyjwt": ["2.10.0", "2.10.1", "2.12.1", "2.13.0", "2.14.0"],
}


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]  # uv's "# via" annotations: the requirements file or the packages that need it


def read_lock() -> dict[str, Pin]:
    """Each entry of the lock: `name==version \\ --hash=... \\ --hash=...`, then uv's `# via` lines."""
    pins: dict[str, Pin] = {}
    entries = re.split(r"\n(?=[^\s#])", LOCK.read_text(encoding="utf-8").strip())
    for entry in entries:
        if entry.startswith("#"):
            continue  # the header
        requirement_text = entry.split("#", 1)[0].replace("\\\n", " ")
        comments = (line.strip()[1:].strip() for line in entry.splitlines() if line.strip().startswith("#"))
        via = tuple(item.removeprefix("via ").strip() for item in comments if item and item != "via")
        parts = requirement_text.split()
        assert parts, f"an empty entry in the lock: {entry!r}"
        hashes = tuple(part.removeprefix("--hash=") for part in parts[1:] if part.startswith("--hash="))
        others = [part for part in parts[1:] if not part.startswith("--hash=")]
        assert not others, f"{parts[0]}: unexpected options in the lock: {others}"
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;=<>!~]+)", parts[0])
        assert match, f"not pinned with == to one version: {parts[0]!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = Pin(name, match.group(2), hashes, via)
    return pins


def read_ranges() -> dict[str, Requirement]:
    requirements = [
        Requirement(line.split("#", 1)[0].strip())
        for line in RANGES.read_text(encoding="utf-8").splitlines()
        if line.split("#", 1)[0].strip()
    ]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def read_pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def project_requirements() -> dict[str, Requirement]:
    project = read_pyproject()["project"]
    return {canonicalize_name(Requirement(text).name): Requirement(text) for text in project["dependencies"]}


def dev_only_names() -> set[str]:
    """What development and the command line need and the function does not: the dev extras, and the
    project's own dependencies that are not in requirements.in (typer, rich)."""
    project = read_pyproject()["project"]
    dev = {canonicalize_name(Requirement(text).name) for text in project["optional-dependencies"]["dev"]}
    return (dev | set(project_requirements())) - set(read_ranges())


def test_every_line_is_pinned_with_hashes():
    pins = read_lock()
    assert pins
    for pin in pins.values():
        assert pin.hashes, f"{pin.name} has no --hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", digest) for digest in pin.hashes), pin.name
        assert len(set(pin.hashes)) == len(pin.hashes), f"{pin.name} repeats a hash"


def test_every_range_is_locked_and_every_pin_satisfies_its_ranges():
    pins, project = read_lock(), project_requirements()
    for name, requirement in read_ranges().items():
        assert name in pins, f"{requirement} is not in the lock: run `make lock`"
        version = pins[name].version
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside requirements.in's {requirement.specifier}: run `make lock`"
        )
        assert project[name].specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside pyproject.toml's {project[name].specifier}"
        )


def test_requirements_in_and_pyproject_give_the_bundle_the_same_ranges():
    project = project_requirements()
    for name, requirement in read_ranges().items():
        assert name in project, f"{requirement} (requirements.in) is missing from pyproject.toml's dependencies"
        assert (project[name].specifier, project[name].extras, project[name].marker) == (
            requirement.specifier, requirement.extras, requirement.marker,
        ), f"pyproject.toml has {project[name]}, requirements.in has {requirement}"


def test_the_lock_is_exactly_the_bundles_dependency_closure():
    """Every pin is needed (uv's `# via` leads back to requirements.in), and nothing only development or the
    command line needs is bundled."""
    pins = read_lock()
    reached = {name for name, pin in pins.items() if "-r functions/stop_campaign/requirements.in" in pin.via}
    assert reached == set(read_ranges()), "the pins from requirements.in are not exactly its requirements"
    while True:
        more = {name for name, pin in pins.items() if name not in reached and set(pin.via) & reached}
        if not more:
            break
        reached |= more
    assert set(pins) == reached, f"pinned but needed by nothing in the bundle: {sorted(set(pins) - reached)}"
    assert not set(pins) & dev_only_names(), f"development-only packages in the lock: {set(pins) & dev_only_names()}"
    assert not {"moto", "pytest", "typer", "rich", "uv"} & set(pins)


def test_every_dependency_of_a_pin_is_pinned_too():
    """From the installed packages' metadata, for Python 3.12 on Linux aarch64, with the extras requirements.in
    asks for: each dependency is in the lock (and satisfied, when the installed release is the locked one)."""
    pins, ranges = read_lock(), read_ranges()
    checked = 0
    for name, pin in pins.items():
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: its own dependencies were checked when it was locked
        checked += 1
        extras = ranges[name].extras if name in ranges else set()
        exact = distribution.version == pin.version
        for text in distribution.requires or []:
            dependency = Requirement(text)
            if dependency.marker is not None and not any(
                dependency.marker.evaluate({**TARGET, "extra": extra}) for extra in {"", *extras}
            ):
                continue
            dependency_name = canonicalize_name(dependency.name)
            assert dependency_name in pins, f"{name} needs {dependency}, which the lock does not pin"
            if exact:
                assert dependency.specifier.contains(pins[dependency_name].version, prereleases=True), (
                    f"{name}=={pin.version} needs {dependency}, the lock pins {pins[dependency_name].version}"
                )
    assert checked >= len(ranges), "the bundle's packages are not installed here: `pip install -e '.[dev]'`"


@pytest.mark.parametrize("name", sorted(VULNERABLE))
def test_floors_keep_out_releases_with_security_advisories(name):
    for specifier in (read_ranges()[name].specifier, project_requirements()[name].specifier):
        assert not any(specifier.contains(version) for version in VULNERABLE[name]), (name, specifier)
    assert Version(read_lock()[name].version) > max(Version(v) for v in VULNERABLE[name])


def test_make_lock_resolves_for_the_functions_runtime():
    """`make lock` targets the Python and architecture template.yaml runs the function on."""
    template = load_template()
    defaults = template.get("Globals", {}).get("Function", {})
    functions = [
        resource.get("Properties", {}) for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
        and str(resource.get("Properties", {}).get("Handler", "")).startswith("stop_campaign.")
    ]
    assert functions
    runtimes = {function.get("Runtime", defaults.get("Runtime")) for function in functions}
    architectures = {tuple(function.get("Architectures", defaults.get("Architectures", ["x86_64"])))
                     for function in functions}
    assert architectures == {("arm64",)}, architectures
    (runtime,) = runtimes
    assert isinstance(runtime, str) and re.fullmatch(r"python3\.\d+", runtime), runtime
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert f"--python-version {runtime.removeprefix('python')} " in recipe
    assert "--python-platform aarch64-manylinux" in recipe
    assert "--generate-hashes" in recipe
