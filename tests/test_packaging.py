"""Packaging: environment.yml and pyproject.toml name the same dependencies; README's two commands are CI's."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=~!\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    lines = (REPO / "environment.yml").read_text().splitlines()
    pip_section = lines[lines.index("  - pip:") + 1:]
    listed = [line.strip()[2:] for line in pip_section if line.strip().startswith("- ") and "-e ." not in line]
    assert {_name(r): r.replace(" ", "") for r in listed} == wanted
    assert "python=3.11" in (REPO / "environment.yml").read_text()
    assert "      - -e ." in lines


def test_no_exact_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert "==" not in requirement, requirement


def test_readme_commands_are_the_ones_ci_runs():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    commands = [line for block in blocks[:2] for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, commands
    run_course, run_tests = commands
    assert run_course.endswith("imgrec run") and "pip install" in run_course
    assert run_tests.endswith("python -m pytest")
    ci = (REPO / ".ci" / "run").read_text()
    assert run_tests in ci.splitlines()


def test_console_command_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["imgrec"] == "imgrec_helpers.cli:main"
    assert (REPO / "imgrec_helpers" / "__main__.py").is_file()
