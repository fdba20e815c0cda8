"""The house style's size limits, measured: a module under 400 lines, a function under 40.

A function may be longer when a comment on the line right above it (above its decorators,
if any) starts with ``# long:`` and says why, e.g. a table that reads best in one piece.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "runtime", "policies")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40
REASON = "# long:"


def modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def length(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the last line of the body, docstring included."""
    assert function.end_lineno is not None
    return function.end_lineno - function.lineno + 1


def has_reason(function: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> bool:
    first = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    return first >= 2 and lines[first - 2].strip().startswith(REASON)


def too_long(path: Path) -> list[str]:
    """``name:line function (n lines)`` for each function over the limit without a reason."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    return [
        f"{_name(path)}:{function.lineno} {function.name} ({length(function)} lines)"
        for function in functions(ast.parse(text))
        if length(function) > MAX_FUNCTION_LINES and not has_reason(function, lines)
    ]


@pytest.mark.parametrize("path", modules(), ids=_name)
def test_module_is_under_the_line_limit(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines: split it by responsibility"


@pytest.mark.parametrize("path", modules(), ids=_name)
def test_functions_are_short_or_say_why(path: Path) -> None:
    assert too_long(path) == [], f"split them, or say why above the def with '{REASON} ...'"


def test_the_measure_counts_the_docstring_and_reads_the_reason() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES - 2))
    source = f'def short():\n    """Doc."""\n{body}\n\n# long: a reason\n@decorated\ndef why():\n'
    source += f'    """Doc."""\n{body}\n    return 1\n'
    tree = ast.parse(source)
    short, why = functions(tree)
    assert (length(short), length(why)) == (MAX_FUNCTION_LINES, MAX_FUNCTION_LINES + 1)
    lines = source.splitlines()
    assert (has_reason(short, lines), has_reason(why, lines)) == (False, True)
