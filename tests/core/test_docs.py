"""Docs that cannot drift: the README's CLI reference names every command, ARCHITECTURE.md names
every module, and every documented setting is read by some code — or is listed, plainly, as not yet
in effect (and then is read by nothing, so the list shrinks as features land).

Settings are documented from one table, :data:`vms.config.SETTINGS` (and ``VOLUME_SETTINGS``): the
README's configuration reference is written by hand from it, and ``tests/core/test_config.py``
checks that every key and environment variable of the table is in the README.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from vms.cli import build_parser
from vms.config import _SECTIONS, SETTINGS, VOLUME_SETTINGS, Settings, Volume

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vms", "onvif_bridge", "recorder", "web", "camsim")


def section(text: str, heading: str) -> str:
    """The body of the Markdown section ``heading`` (up to the next heading of its level)."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n") + len(heading) + 1
    end = text.find("\n" + level + " ", start)
    return text[start:] if end < 0 else text[start:end]


# --- (a) the CLI reference --------------------------------------------------------------------

def command_tree(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command path (``"user token add"``) and its parser, groups and leaves alike."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(p: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found[" ".join((*path, name))] = child
                    walk(child, (*path, name))

    walk(parser, ())
    return found


def is_leaf(p: argparse.ArgumentParser) -> bool:
    """A command that runs something: no subcommands, or subcommands that are optional because
    the group itself has an action (``vms storage`` is ``vms storage status``)."""
    groups = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return not groups or (not any(g.required for g in groups) and p.get_default("func") is not None)


def documented_commands(readme: str) -> list[str]:
    """The command paths the CLI reference's code spans name: ``vms user token add NAME`` is
    ``user token add`` (words after ``vms`` up to the first that is no subcommand)."""
    tree = command_tree(build_parser())
    paths = []
    for span in re.findall(r"`(vms [^`]+)`", section(readme, "## CLI reference")):
        path: list[str] = []
        for word in span.split()[1:]:
            if " ".join((*path, word)) not in tree:
                break
            path.append(word)
        paths.append(" ".join(path) or span)
    return paths


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = command_tree(build_parser())
    documented = documented_commands(readme)
    missing = [f"vms {path}" for path, p in tree.items() if is_leaf(p) and path not in documented]
    assert not missing, ("README's CLI reference does not show these commands (write each as "
                         "`vms <command> <arguments>`): " + ", ".join(missing))
    unknown = [path for path in documented if path not in tree or not is_leaf(tree[path])]
    assert not unknown, f"README's CLI reference names commands that do not exist: {unknown}"


# --- (b) ARCHITECTURE.md names every module ---------------------------------------------------

def our_modules() -> list[str]:
    """Repository paths of our modules; an ``__init__.py`` that holds only a docstring is none."""
    paths = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            if path.name == "__init__.py":
                body = ast.parse(path.read_text(encoding="utf-8")).body
                if all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                       for n in body):
                    continue
            paths.append(path.relative_to(ROOT).as_posix())
    return paths


def architecture_names(text: str) -> tuple[set[str], list[str]]:
    """The modules ARCHITECTURE.md names, as repository paths, and the names it gives that are no
    module. A module is named by its path in backticks (`` `recorder/run.py` ``), or, in a row of
    the folder table that starts with its package (`` `vms/` ``, `` `vms/app.py` ``), by its path
    inside the package (`` `run.py` ``, `` `db/models.py` ``, `` `cli/common.py` ``)."""
    named: set[str] = set()
    stale: list[str] = []
    for span in re.findall(r"`([\w/]+\.py)`", text):
        if span.split("/")[0] in PACKAGES:
            (named.add(span) if (ROOT / span).is_file() else stale.append(span))
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        pkg = re.match(r"\s*`(\w+)/", first_cell)
        if pkg is None or pkg.group(1) not in PACKAGES:
            continue
        for span in re.findall(r"`([\w/]+\.py)`", line):
            if span.split("/")[0] in PACKAGES:
                continue
            path = f"{pkg.group(1)}/{span}"
            (named.add(path) if (ROOT / path).is_file() else stale.append(span))
    return named, stale


def test_every_module_is_in_architecture() -> None:
    named, stale = architecture_names((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    missing = [path for path in our_modules() if path not in named]
    problems = ([f"does not name these modules (add each to its package's row of the folder "
                 f"table): {', '.join(missing)}"] if missing else [])
    problems += [f"names modules that do not exist: {', '.join(stale)}"] if stale else []
    assert not problems, "ARCHITECTURE.md " + "; and ".join(problems)


# --- (c) every documented setting is read by code --------------------------------------------

NOT_YET = "**Not yet in effect:**"


def not_yet_in_effect(readme: str) -> list[str]:
    """The keys the README lists after ``**Not yet in effect:**`` (one paragraph)."""
    assert readme.count(NOT_YET) == 1, f"README needs one paragraph starting {NOT_YET}"
    paragraph = readme[readme.index(NOT_YET):].split("\n\n")[0]
    return re.findall(r"`([\w.]+)`", paragraph)


def _accessors() -> dict[tuple[str, str], set[str]]:
    """(section, name) of each property or method of a settings class in vms/config.py, with the
    keys it reads: a read of ``settings.database_url`` is a read of ``database.url``."""
    classes = ({cls.__name__: name for name, cls in _SECTIONS.items()}
               | {Settings.__name__: "", Volume.__name__: "storage.volumes"})
    tree = ast.parse((ROOT / "vms" / "config.py").read_text(encoding="utf-8"))
    out: dict[tuple[str, str], set[str]] = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or cls.name not in classes:
            continue
        sec = classes[cls.name]
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            keys = set()
            for node in ast.walk(fn):
                if not isinstance(node, ast.Attribute):
                    continue
                value = node.value
                if isinstance(value, ast.Name) and value.id == "self":
                    keys.add(f"{sec}.{node.attr}" if sec else node.attr)
                elif (not sec and isinstance(value, ast.Attribute)
                      and isinstance(value.value, ast.Name) and value.value.id == "self"):
                    keys.add(f"{value.attr}.{node.attr}")
            out[(sec, fn.name)] = keys
    return out


def _section_typed_names(tree: ast.Module) -> dict[str, str]:
    """Names annotated in ``tree`` (parameters, annotated assignments) with a settings section's
    class (``defaults: RetentionSettings``): their section. File-wide, which is enough here."""
    classes = {cls.__name__: name for name, cls in _SECTIONS.items()}
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            name, annotation = node.arg, node.annotation
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation = node.target.id, node.annotation
        else:
            continue
        text = ast.unparse(annotation).strip("'\"")
        if text in classes:
            out[name] = classes[text]
    return out


def settings_read() -> dict[str, str]:
    """Each setting read by code outside vms/config.py, with one place that reads it: a
    ``<section>.<key>`` attribute chain (``self.settings.export.muxer``), a top-level key on
    something named settings (``settings.data_dir``, ``app[SETTINGS].data_dir``), a volume key
    on something named for a volume (``volume.min_free_bytes``, ``v.path``), or a property or
    method of vms/config.py that reads the key (``settings.database_url``)."""
    known = {s.dotted for s in SETTINGS}
    documented = known | {s.dotted for s in VOLUME_SETTINGS}
    volume_keys = {s.key for s in VOLUME_SETTINGS}
    accessors = _accessors()
    found: dict[str, str] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path == ROOT / "vms" / "config.py" or "__pycache__" in path.parts:
                continue
            where = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"))
            typed = _section_typed_names(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Attribute) or not isinstance(node.ctx, ast.Load):
                    continue
                keys: set[str] = set()
                value = node.value
                owner = ast.unparse(value)
                if isinstance(value, ast.Attribute):
                    sec = value.attr
                    if f"{sec}.{node.attr}" in known:
                        keys.add(f"{sec}.{node.attr}")
                    keys |= accessors.get((sec, node.attr), set()) if sec in _SECTIONS else set()
                if re.search(r"settings", owner, re.IGNORECASE):
                    if node.attr in known:
                        keys.add(node.attr)
                    keys |= accessors.get(("", node.attr), set())
                if isinstance(value, ast.Name) and value.id in typed:
                    sec = typed[value.id]
                    if f"{sec}.{node.attr}" in known:
                        keys.add(f"{sec}.{node.attr}")
                    keys |= accessors.get((sec, node.attr), set())
                if re.search(r"(^|\W)(v|vol\w*)$|volumes\[", owner):
                    if node.attr in volume_keys:
                        keys.add(f"storage.volumes.{node.attr}")
                    keys |= accessors.get(("storage.volumes", node.attr), set())
                for key in keys & documented:
                    found.setdefault(key, f"{where}:{node.lineno}")
    return found


def test_every_documented_setting_is_read_by_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pending = not_yet_in_effect(readme)
    documented = {s.dotted for s in (*SETTINGS, *VOLUME_SETTINGS)}
    assert set(pending) <= documented, (f"{NOT_YET} lists keys that are no setting: "
                                        f"{sorted(set(pending) - documented)}")
    read = settings_read()
    unread = sorted(documented - set(read) - set(pending))
    assert not unread, ("documented settings that no code reads (make them work, or list them in "
                        f"README's {NOT_YET} paragraph): {unread}")
    now_read = {key: read[key] for key in pending if key in read}
    assert not now_read, (f"README lists as {NOT_YET} settings that code now reads; take them off "
                          f"the list: {now_read}")
