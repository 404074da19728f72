"""What the browser tests share: Debian's chromium, a served demo studio, login, screenshots, the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from studio_support import free_port, wait_until_serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup installs it)")


@contextmanager
def serving_demo(home: Path, log_path: Path) -> Iterator[str]:
    """`avatar-studio serve --demo` on a free loopback port over ``home``; yields its URL."""
    port = free_port()
    env = dict(os.environ, STUDIO_HOME=str(home), PYTHONUNBUFFERED="1")
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "serve", "--demo", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def browser_page() -> Iterator[Any]:
    """A fresh page in headless chromium (downloads allowed, 1400x1000)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        try:
            yield context.new_page()
        finally:
            browser.close()


def shot(page: Any, work: Path, name: str) -> Path:
    """Save a full-page screenshot in ``work`` (and in $STUDIO_SCREENSHOTS when set)."""
    path = work / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("STUDIO_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(extra) / path.name)
    return path


def login(page: Any, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.locator("input[type=password]").wait_for(timeout=60_000)
    page.locator("input:not([type=password])").first.fill(user)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Login").click()
    page.get_by_text(f"Logged in as {user}").wait_for(timeout=60_000)


def cli(home: Path, *args: str) -> str:
    """Run the CLI on ``home`` in its own process; its standard output (it must succeed)."""
    env = dict(os.environ, STUDIO_HOME=str(home))
    out = subprocess.run([sys.executable, "-m", "studio.cli", *args], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout
