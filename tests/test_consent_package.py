"""The consent package as a whole: its docstring examples run, and it stays pure Python."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = ["consent", "consent.keys", "consent.proof", "consent.credential", "consent.verify"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_consent_imports_nothing_heavy_and_nothing_of_ours() -> None:
    """consent/ is the bottom layer: no torch, gradio, SQL or numpy, and no studio/models/watermark."""
    forbidden = ["torch", "gradio", "sqlalchemy", "numpy", "studio", "models", "watermark"]
    code = (
        "import sys, consent, consent.verify\n"
        f"bad = [m for m in {forbidden!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
