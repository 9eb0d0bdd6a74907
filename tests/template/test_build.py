"""The function's build (functions/Makefile, run by `sam build` through BuildMethod: makefile), offline.

`sam build` copies the CodeUri to a scratch directory and runs ``make --makefile functions/Makefile
build-<LogicalId>`` with ARTIFACTS_DIR set; the function ships what the target puts there and nothing else.
The recipe is read from ``make -n`` (what make would run), and the target is run for real on this machine's
Python with a wheel made here, so nothing needs the network: the real lock's download is left to `sam build`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

MAKEFILE = REPO_ROOT / "functions" / "Makefile"
PACKAGE = REPO_ROOT / "functions" / "stop_campaign"
ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}

MAKE = shutil.which("make") or "make"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _function(source_template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    resources = source_template["Resources"].items()
    functions = [(name, r) for name, r in resources if r["Type"] == "AWS::Serverless::Function"]
    assert len(functions) == 1
    return functions[0]


def _dry_run(**variables: str) -> list[list[str]]:
    """The commands `make -n` prints for the target (continuation lines joined), each split into words."""
    overrides = [f"{name}={value}" for name, value in {"ARTIFACTS_DIR": "/artifacts", **variables}.items()]
    completed = subprocess.run(  # noqa: S603 (make with fixed arguments)
        [MAKE, "-n", "--makefile", str(MAKEFILE), *overrides, f"build-{_LOGICAL_ID}"],
        cwd=REPO_ROOT / "functions", capture_output=True, text=True, check=True,
    )
    joined = completed.stdout.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


_LOGICAL_ID = "StopCampaignFunction"


def _command(commands: list[list[str]], *words: str) -> list[str]:
    found = [c for c in commands if all(w in c for w in words)]
    assert len(found) == 1, f"expected one command with {words}: {commands}"
    return found[0]


def _options(command: list[str], name: str) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command[:-1]) if word == name]


# ------------------------------------------------------------------------------------------ static checks
def test_the_function_is_built_by_its_makefile(source_template):
    name, function = _function(source_template)
    assert name == _LOGICAL_ID
    assert function.get("Metadata", {}).get("BuildMethod") == "makefile"
    code_uri = REPO_ROOT / function["Properties"]["CodeUri"]
    assert (code_uri / "Makefile").resolve() == MAKEFILE  # SAM looks for the Makefile at the CodeUri root
    assert re.search(rf"^build-{name}:", MAKEFILE.read_text(encoding="utf-8"), re.MULTILINE)


def test_the_build_installs_the_hashed_lock_for_the_runtime_platform(source_template):
    _, function = _function(source_template)
    runtime = function["Properties"]["Runtime"]
    (architecture,) = function["Properties"]["Architectures"]
    version = runtime.removeprefix("python")
    pip = _command(_dry_run(), "pip", "install")
    assert pip[0] == runtime  # PYTHON defaults to the runtime's interpreter, e.g. python3.12
    assert "--require-hashes" in pip and "--only-binary=:all:" in pip and "--no-compile" in pip
    assert _options(pip, "-r") == [str(REPO_ROOT / "functions" / "requirements.txt")]
    assert _options(pip, "--python-version") == [version]
    assert _options(pip, "--implementation") == ["cp"]
    assert _options(pip, "--target") == ["/artifacts"]
    platforms = _options(pip, "--platform")
    assert platforms and all(p.startswith("manylinux") for p in platforms)
    assert all(p.endswith("_" + ARCHITECTURES[architecture]) for p in platforms)


def test_the_build_compiles_everything_with_unchecked_hash_for_the_runtime(source_template):
    _, function = _function(source_template)
    commands = _dry_run()
    compile_all = _command(commands, "compileall")
    assert compile_all[0] == function["Properties"]["Runtime"]
    assert _options(compile_all, "--invalidation-mode") == ["unchecked-hash"]
    assert compile_all[-1] == "/artifacts"
    # The interpreter is checked to be the runtime's version before anything is built.
    assert any("sys.version_info" in " ".join(c) for c in commands[: commands.index(compile_all)])


def test_a_missing_runtime_python_fails_the_build_clearly(tmp_path):
    completed = subprocess.run(  # noqa: S603 (make with fixed arguments)
        [MAKE, "--makefile", str(MAKEFILE), f"ARTIFACTS_DIR={tmp_path}", "PYTHON=no-such-python3.12",
         f"build-{_LOGICAL_ID}"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert completed.returncode != 0
    assert "needs Python 3.12 as 'no-such-python3.12'" in completed.stderr
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------- the target, for real
def _wheel(into: Path, name: str = "fakedep", version: str = "1.0") -> Path:
    """A pure-Python wheel with one module, standing in for the lock's packages (no network)."""
    path = into / f"{name}-{version}-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": "VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{name}-{version}.dist-info/WHEEL":
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(t.encode())}" for n, t in files.items()]
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join([*record, f"{name}-{version}.dist-info/RECORD,,"]) + "\n"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def _build(tmp_path: Path, digest: str) -> subprocess.CompletedProcess[str]:
    wheel = next((tmp_path / "wheels").glob("*.whl"))
    lock = tmp_path / "requirements.txt"
    lock.write_text(f"fakedep==1.0 \\\n    --hash=sha256:{digest}\n")
    variables = {
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "PYTHON": sys.executable,  # this machine's Python, for its own platform: the recipe is what is tested
        "PYTHON_VERSION": "{}.{}".format(*sys.version_info[:2]),
        "PLATFORM": "",
        "REQUIREMENTS": str(lock),
        "PIP_OPTIONS": f"--no-index --find-links {wheel.parent}",
    }
    scratch = tmp_path / "scratch"  # sam build runs make in a copy of the CodeUri
    shutil.copytree(REPO_ROOT / "functions", scratch, ignore=shutil.ignore_patterns("__pycache__"))
    environment = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}
    return subprocess.run(  # noqa: S603 (make with fixed arguments)
        [MAKE, "--makefile", str(scratch / "Makefile"), *(f"{k}={v}" for k, v in variables.items()),
         f"build-{_LOGICAL_ID}"],
        cwd=scratch, env=environment, capture_output=True, text=True, check=False, timeout=300,
    )


def test_the_target_ships_the_locked_packages_the_code_and_unchecked_hash_bytecode(tmp_path):
    (tmp_path / "wheels").mkdir()
    wheel = _wheel(tmp_path / "wheels")
    completed = _build(tmp_path, hashlib.sha256(wheel.read_bytes()).hexdigest())
    assert completed.returncode == 0, completed.stderr
    artifacts = tmp_path / "artifacts"
    # Only what the target installs: the locked packages and the code; not the Makefile, the lock, tests.
    assert {p.name for p in artifacts.iterdir()} == {"fakedep", "fakedep-1.0.dist-info", "stop_campaign"}
    shipped = {p.relative_to(artifacts / "stop_campaign").as_posix()
               for p in (artifacts / "stop_campaign").rglob("*") if "__pycache__" not in p.parts}
    sources = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
               if "__pycache__" not in p.parts and not p.name.startswith("requirements.")}
    assert shipped == sources
    assert any(name.startswith("schemas/") and name.endswith(".json") for name in shipped)
    # Every module, ours and the dependencies', has bytecode for this interpreter that is never checked
    # against its source (PEP 552 flags 0b01: hash-based, unchecked).
    modules = sorted(artifacts.rglob("*.py"))
    assert len(modules) > 10
    tag = sys.implementation.cache_tag
    for module in modules:
        compiled = module.parent / "__pycache__" / f"{module.stem}.{tag}.pyc"
        assert compiled.is_file(), compiled
        assert int.from_bytes(compiled.read_bytes()[4:8], "little") == 0b01, compiled


def test_the_target_refuses_a_package_whose_hash_does_not_match(tmp_path):
    (tmp_path / "wheels").mkdir()
    _wheel(tmp_path / "wheels")
    completed = _build(tmp_path, "0" * 64)
    assert completed.returncode != 0
    assert "HASHES" in completed.stderr.upper()
    assert not (tmp_path / "artifacts" / "stop_campaign").exists()
