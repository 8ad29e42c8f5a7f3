"""pyproject.toml and environment.yml install the same dependencies."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
CONDA_NAMES = {"redis": "redis-py"}  # PyPI name -> conda-forge name
CONDA_ONLY = {"python", "pip"}


def parse(spec: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*(.*?)\s*", spec)
    assert match, spec
    return match.group(1).lower(), match.group(2).replace(" ", "")


def pyproject_deps() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    deps = dict(parse(s) for s in specs)
    return {CONDA_NAMES.get(name, name): version for name, version in deps.items()}


def environment_deps() -> dict[str, str]:
    deps = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.fullmatch(r"  - ([A-Za-z0-9_.-]+[^:]*)", line)
        if match:
            name, version = parse(match.group(1))
            if name not in CONDA_ONLY:
                deps[name] = version
    return deps


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    assert environment_deps() == pyproject_deps()


def test_environment_yml_installs_queuelab_itself() -> None:
    assert "- -e ." in (ROOT / "environment.yml").read_text()
