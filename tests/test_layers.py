"""The layers of docs/architecture.md: which of our packages each package may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"dynamics", "core", "models", "migrations", "workers", "service", "lindyn"}
ALLOWED = {
    "dynamics": set(),
    "core": {"dynamics"},
    "models": {"core", "dynamics"},
    "migrations": {"core", "models"},
    "workers": {"core", "models", "dynamics"},
    "service": {"core", "models", "dynamics"},
    "lindyn": {"dynamics", "core", "models", "migrations", "workers"},
}
#: the only modules of lindyn/ that may reach the server's packages, and only inside the commands that run it
SERVER_COMMANDS = {"lindyn/commands/server.py", "lindyn/commands/keys.py"}
SERVER_SIDE = {"core", "models", "migrations", "workers", "service"}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level package of ours, imported at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    module_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in OURS:
                found.append((top, id(node) in module_level))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for top, at_module_level in _imports(path):
            if top == package:
                continue
            if top not in ALLOWED[package]:
                wrong.append(f"{rel} imports {top}")
            elif package == "lindyn" and top in SERVER_SIDE and (rel not in SERVER_COMMANDS or at_module_level):
                wrong.append(f"{rel} imports {top} (the client reaches the server only inside a server command)")
    assert not wrong, "\n".join(wrong)
