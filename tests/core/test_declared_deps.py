"""Every third-party import is declared in pyproject.toml, so a fresh virtual environment runs.

The packages (``vms``, ``onvif_bridge``, ``recorder``, ``web``, ``camsim``, ``migrations``) may
import only what ``[project] dependencies`` declares; ``tests/``, ``bench/``, ``tools/`` and
camsim's pytest plugin may also import what the ``dev`` extra declares (with the extras it
includes, such as ``vms[test]``). A module counts
as third-party when it is neither in the standard library nor a module of this repository; it is
mapped to its distribution with :func:`importlib.metadata.packages_distributions`. An import that
maps to no installed distribution fails too: it was never declared, so nothing installed it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("vms", "onvif_bridge", "recorder", "web", "camsim", "migrations")
DEV_TREES = ("tests", "bench", "tools")
# modules inside the packages that only the test run loads (tests/conftest.py's pytest_plugins)
DEV_MODULES = ("camsim/pytest_plugin.py",)
SKIP_PARTS = {"vendor", "node_modules", "__pycache__", ".venv"}


def _normalise(name: str) -> str:
    """PEP 503: ``Prometheus_Client`` and ``prometheus-client`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(spec: str) -> tuple[str, set[str]]:
    """``'vms[test]>=1; python_version>"3"'`` → (``'vms'``, ``{'test'}``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", spec)
    assert match, f"pyproject.toml: cannot read the requirement {spec!r}"
    extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
    return _normalise(match.group(1)), extras


def declared(pyproject: dict, extras: set[str]) -> set[str]:
    """The distributions named by the dependencies and ``extras``, self-references followed."""
    project = pyproject["project"]
    me = _normalise(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    names: set[str] = set()
    seen: set[str] = set()
    todo = [("", spec) for spec in project.get("dependencies", [])]
    todo += [(extra, spec) for extra in extras for spec in optional.get(extra, [])]
    while todo:
        _, spec = todo.pop()
        name, more = _requirement(spec)
        if name != me:
            names.add(name)
            continue
        for extra in more - seen:
            seen.add(extra)
            todo += [(extra, s) for s in optional.get(extra, [])]
    return names


def _python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if not SKIP_PARTS.intersection(p.parts))


def _local_modules() -> set[str]:
    """Every name a module of this repository can be imported as (packages, helpers, scripts)."""
    ours = [f for tree in PACKAGES + DEV_TREES for f in _python_files(REPO / tree)]
    ours += sorted(REPO.glob("*.py"))  # not rglob: a virtual environment may sit in the checkout
    names = {p.stem for p in ours} | {p.parent.name for p in ours if p.name == "__init__.py"}
    return names | set(PACKAGES) | set(DEV_TREES)


def imports_of(path: Path) -> set[str]:
    """Top-level names of the absolute imports in ``path`` (also those inside functions).

    An import is a statement, so only statement lists are walked (bodies, ``else``/``finally``
    branches, ``except`` handlers, ``match`` cases), not the expressions inside them: a third of
    the time of a full :func:`ast.walk`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
        else:
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, name, None)
                if isinstance(children, list):
                    todo += children
    return found


def undeclared(files: list[Path], allowed: set[str]) -> list[str]:
    """One line per third-party import in ``files`` whose distribution is not in ``allowed``."""
    local = _local_modules()
    dists = importlib.metadata.packages_distributions()
    problems: set[str] = set()
    for path in files:
        for module in imports_of(path) - local - set(sys.stdlib_module_names):
            owners = {_normalise(d) for d in dists.get(module, [])}
            where = path.relative_to(REPO)
            if not owners:
                problems.add(f"{where}: imports {module!r}, which no installed distribution provides")
            elif not owners & allowed:
                problems.add(f"{where}: imports {module!r} (distribution "
                             f"{', '.join(sorted(owners))}), which pyproject.toml does not declare")
    return sorted(problems)


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_packages_import_only_declared_dependencies() -> None:
    files = [f for pkg in PACKAGES for f in _python_files(REPO / pkg)
             if f.relative_to(REPO).as_posix() not in DEV_MODULES]
    assert files
    problems = undeclared(files, declared(_pyproject(), set()))
    assert not problems, "declare these in [project] dependencies:\n" + "\n".join(problems)


def test_tests_and_bench_import_only_the_dev_extra() -> None:
    files = [f for tree in DEV_TREES for f in _python_files(REPO / tree)]
    files += [REPO / name for name in DEV_MODULES]
    assert files
    problems = undeclared(files, declared(_pyproject(), {"dev"}))
    assert not problems, "declare these in the dev extra:\n" + "\n".join(problems)


def test_the_check_names_an_undeclared_import(tmp_path: Path) -> None:
    """The check itself: numpy imported by a test file but declared nowhere is named."""
    sample = REPO / "tests" / "core" / "test_declared_deps.py"
    pyproject = _pyproject()
    without = {k: v for k, v in pyproject["project"].items()}
    without["optional-dependencies"] = {
        extra: [s for s in specs if _requirement(s)[0] != "pytest"]
        for extra, specs in pyproject["project"]["optional-dependencies"].items()}
    allowed = declared({"project": without}, {"dev"})
    assert "pytest" not in allowed and "ruff" in allowed and "aiohttp" in allowed
    problems = undeclared([sample, REPO / "tests" / "conftest.py"], allowed)
    assert any("'pytest'" in line and "tests/conftest.py" in line for line in problems), problems
