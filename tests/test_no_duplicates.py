"""The suite stays free of copies: no two test functions of one level (tests/domain,
tests/workflows, tests/api, tests/e2e, tests/page) share a name and a body, and no fixture is
defined twice with the same body anywhere under tests/ (a fixture shared by modules belongs in
their level's conftest; a module may override one only to configure it differently)."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).parent


def _functions(path: Path) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Top-level functions, and the methods of top-level classes."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.ClassDef):
            yield from (
                n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            )
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) in ("pytest.fixture", "fixture"):
            return True
    return False


def _body(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """Signature and statements, formatting and comments aside."""
    return ast.unparse(node.args) + "\n" + "\n".join(ast.unparse(s) for s in node.body)


def _where(path: Path, node: ast.AST, root: Path) -> str:
    return f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"


def duplicates(root: Path) -> list[str]:
    """Every copy found under `root` (a tests/ folder), described for a failure message."""
    tests: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    fixtures: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        level = path.relative_to(root).parts[0] if path.parent != root else ""
        for node in _functions(path):
            if _is_fixture(node):
                fixtures[(node.name, _body(node))].append(_where(path, node, root))
            elif node.name.startswith("test") and path.name.startswith("test_"):
                tests[(level, node.name, _body(node))].append(_where(path, node, root))
    found = [
        f"test {name} in {places}" for (_, name, _), places in tests.items() if len(places) > 1
    ]
    found += [
        f"fixture {name} in {places}" for (name, _), places in fixtures.items() if len(places) > 1
    ]
    return found


def test_no_test_or_fixture_is_defined_twice() -> None:
    assert duplicates(TESTS) == []


def test_the_check_finds_a_copied_test_and_a_copied_fixture(tmp_path: Path) -> None:
    level = tmp_path / "domain"
    level.mkdir()
    fixture = "import pytest\n\n@pytest.fixture\ndef thing():\n    return 1\n"
    test = "def test_it():\n    assert 1 + 1 == 2\n"
    (level / "test_a.py").write_text(fixture + "\n\n" + test)
    (level / "test_b.py").write_text(fixture + "\n\n" + test)
    # an override that configures differently, and a same-named test in another level: allowed
    (level / "test_c.py").write_text(fixture.replace("return 1", "return 2"))
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "test_d.py").write_text(test)
    assert duplicates(tmp_path) == [
        "test test_it in ['domain/test_a.py:8', 'domain/test_b.py:8']",
        "fixture thing in ['domain/test_a.py:4', 'domain/test_b.py:4']",
    ]
