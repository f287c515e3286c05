"""Browser fixtures: Debian's Chromium driven by Playwright against a daphne process."""

import os
import shutil
from pathlib import Path

import pytest

from tests.servers import DaphneServer

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _chromium_path()
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)."
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing browser there is a broken build, not a skip.
        pytest.skip(message)
    return path


@pytest.fixture
def site(transactional_db, fake_upstream):
    """The site in a daphne process sharing the test database (rows must be committed)."""
    with DaphneServer(static=True) as server:
        yield server


@pytest.fixture
def page(chromium_path, site, monkeypatch):
    """A fresh browser page; torn down before the database is flushed."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps its event loop marked as running on this thread,
    # which Django's async-safety check would take for async code calling the ORM.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


@pytest.fixture
def screenshot(page, request):
    """Return `take(name)`: save a full-page screenshot when CHAT_E2E_SCREENSHOTS names a folder."""
    folder = os.environ.get("CHAT_E2E_SCREENSHOTS")

    def take(name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{request.node.name}-{name}.png"), full_page=True)

    return take
