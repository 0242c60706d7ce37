"""The package boundaries the README's Architecture section states, checked on the imports.

Every import counts, including ones inside functions (a lazy import hides a dependency, it
does not remove it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain import steps
from domain.edit import TERMINAL_STATES, EditState

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "domain", "storage")
MAX_MODULE_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


MODULES = _modules()


def _imports(name: str) -> Iterator[str]:
    """Every module `name` imports (absolute names; `from x import y` yields x and x.y)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _internal(target: str) -> str | None:
    """The project module an import names (None for third-party modules)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


GRAPH = {name: {m for t in _imports(name) if (m := _internal(t)) and m != name} for name in MODULES}


def _violations(sources: str, forbidden: tuple[str, ...]) -> list[str]:
    """Imports from modules under `sources` of anything under one of `forbidden`."""
    found = []
    for name in MODULES:
        if name != sources and not name.startswith(sources + "."):
            continue
        for target in _imports(name):
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                found.append(f"{name} imports {target}")
    return sorted(set(found))


def test_domain_imports_no_layer_and_no_io() -> None:
    assert _violations("domain", ("bot", "storage", "telegram", "aiohttp", "sqlalchemy")) == []


def test_storage_imports_nothing_from_the_bot() -> None:
    assert _violations("storage", ("bot", "telegram")) == []


def test_providers_import_no_handlers_and_no_telegram() -> None:
    assert _violations("bot.providers", ("bot.handlers", "bot.web", "telegram")) == []


def test_lifecycle_knows_neither_telegram_nor_http() -> None:
    forbidden = ("telegram", "aiohttp", "bot.handlers", "bot.web", "bot.delivery")
    assert _violations("bot.lifecycle", forbidden) == []


def test_images_and_policy_import_no_handlers() -> None:
    found = _violations("bot.images", ("bot", "storage", "telegram", "aiohttp"))
    assert [v for v in found if not v.split(" imports ")[1].startswith("bot.images")] == []
    assert _violations("bot.policy", ("bot.handlers",)) == []


def test_handlers_do_not_import_each_other() -> None:
    """A handler module uses the shared helpers and its own views, never another handler."""
    found = []
    for name, targets in GRAPH.items():
        if not name.startswith("bot.handlers.") or name.endswith("_views"):
            continue
        own_views = f"{name}_views"
        for target in targets:
            if not target.startswith("bot.handlers") or target in ("bot.handlers", own_views):
                continue
            if target != "bot.handlers.common":
                found.append(f"{name} imports {target}")
    assert sorted(found) == []


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH[name]):
            if target == "bot.handlers" and name.startswith("bot.handlers."):
                continue  # a package's own __init__ importing its modules is not a cycle
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("domain")))
def test_modules_stay_small(name: str) -> None:
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{name}: {lines} lines"


def test_the_step_table_is_the_whole_state_machine() -> None:
    names = [step.name for step in steps.STEPS]
    assert len(names) == len(set(names))
    # No step leaves an ended edit, except a late success after an uncertain submission.
    leaving_ends = [step.name for step in steps.STEPS if step.sources & TERMINAL_STATES]
    assert leaving_ends == ["late_success"]
    assert steps.LATE_SUCCESS.error_codes == steps.UNCERTAIN_SUBMISSIONS
    # Every state is reachable from the two states an edit is created in.
    reached = {EditState.QUEUED, EditState.AWAITING_APPROVAL}
    while True:
        more = {s.target for s in steps.STEPS if s.sources & reached} - reached
        if not more:
            break
        reached |= more
    assert reached == set(EditState)
    # Every state change in the code goes through the table: nothing else calls the
    # storage's state-changing UPDATE with raw states.
    for name, path in MODULES.items():
        text = path.read_text()
        assert "list(EditState)" not in text, name
