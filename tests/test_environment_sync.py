"""pyproject.toml is the single source of versions; environment.yml must say the same."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pip_section(env_text: str) -> list[str]:
    """The lines under `- pip:` in environment.yml (a tiny reader; no YAML library needed)."""
    lines, inside = [], False
    for raw in env_text.splitlines():
        stripped = raw.strip()
        if stripped == "- pip:":
            inside = True
            continue
        if inside:
            if stripped.startswith("- "):
                lines.append(stripped[2:].strip())
            elif stripped and not stripped.startswith("#"):
                break
    return lines


def normalise(requirement: str) -> str:
    return requirement.replace(" ", "").lower().replace("_", "-")


def test_environment_yml_pins_exactly_what_pyproject_pins():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = [r for r in pip_section((REPO / "environment.yml").read_text()) if r != "-e ."]
    assert sorted(map(normalise, env)) == sorted(map(normalise, pyproject)), (
        "environment.yml and pyproject.toml list different packages or versions: "
        "copy the dependencies from pyproject.toml into the pip section of environment.yml")


def test_every_dependency_is_pinned():
    for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        assert "==" in requirement, f"{requirement}: pin an exact version so every learner gets the same"


def test_the_reader_notices_drift():
    text = "dependencies:\n  - pip:\n      - flask==1.0\n      - -e .\n"
    assert pip_section(text) == ["flask==1.0", "-e ."]
    with pytest.raises(AssertionError):
        assert sorted(map(normalise, ["flask==1.0"])) == sorted(map(normalise, ["flask==2.0"]))
