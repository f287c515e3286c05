"""Browser fixtures: Debian's Chromium driven by Playwright against a daphne process.

One Chromium for the whole test session (`browser`), a fresh context and page
for each test (`page`). One daphne process for each test module
(`site_server`), on the test database: each test commits its own rows
(`django_db(transaction=True)`), which the server sees, and finds the tables
empty again after it. A module that needs the server configured otherwise
overrides `site_server`.
"""

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.pages import sign_in
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


@pytest.fixture(scope="module")
def site_server(django_db_setup, fake_upstream):
    """The site in a daphne process for the tests of one module, on the test database."""
    with DaphneServer(static=True) as server:
        yield server


@pytest.fixture
def site(site_server, transactional_db):
    """The module's daphne process, for a test whose committed rows are flushed after it.

    The server outlives the test. The tests wait for the replies they start,
    so nothing of theirs is still running when the rows go; a failed test
    may leave a reply streaming, and the server then logs the rows it cannot
    find. Whatever the server keeps in memory is keyed by ids that are never
    reused (users, conversations), so one test's state does not reach the next.
    """
    return site_server


class BrowserLoop:
    """When Playwright's event loop counts as running on this thread.

    Playwright's sync API runs its event loop in a greenlet of this thread and
    leaves it marked as running between calls. Django's async-safety check
    takes that for async code calling the ORM, and `async_to_sync` (used by
    code that broadcasts on commit) refuses to run. The loop is marked while
    a test holds a page, and for no other test of the session.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Mark the loop as running, as Playwright's calls need it."""
        asyncio._set_running_loop(self.loop)
        try:
            yield
        finally:
            asyncio._set_running_loop(None)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Unmark it for a block of sync code that calls `async_to_sync`, while a test holds a page."""
        asyncio._set_running_loop(None)
        try:
            yield
        finally:
            asyncio._set_running_loop(self.loop)


@pytest.fixture(scope="session")
def _playwright(chromium_path):
    """Chromium launched once for the session, with the loop it runs on; see `browser` and `page`."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    loop = BrowserLoop(asyncio.get_running_loop())
    try:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
    except BaseException:
        playwright.stop()
        raise
    asyncio._set_running_loop(None)
    try:
        yield browser, loop
    finally:
        with loop.running():
            browser.close()
            playwright.stop()


@pytest.fixture
def browser_loop(_playwright) -> BrowserLoop:
    return _playwright[1]


@pytest.fixture
def browser(_playwright):
    """The session's Chromium (Playwright's `Browser`)."""
    return _playwright[0]


@pytest.fixture
def page(browser, browser_loop, site, monkeypatch):
    """A page in a fresh browser context, closed before the test's rows are flushed."""
    # With the loop marked as running, Django would refuse the test's own ORM calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with browser_loop.running():
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def logged_in(page, site, alice):
    """`page` signed in as alice, who may use the clipboard (Copy buttons)."""
    sign_in(page.context, site, alice)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url("/").rstrip("/"))
    return page


@pytest.fixture
def screenshot(page, request):
    """Return `take(name)`: save a full-page screenshot when CHAT_E2E_SCREENSHOTS names a folder.

    The file is ``<test name>-<name>.png``; with ``prefixed=False``, ``<name>.png`` (for a
    module whose names are unique already).
    """
    folder = os.environ.get("CHAT_E2E_SCREENSHOTS")

    def take(name: str, *, prefixed: bool = True) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            file_name = f"{request.node.name}-{name}.png" if prefixed else f"{name}.png"
            page.screenshot(path=str(Path(folder) / file_name), full_page=True)

    return take
