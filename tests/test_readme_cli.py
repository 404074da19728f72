"""The README's command-line round trip, run as written against a fresh demo data folder.

The fenced block under "A whole consent round trip by hand" is read from README.md; each
``$S ...`` command runs in-process (``studio.cli.main``) from a folder laid out like the
repository after ``./scripts/serve`` (the demo data in ``data/``). The README's two
placeholders are filled from what the earlier commands printed, as a reader would: the
did:key that ``keys new`` printed and the credential id that ``consent import`` printed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from studio.cli import main
from studio.demo import ensure_demo
from studio_support import small_pipeline

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_round_trip() -> list[str]:
    """The shell lines of the README's round-trip block, continuation lines joined."""
    text = README.read_text()
    start = text.index("A whole consent round trip by hand")
    block = text[text.index("```bash\n", start) + len("```bash\n"):]
    block = block[: block.index("```")]
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_round_trip_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("STUDIO_HOME", raising=False)
    pipeline = small_pipeline(tmp_path / "data")
    demo = ensure_demo(pipeline.config, pipeline)
    pipeline.ledger.close()  # the CLI opens the data folder itself, as it would after ./scripts/serve
    capsys.readouterr()

    filled: dict[str, str] = {}
    ran: list[str] = []
    for line in readme_round_trip():
        words = shlex.split(line, comments=True)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            monkeypatch.setenv(name, value)
            continue
        if words[0].startswith("S="):
            assert words[0] == "S=.venv/bin/avatar-studio"
            continue
        assert words[0] == "$S", f"the README block runs something other than the CLI: {line}"
        argv = [filled.get(word, word) for word in words[1:]]
        rc = main(argv)
        out, err = capsys.readouterr()
        assert rc == 0, f"`{' '.join(argv)}` exited {rc}: {err.strip()}"
        ran.append(" ".join(argv[:2]))
        if argv[:2] == ["keys", "new"]:
            filled["did:key:z6Mk..."] = out.strip()
        if argv[:2] == ["consent", "import"]:
            filled["urn:uuid:..."] = re.search(r"imported (urn:uuid:\S+)", out).group(1)
        if argv[:2] == ["consent", "list"] and len(ran) == 1:
            assert demo.credential_id in out and "Orbit (demo documentary)" in out
        if argv[:2] == ["consent", "verify"]:
            assert "up to 120 s" in out and "likeness matches" in out

    assert ran[0] == "consent list" and "render --credential" in ran and ran[-1] == "consent revoke"
    assert (tmp_path / "out.mp4").is_file() and (tmp_path / "out.receipt.json").is_file()
