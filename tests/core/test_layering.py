"""The dependency rule of ARCHITECTURE.md, checked on every import of every module of ours.

core ``vms`` ← ``onvif_bridge``, ``recorder`` ← ``web`` ← the composition root (``vms/app.py``,
``vms/demo.py``, ``vms/__main__.py``, the CLI package ``vms/cli/``), which nothing imports;
``camsim`` stands apart and imports only ``vms.clock``. The AST is read, so an import inside a
function or an ``if TYPE_CHECKING:`` block counts as much as one at the top, and so does
``importlib.import_module("...")`` with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vms", "onvif_bridge", "recorder", "web", "camsim")
OURS = (*PACKAGES, "migrations", "tests", "bench", "tools")
ROOT_MODULES = ("vms.app", "vms.demo", "vms.__main__", "vms.cli")
"""The composition root: these modules and everything below them (``vms.cli.*``)."""
WEB_ENTRY = ("web.setup", "web.keys")
"""What the root may take from ``web``: its entry point and typed app keys. A service the root
wires up (scan jobs, exports, the recorder) lives below the web layer, never in a view."""


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    importer: str
    imported: str


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _exists(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, importer: str | None = None) -> list[Import]:
    """Every import of one of our modules in ``path`` (module ``importer``, by default the one its
    place in the tree names), as the most precise module name known (``from vms import audit`` is
    ``vms.audit``; ``from vms.clock import Clock`` is ``vms.clock``)."""
    importer = importer or module_name(path)
    package = importer if _is_package(path) else importer.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def add(node: ast.AST, name: str) -> None:
        if name.split(".")[0] in OURS:
            found.append(Import(path, getattr(node, "lineno", 0), importer, name))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}".lstrip(".")
                add(node, sub if alias.name != "*" and _exists(sub) else base)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            add(node, node.args[0].value)
    return found


def in_root(module: str) -> bool:
    return any(module == r or module.startswith(r + ".") for r in ROOT_MODULES)


def layer(module: str) -> str:
    """'root', 'core' (vms outside the root), or the top-level package's name."""
    top = module.split(".")[0]
    if top == "vms":
        return "root" if in_root(module) else "core"
    return top


def violation(imp: Import) -> str | None:
    """The rule ``imp`` breaks, or None."""
    src, dst = layer(imp.importer), layer(imp.imported)
    if dst in ("migrations", "tests", "bench", "tools"):
        return f"{src} code imports {dst} ({imp.imported}): only tests and tools may"
    if dst == "root" and src != "root":
        return (f"nothing imports the composition root (app, demo, CLI) but the root itself; "
                f"{imp.importer} imports {imp.imported}")
    if src == "camsim":
        if dst != "camsim" and imp.imported != "vms.clock" and not imp.imported.startswith("vms.clock."):
            return f"camsim imports only vms.clock of ours, not {imp.imported}"
    elif src == "core":
        if dst != "core":
            return f"core vms imports only core vms, not {imp.imported} ({dst})"
    elif src in ("onvif_bridge", "recorder"):
        if dst not in ("core", src):
            return f"{src} imports only core vms and itself, not {imp.imported} ({dst})"
    elif src == "web":
        if dst not in ("core", "onvif_bridge", "recorder", "web"):
            return f"web imports core, onvif_bridge and recorder, not {imp.imported} ({dst})"
    elif src == "root" and dst == "web" and imp.imported not in (*WEB_ENTRY, "web"):
        return (f"the composition root takes from web only {' and '.join(WEB_ENTRY)}, not "
                f"{imp.imported}: a service it wires belongs below the web layer")
    return None


def our_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                  if "__pycache__" not in p.parts)


def test_every_import_follows_the_layering() -> None:
    problems = []
    for path in our_modules():
        for imp in imports_of(path):
            rule = violation(imp)
            if rule is not None:
                problems.append(f"{imp.path.relative_to(ROOT)}:{imp.line}: {rule}")
    problems = list(dict.fromkeys(problems))  # `from a import b, c`: one line, said once
    assert not problems, "layering broken:\n" + "\n".join(problems)


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The AST walk finds imports in functions, TYPE_CHECKING blocks, relative ones and
    import_module calls, and names the submodule of ``from package import module``."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from onvif_bridge.models import Device\n"
        "def f():\n"
        "    from web import keys\n"
        "    import importlib\n"
        "    importlib.import_module('vms.app')\n"
        "from . import index\n"
        "from .. import camsim\n"
        "from vms import clock\n")
    found = [(i.line, i.imported, violation(i) is not None)
             for i in imports_of(probe, "recorder.probe")]
    assert sorted(found) == [(3, "onvif_bridge.models", True), (5, "web.keys", True),
                             (7, "vms.app", True), (8, "recorder.index", False),
                             (9, "camsim", True), (10, "vms.clock", False)]


def test_the_layers_are_what_architecture_says() -> None:
    assert layer("vms.cli.common") == "root" and layer("vms.app") == "root"
    assert layer("vms.clock") == "core" and layer("vms.db.gateway") == "core"
    assert layer("vms.client") == "core"  # not the root: only vms.cli and below are


def import_cycles(packages: tuple[str, ...]) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module) among the
    modules of ``packages``, each import counted wherever it is written."""
    paths = [p for p in our_modules() if p.relative_to(ROOT).parts[0] in packages]
    modules = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        importer = module_name(path)
        deps = graph.setdefault(importer, set())
        for imp in imports_of(path):
            target = imp.imported
            while target and target not in modules:  # vms.clock.Clock -> vms.clock
                target = target.rpartition(".")[0]
            if target and target != importer:
                deps.add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is small
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    """Modules of the server (the CLI included) import each other without a cycle: shared
    helpers live in a module of their own (``vms/cli/common.py``), not in a module that also
    imports its users. (camsim, apart from the server, is not held to it here.)"""
    cycles = import_cycles(("vms", "onvif_bridge", "recorder", "web"))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
