"""The import layering of docs/architecture.md, checked on the source files with ``ast``.

``studio`` -> (``models``, ``watermark``) -> ``consent``: ``consent`` and ``watermark``
import nothing of ours; ``models`` imports only ``VerifiedConsent`` from ``consent``;
``studio/render`` (the write path) never imports ``studio/web``; nothing imports the tests.
Imports inside functions and under ``TYPE_CHECKING`` count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"consent", "models", "watermark", "studio", "tests", "benchmarks"}
# Modules that live in tests/ and are imported there by their bare name (tests/ is on sys.path).
TEST_MODULES = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"conftest"}


def _imports(path: Path, package: str | None = None) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) for every import in the file; relative ones resolved
    against ``package`` (by default the file's own package in this repository)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _violations(folders: tuple[str, ...], allowed) -> list[str]:  # noqa: ANN001 - (module, names) -> bool
    bad = []
    for path in _sources(*folders):
        for line, module, names in _imports(path):
            if not allowed(module, names):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} {names or ''}".rstrip())
    return bad


def _top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("package", ["consent", "watermark"])
def test_consent_and_watermark_import_nothing_of_ours(package: str) -> None:
    assert _violations((package,), lambda m, _: _top(m) not in OURS - {package}) == []


def test_models_import_only_verified_consent_from_consent() -> None:
    def allowed(module: str, names: list[str]) -> bool:
        if _top(module) == "consent":
            return module in {"consent", "consent.verify"} and names == ["VerifiedConsent"]
        return _top(module) not in OURS - {"models"}

    assert _violations(("models",), allowed) == []


def test_the_render_path_never_imports_the_web_app() -> None:
    assert _violations(("studio/render",), lambda m, _: not m.startswith("studio.web")) == []


def test_nothing_imports_the_tests() -> None:
    def allowed(module: str, _names: list[str]) -> bool:
        return _top(module) != "tests" and module not in TEST_MODULES

    assert _violations(("consent", "models", "watermark", "studio", "benchmarks"), allowed) == []


def test_the_checker_finds_imports_in_functions_relative_and_type_checking(tmp_path: Path) -> None:
    """The scan itself: an import inside a function, a relative one and one under
    TYPE_CHECKING are all found and resolved."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from studio.web.app import build_app\n"
        "def f():\n    from ..web import login\n    import tests.studio_support\n"
    )
    modules = {module for _, module, _ in _imports(sample, package="studio.render")}
    assert {"studio.web.app", "studio.web", "tests.studio_support"} <= modules
