"""Packaging: environment.yml and pyproject.toml name the same dependencies; README's two commands are CI's."""
from __future__ import annotations

import json
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
    assert project["scripts"]["imgrec"] == "imgrec_helpers.course.cli:main"
    assert (REPO / "imgrec_helpers" / "__main__.py").is_file()


def _package_imports() -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports (at module top or inside functions),
    read from the source with ``ast``: ``{"imgrec_helpers.course.cli": {"imgrec_helpers.errors", ...}}``."""
    import ast

    package = REPO / "imgrec_helpers"
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts): p for p in package.rglob("*.py")}
    modules = {name.removesuffix(".__init__"): path for name, path in modules.items()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here.split(".")[:len(here.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name and t != "imgrec_helpers"}
        graph[name] = found
    return graph


def test_the_lessons_helpers_never_import_the_course_tooling():
    """``imgrec_helpers`` holds what the notebooks import; ``imgrec_helpers.course`` the tooling (runner, manifest,
    report, CLI, lab, predict, bench). The tooling may import the helpers, never the other way round."""
    graph = _package_imports()
    assert any(name.startswith("imgrec_helpers.course.") for name in graph)
    wrong = {name: sorted(t for t in targets if t.startswith("imgrec_helpers.course"))
             for name, targets in graph.items() if not name.startswith("imgrec_helpers.course")
             and name != "imgrec_helpers.__main__"}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_the_package_has_no_import_cycles():
    graph = _package_imports()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in visiting:
            raise AssertionError("import cycle: " + " -> ".join(visiting[visiting.index(name):] + [name]))
        if name in done:
            return
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_notebooks_import_only_the_lessons_helpers():
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert "imgrec_helpers.course" not in code and "from imgrec_helpers import" in code, path.name
        for grouped, plain in re.findall(r"from imgrec_helpers import (?:\(([^)]*)\)|([\w, ]+))", code):
            for name in (n.strip() for n in (grouped or plain).split(",") if n.strip()):
                assert (REPO / "imgrec_helpers" / f"{name}.py").is_file(), f"{path.name} imports {name}, not a lesson helper"
